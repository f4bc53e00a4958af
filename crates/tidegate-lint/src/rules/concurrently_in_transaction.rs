use tidegate_sql::syntax::{has_option, NodeEnum};
use tidegate_sql::{AlterSubcommand, Operation, TransactionState};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `REINDEX … CONCURRENTLY` and
    /// `DETACH PARTITION … CONCURRENTLY` that would run inside a transaction block: an explicit `BEGIN`, or the
    /// transaction the migration framework wraps around the file (sqlx, diesel, Flyway and dbmate do by
    /// default).
    ///
    /// ## Why is this bad?
    /// PostgreSQL refuses: `ERROR: CREATE INDEX CONCURRENTLY cannot run inside a transaction block`. The
    /// migration fails at deploy time, after any earlier statements of a non-transactional file have been
    /// applied.
    ///
    /// ## Lock taken
    /// None: the statement is rejected before it runs.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// BEGIN;
    /// CREATE INDEX CONCURRENTLY orders_customer_id ON orders (customer_id);
    /// COMMIT;
    /// ```
    ///
    /// ## Use instead
    /// Run the statement outside any transaction: drop the `BEGIN`/`COMMIT`, and turn off the framework's
    /// wrapper for this file (sqlx: first line `-- no-transaction`; diesel: `metadata.toml` with
    /// `run_in_transaction = false`; dbmate: `-- migrate:up transaction:false`; Flyway:
    /// `executeInTransaction=false` in the script's `.conf`).
    /// ```sql
    /// CREATE INDEX CONCURRENTLY orders_customer_id ON orders (customer_id);
    /// ```
    pub struct ConcurrentlyInTransaction {
        severity: Error,
        summary: "A CONCURRENTLY operation inside a transaction block fails",
        size_sensitive: false,
    }
}

impl Rule for ConcurrentlyInTransaction {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if !statement.transaction.in_transaction() {
                continue;
            }
            let what = match statement.node.as_deref() {
                Some(NodeEnum::IndexStmt(index)) if index.concurrent => "CREATE INDEX CONCURRENTLY",
                Some(NodeEnum::DropStmt(drop)) if drop.concurrent => "DROP INDEX CONCURRENTLY",
                Some(NodeEnum::ReindexStmt(reindex))
                    if has_option(&reindex.params, "concurrently") =>
                {
                    "REINDEX CONCURRENTLY"
                }
                _ if statement.effects.iter().any(|effect| {
                    effect.operation
                        == Operation::AlterTable(AlterSubcommand::DetachPartition {
                            concurrently: true,
                        })
                }) =>
                {
                    "DETACH PARTITION CONCURRENTLY"
                }
                _ => continue,
            };
            let (why, help) = match statement.transaction {
                TransactionState::Framework(_) => (
                    "the migration framework runs this file inside a transaction",
                    "turn off the framework's transaction for this file (sqlx: `-- no-transaction` as the first line; diesel: metadata.toml `run_in_transaction = false`; dbmate: `-- migrate:up transaction:false`; Flyway: `executeInTransaction=false`) and keep the statement alone in its migration",
                ),
                _ => (
                    "it follows an explicit BEGIN",
                    "move the statement out of the BEGIN … COMMIT block",
                ),
            };
            violations.push(
                Violation::new(
                    statement,
                    format!("{what} cannot run inside a transaction block, and {why}: PostgreSQL will reject it"),
                )
                .help(help),
            );
        }
    }
}
