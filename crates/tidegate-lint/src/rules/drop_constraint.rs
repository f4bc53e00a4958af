use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … DROP CONSTRAINT` of a CHECK, UNIQUE, EXCLUDE or FOREIGN KEY constraint on a
    /// pre-existing table. Not flagged: the helper `CHECK (col IS NOT NULL)` once `SET NOT NULL` holds the same
    /// guarantee, a constraint the same migration added (a helper running code never relied on), a CHECK (or a
    /// constraint of unknown kind) on a table the same migration attached as a partition (its bound now holds
    /// it), and a primary key
    /// (`drop-primary-key` covers it).
    ///
    /// ## Why is this bad?
    /// Code relies on constraints in ways that break when they go. `INSERT … ON CONFLICT (email)` fails with
    /// "there is no unique or exclusion constraint matching the ON CONFLICT specification" once the unique
    /// constraint is gone; a dropped foreign key stops its `ON DELETE CASCADE`, so rows the application expects
    /// to disappear stay; a dropped CHECK lets values in that readers were written never to see. Putting the
    /// constraint back later means a validating scan of the table.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted. Dropping a foreign key also takes ACCESS EXCLUSIVE
    /// on the referenced table (its triggers are removed), so both tables' traffic queues behind the request.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE customers DROP CONSTRAINT customers_email_key;
    /// ```
    ///
    /// ## Use instead
    /// Stop relying on the constraint in a release first (no `ON CONFLICT` on its columns, no cascade
    /// expected), then drop it with a `tidegate:ignore drop-constraint` reason. Dropping the helper CHECK of a
    /// `SET NOT NULL` is fine:
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_total_not_null CHECK (total IS NOT NULL) NOT VALID;
    /// ```
    /// ```sql
    /// ALTER TABLE orders VALIDATE CONSTRAINT orders_total_not_null;
    /// ALTER TABLE orders ALTER COLUMN total SET NOT NULL;
    /// ALTER TABLE orders DROP CONSTRAINT orders_total_not_null;
    /// ```
    pub struct DropConstraint {
        severity: Warning,
        summary: "DROP CONSTRAINT removes a guarantee running code relies on (ON CONFLICT, cascades, checks)",
        size_sensitive: false,
    }
}

impl Rule for DropConstraint {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation != Operation::AlterTable(AlterSubcommand::DropConstraint)
                || effect.constraint_kind == Some(ConstraintKind::PrimaryKey)
            {
                continue;
            }
            // The analysis names the column a dropped NOT NULL helper proved; if the column is NOT NULL now, the
            // guarantee stays.
            let still_guaranteed = effect
                .column
                .as_deref()
                .is_some_and(|column| context.is_not_null(&effect.table, column));
            // A helper this migration added (a partition-bound CHECK, a NOT NULL proof) was never relied on by
            // running code; a CHECK on a table this migration attached as a partition is now held by its bound.
            let helper = effect.object.as_ref().is_some_and(|name| {
                context
                    .facts
                    .constraint_added_before(statement.index, &effect.table, name)
            }) || (matches!(effect.constraint_kind, None | Some(ConstraintKind::Check))
                // The catalog may not know the bound CHECK's kind (added before the linted history).
                && context.facts.attached_before(statement.index, &effect.table));
            if still_guaranteed || helper {
                continue;
            }
            let constraint = effect.object.as_deref().unwrap_or("the constraint");
            let consequence = match effect.constraint_kind {
                Some(ConstraintKind::Unique | ConstraintKind::Exclusion) => {
                    "INSERT … ON CONFLICT on its columns fails and duplicates become possible"
                }
                Some(ConstraintKind::ForeignKey) => {
                    "its cascades stop and orphaned rows become possible; it also locks the referenced table"
                }
                Some(ConstraintKind::Check | ConstraintKind::NotNull) => {
                    "values it rejected reach code written never to see them"
                }
                _ => "code relying on its guarantee (ON CONFLICT, cascades, checks) breaks",
            };
            violations.push(
                Violation::new(
                    statement,
                    format!("dropping {constraint} on {}: {consequence}", effect.table),
                )
                .help("stop relying on the constraint in a release first, then drop it with a tidegate:ignore reason")
                .effect(effect),
            );
        }
    }
}
