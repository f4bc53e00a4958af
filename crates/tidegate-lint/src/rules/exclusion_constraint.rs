use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD CONSTRAINT … EXCLUDE` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// An exclusion constraint builds its index and checks every pair of conflicting rows under ACCESS
    /// EXCLUSIVE, and unlike UNIQUE there is no `USING INDEX` or `NOT VALID` escape: the table is unavailable
    /// for the whole build.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the build.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&);
    /// ```
    ///
    /// ## Use instead
    /// Add exclusion constraints when the table is created, or on a new table that you fill in batches and swap
    /// in; if you must add one to a live table, schedule a maintenance window sized with `tidegate plan`.
    pub struct ExclusionConstraint {
        severity: Error,
        summary: "ADD EXCLUDE builds and checks under ACCESS EXCLUSIVE with no online alternative",
        size_sensitive: true,
    }
}

impl Rule for ExclusionConstraint {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if let Operation::AlterTable(AlterSubcommand::AddConstraint {
                kind: ConstraintKind::Exclusion,
                ..
            }) = effect.operation
            {
                violations.push(
                    Violation::new(statement, format!("adding an exclusion constraint to {} builds and checks it while blocking all reads and writes", effect.table))
                        .help("add it when the table is created, or build a new table and swap it in; size any maintenance window with `tidegate plan`")
                        .effect(effect),
                );
            }
        }
    }
}
