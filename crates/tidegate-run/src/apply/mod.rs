//! `tidegate apply`: runs pending migrations so that a busy database never notices.
//!
//! - [`phases`] (pure) splits each migration into schema phases and backfill phases.

pub mod phases;
