//! `tidegate apply` on MySQL and MariaDB: the same history (`tidegate.migrations`, in the server's `tidegate`
//! database), checksums and lint gate as PostgreSQL's, over the MySQL statement model and the online-DDL facts.
//!
//! - [`plan`] (pure): the lint gate with the server's real flavour, version and live table sizes; each DDL a
//!   phase with `ALGORITHM=`/`LOCK=` from the facts table; a COPY of a large table refused; unbounded data
//!   changes become backfill phases.
//! - [`executor`]: runs the plan under a named lock (`GET_LOCK('tidegate:apply')`), every DDL with a short
//!   `lock_wait_timeout` and jittered retries on error 1205, the open transactions named before each attempt
//!   and after each timeout, and a resume that never runs a DDL twice nor skips one (see its docs).

pub mod executor;
pub mod plan;
mod sql;
pub mod status;

pub use executor::{apply_mysql, MyApplySummary, OpenTransaction};
pub use plan::{MyApplyPlan, MyObstacle, MyPhase, MyPlannedMigration};
