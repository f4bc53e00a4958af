use tidegate_sql::syntax::protobuf::DropBehavior;
use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `TRUNCATE … CASCADE`.
    ///
    /// ## Why is this bad?
    /// `CASCADE` also empties every table with a foreign key to the truncated ones, recursively: tables the
    /// statement does not name lose all their rows, and each is locked ACCESS EXCLUSIVE.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on every named and cascaded table.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// TRUNCATE customers CASCADE;
    /// ```
    ///
    /// ## Use instead
    /// Name every table to empty explicitly, without CASCADE, so PostgreSQL refuses if anything else refers
    /// to them:
    /// ```sql
    /// TRUNCATE order_items, orders, customers;
    /// ```
    pub struct TruncateCascade {
        severity: Error,
        summary: "TRUNCATE … CASCADE empties every referencing table too",
        size_sensitive: false,
    }
}

impl Rule for TruncateCascade {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if let Some(NodeEnum::TruncateStmt(truncate)) = statement.node.as_deref() {
                if truncate.behavior == DropBehavior::DropCascade as i32 {
                    let mut violation = Violation::new(statement, "TRUNCATE … CASCADE also empties every table that references these, recursively")
                        .help("list every table to empty explicitly and drop CASCADE");
                    if let Some(effect) = statement.effects.first() {
                        violation = violation.effect(effect);
                    }
                    violations.push(violation);
                }
            }
        }
    }
}
