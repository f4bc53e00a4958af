use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags every `ALTER TABLE … ADD COLUMN` on a pre-existing table. Off by default: adding a nullable
    /// column is safe for well-behaved clients; turn it on where clients read rows by position.
    ///
    /// ## Why is this bad?
    /// It changes the shape of the table's rows for code that depends on it: `INSERT INTO t VALUES (…)` without
    /// a column list fails with "INSERT has more expressions than target columns" the other way round, `SELECT *`
    /// returns a column the client's mapping does not know (strict deserialisers, `COPY` consumers, positional
    /// result readers fail), and views created with `SELECT *` do not see it.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted for a nullable column or a constant default.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN gift_note text;
    /// ```
    ///
    /// ## Use instead
    /// Make clients name their columns (no positional `INSERT`, no `SELECT *`), then add the column with a
    /// `tidegate:ignore add-column` reason; or add the data in a new table:
    /// ```sql
    /// CREATE TABLE order_gift_notes (order_id bigint PRIMARY KEY, note text NOT NULL);
    /// ```
    pub struct AddColumn {
        severity: Warning,
        summary: "ADD COLUMN changes the row shape that positional clients rely on",
        size_sensitive: false,
        enabled_by_default: false,
    }
}

impl Rule for AddColumn {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if matches!(
                effect.operation,
                Operation::AlterTable(AlterSubcommand::AddColumn { .. })
            ) {
                let column = effect.column.as_deref().unwrap_or_default();
                violations.push(
                    Violation::new(statement, format!("adding {}.{column} changes the rows that SELECT * and positional INSERTs see", effect.table))
                        .help("make clients name their columns first, or keep the new data in a table of its own")
                        .effect(effect),
                );
            }
        }
    }
}
