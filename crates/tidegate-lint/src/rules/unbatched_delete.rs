use tidegate_sql::{Operation, RowScope};

use crate::context::{Context, Violation, BATCH_HELP};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags a `DELETE` on a pre-existing table that is not bounded to one batch: no `WHERE`, a `WHERE` on
    /// non-key columns, or a `DELETE … USING` join. Key equality, a two-ended key range, `id IN (…)` and
    /// `id IN (SELECT id … LIMIT n)` are bounded and not flagged, and so is a `USING` of a CTE with `LIMIT`
    /// joined on the key.
    ///
    /// ## Why is this bad?
    /// One statement deletes every matching row in one transaction: it holds a row lock on each until commit,
    /// writes WAL for each (replicas fall behind), leaves all the dead rows for VACUUM at once, and cannot be
    /// paused. Cancelling it rolls back everything it did.
    ///
    /// ## Lock taken
    /// ROW EXCLUSIVE on the table and a row lock on every deleted row, held until commit.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DELETE FROM events WHERE created_at < now() - interval '90 days';
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// DELETE FROM events
    /// WHERE id IN (SELECT id FROM events WHERE created_at < now() - interval '90 days' LIMIT 5000);
    /// ```
    /// repeated, with a pause between batches, until it deletes nothing.
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`; `DELETE … LIMIT n` without a key bound is a warning (bounded,
    /// but each run rescans from the start).
    ///
    /// ## MySQL example
    /// ```sql mariadb
    /// DELETE FROM events WHERE created_at < '2024-01-01';
    /// ```
    ///
    /// ## MySQL use instead
    /// ```sql mariadb
    /// DELETE FROM events WHERE id >= 1 AND id < 5001 AND created_at < '2024-01-01';
    /// ```
    pub struct UnbatchedDelete {
        severity: Error,
        summary: "DELETE on a pre-existing table not bounded to one batch",
        size_sensitive: true,
    }
}

impl Rule for UnbatchedDelete {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::unbatched(context, violations, false);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(target) = statement.effects.first() else {
                continue;
            };
            if target.operation != Operation::Delete || !target.origin.is_pre_existing() {
                continue;
            }
            let Some(rows) = statement.row_scope() else {
                continue;
            };
            let table = &target.table;
            let message = match rows {
                RowScope::OneBatch => continue,
                RowScope::Joined => format!(
                    "DELETE … USING on {table} deletes every row the join matches in one statement"
                ),
                RowScope::All => {
                    format!("DELETE without WHERE deletes every row of {table} in one statement")
                }
                RowScope::Filtered => format!(
                    "DELETE on {table} is not bounded to a batch of its key ({}): it may delete any number of rows in one transaction",
                    context.key_columns(table).join(", ")
                ),
            };
            let mut violation = Violation::new(statement, message)
                .help(BATCH_HELP)
                .table(table);
            violation.lock = Some(format!(
                "ROW EXCLUSIVE on {table} plus a lock on every deleted row until commit"
            ));
            violations.push(violation);
        }
    }
}
