use tidegate_sql::{AlterSubcommand, ColumnFill, ColumnType, Operation};

use crate::context::{added_column, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD COLUMN … DEFAULT` that rewrites a pre-existing table: a volatile default (`random()`,
    /// `gen_random_uuid()`, `clock_timestamp()`, `nextval()`, …) on any version, or any non-NULL default before
    /// PostgreSQL 11. Serial columns are reported by `add-column-serial`.
    ///
    /// ## Why is this bad?
    /// Every existing row must get its own value, so PostgreSQL rewrites the whole table (and rebuilds every
    /// index) while holding ACCESS EXCLUSIVE: no reads, no writes, for minutes to hours, and twice the disk
    /// space until it finishes.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the whole rewrite.
    ///
    /// ## PostgreSQL versions
    /// From PostgreSQL 11 a non-volatile default (a constant, or a stable expression such as `now()`) is stored
    /// once in the catalog: no rewrite, not flagged. Before 11 every default rewrites.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN token uuid;
    /// ALTER TABLE orders ALTER COLUMN token SET DEFAULT gen_random_uuid(); -- new rows only
    /// ```
    /// then fill existing rows with `tidegate backfill --table orders --set 'token = gen_random_uuid()' --where 'token IS NULL'`.
    pub struct AddColumnDefaultRewrite {
        severity: Error,
        summary: "ADD COLUMN with a volatile default (any default before PostgreSQL 11) rewrites the table",
        size_sensitive: true,
    }
}

impl Rule for AddColumnDefaultRewrite {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            let Operation::AlterTable(AlterSubcommand::AddColumn { fill, .. }) = effect.operation
            else {
                continue;
            };
            let column = effect.column.as_deref().unwrap_or_default();
            let is_serial = added_column(statement, column)
                .and_then(|definition| definition.type_name.as_ref())
                .is_some_and(|type_name| ColumnType::from_type_name(type_name).is_serial());
            let why = match fill {
                ColumnFill::VolatileDefault if !is_serial => {
                    "its default is volatile, so every existing row gets its own value"
                }
                ColumnFill::ConstantDefault if effect.rewrite => {
                    "before PostgreSQL 11 every default is written into every row"
                }
                _ => continue,
            };
            violations.push(
                Violation::new(statement, format!("adding column {column} to {} rewrites the table: {why}", effect.table))
                    .help(format!("add the column without the default, SET DEFAULT for new rows, then fill existing rows with `tidegate backfill --table {} --set '{column} = …' --where '{column} IS NULL'`", effect.table))
                    .effect(effect),
            );
        }
    }
}
