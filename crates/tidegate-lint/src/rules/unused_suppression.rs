use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Reports a `-- tidegate:ignore RULE` that silenced no finding of RULE on the statement after it (or a
    /// `-- tidegate:ignore-file RULE` that silenced none in the file). Rules the configuration turns off are
    /// not reported, since another configuration may turn them on.
    ///
    /// ## Why is this bad?
    /// A stale suppression is a trap: the statement it was written for moved or changed, and the next hazard of
    /// that kind on the statement now below it is silenced without anyone deciding so. It also tells the
    /// reader a hazard exists where there is none.
    ///
    /// ## Lock taken
    /// Not applicable: this rule is about comments.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// -- tidegate:ignore create-index-non-concurrently orders is small
    /// CREATE INDEX CONCURRENTLY orders_status ON orders (status);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE INDEX CONCURRENTLY orders_status ON orders (status);
    /// ```
    pub struct UnusedSuppression {
        severity: Warning,
        summary: "A tidegate:ignore comment that silences nothing",
        size_sensitive: false,
    }
}

impl Rule for UnusedSuppression {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    /// Suppressions are tracked by the linter itself, which reports the unused ones under this id.
    fn check(&self, _context: &Context<'_>, _violations: &mut Vec<Violation>) {}
}
