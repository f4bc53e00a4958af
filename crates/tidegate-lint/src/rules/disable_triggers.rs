use tidegate_sql::syntax::protobuf::AlterTableType;
use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … DISABLE TRIGGER` (a named trigger, `USER` or `ALL`) on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// While disabled, the trigger does not run for the application's writes either, not just the migration's:
    /// sync triggers of an expand/contract migration, audit rows and derived columns silently go stale.
    /// `DISABLE TRIGGER ALL` also disables the internal triggers that enforce foreign keys, so orphaned rows
    /// can be written. If the migration fails before `ENABLE`, the trigger stays off.
    ///
    /// ## Lock taken
    /// SHARE ROW EXCLUSIVE (blocks writes) until the transaction ends.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders DISABLE TRIGGER ALL;
    /// UPDATE orders SET total = total * 100;
    /// ALTER TABLE orders ENABLE TRIGGER ALL;
    /// ```
    ///
    /// ## Use instead
    /// Keep triggers on and batch the data change (`tidegate backfill`); to skip a trigger for the
    /// migration's own session only, `SET session_replication_role = replica` in that session.
    pub struct DisableTriggers {
        severity: Warning,
        summary: "DISABLE TRIGGER turns triggers (and with ALL, foreign keys) off for every session",
        size_sensitive: false,
    }
}

impl Rule for DisableTriggers {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterTableStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            let Some(effect) = statement.effects.first() else {
                continue;
            };
            if !effect.origin.is_pre_existing() {
                continue;
            }
            for command in &alter.cmds {
                let Some(NodeEnum::AlterTableCmd(command)) = command.node.as_ref() else {
                    continue;
                };
                let what = match AlterTableType::try_from(command.subtype).unwrap_or_default() {
                    AlterTableType::AtDisableTrigAll => {
                        "DISABLE TRIGGER ALL also disables foreign-key enforcement and"
                    }
                    AlterTableType::AtDisableTrig | AlterTableType::AtDisableTrigUser => {
                        "DISABLE TRIGGER"
                    }
                    _ => continue,
                };
                violations.push(
                    Violation::new(statement, format!("{what} turns triggers on {} off for every session, not just this migration", effect.table))
                        .help("keep triggers enabled and batch the data change with `tidegate backfill`; for this session only, use SET session_replication_role = replica")
                        .effect(effect),
                );
            }
        }
    }
}
