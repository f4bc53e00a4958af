use tidegate_sql::syntax::protobuf::{DropBehavior, ObjectType};
use tidegate_sql::syntax::NodeEnum;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP TYPE` (enums, composite and range types) of a type this migration did not create.
    ///
    /// ## Why is this bad?
    /// Application code casts to the type (`'shipped'::order_status`), functions take it as an argument and
/// columns store it. Casts and calls fail from the commit on. With `CASCADE` every column of that type is
/// dropped with it: data is deleted without a `DROP COLUMN` in sight.
    ///
    /// ## Lock taken
    /// The type's catalog entry; with `CASCADE`, ACCESS EXCLUSIVE on every table whose columns use it.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP TYPE order_status CASCADE;
    /// ```
    ///
    /// ## Use instead
    /// Move columns off the type and release code that names it, then drop it without `CASCADE` (so a
/// remaining user makes it fail) and with a `tidegate:ignore drop-type` reason. A type this migration
/// creates may be dropped freely:
/// ```sql
/// CREATE TYPE scratch_status AS ENUM ('new', 'done');
/// DROP TYPE scratch_status;
/// ```
    pub struct DropType {
        severity: Warning,
        summary: "DROP TYPE breaks code that casts to or reads the type; CASCADE drops columns",
        size_sensitive: false,
    }
}

impl Rule for DropType {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(context, &[ObjectType::ObjectType]) {
            let cascade = match statement.node.as_deref() {
                Some(NodeEnum::DropStmt(drop))
                    if drop.behavior == DropBehavior::DropCascade as i32 =>
                {
                    "; CASCADE also drops everything that depends on it"
                }
                _ => "",
            };
            violations.push(
                Violation::new(statement, format!("dropping type {name} breaks code that casts to it or reads it{cascade}"))
                    .help("move columns and code off the type first; drop it without CASCADE so a remaining user makes the drop fail"),
            );
        }
    }
}
