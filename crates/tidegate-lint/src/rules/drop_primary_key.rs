use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … DROP CONSTRAINT` that drops a pre-existing table's primary key (known from the
    /// replayed migrations, or named `<table>_pkey` by PostgreSQL's convention).
    ///
    /// ## Why is this bad?
    /// The primary key is the table's default replica identity: once it is gone, logical replication (and CDC
    /// tools such as Debezium) can no longer publish UPDATEs and DELETEs, which then fail on the publisher.
    /// Upserts (`ON CONFLICT (id)`) and ORMs that identify rows by key break as well, and the lock is ACCESS
    /// EXCLUSIVE.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE (brief once granted).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders DROP CONSTRAINT orders_pkey;
    /// ```
    ///
    /// ## Use instead
    /// Replace the key in one step with a concurrently built unique index:
    /// ```sql
    /// CREATE UNIQUE INDEX CONCURRENTLY orders_new_pkey ON orders (id, region);
    /// -- then, in one transaction:
    /// ALTER TABLE orders DROP CONSTRAINT orders_pkey,
    ///     ADD CONSTRAINT orders_new_pkey PRIMARY KEY USING INDEX orders_new_pkey;
    /// ```
    pub struct DropPrimaryKey {
        severity: Error,
        summary: "Dropping a primary key breaks replica identity, upserts and row identity",
        size_sensitive: false,
    }
}

impl Rule for DropPrimaryKey {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation != Operation::AlterTable(AlterSubcommand::DropConstraint) {
                continue;
            }
            let name = effect.object.as_deref().unwrap_or_default();
            let is_primary_key = match effect.constraint_kind {
                Some(kind) => kind == ConstraintKind::PrimaryKey,
                None => name.ends_with("_pkey"),
            };
            let replaced = statement.effects.iter().any(|other| {
                matches!(
                    other.operation,
                    Operation::AlterTable(AlterSubcommand::AddConstraint {
                        kind: ConstraintKind::PrimaryKey,
                        ..
                    })
                )
            });
            if is_primary_key && !replaced {
                violations.push(
                    Violation::new(statement, format!("dropping primary key {name} of {} breaks logical replication's replica identity, upserts on the key and row identity", effect.table))
                        .help("replace the key in the same ALTER TABLE: DROP CONSTRAINT … , ADD CONSTRAINT … PRIMARY KEY USING INDEX <index built CONCURRENTLY>")
                        .effect(effect),
                );
            }
        }
    }
}
