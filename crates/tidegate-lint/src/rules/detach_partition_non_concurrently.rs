use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … DETACH PARTITION` without `CONCURRENTLY` on a pre-existing partitioned table.
    ///
    /// ## Why is this bad?
    /// A plain detach takes ACCESS EXCLUSIVE on the parent: every query on the whole partitioned table waits for
    /// it, and the request itself waits behind every running query on any partition.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the parent; `CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE (reads and writes continue).
    ///
    /// ## PostgreSQL versions
    /// `DETACH PARTITION … CONCURRENTLY` exists from PostgreSQL 14 and cannot run in a transaction block.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE events DETACH PARTITION events_2019;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE events DETACH PARTITION events_2019 CONCURRENTLY;
    /// ```
    pub struct DetachPartitionNonConcurrently {
        severity: Warning,
        summary: "DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent",
        size_sensitive: false,
    }
}

impl Rule for DetachPartitionNonConcurrently {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                == Operation::AlterTable(AlterSubcommand::DetachPartition {
                    concurrently: false,
                })
            {
                let help = if context.pg_version.at_least(14) {
                    "use DETACH PARTITION … CONCURRENTLY, outside a transaction".to_string()
                } else {
                    format!(
                        "{} has no DETACH CONCURRENTLY (14+): set a short lock_timeout and retry",
                        context.pg_version
                    )
                };
                violations.push(
                    Violation::new(
                        statement,
                        format!(
                            "DETACH PARTITION blocks every query on {} while it waits and runs",
                            effect.table
                        ),
                    )
                    .help(help)
                    .effect(effect),
                );
            }
        }
    }
}
