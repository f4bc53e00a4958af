//! Instruments for tests that prove how a migration behaves on a live table, not only what it ends in.
//!
//! - [`LockSampler`]: which locks were held and waited for on some tables and their indexes, and for how long.
//! - [`WriteLoad`]: an application's steady single-row writes on a table, with their latencies and errors.
//! - [`schema_dump`], [`data_digest`]: a database's end state in a form two databases can be compared by.
//! - [`psql_file`]: a migration run the plain way, as a team without tidegate runs it.
//! - [`RewriteCheck`]: all of these at once: one migration run by plain psql on database A and by tidegate on an
//!   identical copy B under a writer, reporting both end states and both runs' longest write-blocking lock.
//!
//! ```no_run
//! # async fn example() {
//! use tidegate_testkit::{RewriteCheck, WriteSpec};
//! let report = RewriteCheck::new(
//!     "CREATE TABLE t (id bigint NOT NULL, a int NOT NULL)",
//!     "INSERT INTO t SELECT g, g % 1000 FROM generate_series(1, 3000000) g; ALTER TABLE t ADD PRIMARY KEY (id)",
//!     "CREATE INDEX ON t (a);",
//! )
//! .table("t", "id")
//! .writes(WriteSpec::new("t", "id").inserting("INSERT INTO t (id, a) VALUES ($1, 1)", 10_000_000))
//! .run(|url| std::process::Command::new("tidegate").args(["apply", "migrations", "--db", url]).output())
//! .await;
//! report.assert_same_end_state();
//! assert!(report.psql_longest_write_block() > std::time::Duration::from_secs(1), "{report}");
//! assert!(report.tidegate_longest_write_block() < std::time::Duration::from_millis(300), "{report}");
//! # }
//! ```

mod end_state;
mod locks;
mod rewrite_check;
mod writes;

pub use end_state::{
    client_tool, data_digest, data_digest_columns, dump_difference, normalise_dump, psql_file,
    psql_ok, schema_dump, PsqlInput, TIDEGATE_SCHEMA,
};
pub use locks::{
    intervals_by, LockInterval, LockObservation, LockReport, LockSample, LockSampler, LockSummary,
    PgLockMode,
};
pub use rewrite_check::{EndState, RewriteCheck, RewriteReport};
pub use writes::{WriteLoad, WriteReport, WriteSpec, CLIENT_TIMEOUT, CONNECTION_ERROR};
