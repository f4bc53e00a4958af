//! The pending migrations run on the copy through `tidegate apply` — the same phases, rewrites, backfills and
//! throttle production gets — under a foreground workload, and measured phase by phase.
//!
//! The I/O is [`run_measured`]: the copy's history is set to the source's (`tidegate baseline --to` the last
//! version the source applied), an [`Observer`] samples locks and a key-lookup [`KeyWorkload`] runs, and apply's
//! event sink takes a mark (WAL position, table and index sizes) at the start and at the end of every phase,
//! blocking apply for the few milliseconds that takes, so a mark is exactly at its phase's boundary. Turning the
//! marks, samples and latencies into figures is pure ([`measure_phases`]).
//!
//! **What a phase's figures mean.** `measured_seconds` runs from the mark before its first statement to the mark
//! after it committed (apply's own bookkeeping of the phase included). `measured_wal_bytes` is the WAL written
//! meanwhile less what the foreground workload writes in that time (its rate measured before the migration
//! started); `raw_wal_bytes` is the difference of positions. Sizes are `pg_total_relation_size` and
//! `pg_indexes_size` of every copied table, before and after. Locks are sampled every
//! [`Observer::DEFAULT_PERIOD`] (see [`crate::locks`] for what a stretch means); a phase shorter than a period may
//! show none. Foreground figures are the workload's whole seconds that overlap the phase.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tidegate_apply::executor::ApplySink;
use tidegate_apply::phases::PhaseClass;
use tidegate_apply::{apply, ApplyEvent, ApplyOptions, ApplyPlan};
use tidegate_db::connect::ConnectionConfig;
use tidegate_db::driver::Session;
use tidegate_db::observe::{self, RelationSize};

use crate::locks::{self, LockSample, LockSummary};
use crate::measure::{LatencyRecorder, LatencySummary};
use crate::observer::{Mark, Observer};
use crate::replay::ReplayPlan;
use crate::workload::{Param, Request, RequestSource, StatementCount, Workload, WorkloadConfig};

/// The foreground traffic during the measured run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkloadChoice {
    /// No traffic.
    None,
    /// The source's own statements when its pg_stat_statements has them ([`MeasureOptions::replay`]), else key
    /// lookups and updates on every copied table with a single integer key; at `rate` requests per second.
    Auto { rate: f64 },
}

impl WorkloadChoice {
    /// 50 requests per second: modest, so the workload measures what the migration does to an application and
    /// not what a saturated 2-core scratch server does to itself.
    pub const DEFAULT_RATE: f64 = 50.0;
}

/// One table of the key-lookup workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyTable {
    pub table: String,
    pub key: String,
    pub low: i64,
    pub high: i64,
    #[serde(skip)]
    lookup: String,
    #[serde(skip)]
    update: String,
}

/// Key lookups (four in five requests) and updates (one in five) spread evenly over tables and, within a table,
/// over its key range as the copy holds it: each request draws a key in `[low, high]` and touches the first row
/// at or above it.
#[derive(Debug, Clone)]
pub struct KeyWorkload {
    pub tables: Vec<KeyTable>,
}

impl KeyWorkload {
    /// Share of requests that are updates.
    pub const UPDATE_SHARE: f64 = 0.2;
}

impl RequestSource for KeyWorkload {
    fn statements(&self) -> Vec<String> {
        self.tables
            .iter()
            .flat_map(|table| [table.lookup.clone(), table.update.clone()])
            .collect()
    }

    fn next_request(&self, rng: &mut fastrand::Rng) -> Request {
        let index = rng.usize(..self.tables.len().max(1));
        let table = &self.tables[index.min(self.tables.len().saturating_sub(1))];
        let update = rng.f64() < Self::UPDATE_SHARE;
        let key: Param = Box::new(rng.i64(table.low..=table.high));
        Request {
            statement: index * 2 + usize::from(update),
            params: vec![key],
        }
    }
}

/// The integer types a key-lookup workload can draw keys for.
const INTEGER_KEYS: [&str; 3] = ["int2", "int4", "int8"];

/// The key-lookup workload for `tables` (the copy's), with what it left out and why.
pub async fn key_workload(
    client: &dyn Session,
    tables: &[tidegate_db::table_schema::TableSchema],
) -> Result<(KeyWorkload, Vec<String>), tidegate_db::connect::DbError> {
    let mut chosen = Vec::new();
    let mut notes = Vec::new();
    for table in tables {
        let key = table
            .constraints
            .iter()
            .find(|c| {
                matches!(
                    c.kind,
                    tidegate_db::table_schema::ConstraintKind::PrimaryKey
                )
            })
            .filter(|pk| pk.columns.len() == 1)
            .and_then(|pk| table.column(&pk.columns[0]))
            .filter(|column| INTEGER_KEYS.contains(&column.base_type.as_str()));
        let Some(key) = key else {
            notes.push(format!(
                "{}: no single-column integer primary key; the workload leaves it alone",
                table.qualified
            ));
            continue;
        };
        match observe::key_range(client, &table.qualified, &key.quoted_name).await? {
            Some((low, high)) => {
                let sql = observe::key_workload_sql(&table.qualified, &key.quoted_name);
                chosen.push(KeyTable {
                    table: table.qualified.clone(),
                    key: key.name.clone(),
                    low,
                    high,
                    lookup: sql.lookup,
                    update: sql.update,
                });
            }
            None => notes.push(format!(
                "{}: empty in the copy; the workload leaves it alone",
                table.qualified
            )),
        }
    }
    Ok((KeyWorkload { tables: chosen }, notes))
}

/// A phase boundary as apply's sink saw it.
#[derive(Debug, Clone)]
pub struct Boundary {
    pub version: String,
    pub phase: usize,
    pub class: Option<PhaseClass>,
    pub start: bool,
    /// Set when the phase failed (at its end boundary).
    pub error: Option<String>,
    pub mark: Result<Mark, String>,
}

/// One table's size before and after a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableGrowth {
    pub table: String,
    pub total_bytes_before: i64,
    pub total_bytes_after: i64,
    pub total_growth_bytes: i64,
    pub index_bytes_before: i64,
    pub index_bytes_after: i64,
    pub index_growth_bytes: i64,
}

/// The figures of one phase: the unit apply runs (a schema phase may hold several statements; `sql` is them
/// all, in order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseMeasurement {
    pub migration: String,
    pub phase: usize,
    pub class: Option<&'static str>,
    pub sql: String,
    pub measured_seconds: f64,
    pub measured_wal_bytes: u64,
    pub raw_wal_bytes: u64,
    pub longest_blocking_lock_ms: f64,
    /// The tables whose size changed.
    pub growth: Vec<TableGrowth>,
    pub locks: LockSummary,
    /// Foreground latency and errors in the seconds the phase ran; `None` without a workload.
    pub foreground: Option<LatencySummary>,
    /// The phase's error, when it failed.
    pub error: Option<String>,
    /// Its figures at the source's size, when it was measured at two scales or more.
    #[serde(flatten)]
    pub extrapolation: Option<crate::extrapolate::StatementExtrapolation>,
}

/// What the measured run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasuredRun {
    pub workload: WorkloadChoice,
    /// The tables the key-lookup workload ran against (empty when it replayed the source's statements).
    pub workload_tables: Vec<KeyTable>,
    /// The source's statements the workload replayed, each with its requests on the copy; empty for key lookups.
    pub replayed: Vec<ReplayedCount>,
    /// The workload's WAL rate before the migration started, subtracted from every phase's WAL.
    pub foreground_wal_bytes_per_second: f64,
    /// Foreground figures before the migration started; `None` without a workload.
    pub foreground_before: Option<LatencySummary>,
    /// Per phase of apply, in the order they ran.
    pub statements: Vec<PhaseMeasurement>,
    /// Versions apply applied on the copy.
    pub applied: Vec<String>,
    /// Apply's error on the copy, when it refused or failed: what production would see.
    pub apply_error: Option<String>,
    pub notes: Vec<String>,
}

/// One replayed statement's requests on the copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedCount {
    pub sql: String,
    pub source_calls: u64,
    /// Requests that ran to completion on the copy, and that failed.
    pub ran: u64,
    pub failed: u64,
}

/// Names the tables of the marks' `sizes`, in the same order.
#[derive(Debug, Clone)]
pub struct WatchedTables {
    pub oids: Vec<u32>,
    pub names: Vec<String>,
}

fn growth(names: &[String], before: &[RelationSize], after: &[RelationSize]) -> Vec<TableGrowth> {
    names
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| b.total_bytes != a.total_bytes || b.index_bytes != a.index_bytes)
        .map(|(name, (b, a))| TableGrowth {
            table: name.clone(),
            total_bytes_before: b.total_bytes,
            total_bytes_after: a.total_bytes,
            total_growth_bytes: a.total_bytes - b.total_bytes,
            index_bytes_before: b.index_bytes,
            index_bytes_after: a.index_bytes,
            index_growth_bytes: a.index_bytes - b.index_bytes,
        })
        .collect()
}

/// Everything [`measure_phases`] needs, gathered by the run.
pub struct RunRecord<'a> {
    pub boundaries: &'a [Boundary],
    /// The dry-run plans, for each phase's statements.
    pub plans: &'a [ApplyPlan],
    pub samples: &'a [LockSample],
    pub period: Duration,
    pub tables: &'a WatchedTables,
    /// The workload's latencies, and the observer's time at which the workload's clock started.
    pub foreground: Option<(&'a LatencyRecorder, Duration)>,
    pub foreground_wal_bytes_per_second: f64,
}

/// The statements of a phase as the plan holds them.
fn phase_sql(plans: &[ApplyPlan], version: &str, phase: usize) -> String {
    plans
        .iter()
        .flat_map(|plan| &plan.pending)
        .find(|m| m.version == version)
        .and_then(|migration| migration.plan.phases.get(phase.wrapping_sub(1)))
        .map(|phase| {
            phase
                .steps
                .iter()
                .map(|step| step.sql.trim().trim_end_matches(';').to_string())
                .collect::<Vec<_>>()
                .join(";\n")
        })
        .unwrap_or_default()
}

/// Pairs each phase's start and end boundaries and turns them into figures. Pure.
pub fn measure_phases(record: &RunRecord<'_>) -> Vec<PhaseMeasurement> {
    let mut phases = Vec::new();
    let mut open: Option<&Boundary> = None;
    for boundary in record.boundaries {
        if boundary.start {
            open = Some(boundary);
            continue;
        }
        let Some(start) = open.take() else { continue };
        let (Ok(begin), Ok(end)) = (&start.mark, &boundary.mark) else {
            continue;
        };
        let seconds = end.at.saturating_sub(begin.at).as_secs_f64();
        let raw_wal = end.wal_position.saturating_sub(begin.wal_position);
        let foreground_wal = (record.foreground_wal_bytes_per_second * seconds).round() as u64;
        let samples = locks::samples_between(record.samples, begin.at, end.at);
        let lock_summary = locks::summarize(samples, record.period);
        let foreground = record.foreground.map(|(recorder, zero)| {
            let first = begin.at.saturating_sub(zero).as_secs();
            let last = end.at.saturating_sub(zero).as_secs();
            recorder.summary_of_seconds(first..last + 1)
        });
        phases.push(PhaseMeasurement {
            migration: start.version.clone(),
            phase: start.phase,
            class: start.class.map(PhaseClass::as_str),
            sql: phase_sql(record.plans, &start.version, start.phase),
            measured_seconds: seconds,
            measured_wal_bytes: raw_wal.saturating_sub(foreground_wal),
            raw_wal_bytes: raw_wal,
            longest_blocking_lock_ms: lock_summary.longest_blocking_ms(),
            growth: growth(&record.tables.names, &begin.sizes, &end.sizes),
            locks: lock_summary,
            foreground,
            error: boundary.error.clone(),
            extrapolation: None,
        });
    }
    phases
}

/// How to run the measured migration.
#[derive(Debug, Clone)]
pub struct MeasureOptions {
    pub workload: WorkloadChoice,
    pub apply: ApplyOptions,
    /// Foreground watched before the migration starts (its latency baseline and WAL rate) and after it ends.
    pub before: Duration,
    pub after: Duration,
    pub seed: u64,
    /// The source's statements `WorkloadChoice::Auto` replays instead of key lookups, when there are any.
    pub replay: Option<Arc<ReplayPlan>>,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            workload: WorkloadChoice::Auto {
                rate: WorkloadChoice::DEFAULT_RATE,
            },
            apply: ApplyOptions::default(),
            before: Duration::from_secs(1),
            after: Duration::from_secs(1),
            seed: 42,
            replay: None,
        }
    }
}

/// A migration directory to apply on the copy, and the version to baseline it to first (the last one the
/// source has applied), if any.
#[derive(Debug, Clone)]
pub struct MigrationDir {
    pub root: std::path::PathBuf,
    pub layout: tidegate_sql::Layout,
    pub baseline_to: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("{0}")]
    Observe(#[from] crate::observer::ObserveError),
    #[error("starting the workload on the copy: {0}")]
    Workload(#[from] crate::workload::WorkloadError),
    #[error("reading the copy: {0}")]
    Database(#[from] tidegate_db::connect::DbError),
    #[error("recording the source's applied migrations on the copy: {0}")]
    Baseline(tidegate_apply::ApplyError),
}

/// Runs `dirs` through apply on the copy (`copy_url`, `copy_config` its parsed form), measured. The copy's tables are `tables`.
pub async fn run_measured(
    copy_url: &str,
    copy_config: &ConnectionConfig,
    dirs: &[MigrationDir],
    tables: &[tidegate_db::table_schema::TableSchema],
    options: &MeasureOptions,
) -> Result<MeasuredRun, MeasureError> {
    let client = copy_config
        .connect()
        .await
        .map_err(|error| MeasureError::Observe(crate::observer::ObserveError::Connect(error)))?;
    let session: &dyn Session = &client;
    for dir in dirs {
        if let Some(version) = &dir.baseline_to {
            tidegate_apply::baseline::baseline(
                copy_config,
                &dir.root,
                tidegate_apply::baseline::BaselineOptions {
                    layout: Some(dir.layout),
                    to: Some(version.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(MeasureError::Baseline)?;
        }
    }
    let mut watched = WatchedTables {
        oids: Vec::new(),
        names: Vec::new(),
    };
    for table in tables {
        if let Some(oid) = observe::table_oid(session, &table.qualified).await? {
            watched.oids.push(oid);
            watched.names.push(table.qualified.clone());
        }
    }
    let mut notes = Vec::new();
    let replay = options
        .replay
        .as_ref()
        .filter(|plan| !plan.statements.is_empty() && options.workload != WorkloadChoice::None);
    let workload_source = match options.workload {
        WorkloadChoice::None => None,
        WorkloadChoice::Auto { .. } if replay.is_some() => None,
        WorkloadChoice::Auto { .. } => {
            let (source, left_out) = key_workload(session, tables).await?;
            notes.extend(left_out);
            if source.tables.is_empty() {
                notes.push("no copied table has a single integer key: no workload ran".into());
                None
            } else {
                Some(source)
            }
        }
    };
    drop(client);

    let observer =
        Observer::start(copy_config, watched.oids.clone(), Observer::DEFAULT_PERIOD).await?;
    let request_source: Option<Arc<dyn RequestSource>> = match (replay, &workload_source) {
        (Some(plan), _) => Some(Arc::new(plan.workload())),
        (None, Some(source)) => Some(Arc::new(source.clone())),
        (None, None) => None,
    };
    let workload = match (request_source, options.workload) {
        (Some(source), WorkloadChoice::Auto { rate }) => {
            let config = WorkloadConfig {
                rate_per_second: rate,
                connections: 4,
                seed: options.seed,
                application_name: "tidegate-rehearse-workload".into(),
                ..WorkloadConfig::default()
            };
            let workload = Workload::start(copy_url, config, source).await?;
            let zero = observer.elapsed().saturating_sub(workload.elapsed());
            Some((workload, zero))
        }
        _ => None,
    };
    let first = observer.mark().await.map_err(observe_failed)?;
    tokio::time::sleep(options.before).await;
    let before = observer.mark().await.map_err(observe_failed)?;
    let baseline_seconds = before.at.saturating_sub(first.at).as_secs_f64();
    let foreground_wal_bytes_per_second = if workload.is_some() && baseline_seconds > 0.0 {
        before.wal_position.saturating_sub(first.wal_position) as f64 / baseline_seconds
    } else {
        0.0
    };

    let boundaries: Arc<Mutex<Vec<Boundary>>> = Arc::default();
    let mut applied = Vec::new();
    let mut apply_error = None;
    let mut plans = Vec::new();
    for dir in dirs {
        let dry = apply(
            copy_config,
            &dir.root,
            ApplyOptions {
                dry_run: true,
                layout: Some(dir.layout),
                ..options.apply.clone()
            },
            Arc::new(|_: &ApplyEvent| {}),
        )
        .await;
        match dry {
            Ok(summary) => plans.push(summary.plan),
            Err(error) => {
                apply_error = Some(error.to_string());
                break;
            }
        }
        let sink: ApplySink = {
            let boundaries = boundaries.clone();
            let marker = observer.marker();
            Arc::new(move |event: &ApplyEvent| {
                let boundary = match event {
                    ApplyEvent::PhaseStarted {
                        version,
                        phase,
                        class,
                        ..
                    } => (version, *phase, Some(*class), true, None),
                    ApplyEvent::PhaseDone { version, phase, .. } => {
                        (version, *phase, None, false, None)
                    }
                    ApplyEvent::MigrationFailed {
                        version,
                        phase,
                        error,
                    } => (version, *phase, None, false, Some(error.clone())),
                    _ => return,
                };
                let (version, phase, class, start, error) = boundary;
                let mark = marker.mark_blocking();
                boundaries
                    .lock()
                    .expect("the boundaries lock is never poisoned")
                    .push(Boundary {
                        version: version.clone(),
                        phase,
                        class,
                        start,
                        error,
                        mark,
                    });
            })
        };
        let outcome = apply(
            copy_config,
            &dir.root,
            ApplyOptions {
                layout: Some(dir.layout),
                ..options.apply.clone()
            },
            sink,
        )
        .await;
        match outcome {
            Ok(summary) => applied.extend(summary.applied_now),
            Err(error) => {
                apply_error = Some(error.to_string());
                break;
            }
        }
    }
    tokio::time::sleep(options.after).await;
    let mut per_statement: Vec<StatementCount> = Vec::new();
    let foreground = match workload {
        Some((workload, zero)) => {
            let report = workload.stop().await;
            per_statement = report.per_statement;
            Some((report.recorder, zero))
        }
        None => None,
    };
    let replayed = replay
        .map(|plan| {
            plan.statements
                .iter()
                .zip(
                    per_statement
                        .iter()
                        .copied()
                        .chain(std::iter::repeat(StatementCount::default())),
                )
                .map(|(statement, count)| ReplayedCount {
                    sql: statement.sql.clone(),
                    source_calls: statement.calls,
                    ran: count.ok,
                    failed: count.failed,
                })
                .collect()
        })
        .unwrap_or_default();
    let samples = observer.stop().await?;

    let boundaries = boundaries
        .lock()
        .expect("the boundaries lock is never poisoned")
        .clone();
    let phases = measure_phases(&RunRecord {
        boundaries: &boundaries,
        plans: &plans,
        samples: &samples,
        period: Observer::DEFAULT_PERIOD,
        tables: &watched,
        foreground: foreground
            .as_ref()
            .map(|(recorder, zero)| (recorder, *zero)),
        foreground_wal_bytes_per_second,
    });
    let foreground_before = foreground.as_ref().map(|(recorder, zero)| {
        let first_phase = boundaries
            .iter()
            .find_map(|b| b.mark.as_ref().ok().map(|mark| mark.at))
            .unwrap_or(before.at);
        recorder.summary_of_seconds(0..first_phase.saturating_sub(*zero).as_secs())
    });
    Ok(MeasuredRun {
        workload: options.workload,
        workload_tables: workload_source.map(|s| s.tables).unwrap_or_default(),
        replayed,
        foreground_wal_bytes_per_second,
        foreground_before,
        statements: phases,
        applied,
        apply_error,
        notes,
    })
}

fn observe_failed(message: String) -> MeasureError {
    MeasureError::Observe(crate::observer::ObserveError::Thread(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Outcome;
    use tidegate_db::observe::ObservedLock;
    use tidegate_sql::LockLevel;

    fn mark(at_ms: u64, wal: u64, total: i64, index: i64) -> Result<Mark, String> {
        Ok(Mark {
            at: Duration::from_millis(at_ms),
            wal_position: wal,
            sizes: vec![RelationSize {
                oid: 1,
                total_bytes: total,
                index_bytes: index,
            }],
        })
    }

    fn boundary(phase: usize, start: bool, mark: Result<Mark, String>) -> Boundary {
        Boundary {
            version: "002".into(),
            phase,
            class: start.then_some(PhaseClass::Schema),
            start,
            error: None,
            mark,
        }
    }

    fn held(at_ms: u64) -> LockSample {
        LockSample {
            at: Duration::from_millis(at_ms),
            locks: vec![ObservedLock {
                relation_oid: 1,
                relation: "orders".into(),
                table: "orders".into(),
                mode: LockLevel::AccessExclusive,
                granted: true,
                pid: 1,
                application_name: "tidegate".into(),
                backend_type: "client backend".into(),
            }],
        }
    }

    #[test]
    fn a_phase_is_measured_between_its_marks_less_the_workloads_wal() {
        let boundaries = vec![
            boundary(1, true, mark(1_000, 10_000, 8192, 0)),
            boundary(1, false, mark(3_000, 50_000, 16384, 4096)),
            boundary(2, true, mark(3_000, 50_000, 16384, 4096)),
            // A mark that failed: the phase is left out rather than measured wrong.
            boundary(2, false, Err("gone".into())),
        ];
        let samples = vec![
            held(500),
            held(1_100),
            held(1_150),
            LockSample {
                at: Duration::from_millis(1_200),
                locks: vec![],
            },
            held(3_500),
        ];
        let tables = WatchedTables {
            oids: vec![1],
            names: vec!["public.orders".into()],
        };
        let mut recorder = LatencyRecorder::new();
        // The workload's clock started 500 ms after the observer's: the phase ran in its seconds 0 to 2.
        recorder.record(
            Duration::from_millis(100),
            Duration::from_millis(7),
            Outcome::Ok,
        );
        recorder.record(
            Duration::from_millis(2_400),
            Duration::from_millis(900),
            Outcome::Ok,
        );
        recorder.record(
            Duration::from_millis(4_000),
            Duration::from_millis(2),
            Outcome::Ok,
        );
        let phases = measure_phases(&RunRecord {
            boundaries: &boundaries,
            plans: &[],
            samples: &samples,
            period: Duration::from_millis(50),
            tables: &tables,
            foreground: Some((&recorder, Duration::from_millis(500))),
            foreground_wal_bytes_per_second: 1_000.0,
        });
        assert_eq!(phases.len(), 1);
        let phase = &phases[0];
        assert_eq!(phase.measured_seconds, 2.0);
        assert_eq!(phase.raw_wal_bytes, 40_000);
        assert_eq!(phase.measured_wal_bytes, 38_000);
        assert_eq!(phase.class, Some("schema"));
        // Only the samples inside the phase count: 1,100 and 1,150 ms.
        assert_eq!(phase.longest_blocking_lock_ms, 100.0);
        assert_eq!(phase.growth.len(), 1);
        assert_eq!(phase.growth[0].total_growth_bytes, 8192);
        assert_eq!(phase.growth[0].index_growth_bytes, 4096);
        let foreground = phase.foreground.as_ref().unwrap();
        assert_eq!(foreground.requests, 2);
        assert!(foreground.max_ms >= 899.0);
    }

    #[test]
    fn the_key_workload_draws_keys_in_range_and_updates_one_in_five() {
        let table = |name: &str, low, high| KeyTable {
            table: name.into(),
            key: "id".into(),
            low,
            high,
            lookup: format!("lookup {name}"),
            update: format!("update {name}"),
        };
        let workload = KeyWorkload {
            tables: vec![table("a", 1, 10), table("b", 100, 100)],
        };
        assert_eq!(workload.statements().len(), 4);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut updates = 0;
        let mut per_statement = [0usize; 4];
        for _ in 0..10_000 {
            let request = workload.next_request(&mut rng);
            per_statement[request.statement] += 1;
            updates += request.statement % 2;
            assert_eq!(request.params.len(), 1);
        }
        assert!((1_700..2_300).contains(&updates), "{updates}");
        assert!(
            per_statement.iter().all(|count| *count > 0),
            "{per_statement:?}"
        );
    }
}
