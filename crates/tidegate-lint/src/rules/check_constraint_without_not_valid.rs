use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … ADD CONSTRAINT … CHECK (…)` without `NOT VALID` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// Adding a validated CHECK constraint scans the whole table to prove every row satisfies it, while
    /// holding ACCESS EXCLUSIVE: no reads or writes for the duration of the scan.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the full scan. With `NOT VALID` the ACCESS EXCLUSIVE is momentary; a later
    /// `VALIDATE CONSTRAINT` scans under SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;
    /// -- in a later transaction (or migration):
    /// ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;
    /// ```
    pub struct CheckConstraintWithoutNotValid {
        severity: Error,
        summary: "ADD CONSTRAINT CHECK without NOT VALID scans the table under ACCESS EXCLUSIVE",
        size_sensitive: true,
    }
}

impl Rule for CheckConstraintWithoutNotValid {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if let Operation::AlterTable(AlterSubcommand::AddConstraint {
                kind: ConstraintKind::Check,
                not_valid: false,
                ..
            }) = effect.operation
            {
                let name = effect.object.as_deref().unwrap_or("the constraint");
                violations.push(
                    Violation::new(statement, format!("adding CHECK constraint {name} scans all of {} while blocking reads and writes", effect.table))
                        .help(format!("add it with NOT VALID, then run `ALTER TABLE {} VALIDATE CONSTRAINT {name};` in a separate transaction", effect.table))
                        .effect(effect),
                );
            }
        }
    }
}
