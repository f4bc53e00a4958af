//! One migration file run two ways on two identical databases, plain psql on one and tidegate on the other under a
//! writer, and what each left behind: the instrument behind every safe-rewrite test.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use super::end_state::{data_digest, data_digest_columns, dump_difference, psql_ok, schema_dump};
use super::locks::{LockReport, LockSampler, PgLockMode};
use super::writes::{WriteLoad, WriteReport, WriteSpec};
use super::PsqlInput;
use crate::TestDatabase;

#[derive(Debug, Clone)]
struct CheckedTable {
    name: String,
    order_by: String,
    columns: Option<Vec<String>>,
}

/// A migration checked against plain psql. Build one with [`RewriteCheck::new`], name the tables to watch and
/// compare, optionally a writer, then [`RewriteCheck::run`] with the closure that runs tidegate.
///
/// What `run` does:
/// 1. creates database A, runs `setup_sql` then `populate_sql` on it, and `VACUUM ANALYZE`s the checked tables
///    (so their statistics are what a production table's would be: tidegate reads live sizes from them);
/// 2. copies A to B (`CREATE DATABASE … TEMPLATE A`): the two are identical, data and statistics;
/// 3. runs `migration_sql` on A through `psql -v ON_ERROR_STOP=1 -f`, sampling the checked tables' locks;
/// 4. on B starts the lock sampler and the writer (when one is given), lets the writer run for `settle`, calls the
///    closure with B's URL, lets the writer run for `settle` again, stops both, and deletes the writer's rows;
/// 5. dumps both schemas ([`schema_dump`]: the `tidegate` schema is excluded, nothing else) and digests the checked
///    tables' rows.
///
/// What legitimately differs between A and B and is not compared: the `tidegate` schema (history, journal, runs),
/// sequence positions (the writer's inserts may draw from a sequence; pg_dump --schema-only has no positions),
/// dead tuples and statistics, oids and file nodes. Columns whose values differ by nature between two runs (a
/// volatile default) are left out of the digest with [`RewriteCheck::table_columns`].
#[derive(Debug, Clone)]
pub struct RewriteCheck {
    setup_sql: String,
    populate_sql: String,
    migration_sql: String,
    tables: Vec<CheckedTable>,
    writes: Option<WriteSpec>,
    settle: Duration,
}

impl RewriteCheck {
    pub fn new(setup_sql: &str, populate_sql: &str, migration_sql: &str) -> Self {
        Self {
            setup_sql: setup_sql.to_string(),
            populate_sql: populate_sql.to_string(),
            migration_sql: migration_sql.to_string(),
            tables: Vec::new(),
            writes: None,
            settle: Duration::from_millis(300),
        }
    }

    /// A table to sample locks on (with its indexes) and to compare by all its rows in `order_by` order.
    pub fn table(mut self, name: &str, order_by: &str) -> Self {
        self.tables.push(CheckedTable {
            name: name.to_string(),
            order_by: order_by.to_string(),
            columns: None,
        });
        self
    }

    /// [`RewriteCheck::table`] compared by some columns only.
    pub fn table_columns(mut self, name: &str, order_by: &str, columns: &[&str]) -> Self {
        self.tables.push(CheckedTable {
            name: name.to_string(),
            order_by: order_by.to_string(),
            columns: Some(columns.iter().map(|column| column.to_string()).collect()),
        });
        self
    }

    /// The writer that runs on B while tidegate does (A sees none).
    pub fn writes(mut self, spec: WriteSpec) -> Self {
        self.writes = Some(spec);
        self
    }

    /// How long the writer runs before and after the closure (300 ms unless set).
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Runs the check; `apply` gets B's URL and runs tidegate against it (it may block: the sampler and the
    /// writer have threads of their own). Panics when the setup or the plain psql run fails.
    pub async fn run<T>(self, apply: impl FnOnce(&str) -> T) -> RewriteReport<T> {
        assert!(
            !self.tables.is_empty(),
            "a RewriteCheck needs at least one table to watch and compare"
        );
        let names: Vec<&str> = self
            .tables
            .iter()
            .map(|table| table.name.as_str())
            .collect();

        let psql_database = TestDatabase::create().await;
        {
            let client = psql_database.connect().await;
            for (what, sql) in [("setup", &self.setup_sql), ("populate", &self.populate_sql)] {
                client
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|error| panic!("the {what} SQL failed: {error}\n{sql}"));
            }
            for table in &names {
                client
                    .batch_execute(&format!("VACUUM ANALYZE {table}"))
                    .await
                    .unwrap_or_else(|error| panic!("VACUUM ANALYZE {table} failed: {error}"));
            }
        }
        let tidegate_database = psql_database.copy().await;

        // The same writer runs beside psql, so the report shows what the application felt in both runs.
        let sampler = LockSampler::start(psql_database.url(), &names).await;
        let psql_writer = match &self.writes {
            Some(spec) => Some(WriteLoad::start(psql_database.url(), spec.clone()).await),
            None => None,
        };
        tokio::time::sleep(self.settle).await;
        let started = std::time::Instant::now();
        let psql_output = psql_ok(psql_database.url(), PsqlInput::Sql(&self.migration_sql)).await;
        let psql_elapsed = started.elapsed();
        tokio::time::sleep(self.settle).await;
        let psql_writes = match psql_writer {
            Some(writer) => Some(writer.stop().await),
            None => None,
        };
        let psql_locks = sampler.stop().await;

        let sampler = LockSampler::start(tidegate_database.url(), &names).await;
        let writer = match &self.writes {
            Some(spec) => Some(WriteLoad::start(tidegate_database.url(), spec.clone()).await),
            None => None,
        };
        tokio::time::sleep(self.settle).await;
        let started = std::time::Instant::now();
        let apply_output = apply(tidegate_database.url());
        let apply_elapsed = started.elapsed();
        tokio::time::sleep(self.settle).await;
        let writes = match writer {
            Some(writer) => Some(writer.stop().await),
            None => None,
        };
        let tidegate_locks = sampler.stop().await;

        let tidegate_client = tidegate_database.connect().await;
        let writer_rows_deleted = match &writes {
            Some(report) => report.delete_inserted(&tidegate_client).await,
            None => 0,
        };
        let psql_client = psql_database.connect().await;
        if let Some(report) = &psql_writes {
            report.delete_inserted(&psql_client).await;
        }
        let mut psql_digests = BTreeMap::new();
        let mut tidegate_digests = BTreeMap::new();
        for table in &self.tables {
            for (client, digests) in [
                (&psql_client, &mut psql_digests),
                (&tidegate_client, &mut tidegate_digests),
            ] {
                let digest = match &table.columns {
                    None => data_digest(client, &table.name, &table.order_by).await,
                    Some(columns) => {
                        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                        data_digest_columns(client, &table.name, &columns, &table.order_by).await
                    }
                };
                digests.insert(table.name.clone(), digest);
            }
        }
        RewriteReport {
            psql: EndState {
                schema: schema_dump(psql_database.url()).await,
                digests: psql_digests,
                locks: psql_locks,
            },
            tidegate: EndState {
                schema: schema_dump(tidegate_database.url()).await,
                digests: tidegate_digests,
                locks: tidegate_locks,
            },
            psql_output,
            psql_elapsed,
            psql_writes,
            apply_output,
            apply_elapsed,
            writes,
            writer_rows_deleted,
            psql_database,
            tidegate_database,
        }
    }
}

/// What one side of a [`RewriteCheck`] left behind, and the locks it took on the way.
#[derive(Debug, Clone)]
pub struct EndState {
    /// [`schema_dump`] of the database.
    pub schema: String,
    /// Table name → [`data_digest`] (writer's rows deleted).
    pub digests: BTreeMap<String, String>,
    pub locks: LockReport,
}

/// The outcome of a [`RewriteCheck`]; the databases stay alive with it for further queries.
pub struct RewriteReport<T> {
    /// Database A, migrated by plain psql.
    pub psql: EndState,
    /// Database B, migrated by the closure.
    pub tidegate: EndState,
    pub psql_output: Output,
    /// How long psql took to run the migration.
    pub psql_elapsed: Duration,
    /// The writer's figures while psql ran (the same writer as on B).
    pub psql_writes: Option<WriteReport>,
    /// What the closure returned.
    pub apply_output: T,
    /// How long the closure took.
    pub apply_elapsed: Duration,
    /// The writer's figures on B, around the closure.
    pub writes: Option<WriteReport>,
    pub writer_rows_deleted: u64,
    pub psql_database: TestDatabase,
    pub tidegate_database: TestDatabase,
}

impl<T> RewriteReport<T> {
    /// The longest time psql's run held a lock that blocks writes (SHARE or stronger) on a checked table or index.
    pub fn psql_longest_write_block(&self) -> Duration {
        self.psql.locks.longest_hold_at_least(PgLockMode::Share)
    }

    /// The same for tidegate's run.
    pub fn tidegate_longest_write_block(&self) -> Duration {
        self.tidegate.locks.longest_hold_at_least(PgLockMode::Share)
    }

    /// The lines only one schema dump holds; empty when they are equal.
    pub fn schema_difference(&self) -> String {
        dump_difference("psql", &self.psql.schema, "tidegate", &self.tidegate.schema)
    }

    /// Panics, saying how they differ, unless both databases ended with the same schema and the same data.
    pub fn assert_same_end_state(&self) {
        let difference = self.schema_difference();
        assert!(
            difference.is_empty(),
            "the schema after tidegate differs from psql's:\n{difference}"
        );
        assert_eq!(
            self.psql.digests, self.tidegate.digests,
            "the data after tidegate (writer's rows deleted) differs from psql's"
        );
    }
}

impl<T> std::fmt::Display for RewriteReport<T> {
    /// Both lock reports and the writer's figures, for assertion messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "psql held SHARE+ for {:?}; tidegate for {:?}",
            self.psql_longest_write_block(),
            self.tidegate_longest_write_block()
        )?;
        writeln!(f, "psql run, {}", self.psql.locks)?;
        writeln!(f, "tidegate run, {}", self.tidegate.locks)?;
        if let Some(writes) = &self.psql_writes {
            writeln!(f, "writer beside psql ({:?}): {writes}", self.psql_elapsed)?;
        }
        if let Some(writes) = &self.writes {
            writeln!(
                f,
                "writer beside tidegate ({:?}): {writes} ({} rows deleted)",
                self.apply_elapsed, self.writer_rows_deleted
            )?;
        }
        Ok(())
    }
}
