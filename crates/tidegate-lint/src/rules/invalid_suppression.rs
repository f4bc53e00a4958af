use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Reports a `-- tidegate:ignore` or `-- tidegate:ignore-file` comment that names an unknown rule, names
    /// no rule, gives no reason, or is followed by no statement.
    ///
    /// ## Why is this bad?
    /// A suppression is a decision that a hazard is acceptable. Without a reason the next reader cannot tell a
    /// considered decision from a silenced warning; with a misspelt rule id it silences nothing while looking
    /// like it does.
    ///
    /// ## Lock taken
    /// Not applicable: this rule is about comments.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// -- tidegate:ignore create-index-non-concurently
    /// CREATE INDEX orders_status ON orders (status);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// -- tidegate:ignore create-index-non-concurrently orders has 200 rows and is written once a day
    /// CREATE INDEX orders_status ON orders (status);
    /// ```
    pub struct InvalidSuppression {
        severity: Warning,
        summary: "A tidegate:ignore comment with no reason, no rule, or an unknown rule",
        size_sensitive: false,
    }
}

impl Rule for InvalidSuppression {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    /// Suppression comments are checked by the linter itself, which reports them under this id.
    fn check(&self, _context: &Context<'_>, _violations: &mut Vec<Violation>) {}
}
