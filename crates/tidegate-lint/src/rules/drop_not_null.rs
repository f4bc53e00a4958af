use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … ALTER COLUMN … DROP NOT NULL` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// It is a client-compatibility hazard: from the commit on, new code (or a backfill, or another service) may
    /// write NULLs, and the application version still running during a rolling deploy, reports and other
    /// readers were written for a column that never held one. They fail on the first NULL they read
    /// (a non-optional field in an ORM model, `NOT IN` subqueries that suddenly return nothing, sums and joins
    /// that silently change). It cannot be undone cheaply either: `SET NOT NULL` again scans the whole table.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (no scan).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ALTER COLUMN shipped_at DROP NOT NULL;
    /// ```
    ///
    /// ## Use instead
    /// First release code that reads the column as optional everywhere, then drop the constraint in a later
    /// migration with a `tidegate:ignore drop-not-null` reason. A new column that may be NULL is often the
    /// clearer change:
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN delivered_at timestamptz;
    /// ```
    pub struct DropNotNull {
        severity: Warning,
        summary: "DROP NOT NULL lets NULLs reach readers written for a non-null column",
        size_sensitive: false,
    }
}

impl Rule for DropNotNull {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation == Operation::AlterTable(AlterSubcommand::DropNotNull) {
                let column = effect.column.as_deref().unwrap_or_default();
                violations.push(
                    Violation::new(statement, format!("dropping NOT NULL on {}.{column} lets NULLs reach code written for a column that never held one", effect.table))
                        .help("release code that treats the column as optional first, then drop NOT NULL in a later migration with a tidegate:ignore reason")
                        .effect(effect),
                );
            }
        }
    }
}
