use tidegate_sql::{AlterSubcommand, ColumnFill, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD COLUMN … NOT NULL` without a `DEFAULT` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// Existing rows would hold NULL in the new column, so PostgreSQL rejects the statement as soon as the table
    /// has a single row: the migration passes on an empty development database and fails in production. Even
    /// when it succeeds, application code deployed before the migration does not write the column and its
    /// INSERTs start failing.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE (briefly, until the statement fails).
    ///
    /// ## PostgreSQL versions
    /// All. From PostgreSQL 11 a constant `DEFAULT` makes this a catalog-only change.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN currency text NOT NULL;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
    /// ```
    /// or add it nullable, backfill in batches, then make it NOT NULL (see `set-not-null-scan`).
    pub struct AddRequiredColumn {
        severity: Error,
        summary: "ADD COLUMN NOT NULL without DEFAULT fails on a table with rows",
        size_sensitive: false,
    }
}

impl Rule for AddRequiredColumn {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                == Operation::AlterTable(AlterSubcommand::AddColumn {
                    fill: ColumnFill::Null,
                    not_null: true,
                })
            {
                let column = effect.column.as_deref().unwrap_or("the column");
                violations.push(
                    Violation::new(statement, format!("adding NOT NULL column {column} without a DEFAULT fails as soon as {} has a row", effect.table))
                        .help("give it a constant DEFAULT (catalog-only from PostgreSQL 11), or add it nullable, backfill in batches, then SET NOT NULL")
                        .effect(effect),
                );
            }
        }
    }
}
