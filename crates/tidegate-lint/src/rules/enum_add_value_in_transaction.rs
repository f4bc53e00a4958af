use tidegate_sql::syntax::{string_literals, NodeEnum};

use crate::context::{same_transaction, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};
use crate::Severity;

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TYPE … ADD VALUE` inside a transaction block: before PostgreSQL 12 always, from 12 when a
    /// later statement of the same transaction uses the new value.
    ///
    /// ## Why is this bad?
    /// Before PostgreSQL 12, `ALTER TYPE … ADD VALUE cannot run inside a transaction block`: the migration
    /// fails. From 12 it may, but the new value cannot be used until the transaction commits
    /// (`unsafe use of new value`), so a migration that adds a value and then writes it fails.
    ///
    /// ## Lock taken
    /// A lock on the type (no table lock).
    ///
    /// ## PostgreSQL versions
    /// Before 12: always an error in a transaction. 12+: only using the value in the same transaction fails.
    ///
    /// ## Example
    /// ```sql
    /// BEGIN;
    /// ALTER TYPE order_status ADD VALUE 'refunded';
    /// UPDATE orders SET status = 'refunded' WHERE id = 42;
    /// COMMIT;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TYPE order_status ADD VALUE 'refunded';
    /// -- next migration (after commit):
    /// UPDATE orders SET status = 'refunded' WHERE id = 42;
    /// ```
    pub struct EnumAddValueInTransaction {
        severity: Error,
        summary: "ALTER TYPE … ADD VALUE in a transaction fails (before 12) or cannot be used until commit",
        size_sensitive: false,
    }
}

impl Rule for EnumAddValueInTransaction {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        let statements = context.statements();
        for statement in statements {
            let Some(NodeEnum::AlterEnumStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            if alter.new_val.is_empty()
                || !alter.old_val.is_empty()
                || !statement.transaction.in_transaction()
            {
                continue;
            }
            if !context.pg_version.at_least(12) {
                violations.push(
                    Violation::new(statement, format!("ALTER TYPE … ADD VALUE '{}' cannot run inside a transaction block on {}", alter.new_val, context.pg_version))
                        .help("run it outside a transaction (turn off the framework's transaction for this file)")
                        .severity(Severity::Error),
                );
                continue;
            }
            let used = context
                .after(statement)
                .iter()
                .filter(|later| same_transaction(statement, later))
                .find(|later| string_literals(&later.text).contains(&alter.new_val));
            if let Some(later) = used {
                violations.push(
                    Violation::new(
                        statement,
                        format!(
                            "enum value '{}' is added and then used on line {} in the same transaction: PostgreSQL rejects the use until the ADD VALUE commits",
                            alter.new_val, later.span.start.line
                        ),
                    )
                    .help("commit the ADD VALUE first: put the statements using it in a later migration"),
                );
            }
        }
    }
}
