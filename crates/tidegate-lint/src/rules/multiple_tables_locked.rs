use std::collections::HashMap;

use tidegate_sql::{Operation, TableName};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags a transaction (explicit, or the framework's around the file) that takes locks blocking application
    /// traffic (SHARE or stronger) on more than one pre-existing table. The lock a foreign key takes on the
    /// table it references is not counted: it cannot be split off.
    ///
    /// ## Why is this bad?
    /// Locks are held until the transaction ends, so the first table stays blocked while the second lock is
    /// waited for and taken: the outage on each table lasts as long as all the statements together. Two
    /// migrations or application transactions taking the same tables in a different order deadlock.
    ///
    /// ## Lock taken
    /// The strong locks on each table, held together until commit.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// BEGIN;
    /// ALTER TABLE orders ADD COLUMN note text;
    /// ALTER TABLE customers ADD COLUMN note text;
    /// COMMIT;
    /// ```
    ///
    /// ## Use instead
    /// One table per transaction (one migration each, or separate transactions):
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN note text;
    /// -- next migration
    /// ALTER TABLE customers ADD COLUMN note text;
    /// ```
    pub struct MultipleTablesLocked {
        severity: Warning,
        summary: "One transaction takes blocking locks on several pre-existing tables",
        size_sensitive: false,
    }
}

impl Rule for MultipleTablesLocked {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        // transaction id → (first table locked, line, already reported)
        let mut first_locked: HashMap<u32, (TableName, usize, bool)> = HashMap::new();
        for statement in context.statements() {
            let Some(transaction) = statement.transaction.id() else {
                continue;
            };
            for effect in &statement.effects {
                // A foreign key locks the table it references by nature, when added and when dropped; it
                // cannot be split off.
                let inherent = matches!(
                    effect.operation,
                    Operation::ForeignKeyReferenced { .. } | Operation::ForeignKeyDropped
                );
                if inherent || !effect.origin.is_pre_existing() || !effect.lock.blocks_writes() {
                    continue;
                }
                match first_locked.get_mut(&transaction) {
                    None => {
                        first_locked.insert(
                            transaction,
                            (effect.table.clone(), statement.span.start.line, false),
                        );
                    }
                    Some((first, line, reported))
                        if !*reported && first.key() != effect.table.key() =>
                    {
                        *reported = true;
                        violations.push(
                            Violation::new(
                                statement,
                                format!(
                                    "this transaction already holds a blocking lock on {first} (line {line}) and now locks {}: both stay blocked until commit",
                                    effect.table
                                ),
                            )
                            .help("change one table per transaction: split the migration, or commit between the tables")
                            .effect(effect)
                    .whole_statement(),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
    }
}
