use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … RENAME TO` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// Running application code refers to the table by its old name; from the commit on, all of its queries on
    /// the table fail until the new code is deployed everywhere.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE (brief once granted).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders RENAME TO purchases;
    /// ```
    ///
    /// ## Use instead
    /// Rename, and keep the old name working with an updatable view until every reader has moved:
    /// ```sql
    /// BEGIN;
    /// ALTER TABLE orders RENAME TO purchases;
    /// CREATE VIEW orders AS SELECT * FROM purchases;
    /// COMMIT;
    /// ```
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`: `RENAME TABLE a TO b` and `ALTER TABLE a RENAME TO b` on a
    /// table that existed before the migration. MySQL commits each DDL by itself, so the rename and a view under the
    /// old name cannot be made atomic: there is a moment with neither.
    ///
    /// ## MySQL example
    /// ```sql mariadb
    /// RENAME TABLE orders TO purchases;
    /// ```
    pub struct RenameTable {
        severity: Error,
        summary: "RENAME TABLE breaks running code that uses the old name",
        size_sensitive: false,
    }
}

impl Rule for RenameTable {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::app_compat(context, violations, crate::mysql::AppCompat::RenameTable);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation != Operation::AlterTable(AlterSubcommand::RenameTable) {
                continue;
            }
            // The documented fix: a view with the old name created right after, in the same transaction.
            let old_name = &effect.table.name;
            let bridged = context.after(statement).iter().any(|later| {
                crate::context::same_transaction(statement, later)
                    && matches!(later.node.as_deref(), Some(tidegate_sql::syntax::NodeEnum::ViewStmt(view))
                        if view.view.as_ref().is_some_and(|v| &v.relname == old_name))
            });
            if bridged {
                continue;
            }
            let new_name = effect.object.as_deref().unwrap_or_default();
            violations.push(
                Violation::new(statement, format!("renaming {} to {new_name} breaks every running query that uses the old name", effect.table))
                    .help(format!("in the same transaction, CREATE VIEW {old_name} AS SELECT * FROM {new_name}; drop the view once no code uses the old name"))
                    .effect(effect),
            );
        }
    }
}
