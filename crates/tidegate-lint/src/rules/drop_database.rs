use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP DATABASE` in a migration.
    ///
    /// ## Why is this bad?
    /// It deletes every table, row and object of a database at once, and cannot be rolled back: it refuses
    /// to run inside a transaction, so the framework's transaction does not protect it. A migration that
    /// runs in the wrong environment, or twice, loses the data for good. With `WITH (FORCE)` (PostgreSQL
    /// 13+) it also terminates every session connected to it.
    ///
    /// ## Lock taken
    /// Exclusive use of the database: it fails while anyone is connected (or disconnects them, with FORCE).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP DATABASE analytics;
    /// ```
    ///
    /// ## Use instead
    /// Drop databases by hand or in provisioning code, with a backup, never in an application's migrations.
    /// When a migration must remove what it owns, drop the tables it created, by name:
    /// ```sql
    /// SET lock_timeout = '2s';
    /// DROP TABLE IF EXISTS analytics_events_staging;
    /// ```
    pub struct DropDatabase {
        severity: Error,
        summary: "DROP DATABASE deletes a whole database and cannot be rolled back",
        size_sensitive: false,
    }
}

impl Rule for DropDatabase {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if let Some(NodeEnum::DropdbStmt(drop)) = statement.node.as_deref() {
                violations.push(
                    Violation::new(
                        statement,
                        format!("DROP DATABASE {} deletes the whole database, outside any transaction", drop.dbname),
                    )
                    .help("drop databases by hand or in provisioning, with a backup; not in migrations"),
                );
            }
        }
    }
}
