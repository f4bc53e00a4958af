use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER COLUMN … TYPE` on a pre-existing table unless the replayed migrations prove the change is
    /// binary-coercible: `varchar(n)` → `varchar(m ≥ n)`, `varchar` → `text`, `text` → unbounded `varchar`,
    /// `numeric(p, s)` → `numeric(q ≥ p, s)` or unbounded `numeric`, precision increases of timestamp/time/
    /// interval, `cidr` → `inet`.
    ///
    /// ## Why is this bad?
    /// Any other type change rewrites every row and rebuilds every index of the table under ACCESS EXCLUSIVE:
    /// no reads, no writes, for the whole rewrite. `int` → `bigint`, the classic overflow fix, is such a
    /// rewrite.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE; for the whole rewrite unless binary-coercible (then briefly).
    ///
    /// ## PostgreSQL versions
    /// All. When the column's current type is unknown (not created in a replayed migration), the change is
    /// assumed to rewrite.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ALTER COLUMN id TYPE bigint;
    /// ```
    ///
    /// ## Use instead
    /// Expand and contract: add a new column, keep it in sync with a trigger, backfill it in batches
    /// (`tidegate backfill`), switch reads, then drop the old column.
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN id_new bigint;
    /// CREATE FUNCTION orders_sync_id() RETURNS trigger LANGUAGE plpgsql AS
    ///   $$ BEGIN NEW.id_new := NEW.id; RETURN NEW; END $$;
    /// CREATE TRIGGER orders_sync_id BEFORE INSERT OR UPDATE ON orders
    ///   FOR EACH ROW EXECUTE FUNCTION orders_sync_id();
    /// ```
    pub struct AlterColumnTypeRewrite {
        severity: Error,
        summary: "ALTER COLUMN TYPE that is not binary-coercible rewrites the table and its indexes",
        size_sensitive: true,
    }
}

impl Rule for AlterColumnTypeRewrite {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                != Operation::AlterTable(AlterSubcommand::AlterColumnType {
                    binary_coercible: false,
                })
            {
                continue;
            }
            let column = effect.column.as_deref().unwrap_or("the column");
            let why = match &effect.previous_type {
                Some(previous) => format!("the change from {previous} is not binary-coercible"),
                None => "the column's current type is unknown to tidegate (no replayed statement gave it), so it is assumed to rewrite".to_string(),
            };
            violations.push(
                Violation::new(statement, format!("changing the type of {}.{column} rewrites the table and rebuilds its indexes: {why}", effect.table))
                    .help("expand and contract: add a new column, sync it with a trigger, backfill it with `tidegate backfill`, switch reads, drop the old column")
                    .effect(effect),
            );
        }
    }
}
