use tidegate_sql::syntax::NodeEnum;
use tidegate_sql::TableName;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER POLICY` that changes a row-level security policy's roles (`TO …`), its `USING` condition
    /// or its `WITH CHECK` condition. Renaming a policy is not flagged.
    ///
    /// ## Why is this bad?
    /// The running application's queries change their answers at commit: a narrower `USING` hides rows from
    /// them, a narrower `WITH CHECK` makes their inserts and updates fail with "new row violates row-level
    /// security policy", and a changed role list moves whole roles in or out. None of it raises an error in
    /// the migration.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (but queued behind running transactions).
    ///
    /// ## PostgreSQL versions
    /// All (row-level security exists since 9.5).
    ///
    /// ## Example
    /// ```sql
    /// ALTER POLICY tenant_isolation ON orders USING (tenant_id = current_setting('app.tenant_id')::bigint AND archived_at IS NULL);
    /// ```
    ///
    /// ## Use instead
    /// Widen first and narrow later: deploy code that works under both conditions, then change the policy with
    /// a `lock_timeout` and a `tidegate:ignore alter-policy` reason. Renaming is safe:
    /// ```sql
    /// ALTER POLICY tenant_isolation ON orders RENAME TO orders_tenant_isolation;
    /// ```
    pub struct AlterPolicy {
        severity: Warning,
        summary: "ALTER POLICY changes which rows running code sees or may write",
        size_sensitive: false,
    }
}

impl Rule for AlterPolicy {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterPolicyStmt(policy)) = statement.node.as_deref() else {
                continue;
            };
            let Some(table) = policy.table.as_ref().map(TableName::from_range_var) else {
                continue;
            };
            if !context.is_pre_existing(&table) {
                continue;
            }
            let mut changes = Vec::new();
            if !policy.roles.is_empty() {
                changes.push("the roles it applies to");
            }
            if policy.qual.is_some() {
                changes.push("which rows are visible (USING)");
            }
            if policy.with_check.is_some() {
                changes.push("which rows may be written (WITH CHECK)");
            }
            violations.push(
                Violation::new(
                    statement,
                    format!("altering policy {} on {table} changes {} for running code", policy.policy_name, changes.join(" and ")),
                )
                .help("deploy code that works under both the old and the new policy first, then alter it")
                .table(&table),
            );
        }
    }
}
