use tidegate_sql::Operation;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP TABLE` (and `DROP MATERIALIZED VIEW`) of a table that existed before this migration.
    ///
    /// ## Why is this bad?
    /// The data is gone for good, and every query of the running application that touches the table fails
    /// from the moment the migration commits. The lock request queues behind running queries on the table and
    /// blocks new ones meanwhile.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table (and on tables with foreign keys to it, with CASCADE).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP TABLE legacy_orders;
    /// ```
    ///
    /// ## Use instead
    /// Stop using the table in a release first; rename it to `legacy_orders_to_drop` or revoke access for a
    /// while to catch stragglers; drop it later with a lock_timeout, suppressing this rule with a reason.
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`: `DROP TABLE` of a table that existed before the migration.
    ///
    /// ## MySQL example
    /// ```sql mariadb
    /// DROP TABLE legacy_orders;
    /// ```
    pub struct DropTable {
        severity: Warning,
        summary: "DROP TABLE deletes data and breaks code that still uses the table",
        size_sensitive: false,
    }
}

impl Rule for DropTable {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::app_compat(context, violations, crate::mysql::AppCompat::DropTable);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation == Operation::DropTable {
                violations.push(
                    Violation::new(statement, format!("dropping {} deletes its data and breaks every running query that uses it", effect.table))
                        .help("release code that no longer uses the table first, then drop it in a later migration with a tidegate:ignore reason")
                        .effect(effect),
                );
            }
        }
    }
}
