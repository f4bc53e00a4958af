use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{same_transaction, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `VALIDATE CONSTRAINT` in the same transaction as the `ADD CONSTRAINT … NOT VALID` that created the
    /// constraint.
    ///
    /// ## Why is this bad?
    /// `NOT VALID` exists to split the work: a brief strong lock to add the constraint, then a long scan under a
    /// weak lock. In one transaction the ADD's lock (ACCESS EXCLUSIVE for CHECK, SHARE ROW EXCLUSIVE for
    /// foreign keys) is still held when the validation scan runs, so the split buys nothing.
    ///
    /// ## Lock taken
    /// The ADD CONSTRAINT's lock, held for the whole validation scan.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// BEGIN;
    /// ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;
    /// ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;
    /// COMMIT;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;
    /// -- next migration, or after COMMIT:
    /// ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;
    /// ```
    pub struct ValidateInSameTransaction {
        severity: Error,
        summary: "VALIDATE CONSTRAINT in the same transaction as its ADD … NOT VALID holds the strong lock during the scan",
        size_sensitive: true,
    }
}

impl Rule for ValidateInSameTransaction {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation != Operation::AlterTable(AlterSubcommand::ValidateConstraint) {
                continue;
            }
            let added = context
                .pre_existing_effects()
                .find(|(earlier, earlier_effect)| {
                    earlier.index < statement.index
                        && same_transaction(earlier, statement)
                        && earlier_effect.table.key() == effect.table.key()
                        && earlier_effect.object == effect.object
                        && matches!(
                            earlier_effect.operation,
                            Operation::AlterTable(AlterSubcommand::AddConstraint {
                                not_valid: true,
                                ..
                            })
                        )
                });
            if let Some((earlier, earlier_effect)) = added {
                violations.push(
                    Violation::new(
                        statement,
                        format!(
                            "VALIDATE CONSTRAINT {} runs in the same transaction as its ADD … NOT VALID (line {}): the {} lock taken there is held for the whole validation scan",
                            effect.object.as_deref().unwrap_or_default(),
                            earlier.span.start.line,
                            earlier_effect.lock
                        ),
                    )
                    .help("commit between ADD CONSTRAINT … NOT VALID and VALIDATE CONSTRAINT (separate migrations, or separate transactions)")
                    .effect(earlier_effect),
                );
            }
        }
    }
}
