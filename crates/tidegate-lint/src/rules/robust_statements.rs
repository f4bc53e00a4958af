use tidegate_sql::syntax::protobuf::AlterTableType;
use tidegate_sql::syntax::NodeEnum;
use tidegate_sql::{Statement, TransactionState};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags a `CREATE` without `IF NOT EXISTS`, a `DROP` without `IF EXISTS`, and `ADD COLUMN` / `DROP
    /// COLUMN` / `DROP CONSTRAINT` without them, when the statement runs outside a transaction and more
    /// statements follow it in the file. Off by default: many layouts run plain files without a transaction,
    /// where it would flag nearly every statement; turn it on if your migrations are re-run after a failure.
    /// `CREATE INDEX CONCURRENTLY` is left to `concurrent-index-if-not-exists` (IF NOT EXISTS is wrong there).
    ///
    /// ## Why is this bad?
    /// Outside a transaction each statement commits on its own. When a later statement fails, the earlier ones
    /// stay applied, and re-running the file after fixing the problem fails at the first of them ("relation
    /// already exists", "does not exist"): the migration can only be finished by hand. Inside a transaction
    /// none of this matters, since a failure rolls everything back.
    ///
    /// ## Lock taken
    /// Not applicable: the statement's own lock is unchanged.
    ///
    /// ## PostgreSQL versions
    /// All (`ADD COLUMN IF NOT EXISTS` since 9.6).
    ///
    /// ## Example
    /// ```sql
    /// CREATE TABLE invoices (id bigint PRIMARY KEY);
    /// CREATE INDEX CONCURRENTLY orders_status ON orders (status);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE TABLE IF NOT EXISTS invoices (id bigint PRIMARY KEY);
    /// CREATE INDEX CONCURRENTLY orders_status ON orders (status);
    /// ```
    pub struct RobustStatements {
        severity: Warning,
        summary: "Outside a transaction, CREATE/DROP without IF [NOT] EXISTS cannot be re-run after a failure",
        size_sensitive: false,
        enabled_by_default: false,
    }
}

impl Rule for RobustStatements {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        let statements = context.statements();
        for statement in statements {
            if statement.transaction != TransactionState::None {
                continue;
            }
            // With nothing after it that can fail, a failure of this statement leaves nothing behind.
            if !context.facts.substantive_after(statement.index) {
                continue;
            }
            if let Some(fix) = missing_guard(statement) {
                violations.push(
                    Violation::new(statement, format!("this statement commits on its own: if a later one fails, re-running the file fails here; write {fix}"))
                        .help("add IF [NOT] EXISTS so the file can be re-run, or run the migration in a transaction"),
                );
            }
        }
    }
}

/// The guard the statement lacks (`IF NOT EXISTS`), if it is one that fails when re-run.
fn missing_guard(statement: &Statement) -> Option<&'static str> {
    match statement.node.as_deref()? {
        NodeEnum::CreateStmt(create) if !create.if_not_exists => Some("CREATE TABLE IF NOT EXISTS"),
        NodeEnum::IndexStmt(index) if !index.if_not_exists && !index.concurrent => {
            Some("CREATE INDEX IF NOT EXISTS")
        }
        NodeEnum::CreateSeqStmt(create) if !create.if_not_exists => {
            Some("CREATE SEQUENCE IF NOT EXISTS")
        }
        NodeEnum::CreateSchemaStmt(create) if !create.if_not_exists => {
            Some("CREATE SCHEMA IF NOT EXISTS")
        }
        NodeEnum::CreateExtensionStmt(create) if !create.if_not_exists => {
            Some("CREATE EXTENSION IF NOT EXISTS")
        }
        NodeEnum::DropStmt(drop) if !drop.missing_ok => Some("DROP … IF EXISTS"),
        NodeEnum::AlterTableStmt(alter) => {
            alter
                .cmds
                .iter()
                .find_map(|command| match command.node.as_ref() {
                    Some(NodeEnum::AlterTableCmd(command)) if !command.missing_ok => {
                        match AlterTableType::try_from(command.subtype).unwrap_or_default() {
                            AlterTableType::AtAddColumn => Some("ADD COLUMN IF NOT EXISTS"),
                            AlterTableType::AtDropColumn => Some("DROP COLUMN IF EXISTS"),
                            AlterTableType::AtDropConstraint => Some("DROP CONSTRAINT IF EXISTS"),
                            _ => None,
                        }
                    }
                    _ => None,
                })
        }
        _ => None,
    }
}
