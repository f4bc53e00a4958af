use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Reports `ALTER EXTENSION … UPDATE` in a migration.
    ///
    /// ## Why is this bad?
    /// An extension update runs the extension's own upgrade script: it may change function results or
    /// signatures, drop or replace objects, rebuild indexes or take locks on the tables that use its types,
    /// none of which the migration shows. Running code that calls its functions can change behaviour at commit.
    ///
    /// ## Lock taken
    /// Whatever the upgrade script takes; read it (`\dx+` and the extension's `--old--new.sql` file).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER EXTENSION postgis UPDATE;
    /// ```
    ///
    /// ## Use instead
    /// Update to a named version whose upgrade script you have read, rehearsed on a copy of production, and
    /// record it with a `tidegate:ignore alter-extension` reason. Installing an extension is not reported:
    /// ```sql
    /// CREATE EXTENSION IF NOT EXISTS pg_trgm;
    /// ```
    pub struct AlterExtension {
        severity: Info,
        summary: "ALTER EXTENSION UPDATE runs an upgrade script the migration does not show",
        size_sensitive: false,
    }
}

impl Rule for AlterExtension {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            if let Some(NodeEnum::AlterExtensionStmt(alter)) = statement.node.as_deref() {
                violations.push(
                    Violation::new(statement, format!("updating extension {} runs its upgrade script: functions, objects and locks the migration does not show", alter.extname))
                        .help("update to a named version whose upgrade script you have read and rehearsed"),
                );
            }
        }
    }
}
