use crate::context::{without_statement_timeout, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags the first statement of a migration that rewrites or scans a pre-existing table while holding a
    /// lock that blocks application traffic, when no `statement_timeout` is set.
    ///
    /// ## Why is this bad?
    /// Such a statement's duration grows with the table. Without a `statement_timeout` nothing bounds how long
    /// the application is blocked if the table turns out bigger, or the server busier, than in staging.
    ///
    /// ## Lock taken
    /// Whatever the statement takes; the hazard is how long it is held.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE INDEX orders_status ON orders (status);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// SET statement_timeout = '5min';
    /// CREATE INDEX CONCURRENTLY orders_status ON orders (status);
    /// ```
    pub struct MissingStatementTimeout {
        severity: Warning,
        summary: "A long blocking operation on a pre-existing table with no statement_timeout set",
        size_sensitive: true,
    }
}

impl Rule for MissingStatementTimeout {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        // Reported once per file: at the first statement that needs a statement_timeout and runs without one.
        let Some(statement) = context
            .facts
            .first_without_statement_timeout
            .and_then(|index| context.statement(index))
        else {
            return;
        };
        {
            if let Some(effect) = without_statement_timeout(statement) {
                violations.push(
                    Violation::new(
                        statement,
                        format!(
                            "this statement {} {} under {} with no statement_timeout: nothing bounds how long traffic is blocked",
                            if effect.rewrite { "rewrites" } else { "scans" },
                            effect.table,
                            effect.lock
                        ),
                    )
                    .help("set a statement_timeout sized for the table (`SET statement_timeout = '5min';`), measured with `tidegate plan`")
                    .effect(effect)
                    .whole_statement(),
                );
            }
        }
    }
}
