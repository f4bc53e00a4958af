use tidegate_sql::TransactionEvent;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags transaction control that does not do what it looks like: `BEGIN` inside a transaction (explicit,
    /// or the one the framework wraps around the file), `COMMIT`/`ROLLBACK` that ends the framework's own
    /// transaction early or has no transaction to end, and a `BEGIN` never committed by the end of the file.
    ///
    /// ## Why is this bad?
    /// PostgreSQL only warns on a nested `BEGIN` (`there is already a transaction in progress`) and ignores it,
    /// so statements the author meant to group are grouped with everything else. A `COMMIT` inside a framework
    /// transaction commits half the migration: the framework's bookkeeping and the schema disagree when a later
    /// statement fails, and the rest of the file runs outside any transaction.
    ///
    /// ## Lock taken
    /// Locks taken earlier stay held (or are released) at points the author did not intend.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql framework-transaction
    /// -- sqlx already runs this file in a transaction
    /// BEGIN;
    /// ALTER TABLE orders ADD COLUMN note text;
    /// COMMIT;
    /// ```
    ///
    /// ## Use instead
    /// Let the framework manage the transaction, or turn its transaction off for the file (sqlx:
    /// `-- no-transaction`) and manage it yourself:
    /// ```sql framework-transaction
    /// ALTER TABLE orders ADD COLUMN note text;
    /// ```
    pub struct TransactionNesting {
        severity: Warning,
        summary: "BEGIN inside a transaction, COMMIT of the framework's transaction, or an unclosed BEGIN",
        size_sensitive: false,
    }
}

impl Rule for TransactionNesting {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let (message, help) = match statement.transaction_event {
                Some(TransactionEvent::NestedBegin) => (
                    "BEGIN inside a transaction that is already open (the migration framework's, or an earlier BEGIN): PostgreSQL ignores it",
                    "remove the BEGIN/COMMIT pair, or turn off the framework's transaction for this file",
                ),
                Some(TransactionEvent::EndsFrameworkTransaction) => (
                    "COMMIT/ROLLBACK ends the transaction the migration framework opened for this file: the rest of the file runs outside it",
                    "let the framework commit, or turn off its transaction for this file and manage BEGIN/COMMIT yourself",
                ),
                Some(TransactionEvent::EndWithoutTransaction) => (
                    "COMMIT/ROLLBACK with no transaction open: PostgreSQL warns and does nothing",
                    "remove it, or add the BEGIN it was meant to close",
                ),
                _ => continue,
            };
            violations.push(Violation::new(statement, message).help(help));
        }
        if let Some(index) = context.facts.unclosed_begin {
            if let Some(statement) = context.statement(index) {
                violations.push(
                    Violation::new(statement, "this BEGIN is never committed in the file: whether its changes stick depends on how the file is run")
                        .help("add COMMIT at the end of the transaction"),
                );
            }
        }
    }
}
