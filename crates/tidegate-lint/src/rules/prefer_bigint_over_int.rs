use crate::context::{column_definitions, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Suggests `bigint` for identifier columns declared `integer` or `serial`: primary keys, identity columns,
    /// and columns named `id` or ending in `_id`. (`smallint` keys are `prefer-bigint-over-smallint`'s.)
    ///
    /// ## Why is this bad?
    /// A 32-bit key runs out at 2,147,483,647. Busy tables reach that within a few years, inserts then fail,
    /// and the fix, `ALTER COLUMN … TYPE bigint`, rewrites the table and every index under ACCESS EXCLUSIVE
    /// (see `alter-column-type-rewrite`). `bigint` costs 4 more bytes per row.
    ///
    /// ## Lock taken
    /// Not applicable: schema advice.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE TABLE orders (id serial PRIMARY KEY, customer_id integer);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id bigint);
    /// ```
    pub struct PreferBigintOverInt {
        severity: Info,
        summary: "Identifier columns should be bigint, not int",
        size_sensitive: false,
    }
}

impl Rule for PreferBigintOverInt {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            for (column, column_type, key, offset) in column_definitions(statement) {
                if let Some((message, help)) = (matches!(column_type.name.as_str(), "int4" | "serial" | "serial4") && (key || column == "id" || column.ends_with("_id") || column_type.is_serial())).then(|| (format!("{column} is a 32-bit {column_type}: identifiers outgrow it, and widening later rewrites the table"), "use bigint (bigint GENERATED ALWAYS AS IDENTITY for keys)")) {
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
