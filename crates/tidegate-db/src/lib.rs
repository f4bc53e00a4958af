//! tidegate-db: everything that talks to a PostgreSQL server or runs one.
//!
//! - [`blockers`]: who holds the lock a statement waits for (`pg_blocking_pids`, sampled while it waits).
//! - [`connect`]: resolves `--db`, `DATABASE_URL` and libpq's variables like psql and connects;
//!   [`connect::Redacted`] is the only way a target is displayed, so passwords never reach output or logs.
//! - [`driver`]: the database seam — [`driver::Session`] (execute, query rows read by column name, prepare,
//!   cancel), [`driver::Driver`] (open sessions), [`driver::Value`] and [`driver::ErrorClass`] — implemented for
//!   PostgreSQL on tokio-postgres. The backfill engine, its state schema, apply, baseline, status and plan talk
//!   to a `&dyn Session` only; this crate is the only one of tidegate's libraries that names tokio-postgres.
//! - [`target`]: [`target::Target`], the family decided once from the URL's scheme (`mysql://`/`mariadb://` or
//!   PostgreSQL's), for the commands that speak both.
//! - [`table_stats`]: PostgreSQL's catalog and statistics reads (sizes as [`tidegate_sql::TableSize`], write
//!   counters, a timed bounded read, lock holders, names in use), over a `&dyn Session` inside a read-only
//!   transaction the caller opened.
//! - [`observe`]: what a rehearsal watches on its scratch server (relation locks with their sessions, the WAL
//!   position, table and index sizes) and its key-lookup workload's SQL.
//! - [`stat_statements`]: the source's `pg_stat_statements` (its most-called statements and the interval they
//!   cover), read for a rehearsal's replay.
//! - [`scratch`]: throwaway clusters started from the machine's own PostgreSQL binaries — the embedded default
//!   behind `tidegate scratch`, `tidegate demo` and the integration tests.
//!
//! ```no_run
//! use tidegate_db::scratch::{self, StartOptions};
//!
//! let server = scratch::start(&StartOptions::new("/tmp/my-scratch"))?;
//! println!("{}", server.url()); // postgresql://postgres@127.0.0.1:PORT/postgres
//! scratch::stop(&server.dir)?;
//! # Ok::<(), tidegate_db::scratch::ScratchError>(())
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), tidegate_db::connect::ConnectError> {
//! let config = tidegate_db::connect::ConnectionConfig::resolve(Some("postgresql://app@localhost/shop"))?;
//! println!("connecting to {}", config.redacted());
//! let client = config.connect().await?;
//! # drop(client); Ok(()) }
//! ```
//!
//! The seam, as the engine and apply use it:
//!
//! ```no_run
//! use tidegate_db::driver::{Driver, SessionExt};
//! # async fn demo(config: tidegate_db::connect::ConnectionConfig) -> Result<(), tidegate_db::connect::DbError> {
//! let session = config.open().await?; // Box<dyn Session>
//! let row = session.query_one("SELECT 41 + $1::int AS answer", &[1i64.into()]).await?;
//! assert_eq!(row.get::<i64>("answer")?, 42);
//! # Ok(()) }
//! ```

pub mod blockers;
pub mod column_stats;
pub mod connect;
pub mod driver;
pub mod mysql;
pub mod observe;
pub mod scratch;
pub mod scratch_mariadb;
pub mod stat_statements;
pub mod table_schema;
pub mod table_stats;
pub mod target;
