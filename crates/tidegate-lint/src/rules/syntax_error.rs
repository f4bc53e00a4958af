use tidegate_sql::StatementKind;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Reports a statement that PostgreSQL's parser rejects.
    ///
    /// ## Why is this bad?
    /// The migration will fail at this statement. If the framework does not wrap the file in a transaction,
    /// every statement before it has already been applied, leaving the schema half-migrated, possibly with
    /// locks taken by earlier statements already released and the application running against a schema no
    /// release expects.
    ///
    /// ## Lock taken
    /// None: the statement never runs.
    ///
    /// ## PostgreSQL versions
    /// Parsed with the PostgreSQL 18 grammar; syntax new in 18 is accepted even when `--pg-version` is older.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN shipped_at timestamptz;
    /// ```
    pub struct SyntaxError {
        severity: Error,
        summary: "A statement PostgreSQL's parser rejects",
        size_sensitive: false,
    }
}

impl Rule for SyntaxError {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if statement.kind == StatementKind::Invalid {
                let message = statement
                    .syntax_error
                    .as_deref()
                    .unwrap_or("the statement does not parse");
                violations.push(
                    Violation::new(statement, format!("syntax error: {message}")).help(
                        "fix the statement; the other statements of the file were still checked",
                    ),
                );
            }
        }
    }
}
