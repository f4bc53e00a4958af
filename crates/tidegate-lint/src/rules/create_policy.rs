use tidegate_sql::syntax::NodeEnum;
use tidegate_sql::TableName;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Reports `CREATE POLICY` on a table that existed before this migration.
    ///
    /// ## Why is this bad?
    /// On a table with row-level security enabled, a new permissive policy lets roles see and write rows they
    /// could not before, and a new restrictive policy (`AS RESTRICTIVE`) hides rows from the running
    /// application: its queries return fewer rows and its updates touch fewer, without any error. The change
    /// is right or wrong depending on the roles the application connects as, which a reviewer should check.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (but queued behind running transactions).
    ///
    /// ## PostgreSQL versions
    /// All (row-level security exists since 9.5).
    ///
    /// ## Example
    /// ```sql
    /// CREATE POLICY hide_archived ON orders AS RESTRICTIVE USING (archived_at IS NULL);
    /// ```
    ///
    /// ## Use instead
    /// Check the roles the policy applies to (`TO …`, `PUBLIC` by default) against the roles the application
    /// uses, set a `lock_timeout`, and record the decision with a `tidegate:ignore create-policy` reason.
    /// Policies on a table this migration creates are not reported:
    /// ```sql
    /// CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id bigint NOT NULL);
    /// ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
    /// CREATE POLICY tenant_isolation ON invoices USING (tenant_id = current_setting('app.tenant_id')::bigint);
    /// ```
    pub struct CreatePolicy {
        severity: Info,
        summary: "CREATE POLICY on an existing table changes which rows running code sees",
        size_sensitive: false,
    }
}

impl Rule for CreatePolicy {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::CreatePolicyStmt(policy)) = statement.node.as_deref() else {
                continue;
            };
            let Some(table) = policy.table.as_ref().map(TableName::from_range_var) else {
                continue;
            };
            if !context.is_pre_existing(&table) {
                continue;
            }
            let effect = if policy.permissive {
                "lets the roles it names see and write rows they could not before"
            } else {
                "hides rows from the running application's queries (it is restrictive)"
            };
            violations.push(
                Violation::new(
                    statement,
                    format!("policy {} on {table} {effect}", policy.policy_name),
                )
                .help("check the roles it applies to against the roles the application connects as")
                .table(&table),
            );
        }
    }
}
