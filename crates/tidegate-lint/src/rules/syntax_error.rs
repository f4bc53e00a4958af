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
    ///
    /// ## MySQL and MariaDB
    /// With `--dialect mysql|mariadb` the statements are parsed by sqlparser's MySQL dialect (with a pre-pass for
    /// `ALGORITHM=`, `LOCK=`, `WAIT`/`NOWAIT`, `ALTER ONLINE`, table options and partition clauses). A statement it
    /// cannot parse is this finding, never a pass; so is MariaDB-only syntax (`NOCOPY`, `WAIT n`, `ALTER ONLINE`)
    /// with `--dialect mysql`.
    ///
    /// ## MySQL example
    /// ```sql mysql
    /// ALTER TABLE orders ADD COLUMN note TEXT, ALGORITHM=NOCOPY;
    /// ```
    ///
    /// ## MySQL use instead
    /// ```sql mysql
    /// ALTER TABLE orders ADD COLUMN note TEXT, ALGORITHM=INSTANT;
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

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::syntax_error(context, violations);
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
