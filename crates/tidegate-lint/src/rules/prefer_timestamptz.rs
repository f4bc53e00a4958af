use crate::context::{column_definitions, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Suggests `timestamptz` instead of `timestamp` (without time zone).
    ///
    /// ## Why is this bad?
    /// `timestamp` stores a wall-clock reading without its time zone: values written by servers or sessions in
    /// different zones, or across a daylight-saving change, cannot be compared or converted correctly.
    /// `timestamptz` stores an absolute instant in the same 8 bytes.
    ///
    /// ## Lock taken
    /// Not applicable: schema advice.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamp);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz);
    /// ```
    pub struct PreferTimestamptz {
        severity: Info,
        summary: "Use timestamptz instead of timestamp without time zone",
        size_sensitive: false,
    }
}

impl Rule for PreferTimestamptz {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            for (column, column_type, _, offset) in column_definitions(statement) {
                if let Some((message, help)) = (column_type.name == "timestamp").then(|| (format!("{column} is timestamp without time zone: instants from different zones cannot be compared"), "use timestamptz")) {
                    violations.push(
                        Violation::new(statement, message)
                            .help(help)
                            .at_offset(offset),
                    );
                }
            }
        }
    }
}
