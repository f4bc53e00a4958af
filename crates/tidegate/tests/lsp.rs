//! `tidegate lsp` end to end: the real binary, spoken to over stdio as an editor would (initialize,
//! initialized, didOpen, publishDiagnostics, didChange, didSave, shutdown, exit), on a migration directory with
//! a `tidegate.toml` above it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

/// Only there so a broken server fails the test instead of hanging it; no assertion depends on it.
const HANG_GUARD: Duration = Duration::from_secs(120);

struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
}

impl Client {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .args(["lsp", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tidegate lsp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            messages,
            next_id: 1,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its response (notifications received meanwhile are dropped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.receive();
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Published {
        loop {
            let message = self.receive();
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return Published(message["params"].clone());
            }
        }
    }

    fn receive(&self) -> Value {
        self.messages
            .recv_timeout(HANG_GUARD)
            .expect("the server answered nothing (or died)")
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

struct Published(Value);

impl Published {
    fn version(&self) -> Value {
        self.0["version"].clone()
    }

    fn codes(&self) -> Vec<String> {
        self.items()
            .iter()
            .filter_map(|diagnostic| diagnostic["code"].as_str().map(str::to_string))
            .collect()
    }

    fn items(&self) -> Vec<Value> {
        self.0["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .clone()
    }

    fn find(&self, code: &str) -> Value {
        self.items()
            .into_iter()
            .find(|diagnostic| diagnostic["code"] == code)
            .unwrap_or_else(|| panic!("no {code} diagnostic in {:#}", self.0))
    }
}

fn file_uri(path: &Path) -> String {
    url::Url::from_file_path(path)
        .expect("absolute path")
        .to_string()
}

/// The LSP position (0-based line, UTF-16 column) of the first `needle` in `text`.
fn utf16_position(text: &str, needle: &str) -> Value {
    let offset = text.find(needle).expect("needle in text");
    let line_start = text[..offset].rfind('\n').map_or(0, |newline| newline + 1);
    json!({
        "line": text[..offset].matches('\n').count(),
        "character": text[line_start..offset].encode_utf16().count(),
    })
}

const CREATE_ORDERS: &str =
    "CREATE TABLE orders (id bigint PRIMARY KEY, status varchar(20), note text);\n";

/// Widening `status` is binary-coercible only if the earlier migration's `varchar(20)` is known; the
/// non-ASCII comment before `shipped_at` makes UTF-16 columns differ from character and byte columns.
const EDITED: &str = "-- Größe ändern 🦀\n\
ALTER TABLE orders ALTER COLUMN status TYPE varchar(50);\n\
ALTER TABLE orders ADD COLUMN /* ünïcødé 🦀 */ shipped_at timestamp;\n";

#[test]
fn diagnostics_follow_open_change_and_save_with_the_directory_as_context() {
    let project = tempfile::tempdir().expect("temp dir");
    let root = project.path();
    std::fs::write(
        root.join("tidegate.toml"),
        "[lint.rules]\nprefer-timestamptz = \"error\"\n",
    )
    .expect("write config");
    let migrations = root.join("db").join("migrations");
    std::fs::create_dir_all(&migrations).expect("mkdir");
    std::fs::write(migrations.join("001_create_orders.sql"), CREATE_ORDERS).expect("write 001");
    let file = migrations.join("002_widen_status.sql");
    std::fs::write(&file, "").expect("write 002");
    let uri = file_uri(&file);

    let mut client = Client::start();
    let initialized = client.request(
        "initialize",
        json!({
            "processId": null,
            "rootUri": file_uri(root),
            "capabilities": { "textDocument": { "publishDiagnostics": { "relatedInformation": true } } },
        }),
    );
    let capabilities = &initialized["result"]["capabilities"];
    assert_eq!(
        capabilities["textDocumentSync"]["change"], 2,
        "incremental sync"
    );
    assert_eq!(capabilities["positionEncoding"], "utf-16");
    client.notify("initialized", json!({}));

    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "sql", "version": 1, "text": EDITED } }),
    );
    let opened = client.diagnostics(&uri);
    assert_eq!(opened.version(), 1);
    assert!(
        !opened
            .codes()
            .contains(&"alter-column-type-rewrite".to_string()),
        "001 created status as varchar(20), so widening it is binary-coercible: {:#}",
        opened.0
    );
    let timestamp = opened.find("prefer-timestamptz");
    assert_eq!(
        timestamp["severity"], 1,
        "tidegate.toml above the file raised it to error"
    );
    assert_eq!(timestamp["source"], "tidegate");
    assert_eq!(
        timestamp["range"]["start"],
        utf16_position(EDITED, "shipped_at")
    );
    let help = timestamp["relatedInformation"][0]["message"]
        .as_str()
        .expect("help as related information");
    assert!(help.starts_with("help: "), "{help}");
    assert!(help.contains("timestamptz"), "{help}");

    // `timestamp` → `timestamptz`: an incremental edit addressed in UTF-16 columns, after the crab.
    let at = utf16_position(EDITED, " timestamp;");
    let start = json!({ "line": at["line"], "character": at["character"].as_u64().unwrap() + 1 });
    let end = json!({ "line": at["line"], "character": at["character"].as_u64().unwrap() + 10 });
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": uri, "version": 2 },
            "contentChanges": [ { "range": { "start": start, "end": end }, "text": "timestamptz" } ],
        }),
    );
    let changed = client.diagnostics(&uri);
    assert_eq!(changed.version(), 2);
    assert!(
        !changed.codes().contains(&"prefer-timestamptz".to_string()),
        "{:#}",
        changed.0
    );

    // `varchar(50)` → `integer` is no longer binary-coercible: the rewrite rule fires where the edit was.
    let text = EDITED.replace(" timestamp;", " timestamptz;");
    let at = utf16_position(&text, "varchar(50)");
    let end = json!({ "line": at["line"], "character": at["character"].as_u64().unwrap() + 11 });
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": uri, "version": 3 },
            "contentChanges": [ { "range": { "start": at, "end": end }, "text": "integer" } ],
        }),
    );
    let retyped = client.diagnostics(&uri);
    assert_eq!(retyped.version(), 3);
    assert_eq!(
        retyped.find("alter-column-type-rewrite")["range"]["start"]["line"],
        1
    );

    // Saving reads the context again: a rule switched off in tidegate.toml meanwhile is gone.
    let text = text.replace("varchar(50)", "integer");
    std::fs::write(&file, &text).expect("save 002");
    std::fs::write(
        root.join("tidegate.toml"),
        "[lint.rules]\nalter-column-type-rewrite = \"off\"\n",
    )
    .expect("write config");
    client.notify(
        "textDocument/didSave",
        json!({ "textDocument": { "uri": uri } }),
    );
    let saved = client.diagnostics(&uri);
    assert!(
        !saved
            .codes()
            .contains(&"alter-column-type-rewrite".to_string()),
        "{:#}",
        saved.0
    );

    // The same text outside any migration directory has no earlier migrations: the widening is a rewrite.
    let loose = tempfile::tempdir().expect("temp dir");
    let loose_file = loose.path().join("widen.sql");
    std::fs::write(&loose_file, EDITED).expect("write loose");
    let loose_uri = file_uri(&loose_file);
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": loose_uri, "languageId": "sql", "version": 1, "text": EDITED } }),
    );
    let alone = client.diagnostics(&loose_uri);
    assert_eq!(
        alone.find("alter-column-type-rewrite")["severity"],
        1,
        "{:#}",
        alone.0
    );
    assert_eq!(
        alone.find("prefer-timestamptz")["severity"],
        3,
        "no tidegate.toml above it: the default severity, info"
    );

    client.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": loose_uri } }),
    );
    assert!(client.diagnostics(&loose_uri).items().is_empty());

    let shutdown = client.request("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    assert!(shutdown.get("error").is_none(), "{shutdown:#}");
    client.notify("exit", Value::Null);
    drop(client.stdin);
    let status = client.child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(0),
        "exit after shutdown is a clean exit"
    );
}

#[test]
fn exit_without_shutdown_is_exit_code_1() {
    let mut client = Client::start();
    client.request("initialize", json!({ "capabilities": {} }));
    client.notify("initialized", json!({}));
    client.notify("exit", Value::Null);
    let status = client.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn without_related_information_the_help_is_in_the_message() {
    let mut client = Client::start();
    client.request("initialize", json!({ "capabilities": {} }));
    client.notify("initialized", json!({}));
    let uri = "untitled:Untitled-1";
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "sql", "version": 7,
            "text": "CREATE INDEX orders_status ON orders (status);" } }),
    );
    let published = client.diagnostics(uri);
    let index = published.find("create-index-non-concurrently");
    assert!(index.get("relatedInformation").is_none(), "{index:#}");
    let message = index["message"].as_str().expect("message");
    assert!(message.contains("\nhelp: "), "{message}");
    assert!(message.contains("CONCURRENTLY"), "{message}");
    let shutdown = client.request("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    client.notify("exit", Value::Null);
    assert_eq!(client.child.wait().expect("wait").code(), Some(0));
}
