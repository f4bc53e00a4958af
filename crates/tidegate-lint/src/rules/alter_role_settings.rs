use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER ROLE … SET` / `RESET` (and `ALTER USER`) of a configuration parameter, and `ALTER ROLE`
    /// options such as `NOLOGIN`, `CONNECTION LIMIT`, `VALID UNTIL` and a new password.
    ///
    /// ## Why is this bad?
    /// The roles a migration can change are the ones the application, its jobs and its replicas log in as.
    /// A parameter set on a role applies to its next sessions (a `statement_timeout` cancels queries that used
    /// to finish); `NOLOGIN`, a connection limit, an expiry or a new password refuses new connections of the
    /// running application as its pool recycles, an outage that starts minutes after the migration.
    ///
    /// ## Lock taken
    /// No table lock.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER ROLE app SET statement_timeout = '2s';
    /// ```
    ///
    /// ## Use instead
    /// Manage roles in provisioning, not in an application's migrations; set session parameters in the
    /// application's connection options, and for the migration's own session:
    /// ```sql
    /// SET statement_timeout = '2s';
    /// ```
    pub struct AlterRoleSettings {
        severity: Warning,
        summary: "ALTER ROLE changes how the application's roles connect and what their sessions default to",
        size_sensitive: false,
    }
}

impl Rule for AlterRoleSettings {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let (role, what) = match statement.node.as_deref() {
                Some(NodeEnum::AlterRoleSetStmt(alter)) => (
                    alter.role.as_ref(),
                    alter
                        .setstmt
                        .as_ref()
                        .map(|set| set.name.clone())
                        .filter(|name| !name.is_empty())
                        .unwrap_or_else(|| "every setting".into()),
                ),
                Some(NodeEnum::AlterRoleStmt(alter)) => (
                    alter.role.as_ref(),
                    alter
                        .options
                        .iter()
                        .filter_map(|option| match option.node.as_ref() {
                            Some(NodeEnum::DefElem(element)) => {
                                Some(option_name(&element.defname).to_string())
                            }
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => continue,
            };
            let role = role
                .map(|role| role.rolename.as_str())
                .filter(|name| !name.is_empty())
                .unwrap_or("a role");
            violations.push(
                Violation::new(statement, format!("changing {what} of role {role} changes how its next sessions connect and behave, the running application's included"))
                    .help("manage roles in provisioning; set session parameters in the application's connection options"),
            );
        }
    }
}

/// The SQL spelling of an `ALTER ROLE` option as the parser names it (`canlogin` → `LOGIN`).
fn option_name(defname: &str) -> &str {
    match defname {
        "canlogin" => "LOGIN",
        "connectionlimit" => "CONNECTION LIMIT",
        "validUntil" => "VALID UNTIL",
        "password" => "PASSWORD",
        "superuser" => "SUPERUSER",
        "createdb" => "CREATEDB",
        "createrole" => "CREATEROLE",
        "inherit" => "INHERIT",
        "isreplication" => "REPLICATION",
        "bypassrls" => "BYPASSRLS",
        other => other,
    }
}
