//! # tidegate-plan: `tidegate plan`, a read-only risk assessment
//!
//! How long each pending statement will hold which lock on how big and how busy a
//! table, and whether that is safe, needs batching, needs a window or is dangerous.
//!
//! - [`cost`] — **pure**: measured per-operation rates (`tidegate plan --calibrate`) and the estimate they give
//!   for a table of another size on another server.
//! - [`model`] — **pure**: (statement facts, table facts, [`model::Policy`]) → estimate, verdict, reasons,
//!   actions. Documents the estimate and the verdict rules.
//! - [`report`] — **pure**: joins analysed migrations with table facts through the model into a
//!   [`report::PlanReport`], and renders it as text, JSON or markdown.
//! - [`pipeline`] — what `tidegate plan` runs: [`pipeline::load`] reads the migration files (no database),
//!   [`pipeline::assess`] reads what is applied, analyses the pending migrations, probes their tables and builds
//!   the report, plus the table sizes `tidegate lint --stats` reads (the file format is tidegate-lint's
//!   [`tidegate_lint::TableStats`], reader and writer, since lint sits below plan).
//! - [`probe`] — the I/O edge: reads table sizes, a timed bounded read, write counters sampled twice, lock
//!   holders and long transactions, inside `READ ONLY` transactions.
//!
//! **Architecture invariant:** `model` and `report` do no I/O and read no clock; only `probe` talks to the
//! database, and it never writes.
//!
//! ```
//! use tidegate_plan::model::{assess, EffectFacts, Policy, TableFacts, Verdict};
//! use tidegate_sql::{lock_facts, AlterSubcommand, Operation, PgVersion, TableSize};
//!
//! let operation = Operation::AlterTable(AlterSubcommand::AlterColumnType { binary_coercible: false });
//! let facts = lock_facts(operation, PgVersion(17));
//! let effect = EffectFacts {
//!     operation, lock: facts.lock, rewrite: facts.rewrite, scan: facts.scan,
//!     created_in_migration: false, rows: None, held_through_seconds: 0.0,
//! };
//! let orders = TableFacts {
//!     exists: true,
//!     size: TableSize::estimated(48_000_000).with_heap_bytes(20 << 30).with_total_bytes(30 << 30),
//!     scan_bytes_per_second: Some(200.0 * 1024.0 * 1024.0), writes_per_second: Some(350.0),
//!     ..TableFacts::missing()
//! };
//! let assessment = assess(&effect, &orders, &Policy::default());
//! assert_eq!(assessment.verdict, Verdict::Dangerous);
//! assert!(assessment.estimate_seconds > 400.0); // 30 GiB × 3 ÷ 200 MiB/s ≈ 7.7 min
//! ```

pub mod cost;
pub mod model;
pub mod pipeline;
pub mod probe;
pub mod report;
