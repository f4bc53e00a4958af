use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER DOMAIN … ADD CONSTRAINT` without `NOT VALID`.
    ///
    /// ## Why is this bad?
    /// PostgreSQL checks the new constraint against every value of the domain, in every table with a column
    /// of that type, and holds a SHARE lock on each of those tables while it reads them all: writes to all of
    /// them stop for as long as the scans take, and the tables are not named in the statement.
    ///
    /// ## Lock taken
    /// SHARE on every table with a column of the domain (blocks writes) for the whole check.
    ///
    /// ## PostgreSQL versions
    /// All; `NOT VALID` on domain constraints exists since 9.2.
    ///
    /// ## Example
    /// ```sql
    /// ALTER DOMAIN positive_amount ADD CONSTRAINT positive_amount_check CHECK (VALUE > 0);
    /// ```
    ///
    /// ## Use instead
    /// Add it `NOT VALID` (new values are checked at once), then validate it in a later transaction, which
    /// does not block writes:
    /// ```sql
    /// ALTER DOMAIN positive_amount ADD CONSTRAINT positive_amount_check CHECK (VALUE > 0) NOT VALID;
    /// ```
    /// ```sql
    /// ALTER DOMAIN positive_amount VALIDATE CONSTRAINT positive_amount_check;
    /// ```
    pub struct AlterDomainAddConstraint {
        severity: Error,
        summary: "ALTER DOMAIN … ADD CONSTRAINT without NOT VALID blocks writes to every table using the domain",
        size_sensitive: false,
    }
}

impl Rule for AlterDomainAddConstraint {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterDomainStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            // subtype 'C' is ADD CONSTRAINT.
            if alter.subtype != "C" {
                continue;
            }
            let Some(NodeEnum::Constraint(constraint)) =
                alter.def.as_deref().and_then(|def| def.node.as_ref())
            else {
                continue;
            };
            if constraint.skip_validation {
                continue;
            }
            let domain = tidegate_sql::TableName::from_name_list(&alter.type_name)
                .map_or_else(|| "the domain".to_string(), |name| name.to_string());
            violations.push(
                Violation::new(
                    statement,
                    format!("ALTER DOMAIN {domain} ADD CONSTRAINT checks every value in every table using the domain while blocking their writes"),
                )
                .help("add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later transaction"),
            );
        }
    }
}
