use tidegate_sql::syntax::protobuf::{DropBehavior, ObjectType};
use tidegate_sql::syntax::NodeEnum;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP EXTENSION` of an extension this migration did not create.
    ///
    /// ## Why is this bad?
    /// An extension installs functions, types, operators and index methods (`citext`, `pg_trgm`, `postgis`)
/// that columns, indexes and application queries use. Queries calling its functions fail from the commit on;
/// with `CASCADE` every column of its types and every index using its operator classes is dropped as well,
/// deleting data and slowing queries that relied on those indexes.
    ///
    /// ## Lock taken
    /// The extension's objects; with `CASCADE`, ACCESS EXCLUSIVE on every table whose columns or indexes use
/// them.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP EXTENSION pg_trgm CASCADE;
    /// ```
    ///
    /// ## Use instead
    /// Find its users first (`pg_depend` on the extension's objects), move them off, then drop it without
/// `CASCADE` and with a `tidegate:ignore drop-extension` reason. An extension this migration creates may be
/// dropped freely:
/// ```sql
/// CREATE EXTENSION IF NOT EXISTS btree_gist;
/// DROP EXTENSION btree_gist;
/// ```
    pub struct DropExtension {
        severity: Warning,
        summary: "DROP EXTENSION removes its functions, types and operators (CASCADE: the columns and indexes using them)",
        size_sensitive: false,
    }
}

impl Rule for DropExtension {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(context, &[ObjectType::ObjectExtension]) {
            let cascade = match statement.node.as_deref() {
                Some(NodeEnum::DropStmt(drop))
                    if drop.behavior == DropBehavior::DropCascade as i32 =>
                {
                    "; CASCADE also drops everything that depends on it"
                }
                _ => "",
            };
            violations.push(
                Violation::new(statement, format!("dropping extension {name} removes the functions, types and operators running code uses{cascade}"))
                    .help("move columns, indexes and queries off the extension first; drop it without CASCADE"),
            );
        }
    }
}
