use tidegate_sql::Operation;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags an explicit `LOCK TABLE` of a pre-existing table in a mode that blocks writes (SHARE and
    /// stronger; `LOCK TABLE t` alone means ACCESS EXCLUSIVE).
    ///
    /// ## Why is this bad?
    /// The lock is held until the transaction ends, not until the next statement: every statement after it in
    /// the migration runs while the application's writes (and, for ACCESS EXCLUSIVE, its reads) wait. The lock
    /// request itself queues behind running transactions and blocks everything behind it meanwhile. Taking
    /// locks by hand is rarely needed: each DDL statement takes the lock it needs, for as long as it needs it.
    ///
    /// ## Lock taken
    /// The mode named (ACCESS EXCLUSIVE by default), held to the end of the transaction.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// BEGIN;
    /// LOCK TABLE orders;
    /// UPDATE orders SET status = 'archived' WHERE id = 42;
    /// COMMIT;
    /// ```
    ///
    /// ## Use instead
    /// Let each statement take its own lock, with a `lock_timeout`; when statements truly must see the table
    /// frozen, take the weakest mode that works, with `NOWAIT` or a `lock_timeout`, in a short transaction:
    /// ```sql
    /// BEGIN;
    /// SET LOCAL lock_timeout = '2s';
    /// UPDATE orders SET status = 'archived' WHERE id = 42;
    /// COMMIT;
    /// ```
    pub struct LockTable {
        severity: Warning,
        summary: "An explicit LOCK TABLE blocks the table's traffic until the transaction ends",
        size_sensitive: false,
    }
}

impl Rule for LockTable {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if let Operation::LockTable(level) = effect.operation {
                if level.blocks_writes() {
                    violations.push(
                        Violation::new(statement, format!("LOCK TABLE {} IN {level} MODE {} until the transaction ends", effect.table, level.blocks()))
                            .help("let each statement take its own lock with a lock_timeout; if you must lock, take the weakest mode with NOWAIT")
                            .effect(effect),
                    );
                }
            }
        }
    }
}
