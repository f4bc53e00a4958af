//! tidegate-run: the planner, the executor and the backfill engine.
//!
//! The decisions are pure and take time as input: [`controller::BatchController`] sizes batches,
//! [`throttle::ThrottlePolicy`] turns health observations into go/throttle/critical, [`retry::RetryPolicy`]
//! bounds batch retries, [`pacing`] holds the rate limit and the time window. [`engine`] is the I/O edge that runs a
//! backfill against PostgreSQL through the [`dialect`] (every SQL string it sends lives there), keeping its
//! state in the `tidegate` schema ([`state`]).
//!
//! Apply's schema phase: [`schema_phase`] runs schema statements with lock_timeout, bounded retries
//! ([`retry::RetryPolicy::schema_locks`]) and a report of the sessions that held the lock.
//!
//! Adoption and overview: [`apply::baseline`] records the migrations another framework ran (from its history
//! table) as baselined; [`apply::status`] reports every migration's state, read-only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tidegate_run::engine::{run, BackfillOptions, RunTarget, StopHandle};
//! use tidegate_run::spec::BackfillSpec;
//! let config = tidegate_db::connect::ConnectionConfig::resolve(None)?;
//! let spec = BackfillSpec {
//!     predicate: Some("order_status_v2 IS NULL".into()),
//!     ..BackfillSpec::update("orders", "order_status_v2 = order_status")
//! };
//! // A batched delete runs on the same engine:
//! // BackfillSpec::delete("orders", Some("created_at < now() - interval '2 years'".into()))
//! let outcome = run(&config, RunTarget::Spec(spec), BackfillOptions::default(),
//!                   Arc::new(|event| println!("{}", event.to_json())), StopHandle::default()).await?;
//! println!("run {} ended: {:?}", outcome.run_id, outcome.end);
//! # Ok(()) }
//! ```

pub mod apply;
pub mod controller;
pub mod dialect;
pub mod engine;
pub mod events;
pub mod pacing;
pub mod retry;
pub mod risk;
pub mod schema_phase;
pub mod spec;
pub mod state;
pub mod throttle;
