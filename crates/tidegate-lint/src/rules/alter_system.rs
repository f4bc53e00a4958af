use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER SYSTEM` in a migration.
    ///
    /// ## Why is this bad?
    /// It rewrites `postgresql.auto.conf`, the server's configuration, for every database and every
    /// application on the server, not just the one being migrated; it takes effect at the next reload or
    /// restart, long after the migration, so its effect is hard to connect to its cause. It cannot run inside a
    /// transaction block, so it cannot be rolled back with the migration, and it needs superuser (or a grant),
    /// which an application's migration role should not have. Managed services reject it.
    ///
    /// ## Lock taken
    /// No table lock.
    ///
    /// ## PostgreSQL versions
    /// All (9.4 and later).
    ///
    /// ## Example
    /// ```sql
    /// ALTER SYSTEM SET work_mem = '256MB';
    /// ```
    ///
    /// ## Use instead
    /// Configure the server where its configuration lives (configuration management, the provider's
    /// parameter group). A setting only the migration needs is set for its own session:
    /// ```sql
    /// SET work_mem = '256MB';
    /// ```
    pub struct AlterSystem {
        severity: Warning,
        summary: "ALTER SYSTEM changes the whole server's configuration from a migration",
        size_sensitive: false,
    }
}

impl Rule for AlterSystem {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if let Some(NodeEnum::AlterSystemStmt(alter)) = statement.node.as_deref() {
                // `ALTER SYSTEM RESET ALL` names no setting.
                let setting = alter
                    .setstmt
                    .as_ref()
                    .map(|set| set.name.as_str())
                    .filter(|name| !name.is_empty())
                    .unwrap_or("every setting");
                violations.push(
                    Violation::new(statement, format!("ALTER SYSTEM changes {setting} for the whole server, outside the migration's transaction"))
                        .help("configure the server in its configuration management; use SET for what the migration itself needs"),
                );
            }
        }
    }
}
