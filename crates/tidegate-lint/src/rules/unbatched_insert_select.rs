use tidegate_sql::Operation;

use crate::context::{Context, Violation, BATCH_HELP};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `INSERT … SELECT` that copies rows from a pre-existing table without bounds: no `LIMIT` and no
    /// key range or key equality on the source table.
    ///
    /// ## Why is this bad?
    /// Copying a whole table in one statement is one long transaction: it holds its snapshot (VACUUM cannot
    /// clean up anywhere in the database meanwhile), writes WAL for every copied row at full speed, holds row
    /// locks on every inserted row and cannot be paused or resumed. Copying into a table the application
    /// writes to also blocks those writers on unique-index conflicts.
    ///
    /// ## Lock taken
    /// ACCESS SHARE on the source (does not block writes), ROW EXCLUSIVE on the target, for the whole copy.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// INSERT INTO orders_archive SELECT * FROM orders WHERE status = 'closed';
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// INSERT INTO orders_archive
    /// SELECT * FROM orders WHERE status = 'closed' AND id >= $1 AND id < $2;
    /// ```
    /// one key range per statement, driven by `tidegate backfill`.
    pub struct UnbatchedInsertSelect {
        severity: Error,
        summary: "INSERT … SELECT copying a pre-existing table without bounds",
        size_sensitive: true,
    }
}

impl Rule for UnbatchedInsertSelect {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(target) = statement.effects.first() else {
                continue;
            };
            if target.operation != Operation::Insert || statement.is_one_batch() {
                continue;
            }
            // The first pre-existing table it copies from without bounds (a table created in this migration is
            // empty, or holds only what the migration put there).
            let Some(source) = statement.effects[1..].iter().find(|effect| {
                effect.operation == Operation::Select
                    && effect.origin.is_pre_existing()
                    && effect.rows.is_some_and(|rows| !rows.is_one_batch())
            }) else {
                continue;
            };
            let table = &source.table;
            let target = &target.table;
            let mut violation = Violation::new(
                statement,
                format!("INSERT … SELECT copies {table} into {target} in one unbounded statement"),
            )
            .help(BATCH_HELP)
            .table(table);
            violation.lock = Some(format!(
                "ACCESS SHARE on {table} and ROW EXCLUSIVE on {target} for the whole copy, in one long transaction"
            ));
            violations.push(violation);
        }
    }
}
