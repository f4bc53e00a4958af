use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `CREATE INDEX CONCURRENTLY IF NOT EXISTS`.
    ///
    /// ## Why is this bad?
    /// A concurrent build that fails (deadlock, unique violation, cancelled by a timeout) leaves an INVALID
    /// index behind. Re-running the migration then finds an index with that name, `IF NOT EXISTS` skips the
    /// build, and the migration "succeeds" with an index that queries never use and that still slows every
    /// write.
    ///
    /// ## Lock taken
    /// SHARE UPDATE EXCLUSIVE on the table for the build (reads and writes continue).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_id ON orders (customer_id);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// DROP INDEX CONCURRENTLY IF EXISTS orders_customer_id;
    /// CREATE INDEX CONCURRENTLY orders_customer_id ON orders (customer_id);
    /// ```
    /// or check `pg_index.indisvalid` before skipping.
    pub struct ConcurrentIndexIfNotExists {
        severity: Warning,
        summary: "CREATE INDEX CONCURRENTLY IF NOT EXISTS silently keeps an INVALID index from a failed build",
        size_sensitive: false,
    }
}

impl Rule for ConcurrentIndexIfNotExists {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if let Some(NodeEnum::IndexStmt(index)) = statement.node.as_deref() {
                if index.concurrent && index.if_not_exists {
                    violations.push(
                        Violation::new(
                            statement,
                            format!(
                                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} keeps an INVALID index left by a failed earlier build",
                                index.idxname
                            ),
                        )
                        .help("drop a possibly invalid index first (DROP INDEX CONCURRENTLY IF EXISTS …), then build it without IF NOT EXISTS"),
                    );
                }
            }
        }
    }
}
