use tidegate_sql::syntax::{has_option, NodeEnum};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};
use crate::Severity;

declare_rule! {
    /// ## What it does
    /// Flags `REINDEX` without `CONCURRENTLY`.
    ///
    /// ## Why is this bad?
    /// `REINDEX` rebuilds each index while holding SHARE on the table (writes wait) and ACCESS EXCLUSIVE on the
    /// index itself (queries whose plan uses that index wait too), for the whole rebuild. `REINDEX SCHEMA` or
    /// `DATABASE` does this table after table.
    ///
    /// ## Lock taken
    /// SHARE on the table and ACCESS EXCLUSIVE on the index; `CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE.
    ///
    /// ## PostgreSQL versions
    /// `REINDEX CONCURRENTLY` exists from PostgreSQL 12. Before 12, build a new index concurrently and drop the
    /// old one concurrently instead.
    ///
    /// ## Example
    /// ```sql
    /// REINDEX INDEX orders_customer_id;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// REINDEX INDEX CONCURRENTLY orders_customer_id;
    /// ```
    pub struct ReindexNonConcurrently {
        severity: Error,
        summary: "REINDEX without CONCURRENTLY blocks writes (and reads using the index) during the rebuild",
        size_sensitive: true,
    }
}

impl Rule for ReindexNonConcurrently {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::ReindexStmt(reindex)) = statement.node.as_deref() else {
                continue;
            };
            if has_option(&reindex.params, "concurrently") {
                continue;
            }
            let effect = statement.effects.first();
            if effect.is_some_and(|effect| !effect.origin.is_pre_existing()) {
                continue;
            }
            let help = if context.pg_version.at_least(12) {
                "use REINDEX … CONCURRENTLY, outside a transaction".to_string()
            } else {
                format!("{} has no REINDEX CONCURRENTLY: build a replacement with CREATE INDEX CONCURRENTLY, then DROP INDEX CONCURRENTLY the old one", context.pg_version)
            };
            let mut violation = Violation::new(
                statement,
                "REINDEX without CONCURRENTLY blocks writes to the table, and reads that use the index, for the whole rebuild",
            )
            .help(help);
            if let Some(effect) = effect {
                violation = violation.effect(effect);
            } else {
                violation = violation.severity(Severity::Error);
            }
            violations.push(violation);
        }
    }
}
