use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags a new CHECK, FOREIGN KEY, UNIQUE, EXCLUDE or NOT NULL constraint on a pre-existing table
    /// (`ADD CONSTRAINT`, even `NOT VALID`, and `SET NOT NULL`). Off by default: tidegate's own safe patterns
    /// add constraints; turn it on where old application versions keep writing during a deploy.
    ///
    /// ## Why is this bad?
    /// A constraint applies to new writes from the moment it is added; `NOT VALID` only skips checking the
    /// rows already there. If the application version still running writes rows that break it (a status the
    /// new CHECK does not allow, a NULL, a duplicate, a reference to a row another job deletes), those writes
    /// now fail with constraint violations until the deploy finishes.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for CHECK, UNIQUE, EXCLUDE and NOT NULL, SHARE ROW EXCLUSIVE for a foreign key, on the
    /// table; see the constraint rules for the validation scan.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_status_known CHECK (status IN ('new', 'paid', 'shipped')) NOT VALID;
    /// ```
    ///
    /// ## Use instead
    /// Release code that only writes valid rows first, then add the constraint (`NOT VALID`, then `VALIDATE`)
    /// with a `tidegate:ignore new-write-restriction` reason. Constraints on a new table restrict nobody:
    /// ```sql
    /// CREATE TABLE refunds (id bigint PRIMARY KEY, status text NOT NULL CHECK (status IN ('requested', 'paid')));
    /// ```
    pub struct NewWriteRestriction {
        severity: Warning,
        summary: "A new constraint rejects writes of the application version still running, even NOT VALID",
        size_sensitive: false,
        enabled_by_default: false,
    }
}

impl Rule for NewWriteRestriction {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            let what = match effect.operation {
                Operation::AlterTable(AlterSubcommand::AddConstraint { kind, .. }) => match kind {
                    ConstraintKind::Check => "a CHECK constraint",
                    ConstraintKind::ForeignKey => "a foreign key",
                    ConstraintKind::Unique => "a unique constraint",
                    ConstraintKind::PrimaryKey => "a primary key",
                    ConstraintKind::Exclusion => "an exclusion constraint",
                    ConstraintKind::NotNull => "a NOT NULL constraint",
                },
                Operation::AlterTable(AlterSubcommand::SetNotNull { .. }) => "NOT NULL",
                _ => continue,
            };
            let target = match &effect.column {
                Some(column) => format!("{}.{column}", effect.table),
                None => effect.table.to_string(),
            };
            violations.push(
                Violation::new(statement, format!("{what} on {target} rejects new writes that break it from the moment it is added, old code's included"))
                    .help("release code that writes only valid rows first, then add the constraint")
                    .effect(effect),
            );
        }
    }
}
