use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `REVOKE` of privileges on objects, and of role memberships, in a migration.
    ///
    /// ## Why is this bad?
    /// From the commit on, every query of the roles that lost the privilege fails with "permission denied":
    /// the application version still running, background workers, reporting users, replication and backup
    /// roles. Nothing in the migration itself fails, because it runs as the owner.
    ///
    /// ## Lock taken
    /// No table lock (the catalog rows of the objects are updated).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// REVOKE SELECT ON orders FROM reporting;
    /// ```
    ///
    /// ## Use instead
    /// Check which sessions still use the privilege (`pg_stat_activity` by role, `pg_stat_statements`), move
    /// them off, then revoke with a `tidegate:ignore revoke-privileges` reason. Granting is not reported:
    /// ```sql
    /// GRANT SELECT ON orders TO reporting;
    /// ```
    pub struct RevokePrivileges {
        severity: Warning,
        summary: "REVOKE makes the running queries of the roles that lose it fail",
        size_sensitive: false,
    }
}

impl Rule for RevokePrivileges {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let what = match statement.node.as_deref() {
                Some(NodeEnum::GrantStmt(grant)) if !grant.is_grant => "privileges",
                Some(NodeEnum::GrantRoleStmt(grant)) if !grant.is_grant => "role membership",
                _ => continue,
            };
            violations.push(
                Violation::new(statement, format!("revoking {what} makes every running query of the roles that lose them fail with permission denied"))
                    .help("check which sessions still use the privilege and move them off before revoking"),
            );
        }
    }
}
