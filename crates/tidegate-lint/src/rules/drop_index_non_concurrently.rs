use tidegate_sql::Operation;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP INDEX` without `CONCURRENTLY` on an index of a pre-existing table (or an index the replayed
    /// migrations do not know).
    ///
    /// ## Why is this bad?
    /// A plain `DROP INDEX` takes ACCESS EXCLUSIVE on the index's table. The drop itself is quick, but the lock
    /// request waits behind every running transaction on the table, and while it waits every new query on the
    /// table queues behind it: a long-running report turns the drop into an outage.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table; `CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE and waits for conflicting
    /// transactions without blocking others.
    ///
    /// ## PostgreSQL versions
    /// All (`DROP INDEX CONCURRENTLY` exists since 9.2). It cannot run inside a transaction block.
    ///
    /// ## Example
    /// ```sql
    /// DROP INDEX orders_legacy_status;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// DROP INDEX CONCURRENTLY orders_legacy_status;
    /// ```
    pub struct DropIndexNonConcurrently {
        severity: Warning,
        summary: "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table",
        size_sensitive: false,
    }
}

impl Rule for DropIndexNonConcurrently {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                == (Operation::DropIndex {
                    concurrently: false,
                })
            {
                let index = effect.object.as_deref().unwrap_or("the index");
                violations.push(
                    Violation::new(
                        statement,
                        format!("DROP INDEX {index} without CONCURRENTLY takes ACCESS EXCLUSIVE on {}", effect.table),
                    )
                    .help("use DROP INDEX CONCURRENTLY, in a migration that runs outside a transaction")
                    .effect(effect),
                );
            }
        }
    }
}
