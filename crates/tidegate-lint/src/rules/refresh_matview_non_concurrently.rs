use tidegate_sql::Operation;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `REFRESH MATERIALIZED VIEW` without `CONCURRENTLY` on a materialized view that existed before this
    /// migration.
    ///
    /// ## Why is this bad?
    /// A plain refresh re-runs the view's query and swaps the result in under ACCESS EXCLUSIVE: every query
    /// reading the view waits for the whole refresh.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the view for the whole refresh; `CONCURRENTLY` takes EXCLUSIVE, which lets reads
    /// continue.
    ///
    /// ## PostgreSQL versions
    /// All. `CONCURRENTLY` needs a unique index on the view and a view that is already populated.
    ///
    /// ## Example
    /// ```sql
    /// REFRESH MATERIALIZED VIEW daily_revenue;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE UNIQUE INDEX CONCURRENTLY daily_revenue_day ON daily_revenue (day);
    /// REFRESH MATERIALIZED VIEW CONCURRENTLY daily_revenue;
    /// ```
    pub struct RefreshMatviewNonConcurrently {
        severity: Warning,
        summary: "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view",
        size_sensitive: true,
    }
}

impl Rule for RefreshMatviewNonConcurrently {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                == (Operation::RefreshMaterializedView {
                    concurrently: false,
                })
            {
                violations.push(
                    Violation::new(statement, format!("REFRESH MATERIALIZED VIEW {} blocks every read of it until the refresh ends", effect.table))
                        .help("REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)")
                        .effect(effect),
                );
            }
        }
    }
}
