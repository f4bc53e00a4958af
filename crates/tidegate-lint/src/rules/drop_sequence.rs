use tidegate_sql::syntax::protobuf::{DropBehavior, ObjectType};
use tidegate_sql::syntax::NodeEnum;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP SEQUENCE` of a sequence this migration did not create.
    ///
    /// ## Why is this bad?
    /// Column defaults (`nextval('orders_id_seq')`) and application code draw keys from the sequence. Without
/// `CASCADE` a default that uses it makes the drop fail; with `CASCADE` the default is removed and every
/// insert that relied on it fails with a NOT NULL violation or stores NULL. Code that calls `nextval` fails
/// from the commit on.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the sequence; with `CASCADE`, also on tables whose defaults use it.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP SEQUENCE invoice_numbers;
    /// ```
    ///
    /// ## Use instead
    /// Release code that draws from the sequence and drop the defaults that use it first, then drop it with
/// a `tidegate:ignore drop-sequence` reason. A sequence this migration creates may be dropped freely:
/// ```sql
/// CREATE SEQUENCE scratch_numbers;
/// DROP SEQUENCE scratch_numbers;
/// ```
    pub struct DropSequence {
        severity: Warning,
        summary: "DROP SEQUENCE breaks inserts and code that take values from it",
        size_sensitive: false,
    }
}

impl Rule for DropSequence {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(context, &[ObjectType::ObjectSequence]) {
            let cascade = match statement.node.as_deref() {
                Some(NodeEnum::DropStmt(drop))
                    if drop.behavior == DropBehavior::DropCascade as i32 =>
                {
                    "; CASCADE also drops everything that depends on it"
                }
                _ => "",
            };
            violations.push(
                Violation::new(statement, format!("dropping sequence {name} breaks the inserts and code that take values from it{cascade}"))
                    .help("remove the defaults and code that use the sequence first, then drop it with a tidegate:ignore reason"),
            );
        }
    }
}
