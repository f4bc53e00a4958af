use crate::context::{column_definitions, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Suggests `jsonb` instead of `json`.
    ///
    /// ## Why is this bad?
    /// `json` stores the text as given and re-parses it on every access; it cannot be indexed with GIN, has no
    /// equality operator (so `SELECT DISTINCT` and `UNION` fail on it) and keeps duplicate keys.
    ///
    /// ## Lock taken
    /// Not applicable: schema advice.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN metadata json;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN metadata jsonb;
    /// ```
    pub struct PreferJsonbOverJson {
        severity: Info,
        summary: "Use jsonb instead of json",
        size_sensitive: false,
    }
}

impl Rule for PreferJsonbOverJson {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            for (column, column_type, _, offset) in column_definitions(statement) {
                if let Some((message, help)) = (column_type.name == "json").then(|| (format!("{column} is json: it is re-parsed on every access and cannot be indexed or compared"), "use jsonb")) {
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
