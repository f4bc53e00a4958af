use std::collections::HashMap;

use tidegate_sql::{Operation, Statement, StatementKind, TableEffect};

use crate::context::{describe_lock, is_schema_change, Context, Violation, BATCH_HELP};
use crate::registry::{declare_rule, Rule, RuleDoc};
use crate::Severity;

declare_rule! {
    /// ## What it does
    /// Flags a migration that changes a pre-existing table's schema (ALTER TABLE, CREATE INDEX, constraints, …)
    /// and also changes its data (UPDATE, DELETE, MERGE, INSERT … SELECT). It is an error when the data change
    /// is not bounded to one batch of the table's key, or shares a transaction with the schema change (the
    /// framework's transaction around the whole file counts); one bounded batch (`WHERE id IN (SELECT id …
    /// ORDER BY id LIMIT 5000)`, `WHERE id BETWEEN $1 AND $2`) in a transaction of its own is reported as info:
    /// it is short, but the rest of the rows still need a backfill.
    ///
    /// ## Why is this bad?
    /// This is the incident pattern: `ALTER TABLE orders ADD COLUMN …; UPDATE orders SET …;`. When both run in
    /// one transaction, the ALTER's ACCESS EXCLUSIVE lock is held until the UPDATE has rewritten every row:
    /// every read and write of the table waits for the whole backfill (minutes to hours on a large table), and
    /// the application's connection pool fills up behind it. Even in separate transactions the release couples
    /// the schema change with a full-table data change: the deploy waits on the backfill, a slow backfill
    /// blocks the deploy, and a failure half-way leaves schema and data out of step.
    ///
    /// ## Lock taken
    /// The DDL's lock (ACCESS EXCLUSIVE for most ALTER TABLE forms) held through the DML when they share a
    /// transaction, plus a row lock on every changed row.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);
    /// UPDATE orders SET order_status_v2 = order_status;
    /// ```
    ///
    /// ## Use instead
    /// Ship the schema change alone, then backfill in batches outside the migration:
    /// ```sql
    /// -- migration: schema only
    /// ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);
    /// ```
    /// ```console
    /// $ tidegate backfill --table orders --set 'order_status_v2 = order_status' --where 'order_status_v2 IS NULL'
    /// ```
    /// `tidegate apply` splits such a migration into a schema phase and a batched data phase for you.
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`: a data change on a table the migration also alters. MySQL
    /// commits every DDL statement at once, so the locks are not held through the UPDATE, but the deploy still
    /// waits on it and a failure half-way leaves the schema changed and the data half-done.
    ///
    /// ## MySQL example
    /// ```sql mysql
    /// ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20), ALGORITHM=INSTANT;
    /// UPDATE orders SET order_status_v2 = order_status WHERE order_status_v2 IS NULL LIMIT 1000;
    /// ```
    ///
    /// ## MySQL use instead
    /// ```sql mysql
    /// ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20), ALGORITHM=INSTANT;
    /// ```
    pub struct SchemaChangeWithBackfill {
        severity: Error,
        summary: "DDL and a data change on the same pre-existing table in one migration",
        size_sensitive: true,
    }
}

/// The data change a statement makes to a table, if it is a bulk one (INSERT … VALUES is seed data, not a
/// backfill).
fn bulk_data_change(statement: &Statement) -> Option<(&TableEffect, &'static str)> {
    if statement.kind != StatementKind::Dml {
        return None;
    }
    let target = statement.effects.first()?;
    let verb = match target.operation {
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Merge => "MERGE",
        Operation::Insert
            if statement
                .effects
                .iter()
                .any(|effect| effect.operation == Operation::Select) =>
        {
            "INSERT … SELECT"
        }
        _ => return None,
    };
    target.origin.is_pre_existing().then_some((target, verb))
}

impl Rule for SchemaChangeWithBackfill {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::schema_change_with_backfill(context, violations);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        let statements = context.statements();
        // Per table: the first schema change in each transaction (transactions never span windows); the first
        // of the whole file comes from the file's facts. Built once so the rule stays linear on files with
        // thousands of statements.
        let mut first_in_transaction: HashMap<((String, String), u32), (usize, usize)> =
            HashMap::new();
        for statement in statements {
            for (position, effect) in statement.effects.iter().enumerate() {
                if !effect.origin.is_pre_existing() || !is_schema_change(effect) {
                    continue;
                }
                if let Some(transaction) = statement.transaction.id() {
                    first_in_transaction
                        .entry((effect.table.key(), transaction))
                        .or_insert((statement.index, position));
                }
            }
        }
        for statement in statements {
            let Some((target, verb)) = bulk_data_change(statement) else {
                continue;
            };
            let key = target.table.key();
            let in_same_transaction = statement
                .transaction
                .id()
                .and_then(|transaction| first_in_transaction.get(&(key.clone(), transaction)))
                .filter(|(index, _)| *index != statement.index)
                .and_then(|&(index, position)| Some((context.statement(index)?, position)));
            let (ddl_index, ddl_line, ddl_effect) = match in_same_transaction {
                Some((ddl, position)) => {
                    (ddl.index, ddl.span.start.line, ddl.effects.get(position))
                }
                None => match context
                    .facts
                    .first_schema_change(&target.table)
                    .filter(|(index, _, _)| *index != statement.index)
                {
                    Some((index, _, line)) => (index, line, None),
                    None => continue,
                },
            };
            let table = &target.table;
            // Sharing a transaction with the schema change (the only case its lock is needed).
            let shared = ddl_effect;
            let lock = shared
                .map(|effect| effect.lock.to_string())
                .unwrap_or_default();
            let shared_lock = shared.map(describe_lock);
            let shared = shared.is_some();
            let one_batch = statement.is_one_batch();
            let message = if shared && ddl_index < statement.index {
                format!(
                    "{verb} on {table} runs in the same transaction as the schema change on line {ddl_line}: its {lock} lock is held until the {verb} has finished with every row it touches"
                )
            } else if shared {
                format!(
                    "{verb} on {table} runs in the same transaction as the later schema change on line {ddl_line}: the rows it changed stay locked while the schema change waits for its {lock} lock, and both commit or neither"
                )
            } else if one_batch {
                format!(
                    "{verb} on {table} changes one bounded batch, in a transaction apart from the schema change on line {ddl_line}: short, but the rest of the rows still need a backfill"
                )
            } else {
                format!(
                    "{verb} on {table} is in the same migration as a schema change to it (line {ddl_line}): the release waits on a full-table data change, and a failure leaves schema and data out of step"
                )
            };
            let help = if one_batch && !shared {
                "run the remaining batches with `tidegate backfill` (or a job), not as more statements in migrations"
                    .to_string()
            } else {
                format!("move the data change out of the migration: ship the schema change alone, then {BATCH_HELP}")
            };
            let mut violation = Violation::new(statement, message).help(help).table(table);
            if one_batch && !shared {
                violation = violation.severity(Severity::Info);
            }
            violation.lock = Some(if shared && ddl_index < statement.index {
                shared_lock.unwrap_or_default().replace(
                    ", briefly once granted (but queued behind running transactions)",
                    ", held through the data change",
                )
            } else if one_batch && !shared {
                format!("ROW EXCLUSIVE on {table} plus a lock on each row of the batch until it commits")
            } else {
                format!("ROW EXCLUSIVE on {table} plus a lock on every changed row until commit")
            });
            violations.push(violation);
        }
    }
}
