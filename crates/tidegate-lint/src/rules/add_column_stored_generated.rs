use tidegate_sql::{AlterSubcommand, ColumnFill, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD COLUMN … GENERATED ALWAYS AS (…) STORED` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// The generated value must be computed and stored for every existing row: PostgreSQL rewrites the table
    /// under ACCESS EXCLUSIVE, blocking all reads and writes for the whole rewrite.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the whole rewrite.
    ///
    /// ## PostgreSQL versions
    /// All versions with generated columns (12+). PostgreSQL 18's `VIRTUAL` generated columns are computed on
    /// read and do not rewrite (not flagged).
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN total_cents bigint GENERATED ALWAYS AS (total * 100) STORED;
    /// ```
    ///
    /// ## Use instead
    /// On PostgreSQL 18, a virtual column:
    /// ```sql pg=18
    /// ALTER TABLE orders ADD COLUMN total_cents bigint GENERATED ALWAYS AS (total * 100) VIRTUAL;
    /// ```
    /// otherwise a plain column kept up to date by a trigger and backfilled in batches.
    pub struct AddColumnStoredGenerated {
        severity: Error,
        summary: "ADD COLUMN … GENERATED … STORED rewrites the table",
        size_sensitive: true,
    }
}

impl Rule for AddColumnStoredGenerated {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if let Operation::AlterTable(AlterSubcommand::AddColumn {
                fill: ColumnFill::StoredGenerated,
                ..
            }) = effect.operation
            {
                let column = effect.column.as_deref().unwrap_or_default();
                let help = if context.pg_version.at_least(18) {
                    "use a VIRTUAL generated column (PostgreSQL 18), or a plain column filled by a trigger and a batched backfill"
                } else {
                    "add a plain column, keep it current with a trigger, and backfill existing rows in batches (`tidegate backfill`)"
                };
                violations.push(
                    Violation::new(
                        statement,
                        format!(
                            "adding stored generated column {column} rewrites all of {}",
                            effect.table
                        ),
                    )
                    .help(help)
                    .effect(effect),
                );
            }
        }
    }
}
