use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … ATTACH PARTITION` of a pre-existing table that has no validated CHECK constraint
    /// matching the partition bound, as far as the statements before it (in this file or earlier migrations,
    /// on any table, created in the linted history or not) show.
    ///
    /// ## Why is this bad?
    /// PostgreSQL scans the whole table being attached to prove every row fits the partition bound, holding
    /// ACCESS EXCLUSIVE on it; before PostgreSQL 12 it also holds ACCESS EXCLUSIVE on the parent, blocking the
    /// entire partitioned table for the scan.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the attached table for the scan; on the parent, SHARE UPDATE EXCLUSIVE from 12
    /// (ACCESS EXCLUSIVE before).
    ///
    /// ## PostgreSQL versions
    /// All; the parent's lock is weaker from 12. tidegate cannot compare the CHECK expression with the bound: it
    /// trusts any validated CHECK on the table.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE events_2026 ADD CONSTRAINT events_2026_bound
    ///     CHECK (created_at >= '2026-01-01' AND created_at < '2027-01-01') NOT VALID;
    /// ALTER TABLE events_2026 VALIDATE CONSTRAINT events_2026_bound;
    /// ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    /// ALTER TABLE events_2026 DROP CONSTRAINT events_2026_bound;
    /// ```
    pub struct AttachPartitionWithoutCheck {
        severity: Warning,
        summary: "ATTACH PARTITION without a matching validated CHECK scans the table under ACCESS EXCLUSIVE",
        size_sensitive: true,
    }
}

impl Rule for AttachPartitionWithoutCheck {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                == Operation::AlterTable(AlterSubcommand::AttachedAsPartition {
                    proven_by_check: false,
                })
            {
                let parent = statement
                    .effects
                    .first()
                    .map(|parent| parent.table.to_string())
                    .unwrap_or_default();
                violations.push(
                    Violation::new(statement, format!("attaching {} to {parent} scans it to check the partition bound while blocking it", effect.table))
                        .help("first add a CHECK constraint matching the bound with NOT VALID and VALIDATE it; the attach then skips the scan")
                        .effect(effect),
                );
            }
        }
    }
}
