use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `CREATE DOMAIN … CHECK (…)` (and `NOT NULL` on a domain).
    ///
    /// ## Why is this bad?
    /// A domain's constraint cannot be changed online. Tightening it later (`ALTER DOMAIN … ADD CONSTRAINT`)
    /// scans every column of every table that uses the domain under a SHARE lock, blocking their writes
    /// (`alter-domain-add-constraint`), and loosening it means recreating the domain and retyping every column.
    /// Column and table CHECK constraints can be added `NOT VALID` and validated without blocking writes, and
    /// dropped one table at a time. Domain `NOT NULL` is also not enforced everywhere (a column of the domain
    /// can still read NULL through an outer join or a composite).
    ///
    /// ## Lock taken
    /// None on tables: the domain is new.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// CREATE DOMAIN positive_amount AS numeric CHECK (VALUE > 0);
    /// ```
    ///
    /// ## Use instead
    /// A plain domain, or the base type, with the CHECK on each column:
    /// ```sql
    /// CREATE DOMAIN amount AS numeric;
    /// CREATE TABLE payments (id bigint PRIMARY KEY, amount numeric NOT NULL CHECK (amount > 0));
    /// ```
    pub struct CreateDomainWithConstraint {
        severity: Warning,
        summary: "A domain's constraint cannot be changed later without blocking every table that uses it",
        size_sensitive: false,
    }
}

impl Rule for CreateDomainWithConstraint {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        use tidegate_sql::syntax::protobuf::ConstrType;
        for statement in context.statements() {
            let Some(NodeEnum::CreateDomainStmt(domain)) = statement.node.as_deref() else {
                continue;
            };
            let constrained =
                domain
                    .constraints
                    .iter()
                    .find_map(|constraint| match constraint.node.as_ref() {
                        Some(NodeEnum::Constraint(constraint))
                            if constraint.contype == ConstrType::ConstrCheck as i32
                                || constraint.contype == ConstrType::ConstrNotnull as i32 =>
                        {
                            Some(constraint.location)
                        }
                        _ => None,
                    });
            let Some(location) = constrained else {
                continue;
            };
            let name = domain
                .domainname
                .iter()
                .filter_map(tidegate_sql::syntax::string_value)
                .collect::<Vec<_>>()
                .join(".");
            violations.push(
                Violation::new(statement, format!("domain {name} carries a constraint: changing it later blocks writes to every table that uses the domain"))
                    .help("put the CHECK on each column (it can then be added NOT VALID and validated online)")
                    .at_offset(statement.file_offset(location)),
            );
        }
    }
}
