use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER DATABASE … SET` / `RESET` of a configuration parameter.
    ///
    /// ## Why is this bad?
    /// It changes the defaults of every new session on the database, the running application's, the job
    /// runners' and the connection pooler's included, from their next connection on: a `statement_timeout`
    /// cancels long queries that used to finish, a `search_path` makes names resolve elsewhere, a `timezone`
    /// changes how timestamps are shown. Sessions already open keep the old value, so the change arrives
    /// gradually as pools recycle, and is hard to connect to the migration.
    ///
    /// ## Lock taken
    /// No table lock.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER DATABASE shop SET statement_timeout = '5s';
    /// ```
    ///
    /// ## Use instead
    /// Set parameters where the application connects (its connection options or pool configuration), and what
    /// the migration itself needs for its own session:
    /// ```sql
    /// SET statement_timeout = '5s';
    /// ```
    pub struct AlterDatabaseSettings {
        severity: Warning,
        summary: "ALTER DATABASE … SET changes the defaults of every new session",
        size_sensitive: false,
    }
}

impl Rule for AlterDatabaseSettings {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if let Some(NodeEnum::AlterDatabaseSetStmt(alter)) = statement.node.as_deref() {
                let setting = alter
                    .setstmt
                    .as_ref()
                    .map(|set| set.name.as_str())
                    .filter(|name| !name.is_empty())
                    .unwrap_or("every setting");
                violations.push(
                    Violation::new(statement, format!("changing {setting} for database {} changes every new session's default, the running application's included", alter.dbname))
                        .help("set it in the application's connection options; use SET for what the migration itself needs"),
                );
            }
        }
    }
}
