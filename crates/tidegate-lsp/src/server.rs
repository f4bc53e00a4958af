//! The server's state machine: messages in, messages out. [`Server::handle`] takes one client message and
//! queues what to send back; [`Server::publish`] lints the documents that changed since the last call and
//! queues their diagnostics. [`serve`] drives both over a connection, linting once per burst of edits.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument, Exit,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{Request as _, Shutdown};
use lsp_types::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DidSaveTextDocumentParams, InitializeParams, PositionEncodingKind, PublishDiagnosticsParams,
    SaveOptions, ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind,
    TextDocumentSyncOptions, TextDocumentSyncSaveOptions, Uri,
};

use crate::context::MigrationContext;
use crate::diagnostics;
use crate::text::{Document, FindingPositions};
use crate::LspError;

/// Whether the server goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The client sent `exit`; `clean` when it asked for `shutdown` first (the process then exits 0).
    Exit {
        clean: bool,
    },
}

struct OpenDocument {
    document: Document,
    path: Option<PathBuf>,
    context: MigrationContext,
}

/// A language server for migration files: the state of the documents the editor has open.
pub struct Server {
    documents: HashMap<Uri, OpenDocument>,
    /// Documents whose diagnostics are out of date.
    stale: BTreeSet<Uri>,
    /// The client shows `relatedInformation` (else the help goes into the message).
    related_information: bool,
    shutdown_requested: bool,
}

impl Server {
    pub fn new(params: &InitializeParams) -> Self {
        let related_information = params
            .capabilities
            .text_document
            .as_ref()
            .and_then(|text| text.publish_diagnostics.as_ref())
            .and_then(|publish| publish.related_information)
            .unwrap_or(false);
        Self {
            documents: HashMap::new(),
            stale: BTreeSet::new(),
            related_information,
            shutdown_requested: false,
        }
    }

    /// What this server offers: diagnostics pushed on open, incremental change and save.
    pub fn capabilities() -> ServerCapabilities {
        ServerCapabilities {
            position_encoding: Some(PositionEncodingKind::UTF16),
            text_document_sync: Some(TextDocumentSyncCapability::Options(
                TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::INCREMENTAL),
                    will_save: None,
                    will_save_wait_until: None,
                    save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                        include_text: Some(false),
                    })),
                },
            )),
            ..ServerCapabilities::default()
        }
    }

    /// The text the server holds for an open document (what the editor's edits produced).
    pub fn document_text(&self, uri: &Uri) -> Option<&str> {
        self.documents.get(uri).map(|open| open.document.text())
    }

    /// Handles one message from the client, queueing responses in `outgoing`.
    pub fn handle(&mut self, message: Message, outgoing: &mut Vec<Message>) -> Flow {
        match message {
            Message::Request(request) => {
                // Diagnostics of edits made before a request go out before its answer, in the client's order.
                self.publish(outgoing);
                outgoing.push(self.answer(request).into());
                Flow::Continue
            }
            Message::Notification(notification) if notification.method == Exit::METHOD => {
                Flow::Exit {
                    clean: self.shutdown_requested,
                }
            }
            Message::Notification(notification) => {
                self.notify(notification, outgoing);
                Flow::Continue
            }
            // This server sends no requests, so no response is awaited.
            Message::Response(_) => Flow::Continue,
        }
    }

    fn answer(&mut self, request: Request) -> Response {
        if self.shutdown_requested {
            return Response::new_err(
                request.id,
                ErrorCode::InvalidRequest as i32,
                "the server is shutting down; only `exit` is accepted now".to_string(),
            );
        }
        if request.method == Shutdown::METHOD {
            self.shutdown_requested = true;
            return Response::new_ok(request.id, ());
        }
        Response::new_err(
            request.id,
            ErrorCode::MethodNotFound as i32,
            format!(
                "tidegate's language server only publishes diagnostics; it does not answer {}",
                request.method
            ),
        )
    }

    fn notify(&mut self, notification: Notification, outgoing: &mut Vec<Message>) {
        let method = notification.method.clone();
        let outcome = match method.as_str() {
            DidOpenTextDocument::METHOD => notification
                .extract::<DidOpenTextDocumentParams>(DidOpenTextDocument::METHOD)
                .map(|params| self.open(params)),
            DidChangeTextDocument::METHOD => notification
                .extract::<DidChangeTextDocumentParams>(DidChangeTextDocument::METHOD)
                .map(|params| self.change(params)),
            DidSaveTextDocument::METHOD => notification
                .extract::<DidSaveTextDocumentParams>(DidSaveTextDocument::METHOD)
                .map(|params| self.save(params)),
            DidCloseTextDocument::METHOD => notification
                .extract::<DidCloseTextDocumentParams>(DidCloseTextDocument::METHOD)
                .map(|params| self.close(params, outgoing)),
            // `initialized`, `$/cancelRequest`, settings changes and the like need nothing from this server.
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            eprintln!("tidegate lsp: ignoring a malformed {method} notification: {error}");
        }
    }

    fn open(&mut self, params: DidOpenTextDocumentParams) {
        let item = params.text_document;
        let path = file_path(&item.uri);
        let is_sql = item.language_id.eq_ignore_ascii_case("sql")
            || path.as_ref().is_some_and(|path| {
                path.extension()
                    .is_some_and(|extension| extension.eq_ignore_ascii_case("sql"))
            });
        if !is_sql {
            return;
        }
        let context = MigrationContext::load(path.as_deref());
        self.documents.insert(
            item.uri.clone(),
            OpenDocument {
                document: Document::new(item.text, item.version),
                path,
                context,
            },
        );
        self.stale.insert(item.uri);
    }

    fn change(&mut self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        let Some(open) = self.documents.get_mut(&uri) else {
            return;
        };
        for change in &params.content_changes {
            open.document.apply(change);
        }
        open.document.set_version(params.text_document.version);
        self.stale.insert(uri);
    }

    /// A save may follow changes elsewhere too (an earlier migration, `tidegate.toml`): the context is read
    /// again.
    fn save(&mut self, params: DidSaveTextDocumentParams) {
        let uri = params.text_document.uri;
        let Some(open) = self.documents.get_mut(&uri) else {
            return;
        };
        if let Some(text) = params.text {
            let version = open.document.version();
            open.document = Document::new(text, version);
        }
        open.context = MigrationContext::load(open.path.as_deref());
        self.stale.insert(uri);
    }

    fn close(&mut self, params: DidCloseTextDocumentParams, outgoing: &mut Vec<Message>) {
        let uri = params.text_document.uri;
        self.stale.remove(&uri);
        if self.documents.remove(&uri).is_some() {
            // Diagnostics of a closed file would otherwise stay in the editor's problem list.
            outgoing.push(publish(uri, Vec::new(), None));
        }
    }

    /// Lints every document changed since the last call and queues its diagnostics.
    pub fn publish(&mut self, outgoing: &mut Vec<Message>) {
        for uri in std::mem::take(&mut self.stale) {
            let Some(open) = self.documents.get(&uri) else {
                continue;
            };
            let display = open.path.as_ref().map_or_else(
                || uri.as_str().to_string(),
                |path| path.display().to_string(),
            );
            let (report, problem) = open.context.lint(&display, open.document.text());
            let positions = FindingPositions::new(&open.document);
            let mut items: Vec<_> = open
                .context
                .problems()
                .iter()
                .chain(problem.as_ref())
                .map(|problem| diagnostics::problem(problem))
                .collect();
            items.extend(report.findings.iter().map(|finding| {
                diagnostics::from_finding(finding, &positions, &uri, self.related_information)
            }));
            let version = Some(open.document.version());
            outgoing.push(publish(uri, items, version));
        }
    }
}

fn publish(uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) -> Message {
    Notification::new(
        PublishDiagnostics::METHOD.to_string(),
        PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        },
    )
    .into()
}

/// The local path of a `file:` URI (other schemes, such as an editor's untitled buffers, have none).
fn file_path(uri: &Uri) -> Option<PathBuf> {
    let url = url::Url::parse(uri.as_str()).ok()?;
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

/// Runs the server on `connection` until the client sends `exit` (or goes away). Returns whether the client
/// shut the server down properly (`shutdown`, then `exit`).
pub fn serve(connection: &Connection) -> Result<bool, LspError> {
    let (id, params) = connection.initialize_start()?;
    // A client whose capabilities do not parse still gets a server, with the plainest choices.
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let initialize_result = serde_json::json!({
        "capabilities": Server::capabilities(),
        "serverInfo": { "name": "tidegate", "version": env!("CARGO_PKG_VERSION") },
    });
    connection.initialize_finish(id, initialize_result)?;

    let mut server = Server::new(&params);
    let mut outgoing = Vec::new();
    loop {
        let Ok(message) = connection.receiver.recv() else {
            // The client went away without `exit`.
            return Ok(false);
        };
        let mut flow = server.handle(message, &mut outgoing);
        // Apply every edit already waiting before linting, so a burst of keystrokes is linted once.
        while flow == Flow::Continue {
            let Ok(message) = connection.receiver.try_recv() else {
                break;
            };
            flow = server.handle(message, &mut outgoing);
        }
        if flow == Flow::Continue {
            server.publish(&mut outgoing);
        }
        for message in outgoing.drain(..) {
            if connection.sender.send(message).is_err() {
                return Ok(false);
            }
        }
        if let Flow::Exit { clean } = flow {
            return Ok(clean);
        }
    }
}
