//! # tidegate-lint: the migration safety rules
//!
//! Static analysis of PostgreSQL migrations: every statement, the lock it takes, why that is dangerous on a busy
//! database, and the safe rewrite. Statements come from [`tidegate_sql`] (parsed by PostgreSQL's own parser,
//! analysed against a catalog replayed from earlier migrations); this crate adds the rules, their registry,
//! configuration, inline suppressions, table statistics and the output formats.
//!
//! **Architecture invariant:** this crate does no I/O. Callers read files (see `tidegate_sql::discovery`) and
//! hand over text; renderers return strings.
//!
//! - Each rule is one file in [`rules`], documented in a fixed shape (What it does / Why is this bad? / Lock
//!   taken / PostgreSQL versions / Example / Use instead). [`registry()`] lists them; `tidegate explain` and
//!   `docs/rules/` print that same text.
//! - A [`Session`] lints the migrations of one directory in order, carrying the catalog from one to the next.
//! - [`Config`] is the `[lint]` part of `tidegate.toml`; [`TableStats`] is the `--stats` file.
//! - [`render`] turns findings into text, JSON, SARIF, GitHub annotations, GitLab Code Quality or Markdown.
//!
//! ## Example
//!
//! ```
//! use tidegate_lint::{Config, RuleId, Session, Severity};
//!
//! let config = Config::default();
//! let mut session = Session::new(&config, None);
//! session.replay("CREATE TABLE orders (id bigint PRIMARY KEY, order_status text);", false);
//! let report = session.lint(
//!     "migrations/002_status_v2.sql",
//!     "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);\n\
//!      UPDATE orders SET order_status_v2 = order_status;\n",
//!     false,
//! );
//! let rules: Vec<RuleId> = report.findings.iter().map(|finding| finding.rule).collect();
//! assert!(rules.contains(&RuleId::SchemaChangeWithBackfill));
//! assert!(rules.contains(&RuleId::UnbatchedUpdate));
//! // Each finding names its statement by index: the UPDATE is the second statement.
//! assert!(report.findings.iter().any(|f| f.rule == RuleId::UnbatchedUpdate && f.statement == Some(1)));
//! assert!(report.findings.iter().all(|finding| finding.line >= 1));
//! assert_eq!(report.findings.iter().filter(|f| f.severity == Severity::Error).count(), 2);
//! ```

mod config;
mod context;
mod linter;
mod mysql;
mod registry;
pub mod render;
pub mod rules;
mod stats;
mod suppression;

pub use config::{check_db_version, check_version, Config, ConfigError, Dialect, RuleSetting};
pub use context::{Context, Violation};
pub use linter::{FileReport, Finding, Session, STREAMING_THRESHOLD_BYTES, WINDOW_STATEMENTS};
pub use mysql::MyContext;
pub use registry::{
    find_rule, registry, rule, rules_index_markdown, suggest_rule, Rule, RuleDoc, RuleId,
};
pub use stats::{StatsError, TableStats};
pub use tidegate_sql::TableSize;

use serde::Serialize;

/// How serious a finding is. `--fail-on` picks the lowest severity that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn from_name(name: &str) -> Option<Severity> {
        match name.to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
