use tidegate_sql::syntax::{cte_names, from_tables, NodeEnum};
use tidegate_sql::TableName;

use crate::context::{bounds_a_batch, Context, Violation, BATCH_HELP};
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
            let Some(NodeEnum::InsertStmt(insert)) = statement.node.as_deref() else {
                continue;
            };
            let Some(NodeEnum::SelectStmt(select)) =
                insert.select_stmt.as_deref().and_then(|s| s.node.as_ref())
            else {
                continue;
            };
            if select.limit_count.is_some() {
                continue;
            }
            let mut ctes = cte_names(insert.with_clause.as_ref());
            ctes.extend(cte_names(select.with_clause.as_ref()));
            let mut sources = Vec::new();
            from_tables(&select.from_clause, &mut sources);
            for source in sources {
                if source.schemaname.is_empty() && ctes.contains(&source.relname) {
                    continue;
                }
                let table = TableName::from_range_var(&source);
                if !context.catalog.origin(&table).is_pre_existing()
                    || statement.effects.iter().any(|effect| {
                        effect.table.key() == table.key() && !effect.origin.is_pre_existing()
                    })
                {
                    continue;
                }
                let qualifier = source
                    .alias
                    .as_ref()
                    .map(|alias| alias.aliasname.clone())
                    .unwrap_or_else(|| table.name.clone());
                let keys = context.key_columns(&table);
                if bounds_a_batch(select.where_clause.as_deref(), &keys, &qualifier) {
                    continue;
                }
                let target = statement
                    .effects
                    .first()
                    .map(|effect| effect.table.to_string())
                    .unwrap_or_default();
                let mut violation = Violation::new(
                    statement,
                    format!(
                        "INSERT … SELECT copies {table} into {target} in one unbounded statement"
                    ),
                )
                .help(BATCH_HELP)
                .table(&table);
                violation.lock = Some(format!(
                    "ACCESS SHARE on {table} and ROW EXCLUSIVE on {target} for the whole copy, in one long transaction"
                ));
                violations.push(violation);
                break;
            }
        }
    }
}
