use crate::context::{column_definitions, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Suggests `text` (with a CHECK on the length if one is needed) instead of `varchar(n)`.
    ///
    /// ## Why is this bad?
    /// `varchar(n)` stores exactly like `text`; the limit only adds a check. Raising it later is cheap, but
    /// lowering it or converting to other types rewrites the table, and the limit is often an arbitrary
    /// guess that fails real inputs. A CHECK constraint can be changed with `NOT VALID` and `VALIDATE`
    /// without blocking.
    ///
    /// ## Lock taken
    /// Not applicable: schema advice.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN order_status_v2 varchar(20);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN order_status_v2 text;
    /// ALTER TABLE orders ADD CONSTRAINT order_status_v2_length CHECK (char_length(order_status_v2) <= 20) NOT VALID;
    /// ```
    pub struct PreferTextOverVarchar {
        severity: Info,
        summary: "Use text (plus a CHECK if needed) instead of varchar(n)",
        size_sensitive: false,
    }
}

impl Rule for PreferTextOverVarchar {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            for (column, column_type, _, offset) in column_definitions(statement) {
                if let Some((message, help)) = (column_type.name == "varchar" && !column_type.modifiers.is_empty()).then(|| (format!("{column} is {column_type}: the length limit is a check that is awkward to change"), "use text, with CHECK (char_length(col) <= n) if the limit matters")) {
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
