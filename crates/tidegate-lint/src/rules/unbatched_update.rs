use tidegate_sql::{Operation, RowScope};

use crate::context::{Context, Violation, BATCH_HELP};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags an `UPDATE` on a pre-existing table that is not bounded to one batch: no `WHERE`, a `WHERE` on
    /// non-key columns, or an `UPDATE … FROM` join. A key equality (`WHERE id = $1`), a key range with both ends
    /// (`WHERE id >= 1000 AND id < 2000`, `BETWEEN`), `id IN (…)` or `WHERE id IN (SELECT id … LIMIT n)` is
    /// a bounded batch and is not flagged, and so is `WITH batch AS (SELECT … LIMIT n) UPDATE t … FROM batch
    /// WHERE t.id = batch.id`.
    ///
    /// ## Why is this bad?
    /// One statement updates every matching row in one transaction: it writes a new version of each row (the
    /// table and its indexes can double in size), generates WAL faster than replicas replay it, and holds a row
    /// lock on every updated row until it commits, so application writes to those rows wait for the whole
    /// statement. Nothing throttles it, and cancelling it rolls back all the work. On the incident's orders table
    /// (millions of rows) this meant 45 minutes of user impact.
    ///
    /// ## Lock taken
    /// ROW EXCLUSIVE on the table (does not block reads or other writers) and a row lock on every updated row,
    /// held until commit.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// UPDATE orders SET order_status_v2 = order_status;
    /// UPDATE orders SET archived = true WHERE created_at < '2020-01-01';
    /// ```
    ///
    /// ## Use instead
    /// ```console
    /// $ tidegate backfill --table orders --set 'order_status_v2 = order_status' --where 'order_status_v2 IS NULL'
    /// ```
    /// or, in code that loops, one bounded batch per statement:
    /// ```sql
    /// UPDATE orders SET order_status_v2 = order_status WHERE id >= 1 AND id < 10001;
    /// ```
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`. The postmortem's own fix, `UPDATE … WHERE col IS NULL LIMIT
    /// 1000`, is bounded but not by the key: each run scans the table again from the start, past every row the
    /// earlier runs changed, so it is reported as a warning that says so; `tidegate backfill` walks the primary key
    /// in keyset batches with a checkpoint per batch instead.
    ///
    /// ## MySQL example
    /// ```sql mysql
    /// UPDATE orders SET order_status_v2 = order_status WHERE order_status_v2 IS NULL LIMIT 1000;
    /// ```
    ///
    /// ## MySQL use instead
    /// ```sql mysql
    /// UPDATE orders SET order_status_v2 = order_status WHERE id BETWEEN 1 AND 10000;
    /// ```
    pub struct UnbatchedUpdate {
        severity: Error,
        summary: "UPDATE on a pre-existing table not bounded to one batch",
        size_sensitive: true,
    }
}

impl Rule for UnbatchedUpdate {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::unbatched(context, violations, true);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(target) = statement.effects.first() else {
                continue;
            };
            if target.operation != Operation::Update || !target.origin.is_pre_existing() {
                continue;
            }
            let Some(rows) = statement.row_scope() else {
                continue;
            };
            let table = &target.table;
            let message = match rows {
                RowScope::OneBatch => continue,
                RowScope::Joined => format!(
                    "UPDATE … FROM on {table} updates every row the join matches in one statement"
                ),
                RowScope::All => {
                    format!("UPDATE without WHERE rewrites every row of {table} in one statement")
                }
                RowScope::Filtered => format!(
                    "UPDATE on {table} is not bounded to a batch of its key ({}): it may update any number of rows in one transaction",
                    context.key_columns(table).join(", ")
                ),
            };
            let mut violation = Violation::new(statement, message)
                .help(BATCH_HELP)
                .table(table);
            violation.lock = Some(format!(
                "ROW EXCLUSIVE on {table} plus a lock on every updated row until commit: concurrent writes to those rows wait"
            ));
            violations.push(violation);
        }
    }
}
