use tidegate_sql::syntax::protobuf::{DropBehavior, ObjectType};
use tidegate_sql::syntax::NodeEnum;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP DOMAIN` of a domain this migration did not create.
    ///
    /// ## Why is this bad?
    /// Columns are declared with the domain and code casts to it. Without `CASCADE` the drop fails while a
/// column uses it; with `CASCADE` those columns are dropped with it, deleting their data. Casts and function
/// signatures naming it fail from the commit on.
    ///
    /// ## Lock taken
    /// The domain's catalog entry; with `CASCADE`, ACCESS EXCLUSIVE on every table with a column of it.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP DOMAIN positive_amount CASCADE;
    /// ```
    ///
    /// ## Use instead
    /// Move columns to the base type first (`ALTER COLUMN … TYPE numeric` is binary-coercible from a domain
/// over it), release code that names it, then drop it without `CASCADE`. A domain this migration creates
/// may be dropped freely:
/// ```sql
/// CREATE DOMAIN scratch_amount AS numeric;
/// DROP DOMAIN scratch_amount;
/// ```
    pub struct DropDomain {
        severity: Warning,
        summary: "DROP DOMAIN breaks code that casts to it; CASCADE drops its columns",
        size_sensitive: false,
    }
}

impl Rule for DropDomain {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(context, &[ObjectType::ObjectDomain]) {
            let cascade = match statement.node.as_deref() {
                Some(NodeEnum::DropStmt(drop))
                    if drop.behavior == DropBehavior::DropCascade as i32 =>
                {
                    "; CASCADE also drops everything that depends on it"
                }
                _ => "",
            };
            violations.push(
                Violation::new(statement, format!("dropping domain {name} breaks code that casts to it{cascade}"))
                    .help("move columns to the base type and code off the domain first; drop it without CASCADE"),
            );
        }
    }
}
