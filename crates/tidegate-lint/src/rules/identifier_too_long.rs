use tidegate_sql::syntax::{long_identifiers, NodeEnum};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

/// PostgreSQL's NAMEDATALEN - 1: longer identifiers are truncated to this many bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;

declare_rule! {
    /// ## What it does
    /// Flags a table, column, index or constraint name longer than 63 bytes.
    ///
    /// ## Why is this bad?
    /// PostgreSQL silently truncates identifiers to 63 bytes (it only emits a NOTICE). The object then has
    /// another name than the migration says: a later migration or the application that uses the full name
    /// does not find it, and two long names that share their first 63 bytes collide, so the second
    /// `CREATE INDEX` fails or `IF NOT EXISTS` silently skips it.
    ///
    /// ## Lock taken
    /// None beyond the statement's own.
    ///
    /// ## PostgreSQL versions
    /// All (63 is the default `NAMEDATALEN` - 1).
    ///
    /// ## Example
    /// ```sql
    /// CREATE INDEX CONCURRENTLY index_customer_invoices_on_customer_id_and_billing_period_start_date ON customer_invoices (customer_id, billing_period_start);
    /// ```
    ///
    /// ## Use instead
    /// A name of at most 63 bytes:
    /// ```sql
    /// CREATE INDEX CONCURRENTLY customer_invoices_customer_period_idx ON customer_invoices (customer_id, billing_period_start);
    /// ```
    pub struct IdentifierTooLong {
        severity: Warning,
        summary: "an identifier over 63 bytes is silently truncated by PostgreSQL",
        size_sensitive: false,
    }
}

impl Rule for IdentifierTooLong {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            // Names are given by DDL; a long name in a query only refers to one.
            let defines_names = matches!(
                statement.node.as_deref(),
                Some(
                    NodeEnum::CreateStmt(_)
                        | NodeEnum::IndexStmt(_)
                        | NodeEnum::AlterTableStmt(_)
                        | NodeEnum::RenameStmt(_)
                )
            );
            if !defines_names {
                continue;
            }
            let start = statement.span.bytes.start;
            for (offset, name) in long_identifiers(&statement.text, MAX_IDENTIFIER_BYTES) {
                let mut end = MAX_IDENTIFIER_BYTES;
                while !name.is_char_boundary(end) {
                    end -= 1;
                }
                violations.push(
                    Violation::new(
                        statement,
                        format!(
                            "{name} is {} bytes long: PostgreSQL truncates it to {}",
                            name.len(),
                            &name[..end]
                        ),
                    )
                    .help("choose a name of at most 63 bytes")
                    .at_offset(Some(start + offset)),
                );
            }
        }
    }
}
