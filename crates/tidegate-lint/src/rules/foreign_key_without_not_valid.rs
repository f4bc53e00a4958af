use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags a foreign key added to a pre-existing table without `NOT VALID` (`ADD CONSTRAINT … FOREIGN KEY`,
    /// or `ADD COLUMN … REFERENCES`).
    ///
    /// ## Why is this bad?
    /// Validating the foreign key checks every row against the referenced table while holding SHARE ROW
    /// EXCLUSIVE on **both** tables: writes to the table and to the referenced table wait for the whole scan.
    ///
    /// ## Lock taken
    /// SHARE ROW EXCLUSIVE on both tables (blocks INSERT/UPDATE/DELETE) for the validation scan. With
    /// `NOT VALID` the lock is brief; `VALIDATE CONSTRAINT` later takes SHARE UPDATE EXCLUSIVE on the table and
    /// ROW SHARE on the referenced one, blocking no application traffic.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_customer_fk
    ///     FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;
    /// -- in a separate transaction:
    /// ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk;
    /// ```
    pub struct ForeignKeyWithoutNotValid {
        severity: Error,
        summary: "A foreign key added without NOT VALID blocks writes to both tables during validation",
        size_sensitive: true,
    }
}

impl Rule for ForeignKeyWithoutNotValid {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if let Operation::AlterTable(AlterSubcommand::AddConstraint {
                kind: ConstraintKind::ForeignKey,
                not_valid: false,
                ..
            }) = effect.operation
            {
                let name = effect.object.as_deref().unwrap_or("the foreign key");
                violations.push(
                    Violation::new(statement, format!("adding foreign key {name} validates every row of {} while blocking writes to it and to the referenced table", effect.table))
                        .help(format!("add it with NOT VALID, then `ALTER TABLE {} VALIDATE CONSTRAINT {name};` in a separate transaction", effect.table))
                        .effect(effect),
                );
            }
        }
    }
}
