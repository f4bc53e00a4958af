//! The I/O edge of `plan`: reads the facts the model needs from a live database, read-only.
//!
//! Every query runs inside a `READ ONLY` transaction with a `lock_timeout` and a `statement_timeout`
//! ([`tidegate_db::table_stats::begin_read_only`]), so PostgreSQL itself refuses any write and a plan never waits
//! long for a lock. Write rates come from two reads of `pg_stat_user_tables` in separate transactions, `sample`
//! apart (statistics are read once per transaction).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidegate_db::connect::DbError;
use tidegate_db::driver::Session;
use tidegate_db::table_stats::{self, LockHolder, ScanSkipped};
use tidegate_sql::TableSize;

use crate::model::TableFacts;
use crate::report::{display_key, TableKey};

/// How much the probe may read and wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeOptions {
    /// Time between the two write-counter reads; zero skips the write rate.
    pub sample: Duration,
    /// Pages the timed read covers at most (12,800 pages = 100 MiB at 8 KiB); a table this small or smaller is
    /// counted exactly.
    pub read_pages: u64,
    /// Transactions open longer than this are reported.
    pub long_transaction: Duration,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            sample: Duration::from_secs(3),
            read_pages: 12_800,
            long_transaction: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The database answered with an error; its SQLSTATE is kept.
    #[error("{0}")]
    Database(#[from] tidegate_db::connect::DbError),
    #[error("the server did not open a read-only transaction (transaction_read_only is off); refusing to continue")]
    NotReadOnly,
}

fn database(what: impl Into<String>) -> impl FnOnce(DbError) -> ProbeError {
    let what = what.into();
    move |error| ProbeError::Database(error.context(what))
}

/// What the plan learns before analysing migrations.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFacts {
    pub major_version: u32,
    /// Versions recorded in `tidegate.migrations`; `None` when that table does not exist.
    pub applied: Option<Vec<String>>,
}

async fn read_only(client: &dyn Session, options: &ProbeOptions) -> Result<(), ProbeError> {
    table_stats::begin_read_only(client, options.lock_timeout, options.statement_timeout)
        .await
        .map_err(database("opening a read-only transaction"))?;
    if !table_stats::transaction_is_read_only(client)
        .await
        .map_err(database("checking transaction_read_only"))?
    {
        return Err(ProbeError::NotReadOnly);
    }
    Ok(())
}

async fn finish(client: &dyn Session) -> Result<(), ProbeError> {
    table_stats::end_read_only(client)
        .await
        .map_err(database("ending the read-only transaction"))
}

/// The server version and the applied migrations.
pub async fn server_facts(
    client: &dyn Session,
    options: &ProbeOptions,
) -> Result<ServerFacts, ProbeError> {
    read_only(client, options).await?;
    let major_version = table_stats::server_major_version(client)
        .await
        .map_err(database("reading server_version_num"))?;
    let applied = table_stats::applied_versions(client)
        .await
        .map_err(database("reading tidegate.migrations"))?;
    finish(client).await?;
    Ok(ServerFacts {
        major_version,
        applied,
    })
}

/// The catalog's size of every table of the database (for `--write-stats`).
pub async fn catalog_sizes(
    client: &dyn Session,
    options: &ProbeOptions,
) -> Result<Vec<table_stats::CatalogTableSize>, ProbeError> {
    read_only(client, options).await?;
    let sizes = table_stats::all_table_sizes(client)
        .await
        .map_err(database("reading table sizes from pg_class"))?;
    finish(client).await?;
    Ok(sizes)
}

/// The facts of each table, and notes about what could not be measured.
pub async fn probe_tables(
    client: &dyn Session,
    keys: &[TableKey],
    server_major: u32,
    options: &ProbeOptions,
) -> Result<(BTreeMap<TableKey, TableFacts>, Vec<String>), ProbeError> {
    let mut notes = Vec::new();
    let mut facts = BTreeMap::new();
    let mut oids = Vec::new();
    let mut sizes = Vec::new();

    read_only(client, options).await?;
    for key in keys {
        let size = table_stats::table_size(client, &key.0, &key.1)
            .await
            .map_err(database(format!(
                "reading the size of {}",
                display_key(key)
            )))?;
        if let Some(size) = size {
            oids.push(size.oid);
            sizes.push((key.clone(), size));
        } else {
            facts.insert(key.clone(), TableFacts::missing());
        }
    }
    let first_counters = table_stats::write_counters(client, &oids)
        .await
        .map_err(database("reading pg_stat_user_tables"))?;
    let sample_started = Instant::now();
    finish(client).await?;

    read_only(client, options).await?;
    let long_transactions: Vec<LockHolder> =
        table_stats::long_transactions(client, options.long_transaction)
            .await
            .map_err(database("reading pg_stat_activity"))?
            .into_iter()
            .collect();
    finish(client).await?;
    // One short transaction per table: the ACCESS SHARE lock of the timed read is released before the next
    // table is read, so a plan never holds a lock for long.
    for (key, size) in &sizes {
        let name = display_key(key);
        read_only(client, options).await?;
        let read = if size.from_catalog {
            // The size query already waited out lock_timeout on this table: the read would too.
            Err(ScanSkipped::Locked)
        } else {
            table_stats::timed_bounded_read(client, size, options.read_pages, server_major)
                .await
                .map_err(database(format!("reading {name}")))?
        };
        let (rows, rows_exact, rate) = match read {
            Ok(sample) => {
                let rate = (sample.pages > 0)
                    .then(|| (sample.pages * size.block_size) as f64 / sample.seconds.max(1e-6));
                if sample.whole_table {
                    (sample.rows, true, rate)
                } else {
                    // reltuples when the table was analysed, else the density of the pages read.
                    let extrapolated = (sample.rows as f64 * size.heap_pages() as f64
                        / sample.pages.max(1) as f64) as u64;
                    let rows = if size.analysed {
                        size.size.rows
                    } else {
                        extrapolated
                    };
                    (rows, false, rate)
                }
            }
            Err(skipped) => {
                notes.push(match skipped {
                    ScanSkipped::Locked => format!(
                        "{name}: not read (another session holds or waits for a conflicting lock); sizes from pg_class.relpages, rows from reltuples, duration at the assumed read rate"
                    ),
                    ScanSkipped::TimedOut => format!(
                        "{name}: the timed read exceeded statement_timeout; rows from reltuples, duration at the assumed read rate"
                    ),
                    ScanSkipped::NotATable => format!(
                        "{name}: partitioned table or not a table; rows from reltuples of its partitions, duration at the assumed read rate"
                    ),
                    ScanSkipped::Failed(reason) => format!("{name}: not read ({reason})"),
                });
                (size.size.rows, false, None)
            }
        };
        let indexes = table_stats::index_count(client, size.oid)
            .await
            .map_err(database(format!("counting the indexes of {name}")))?;
        let lock_holders = table_stats::lock_holders(client, size.oid)
            .await
            .map_err(database(format!("reading pg_locks for {name}")))?
            .into_iter()
            .collect();
        finish(client).await?;
        facts.insert(
            key.clone(),
            TableFacts {
                exists: true,
                size: TableSize {
                    rows,
                    rows_exact,
                    ..size.size
                },
                scan_bytes_per_second: rate,
                writes_per_second: None,
                indexes: Some(indexes),
                lock_holders,
                long_transactions: long_transactions.clone(),
            },
        );
    }

    if !oids.is_empty() && !options.sample.is_zero() {
        if let Some(rest) = options.sample.checked_sub(sample_started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        read_only(client, options).await?;
        let second_counters = table_stats::write_counters(client, &oids)
            .await
            .map_err(database("reading pg_stat_user_tables"))?;
        let elapsed = sample_started.elapsed().as_secs_f64().max(1e-3);
        finish(client).await?;
        for (key, size) in &sizes {
            let before = first_counters.iter().find(|(oid, _)| *oid == size.oid);
            let after = second_counters.iter().find(|(oid, _)| *oid == size.oid);
            if let (Some((_, before)), Some((_, after)), Some(table)) =
                (before, after, facts.get_mut(key))
            {
                table.writes_per_second = Some(after.saturating_sub(*before) as f64 / elapsed);
            }
        }
    }
    Ok((facts, notes))
}
