use tidegate_sql::{AlterSubcommand, ColumnFill, ColumnType, Operation};

use crate::context::{added_column, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD COLUMN` of a `serial`/`bigserial`/`smallserial` or `GENERATED … AS IDENTITY` column on a
    /// pre-existing table.
    ///
    /// ## Why is this bad?
    /// Each existing row needs its own sequence value, so PostgreSQL rewrites the whole table under ACCESS
    /// EXCLUSIVE, blocking every read and write until the rewrite ends.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the whole rewrite.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE events ADD COLUMN id bigserial;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE SEQUENCE events_id_seq;
    /// ALTER TABLE events ADD COLUMN id bigint;
    /// ALTER TABLE events ALTER COLUMN id SET DEFAULT nextval('events_id_seq');
    /// ```
    /// then backfill existing rows in batches with `tidegate backfill`.
    pub struct AddColumnSerial {
        severity: Error,
        summary: "ADD COLUMN serial/identity rewrites the table to number existing rows",
        size_sensitive: true,
    }
}

impl Rule for AddColumnSerial {
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
            let kind = match fill {
                ColumnFill::Identity => "an identity column",
                ColumnFill::VolatileDefault if is_serial => "a serial column",
                _ => continue,
            };
            violations.push(
                Violation::new(statement, format!("adding {kind} {column} to {} rewrites the table to number every existing row", effect.table))
                    .help("add a plain bigint column, SET DEFAULT nextval(…) for new rows, and number existing rows with a batched backfill")
                    .effect(effect),
            );
        }
    }
}
