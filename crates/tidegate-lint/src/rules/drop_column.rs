use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … DROP COLUMN` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// During a deploy the old application version is still running; any query of it that names the column
    /// (or an ORM that selects every mapped column) fails the moment the migration commits. The drop itself is
    /// quick but needs ACCESS EXCLUSIVE.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE (brief once granted; catalog-only, the data stays until rewritten).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders DROP COLUMN order_status;
    /// ```
    ///
    /// ## Use instead
    /// Contract in two releases: first ship code that no longer reads or writes the column (and tell the ORM to
    /// ignore it), then drop it in a later migration, with a lock_timeout. Suppress this rule on that
    /// migration with a reason: `-- tidegate:ignore drop-column code stopped using it in release 41`.
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`: `ALTER TABLE … DROP COLUMN` on a table that existed before the
    /// migration. The drop is INSTANT on MariaDB 10.4+ and MySQL 8.0.29+, and breaks running code all the same.
    ///
    /// ## MySQL example
    /// ```sql mariadb
    /// ALTER TABLE orders DROP COLUMN order_status;
    /// ```
    pub struct DropColumn {
        severity: Warning,
        summary: "DROP COLUMN breaks application code that still uses the column",
        size_sensitive: false,
    }
}

impl Rule for DropColumn {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::app_compat(context, violations, crate::mysql::AppCompat::DropColumn);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation == Operation::AlterTable(AlterSubcommand::DropColumn) {
                let column = effect.column.as_deref().unwrap_or("the column");
                violations.push(
                    Violation::new(statement, format!("dropping {}.{column} breaks every running query and ORM model that still uses it", effect.table))
                        .help("first release code that no longer uses the column, then drop it in a later migration (and say so in a tidegate:ignore reason)")
                        .effect(effect),
                );
            }
        }
    }
}
