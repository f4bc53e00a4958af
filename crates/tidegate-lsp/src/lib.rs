//! # tidegate-lsp: lint findings as editor diagnostics
//!
//! A language server (LSP over stdio, built on rust-analyzer's `lsp-server`) that lints `.sql` files as the
//! editor holds them: on open, on every change and on save it publishes `tidegate lint`'s findings for the
//! buffer, with the rule id as the diagnostic code and the help as related information. A file in a migration
//! directory is judged against the catalog replayed from the migrations before it, and the `tidegate.toml`
//! found upward from the file is honoured, exactly as `tidegate lint FILE` would.
//!
//! - [`text`]: the document kept in step with incremental `didChange` edits, and the conversion between
//!   LSP positions (0-based lines, UTF-16 columns) and findings' (1-based lines, character columns).
//! - [`MigrationContext`]: what a file is linted against, read from disk on open and on save.
//! - [`Server`]: the state machine (messages in, messages out); [`serve`] and [`run_stdio`] drive it.
//!
//! **Architecture invariant:** no database I/O. The server reads migration files and `tidegate.toml`, and
//! talks to its client; nothing else.
//!
//! ## Example
//!
//! ```
//! use lsp_server::{Message, Notification};
//! use lsp_types::InitializeParams;
//! use tidegate_lsp::Server;
//!
//! let mut server = Server::new(&InitializeParams::default());
//! let mut outgoing = Vec::new();
//! let open = serde_json::json!({ "textDocument": {
//!     "uri": "untitled:new.sql", "languageId": "sql", "version": 1,
//!     "text": "CREATE INDEX orders_status ON orders (status);",
//! }});
//! server.handle(Notification::new("textDocument/didOpen".into(), open).into(), &mut outgoing);
//! server.publish(&mut outgoing);
//! let Message::Notification(published) = &outgoing[0] else { unreachable!() };
//! assert_eq!(published.method, "textDocument/publishDiagnostics");
//! assert_eq!(published.params["diagnostics"][0]["code"], "create-index-non-concurrently");
//! ```

mod context;
mod diagnostics;
mod server;
pub mod text;

pub use context::{MigrationContext, CONFIG_FILE};
pub use diagnostics::SOURCE;
pub use server::{serve, Flow, Server};

/// Why the server stopped other than by the client's `exit`.
#[derive(Debug, thiserror::Error)]
pub enum LspError {
    #[error("the language client broke the protocol: {0}")]
    Protocol(#[from] lsp_server::ProtocolError),
    #[error("reading from or writing to the language client failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves one client on stdin/stdout until it exits. Returns whether it shut the server down properly
/// (`shutdown`, then `exit`): by the protocol the process then exits 0, otherwise 1.
pub fn run_stdio() -> Result<bool, LspError> {
    let (connection, io_threads) = lsp_server::Connection::stdio();
    let clean = serve(&connection)?;
    // The writer thread ends once the connection's sender is gone, after sending what is queued.
    drop(connection);
    io_threads.join()?;
    Ok(clean)
}
