use crate::context::{column_definitions, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Suggests `text` instead of `char(n)` / `character(n)` columns.
    ///
    /// ## Why is this bad?
    /// `char(n)` pads every value with spaces to `n` characters and strips trailing spaces again when
    /// comparing, so `'a'` and `'a  '` are equal while `length()` and the bytes sent to the application
    /// disagree with what was stored. It is never faster than `text` in PostgreSQL, and changing its length
    /// later rewrites the table.
    ///
    /// ## Lock taken
    /// None beyond the statement's own: this is schema advice.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE TABLE currencies (code char(3) PRIMARY KEY, name text NOT NULL);
    /// ```
    ///
    /// ## Use instead
    /// `text`, with a CHECK constraint when the length is a rule of the data:
    /// ```sql
    /// CREATE TABLE currencies (code text PRIMARY KEY CHECK (char_length(code) = 3), name text NOT NULL);
    /// ```
    pub struct PreferTextOverChar {
        severity: Warning,
        summary: "char(n) pads values with spaces; use text",
        size_sensitive: false,
    }
}

impl Rule for PreferTextOverChar {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            for (column, column_type, _, offset) in column_definitions(statement) {
                if column_type.name == "bpchar" {
                    violations.push(
                        Violation::new(
                            statement,
                            format!(
                                "{column} is char: values are padded with spaces to a fixed length"
                            ),
                        )
                        .help("use text, with CHECK (char_length(col) = n) if the length matters")
                        .at_offset(offset),
                    );
                }
            }
        }
    }
}
