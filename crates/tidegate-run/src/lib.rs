//! tidegate-run: the planner, the executor and the backfill engine.
//!
//! - [`lock_retry`]: the pure policy deciding when a schema change that gave up on its lock tries again.
//! - [`schema_phase`]: runs schema statements with lock_timeout, retries and a blocker report.

pub mod lock_retry;
pub mod schema_phase;
