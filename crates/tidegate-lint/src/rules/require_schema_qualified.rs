use tidegate_sql::StatementKind;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags schema changes that name a table without its schema (`orders` instead of `public.orders`). Off by
    /// default: most projects use one schema; turn it on where `search_path` differs between environments.
    ///
    /// ## Why is this bad?
    /// An unqualified name resolves through the session's `search_path`, which the migration tool, a DBA's
    /// psql session and a connection pooler can each set differently. The same migration then creates or
    /// alters a table in another schema than intended (or in the first schema of the path that happens to
    /// exist), and later migrations and the application do not find it.
    ///
    /// ## Lock taken
    /// Not applicable: naming advice.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE TABLE invoices (id bigint PRIMARY KEY);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE TABLE public.invoices (id bigint PRIMARY KEY);
    /// ```
    pub struct RequireSchemaQualified {
        severity: Warning,
        summary: "Schema changes should name tables with their schema",
        size_sensitive: false,
        enabled_by_default: false,
    }
}

impl Rule for RequireSchemaQualified {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if statement.kind != StatementKind::Ddl {
                continue;
            }
            if let Some(effect) = statement
                .effects
                .iter()
                .find(|effect| effect.table.schema.is_none())
            {
                violations.push(
                    Violation::new(statement, format!("{} is not schema-qualified: which table this is depends on the session's search_path", effect.table))
                        .help(format!("write public.{} (or the schema it belongs to)", effect.table.name))
                        .table(&effect.table)
                        .whole_statement(),
                );
            }
        }
    }
}
