use tidegate_sql::Operation;

use tidegate_sql::syntax::protobuf::ObjectType;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP TRIGGER` on a pre-existing table, unless the same migration created the trigger.
    ///
    /// ## Why is this bad?
    /// A trigger does work the application relies on without calling it: keeping an expand/contract column in
    /// sync, writing an audit row, maintaining `updated_at`, a search vector or a counter. From the commit on,
    /// writes of the running application stop doing that work, and the gap in the data only shows later. The
    /// lock request queues behind running queries on the table and blocks new ones meanwhile.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (but queued behind running transactions).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP TRIGGER orders_sync_status ON orders;
    /// ```
    ///
    /// ## Use instead
    /// Drop a sync trigger only after nothing reads the column it feeds (the contract step), with a
    /// `lock_timeout` and a `tidegate:ignore drop-trigger` reason. A trigger this migration creates may be
    /// dropped freely:
    /// ```sql
    /// CREATE TRIGGER orders_scratch BEFORE UPDATE ON orders
    ///     FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
    /// DROP TRIGGER orders_scratch ON orders;
    /// ```
    pub struct DropTrigger {
        severity: Warning,
        summary: "DROP TRIGGER stops work running code relies on (sync, audit, updated_at)",
        size_sensitive: false,
    }
}

impl Rule for DropTrigger {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation != Operation::DropTrigger {
                continue;
            }
            let trigger = effect.object.as_deref().unwrap_or_default();
            let name = format!("{}.{trigger}", effect.table);
            if context
                .facts
                .created_before(statement.index, ObjectType::ObjectTrigger, &name)
            {
                continue;
            }
            violations.push(
                Violation::new(statement, format!("dropping trigger {trigger} on {} stops the work it does for every write of running code", effect.table))
                    .help("drop a sync or audit trigger only once nothing relies on what it maintains, with a tidegate:ignore reason")
                    .effect(effect),
            );
        }
    }
}
