use crate::context::{column_definitions, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Suggests `bigint` for identifier columns declared `smallint` or `smallserial`: primary keys, identity
    /// columns, and columns named `id` or ending in `_id`.
    ///
    /// ## Why is this bad?
    /// A 16-bit key runs out at 32,767: a lookup table that "will never have more than a few hundred rows"
    /// gets there through deleted and re-inserted rows and sequence gaps, and inserts then fail with "reached
    /// maximum value of sequence". Widening it later rewrites the table and every table whose foreign keys
    /// reference it, under ACCESS EXCLUSIVE. Alignment padding often makes the 6 bytes saved per row zero.
    ///
    /// ## Lock taken
    /// Not applicable: schema advice.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE TABLE countries (id smallserial PRIMARY KEY, name text NOT NULL);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE TABLE countries (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
    /// ```
    pub struct PreferBigintOverSmallint {
        severity: Info,
        summary: "Identifier columns should be bigint, not smallint",
        size_sensitive: false,
    }
}

impl Rule for PreferBigintOverSmallint {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            for (column, column_type, key, offset) in column_definitions(statement) {
                let small = matches!(
                    column_type.name.as_str(),
                    "int2" | "smallserial" | "serial2"
                );
                let identifier =
                    key || column == "id" || column.ends_with("_id") || column_type.is_serial();
                if small && identifier {
                    violations.push(
                        Violation::new(statement, format!("{column} is a 16-bit {}: it runs out at 32,767, and widening later rewrites the table", if column_type.name == "int2" { "smallint" } else { column_type.name.as_str() }))
                            .help("use bigint (bigint GENERATED ALWAYS AS IDENTITY for keys)")
                            .at_offset(offset),
                    );
                }
            }
        }
    }
}
