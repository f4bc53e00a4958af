use tidegate_sql::syntax::protobuf::{DropBehavior, ObjectType};
use tidegate_sql::syntax::NodeEnum;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP SCHEMA` of a schema this migration did not create.
    ///
    /// ## Why is this bad?
    /// A schema holds tables, views, functions and types that running code uses by qualified name or through
/// `search_path`. Without `CASCADE` the drop fails while anything is left in it; with `CASCADE` it deletes every
/// table and its data, every view and function in it, at once and for good.
    ///
    /// ## Lock taken
    /// With `CASCADE`, ACCESS EXCLUSIVE on every table in the schema, held to the end of the transaction.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP SCHEMA reporting CASCADE;
    /// ```
    ///
    /// ## Use instead
    /// Drop what the schema holds one object at a time (each with its own rule and reason), then the empty
/// schema without `CASCADE`. A schema this migration creates may be dropped freely:
/// ```sql
/// CREATE SCHEMA scratch;
/// DROP SCHEMA scratch;
/// ```
    pub struct DropSchema {
        severity: Warning,
        summary: "DROP SCHEMA removes every object in it (with CASCADE, every table and its data)",
        size_sensitive: false,
    }
}

impl Rule for DropSchema {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(context, &[ObjectType::ObjectSchema]) {
            let cascade = match statement.node.as_deref() {
                Some(NodeEnum::DropStmt(drop))
                    if drop.behavior == DropBehavior::DropCascade as i32 =>
                {
                    "; CASCADE also drops everything that depends on it"
                }
                _ => "",
            };
            violations.push(
                Violation::new(statement, format!("dropping schema {name} removes every object in it{cascade}"))
                    .help("drop the objects it holds one by one after their readers are gone, then the empty schema without CASCADE"),
            );
        }
    }
}
