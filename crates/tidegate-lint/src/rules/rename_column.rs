use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … RENAME COLUMN` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// Application code deployed before the migration still uses the old name, and code deployed after it uses
    /// the new one: whichever runs against the other schema fails. There is no deploy order in which both
    /// work.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE (brief once granted).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders RENAME COLUMN order_status TO status;
    /// ```
    ///
    /// ## Use instead
    /// Expand and contract: add the new column, write both (a sync trigger), backfill with `tidegate backfill`,
    /// switch reads, stop writing the old one, drop it.
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN status text;
    /// CREATE TRIGGER orders_sync_status BEFORE INSERT OR UPDATE ON orders
    ///     FOR EACH ROW EXECUTE FUNCTION orders_sync_status();
    /// ```
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`: `RENAME COLUMN`, and `CHANGE old new …` with a new name, on a
    /// table that existed before the migration. On MySQL a sync trigger is `CREATE TRIGGER … BEFORE INSERT` and
    /// `BEFORE UPDATE` (one per event).
    ///
    /// ## MySQL example
    /// ```sql mariadb
    /// ALTER TABLE orders RENAME COLUMN order_status TO status;
    /// ```
    pub struct RenameColumn {
        severity: Error,
        summary: "RENAME COLUMN breaks whichever application version uses the other name",
        size_sensitive: false,
    }
}

impl Rule for RenameColumn {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::app_compat(context, violations, crate::mysql::AppCompat::RenameColumn);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation == Operation::AlterTable(AlterSubcommand::RenameColumn) {
                let column = effect.column.as_deref().unwrap_or_default();
                let new_name = effect.object.as_deref().unwrap_or_default();
                violations.push(
                    Violation::new(statement, format!("renaming {}.{column} to {new_name} breaks the application version that uses the other name", effect.table))
                        .help("expand and contract: add the new column, sync it with a trigger, backfill, switch reads, then drop the old column")
                        .effect(effect),
                );
            }
        }
    }
}
