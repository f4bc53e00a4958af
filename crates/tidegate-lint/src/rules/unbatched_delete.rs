use tidegate_sql::syntax::NodeEnum;

use crate::context::{bounded_by_limited_cte, bounds_a_batch, Context, Violation, BATCH_HELP};
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

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::DeleteStmt(delete)) = statement.node.as_deref() else {
                continue;
            };
            let Some(target) = statement.effects.first() else {
                continue;
            };
            if !target.origin.is_pre_existing() {
                continue;
            }
            let qualifier = delete
                .relation
                .as_ref()
                .and_then(|r| r.alias.as_ref().map(|alias| alias.aliasname.clone()))
                .unwrap_or_else(|| target.table.name.clone());
            let keys = context.key_columns(&target.table);
            if bounds_a_batch(delete.where_clause.as_deref(), &keys, &qualifier)
                || bounded_by_limited_cte(
                    delete.with_clause.as_ref(),
                    &delete.using_clause,
                    delete.where_clause.as_deref(),
                    &keys,
                    &qualifier,
                )
            {
                continue;
            }
            let table = &target.table;
            let message = if !delete.using_clause.is_empty() {
                format!(
                    "DELETE … USING on {table} deletes every row the join matches in one statement"
                )
            } else if delete.where_clause.is_none() {
                format!("DELETE without WHERE deletes every row of {table} in one statement")
            } else {
                format!(
                    "DELETE on {table} is not bounded to a batch of its key ({}): it may delete any number of rows in one transaction",
                    keys.join(", ")
                )
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
