use crate::context::{column_definitions, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Suggests `GENERATED … AS IDENTITY` instead of `serial`/`bigserial`/`smallserial` columns.
    ///
    /// ## Why is this bad?
    /// `serial` is a macro for a sequence plus a default: the sequence has its own owner and permissions,
    /// `INSERT`s with explicit ids silently desynchronise it, and copying the table structure (`LIKE`) shares
    /// the sequence. Identity columns are the SQL-standard replacement without these traps.
    ///
    /// ## Lock taken
    /// Not applicable: schema advice.
    ///
    /// ## PostgreSQL versions
    /// Identity columns exist from PostgreSQL 10.
    ///
    /// ## Example
    /// ```sql
    /// CREATE TABLE orders (id bigserial PRIMARY KEY);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
    /// ```
    pub struct PreferIdentityOverSerial {
        severity: Info,
        summary: "Use identity columns instead of serial types",
        size_sensitive: false,
    }
}

impl Rule for PreferIdentityOverSerial {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            for (column, column_type, _, offset) in column_definitions(statement) {
                if let Some((message, help)) = column_type.is_serial().then(|| (format!("{column} uses {column_type}; identity columns avoid serial's separate sequence ownership and permission traps"), "use bigint GENERATED ALWAYS AS IDENTITY")) {
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
