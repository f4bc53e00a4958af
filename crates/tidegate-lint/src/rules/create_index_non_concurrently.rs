use tidegate_sql::Operation;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `CREATE INDEX` (and `CREATE UNIQUE INDEX`) without `CONCURRENTLY` on a table that existed before
    /// this migration.
    ///
    /// ## Why is this bad?
    /// A plain index build takes a SHARE lock for the whole build: every INSERT, UPDATE and DELETE on the
    /// table waits until the index is complete, which is minutes to hours on a large table. Reads continue.
    ///
    /// ## Lock taken
    /// SHARE on the table (blocks writes) for the whole build; `CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE,
    /// which does not block reads or writes.
    ///
    /// ## PostgreSQL versions
    /// All. `CONCURRENTLY` cannot run inside a transaction block (see `concurrently-in-transaction`).
    ///
    /// ## Example
    /// ```sql
    /// CREATE INDEX orders_customer_id ON orders (customer_id);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE INDEX CONCURRENTLY orders_customer_id ON orders (customer_id);
    /// ```
    /// in a migration that runs outside a transaction. An index on a table created in the same migration is
    /// not flagged: the table is empty and unseen.
    pub struct CreateIndexNonConcurrently {
        severity: Error,
        summary: "CREATE INDEX without CONCURRENTLY on a pre-existing table blocks writes for the whole build",
        size_sensitive: true,
    }
}

impl Rule for CreateIndexNonConcurrently {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                == (Operation::CreateIndex {
                    concurrently: false,
                })
            {
                violations.push(
                    Violation::new(
                        statement,
                        format!("CREATE INDEX without CONCURRENTLY blocks writes to {} until the index is built", effect.table),
                    )
                    .help("use CREATE INDEX CONCURRENTLY, in a migration that runs outside a transaction")
                    .effect(effect),
                );
            }
        }
    }
}
