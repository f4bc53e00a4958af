use tidegate_sql::syntax::protobuf::ObjectType;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP POLICY` of a row-level security policy this migration did not create.
    ///
    /// ## Why is this bad?
    /// Policies decide which rows each role sees and may write. Dropping a permissive policy hides rows from
    /// the roles it let in (with row-level security on and no policy left, they see nothing at all and their
    /// writes fail); dropping a restrictive one shows rows that were meant to stay hidden. Either way the
    /// running application's queries change their answers at commit, without an error.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (but queued behind running transactions).
    ///
    /// ## PostgreSQL versions
    /// All (row-level security exists since 9.5).
    ///
    /// ## Example
    /// ```sql
    /// DROP POLICY tenant_isolation ON orders;
    /// ```
    ///
    /// ## Use instead
    /// Create the replacement policy first and drop the old one in the same transaction, so no moment exists
    /// with neither, and say why with a `tidegate:ignore drop-policy` reason. A policy this migration creates
    /// may be dropped freely:
    /// ```sql
    /// CREATE POLICY scratch_policy ON orders USING (true);
    /// DROP POLICY scratch_policy ON orders;
    /// ```
    pub struct DropPolicy {
        severity: Warning,
        summary: "DROP POLICY changes which rows running code sees or may write",
        size_sensitive: false,
    }
}

impl Rule for DropPolicy {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(context, &[ObjectType::ObjectPolicy]) {
            // A policy is named `table.policy`.
            let (table, policy) = name
                .rsplit_once('.')
                .unwrap_or(("its table", name.as_str()));
            violations.push(
                Violation::new(statement, format!("dropping policy {policy} on {table} changes which rows running code sees or may write"))
                    .help("create the replacement policy in the same transaction, and give the reason with tidegate:ignore"),
            );
        }
    }
}
