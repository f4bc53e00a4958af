//! `tidegate report`: the incident-style timeline of a backfill run or of a migration's apply, drawn from the
//! journal alone (the `tidegate` schema in the target database), so it can be written from any machine after
//! the fact: when it started, each phase, each throttle with its signal, value, threshold and duration, each
//! pause and who asked, retries and errors, the end; and its figures (rows, rows/s, batch time p50/p99, time
//! throttled, WAL when known). Rendered as markdown (a postmortem, a release ticket), JSON (stable, typed:
//! [`model::Report`]) or a self-contained HTML page with a chart.
//!
//! - [`build`] is pure: journal rows in ([`build::ReportInput`]), a [`model::Report`] out.
//! - [`render`] is pure: a report in, text out.
//! - [`load`] is the I/O edge: it reads the journal in one read-only transaction.
//!
//! ```no_run
//! # async fn demo(session: &dyn tidegate_db::driver::Session) -> Result<(), tidegate_report::load::LoadError> {
//! use tidegate_report::{build, load, render};
//! let target = load::Target::parse("run:7").expect("a run id");
//! let input = load::load(session, &target, "the database").await?;
//! let report = build::build(&input);
//! println!("{}", render::markdown(&report));
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: no SQL here; the journal is read through `tidegate_backfill::state`, whose
//! statements live in the dialect.

pub mod build;
pub mod load;
pub mod model;
pub mod render;
