//! tidegate-db: everything that talks to a PostgreSQL server or runs one.
//!
//! - [`blockers`]: who holds the lock a statement waits for (`pg_blocking_pids`, sampled while it waits).
//! - [`connect`]: resolves `--db`, `DATABASE_URL` and libpq's variables like psql and connects;
//!   [`connect::Redacted`] is the only way a target is displayed, so passwords never reach output or logs.
//! - [`driver`]: the database seam — [`driver::Session`] (execute, query rows read by column name, prepare,
//!   cancel), [`driver::Driver`] (open sessions), [`driver::Value`] and [`driver::ErrorClass`] — implemented for
//!   PostgreSQL on tokio-postgres; the backfill engine and the state schema use only this.
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

pub mod blockers;
pub mod connect;
pub mod driver;
pub mod scratch;
pub mod table_stats;
