//! `tidegate rehearse` as a library function: read the source's tables (read-only), start a scratch server of the
//! same major version, re-create their schema, load synthetic rows generated from the source's statistics at a
//! scale, and check their fidelity; with migrations, run the pending ones on the copy through `tidegate apply`,
//! measured ([`crate::measurement`]), at `scale` and at each of `extra_scales` (a copy of its own each), and
//! extrapolate every phase's figures to the source's size ([`crate::extrapolate`]).
//!
//! The scratch server that measures takes the source's WAL- and cost-relevant settings ([`crate::settings`]):
//! restart settings as start options, the rest by `ALTER SYSTEM` and a reload, each read back and compared.
//!
//! With pg_stat_statements on the source, `--workload auto` replays its most-called statements on the copied
//! tables ([`crate::replay`]); without, key lookups and updates.
//!
//! What it does not do yet is listed in [`NOT_YET`] and in every report.
//!
//! **Invariant:** nothing is written to the source. Every query sent to it runs inside a `READ ONLY` transaction
//! with a lock and a statement timeout (`tidegate_db::table_stats::begin_read_only`), checked with
//! `transaction_read_only`; ANALYZE, DDL and COPY go to the scratch server only.

use std::collections::HashSet;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use serde::Serialize;
use tidegate_db::column_stats::{self, TableStatistics};
use tidegate_db::connect::{ConnectError, ConnectionConfig, DbError};
use tidegate_db::driver::Session;
use tidegate_db::observe::{self, ServerSetting};
use tidegate_db::scratch::{self, PgBinaries, ScratchError, ScratchServer, StartOptions};
use tidegate_db::stat_statements::{self, StatStatements};
use tidegate_db::table_schema::{self, PostLoadStatement, TypeDefinition};
use tidegate_db::table_stats;
use tidegate_plan::cost::CalibrationFile;
use tidegate_plan::pipeline::{self, LoadedMigrations};
use tidegate_plan::probe::{self, ProbeOptions};
use tidegate_sql::PgVersion;

use crate::extrapolate::{self, SourceMemory, StatementPoint, TableAtFullSize};
use crate::fidelity::{self, TableFidelity, Tolerance};
use crate::measurement::{
    self, MeasureError, MeasureOptions, MeasuredRun, MigrationDir, WorkloadChoice,
};
use crate::replay::{self, ReplayPlan};
use crate::settings::{self, SettingsReport};
use crate::synth::{self, SourceTable, SynthesisError, SynthesisPlan, TableGenerator};

/// The parts of a rehearsal not built yet; every report lists them, so nobody takes their absence for a pass.
pub const NOT_YET: [&str; 0] = [];

/// Which tables to rehearse.
#[derive(Debug)]
pub enum Targets {
    /// Those the pending migrations touch (and the tables their foreign keys reach).
    Migrations(LoadedMigrations),
    /// Every ordinary table of the database outside the system schemas and `tidegate`.
    AllTables,
}

/// How to rehearse.
#[derive(Debug, Clone)]
pub struct RehearseOptions {
    /// The fraction of each table's rows to generate.
    pub scale: f64,
    pub seed: u64,
    pub tolerance: Tolerance,
    /// Bounds of every read on the source.
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    /// Where the scratch cluster lives while the rehearsal runs (removed at the end).
    pub scratch_dir: std::path::PathBuf,
    /// How the pending migrations run on the copy (workload, apply's options).
    pub measure: MeasureOptions,
    /// Smaller scales the migrations are also measured at (each on a copy of its own, built first), so their
    /// figures extrapolate to the source's size; empty: no extrapolation.
    pub extra_scales: Vec<f64>,
    /// When the workload replays the source's pg_stat_statements: at their measured rate × the copy's scale
    /// (`true`), or at `measure.workload`'s rate (`--rate` given).
    pub replay_at_source_rate: bool,
    /// Table sizes for measuring plan's per-operation rates on the measuring server (which has the source's
    /// settings), after the migrations; `None`: not measured.
    pub calibrate: Option<[u64; 2]>,
}

impl Default for RehearseOptions {
    fn default() -> Self {
        Self {
            scale: 1.0,
            seed: 42,
            tolerance: Tolerance::default(),
            lock_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(30),
            scratch_dir: std::env::temp_dir()
                .join(format!("tidegate-rehearse-{}", std::process::id())),
            measure: MeasureOptions::default(),
            extra_scales: Vec::new(),
            replay_at_source_rate: true,
            calibrate: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error("reading the source: {0}")]
    Source(DbError),
    #[error("{0}; check --db, DATABASE_URL or the PG* variables")]
    Connect(#[from] ConnectError),
    #[error("the source did not open a read-only transaction (transaction_read_only is off); refusing to continue")]
    NotReadOnly,
    #[error("cannot synthesize rows: {0}")]
    Synthesis(#[from] SynthesisError),
    #[error("the scratch server: {0}")]
    Scratch(#[from] ScratchError),
    #[error("building the copy on the scratch server: {0}")]
    Copy(DbError),
    #[error("{0}")]
    Input(String),
    #[error("running the migrations on the copy: {0}")]
    Measure(#[from] MeasureError),
}

/// What was read of the source.
#[derive(Debug, Clone)]
pub struct SourceReading {
    pub server_major: u32,
    /// The versions `tidegate.migrations` records as applied or baselined; `None` without that table.
    pub applied: Option<Vec<String>>,
    pub tables: Vec<SourceTable>,
    pub types: Vec<TypeDefinition>,
    /// The source's shared_buffers and maintenance_work_mem, for the regime notes of extrapolation.
    pub memory: Option<SourceMemory>,
    /// The source's WAL- and cost-relevant settings ([`settings::names`]) the scratch server takes or compares.
    pub settings: Vec<ServerSetting>,
    /// The source's most-called statements, when pg_stat_statements is installed and readable.
    pub stat_statements: Option<StatStatements>,
    pub notes: Vec<String>,
}

async fn read_only(client: &dyn Session, options: &RehearseOptions) -> Result<(), RehearseError> {
    table_stats::begin_read_only(client, options.lock_timeout, options.statement_timeout)
        .await
        .map_err(RehearseError::Source)?;
    if !table_stats::transaction_is_read_only(client)
        .await
        .map_err(RehearseError::Source)?
    {
        return Err(RehearseError::NotReadOnly);
    }
    Ok(())
}

/// Reads the schema and statistics of the target tables and of every table their foreign keys reach, in
/// `READ ONLY` transactions.
pub async fn read_source(
    client: &dyn Session,
    targets: &Targets,
    options: &RehearseOptions,
) -> Result<SourceReading, RehearseError> {
    let probe_options = ProbeOptions {
        lock_timeout: options.lock_timeout,
        statement_timeout: options.statement_timeout,
        ..ProbeOptions::default()
    };
    let server =
        probe::server_facts(client, &probe_options)
            .await
            .map_err(|error| match error {
                probe::ProbeError::Database(error) => RehearseError::Source(error),
                probe::ProbeError::NotReadOnly => RehearseError::NotReadOnly,
            })?;
    let mut notes = Vec::new();
    read_only(client, options).await?;
    let start = match targets {
        Targets::AllTables => table_schema::all_table_oids(client)
            .await
            .map_err(RehearseError::Source)?,
        Targets::Migrations(migrations) => {
            let applied: HashSet<&str> = server
                .applied
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            let version = PgVersion(
                server
                    .major_version
                    .clamp(PgVersion::OLDEST.0, PgVersion::NEWEST.0),
            );
            let (pending, _) = pipeline::pending_migrations(migrations, &applied, version);
            let mut oids = Vec::new();
            for (schema, name) in tidegate_plan::report::tables_to_probe(&pending) {
                match table_schema::table_oid(client, &schema, &name)
                    .await
                    .map_err(RehearseError::Source)?
                {
                    Some(oid) => oids.push(oid),
                    None => notes.push(format!(
                        "{schema}.{name}: not in the source (a pending migration creates it); nothing to copy"
                    )),
                }
            }
            oids
        }
    };
    let schemas = table_schema::read_tables_with_references(client, &start)
        .await
        .map_err(RehearseError::Source)?;
    let types = table_schema::read_types(client, &schemas)
        .await
        .map_err(RehearseError::Source)?;
    let (shared_buffers_bytes, maintenance_work_mem_bytes) =
        tidegate_db::observe::memory_settings(client)
            .await
            .map_err(RehearseError::Source)?;
    let memory = Some(SourceMemory {
        shared_buffers_bytes,
        maintenance_work_mem_bytes,
    });
    let server_settings = observe::server_settings(client, &settings::names())
        .await
        .map_err(RehearseError::Source)?;
    let extension_schema = stat_statements::extension_schema(client)
        .await
        .map_err(RehearseError::Source)?;
    let mut tables = Vec::new();
    for schema in schemas {
        let statistics =
            column_stats::read_table_statistics(client, schema.oid, &schema.schema, &schema.name)
                .await
                .map_err(RehearseError::Source)?;
        if statistics.estimated_rows.is_none() {
            notes.push(format!(
                "{}: never analysed in the source (no row estimate, no pg_stats); copied empty — run ANALYZE on it to rehearse it",
                schema.qualified
            ));
        }
        tables.push(SourceTable { schema, statistics });
    }
    table_stats::end_read_only(client)
        .await
        .map_err(RehearseError::Source)?;
    // A transaction of its own: an extension installed but not preloaded is an error that aborts it.
    let stat_statements = match extension_schema {
        None => {
            notes.push(
                "pg_stat_statements is not installed in the source database: `--workload auto` runs key lookups \
                 and updates instead of the source's statements"
                    .into(),
            );
            None
        }
        Some(schema) => {
            read_only(client, options).await?;
            let read = stat_statements::top_statements(
                client,
                &schema,
                server.major_version,
                STAT_STATEMENTS_READ,
            )
            .await;
            table_stats::end_read_only(client)
                .await
                .map_err(RehearseError::Source)?;
            match read {
                Ok(read) => Some(read),
                Err(error) => {
                    notes.push(format!(
                        "pg_stat_statements could not be read ({}): `--workload auto` runs key lookups and updates",
                        error
                    ));
                    None
                }
            }
        }
    };
    Ok(SourceReading {
        server_major: server.major_version,
        applied: server.applied.clone(),
        tables,
        types,
        memory,
        settings: server_settings,
        stat_statements,
        notes,
    })
}

/// One table's load through COPY.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadFigures {
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl LoadFigures {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// The slowest replay: a source whose statements are rare still gives the phases some traffic.
const MIN_REPLAY_RATE: f64 = 1.0;

/// How many of the source's most-called statements are read (the replay takes the first
/// [`crate::replay::MAX_STATEMENTS`] of them it can replay).
const STAT_STATEMENTS_READ: i64 = 100;

/// Rows generated per COPY message.
const ROWS_PER_CHUNK: u64 = 8192;

/// Streams one table's synthetic rows into it with `COPY … FROM STDIN`: a blocking thread generates chunks while
/// the server parses the previous ones.
pub async fn copy_rows(
    client: &tokio_postgres::Client,
    copy_sql: &str,
    table: &TableGenerator,
) -> Result<LoadFigures, DbError> {
    let started = Instant::now();
    let sink = client
        .copy_in::<_, Bytes>(copy_sql)
        .await
        .map_err(|e| DbError::new(format!("starting COPY into {}", table.qualified), &e))?;
    let mut sink = pin!(sink);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let generator = table.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let mut writer = generator.writer();
        // Sized from the last chunk, so a chunk is written without growing its buffer.
        let mut capacity = ROWS_PER_CHUNK as usize * 64;
        loop {
            let mut chunk = Vec::with_capacity(capacity);
            if writer.write_rows(ROWS_PER_CHUNK, &mut chunk) == 0 {
                break;
            }
            capacity = capacity.max(chunk.len() + chunk.len() / 8);
            if sender.blocking_send(chunk).is_err() {
                break;
            }
        }
    });
    let mut bytes = 0u64;
    while let Some(chunk) = receiver.recv().await {
        bytes += chunk.len() as u64;
        sink.as_mut()
            .send(Bytes::from(chunk))
            .await
            .map_err(|e| DbError::new(format!("copying rows into {}", table.qualified), &e))?;
    }
    let _ = producer.await;
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| DbError::new(format!("finishing COPY into {}", table.qualified), &e))?;
    Ok(LoadFigures {
        rows,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs a post-load statement; a CHECK or foreign key the synthetic rows break is added NOT VALID, and said.
async fn run_post_load(
    client: &dyn Session,
    step: &PostLoadStatement,
    notes: &mut Vec<String>,
) -> Result<(), DbError> {
    match client.batch_execute(&step.sql).await {
        Ok(()) => Ok(()),
        Err(error)
            if matches!(error.code(), Some("23514" | "23503"))
                && step.not_valid_fallback.is_some() =>
        {
            let fallback = step.not_valid_fallback.as_deref().unwrap_or_default();
            client.batch_execute(fallback).await?;
            notes.push(format!(
                "{}: the synthetic rows break it ({}); added NOT VALID",
                step.describes,
                error.primary.as_deref().unwrap_or(&error.message)
            ));
            Ok(())
        }
        Err(error) => Err(error.context(format!("adding {}", step.describes))),
    }
}

/// What building the copy did.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// Per table (in the plan's order).
    pub loads: Vec<LoadFigures>,
    pub notes: Vec<String>,
}

/// Re-creates the source's schema on `client` (the scratch server), loads the planned rows, then adds the
/// constraints and indexes (foreign keys last) and moves the sequences past the loaded values.
pub async fn build_copy(
    client: &tokio_postgres::Client,
    source: &SourceReading,
    plan: &SynthesisPlan,
) -> Result<CopyOutcome, DbError> {
    let session: &dyn Session = client;
    let mut notes = Vec::new();
    let schemas = source
        .tables
        .iter()
        .map(|table| table.schema.schema.as_str())
        .chain(source.types.iter().map(|t| t.schema.as_str()))
        .chain(source.tables.iter().flat_map(|table| {
            table.schema.sequences.iter().filter_map(|s| {
                s.qualified
                    .split_once('.')
                    .map(|(schema, _)| schema.trim_matches('"'))
            })
        }));
    for statement in table_schema::ddl_schemas(schemas) {
        session.batch_execute(&statement).await?;
    }
    for definition in &source.types {
        session
            .batch_execute(&definition.ddl)
            .await
            .map_err(|e| e.context(format!("creating type {}", definition.qualified)))?;
    }
    for table in &source.tables {
        for sequence in &table.schema.sequences {
            session
                .batch_execute(&table_schema::ddl_sequence(sequence))
                .await
                .map_err(|e| e.context(format!("creating sequence {}", sequence.qualified)))?;
        }
    }
    for table in &source.tables {
        for statement in table.schema.ddl_create() {
            session
                .batch_execute(&statement)
                .await
                .map_err(|e| e.context(format!("creating {}", table.schema.qualified)))?;
        }
    }
    let mut loads = Vec::new();
    for (table, generator) in source.tables.iter().zip(&plan.tables) {
        loads.push(
            copy_rows(
                client,
                &table_schema::copy_statement(&table.schema),
                generator,
            )
            .await?,
        );
    }
    for table in &source.tables {
        for step in table.schema.ddl_after_load() {
            run_post_load(session, &step, &mut notes).await?;
        }
    }
    for table in &source.tables {
        for step in table.schema.ddl_foreign_keys() {
            run_post_load(session, &step, &mut notes).await?;
        }
        for statement in table.schema.ddl_sequences_past_data() {
            session.batch_execute(&statement).await?;
        }
    }
    Ok(CopyOutcome { loads, notes })
}

/// ANALYZEs every table of the copy (with the source's statistics target) and reads its statistics.
pub async fn analyze_copy(
    client: &dyn Session,
    source: &SourceReading,
) -> Result<Vec<TableStatistics>, DbError> {
    let mut statistics = Vec::new();
    for table in &source.tables {
        column_stats::analyze(
            client,
            &table.schema.qualified,
            table.statistics.default_statistics_target,
        )
        .await?;
    }
    table_stats::begin_read_only(client, Duration::from_secs(5), Duration::from_secs(60)).await?;
    for table in &source.tables {
        let oid = table_schema::table_oid(client, &table.schema.schema, &table.schema.name)
            .await?
            .unwrap_or(0);
        statistics.push(
            column_stats::read_table_statistics(
                client,
                oid,
                &table.schema.schema,
                &table.schema.name,
            )
            .await?,
        );
    }
    table_stats::end_read_only(client).await?;
    Ok(statistics)
}

/// One table of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReport {
    #[serde(flatten)]
    pub fidelity: TableFidelity,
    pub load_seconds: f64,
    pub load_rows_per_second: f64,
}

/// What a rehearsal found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RehearsalReport {
    /// The source, redacted.
    pub source: String,
    pub source_server_major: u32,
    pub scratch_server_major: u32,
    pub scale: f64,
    pub seed: u64,
    pub tolerance: Tolerance,
    pub tables: Vec<TableReport>,
    /// The source's WAL- and cost-relevant settings beside the scratch server's, each taken, scaled, differing
    /// or refused, and why.
    pub settings: SettingsReport,
    /// The source's statements `--workload auto` replays and those it skips (with why); `None` without
    /// pg_stat_statements on the source or without a workload.
    pub replay: Option<ReplayPlan>,
    /// The pending migrations run on the copy through apply, measured; `None` when no migration directory was
    /// given.
    pub migration: Option<MeasuredRun>,
    /// The smaller scales the migrations were also measured at, for extrapolation.
    pub extra_scales: Vec<f64>,
    /// plan's per-operation rates, measured on the server that rehearsed (the source's settings, this
    /// machine); `None` when not asked for.
    pub calibration: Option<CalibrationFile>,
    pub notes: Vec<String>,
    pub not_yet: Vec<String>,
}

impl RehearsalReport {
    /// Columns off by more than the tolerance, as `table.column (measures)`.
    pub fn off_columns(&self) -> Vec<String> {
        self.tables
            .iter()
            .flat_map(|table| {
                table.fidelity.off_columns().map(move |column| {
                    let measures: Vec<&str> = column.off.iter().map(|m| m.name()).collect();
                    format!(
                        "{}.{} ({})",
                        table.fidelity.table,
                        column.name,
                        measures.join(", ")
                    )
                })
            })
            .collect()
    }
}

/// The directories to apply on the copy, each with the version to baseline it to first: the last of its files the
/// source has applied. A source whose applied files are not a prefix of the directory (one skipped, a later one
/// applied) has a history a copy cannot reproduce with a baseline, and is refused.
pub fn migration_dirs(
    migrations: &LoadedMigrations,
    applied: Option<&[String]>,
) -> Result<Vec<MigrationDir>, RehearseError> {
    let applied: HashSet<&str> = applied.into_iter().flatten().map(String::as_str).collect();
    let mut dirs = Vec::new();
    for loaded in &migrations.sets {
        let files = &loaded.set.migrations;
        let last_applied = files
            .iter()
            .rposition(|file| applied.contains(file.version.as_str()));
        if let Some(last) = last_applied {
            if let Some(gap) = files[..last]
                .iter()
                .find(|file| !applied.contains(file.version.as_str()))
            {
                return Err(RehearseError::Input(format!(
                    "{}: the source has applied {} but not {} before it; a rehearsal replays a history in order. \
                     Rehearse against a database whose history has no gaps",
                    loaded.set.root.display(),
                    files[last].version,
                    gap.version
                )));
            }
        }
        dirs.push(MigrationDir {
            root: loaded.set.root.clone(),
            layout: loaded.set.layout,
            baseline_to: last_applied.map(|last| files[last].version.clone()),
        });
    }
    Ok(dirs)
}

/// Gives each statement of `run` (measured at `scale`) its figures at the source's size, from `smaller` runs of
/// the same migrations; a statement missing from one of them (it failed there) is left without.
fn extrapolate_run(
    run: &mut MeasuredRun,
    scale: f64,
    smaller: &[(f64, MeasuredRun)],
    source: &SourceReading,
) {
    if smaller.is_empty() {
        return;
    }
    let point = |scale: f64, phase: &measurement::PhaseMeasurement| StatementPoint {
        scale,
        seconds: phase.measured_seconds,
        wal_bytes: phase.measured_wal_bytes as f64,
        growth_bytes: phase
            .growth
            .iter()
            .map(|g| g.total_growth_bytes as f64)
            .sum(),
    };
    for phase in &mut run.statements {
        let same = |other: &&measurement::PhaseMeasurement| {
            other.migration == phase.migration && other.phase == phase.phase
        };
        let others: Vec<(f64, &measurement::PhaseMeasurement)> = smaller
            .iter()
            .filter_map(|(scale, other)| other.statements.iter().find(same).map(|p| (*scale, p)))
            .collect();
        if others.len() != smaller.len() {
            continue;
        }
        let mut points: Vec<StatementPoint> = others.iter().map(|(s, p)| point(*s, p)).collect();
        points.push(point(scale, phase));
        let regime_notes = match source.memory {
            Some(memory) => {
                let tables: Vec<TableAtFullSize> = phase
                    .growth
                    .iter()
                    .map(|growth| {
                        let index_points: Vec<extrapolate::Point> = others
                            .iter()
                            .map(|(s, p)| extrapolate::Point {
                                scale: *s,
                                value: p
                                    .growth
                                    .iter()
                                    .find(|g| g.table == growth.table)
                                    .map_or(0.0, |g| g.index_growth_bytes as f64),
                            })
                            .chain(std::iter::once(extrapolate::Point {
                                scale,
                                value: growth.index_growth_bytes as f64,
                            }))
                            .collect();
                        TableAtFullSize {
                            table: growth.table.clone(),
                            source_bytes: source
                                .tables
                                .iter()
                                .find(|t| t.schema.qualified == growth.table)
                                .map_or(0, |t| t.statistics.total_bytes),
                            rehearsed_bytes: u64::try_from(growth.total_bytes_before).unwrap_or(0),
                            index_growth_at_full_size: extrapolate::extrapolate(&index_points, 1.0)
                                .map_or(0.0, |fit| fit.estimate),
                            index_growth_rehearsed: growth.index_growth_bytes as f64,
                        }
                    })
                    .collect();
                extrapolate::regime_changes(&tables, memory)
            }
            None => Vec::new(),
        };
        phase.extrapolation = extrapolate::extrapolate_statement(&points, 1.0, regime_notes);
    }
}

/// The measuring server's database plan's rates are measured in.
const CALIBRATION_DATABASE: &str = "rehearsal_calibration";

/// Removes the scratch cluster however the rehearsal ends.
pub struct ScratchGuard(Option<ScratchServer>);

impl ScratchGuard {
    pub fn server(&self) -> &ScratchServer {
        self.0
            .as_ref()
            .expect("the guard holds its server until dropped")
    }
}

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            let _ = scratch::stop(&server.dir);
        }
    }
}

/// This machine's memory, from `/proc/meminfo`; `None` where there is none.
fn machine_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A server's error, as the settings report shows it: its own message and SQLSTATE.
fn server_refusal(error: &DbError) -> String {
    let message = error.primary.as_deref().unwrap_or(&error.message);
    match &error.sqlstate {
        Some(code) => format!("{message} (SQLSTATE {})", code.code()),
        None => message.to_string(),
    }
}

/// The first line of a failed start that says why (the server's FATAL), else the error's first line.
fn start_refusal(error: &ScratchError) -> String {
    let text = error.to_string();
    text.lines()
        .find(|line| line.contains("FATAL:"))
        .or_else(|| text.lines().next())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Starts the scratch server that measures with the source's settings ([`settings::plan`] for a copy at
/// `scale`): restart settings and shared_buffers as start options (a server that will not start with them is
/// started without them, and they are reported refused), the others by `ALTER SYSTEM` and one reload; then reads
/// every setting back and compares it with the source's.
pub async fn start_measuring_server(
    source: &SourceReading,
    scale: f64,
    dir: &Path,
    binaries: PgBinaries,
) -> Result<(ScratchGuard, SettingsReport, Vec<String>), RehearseError> {
    let mut notes = Vec::new();
    // Without a reading, the default scratch server's 128 MB stands in for the source's.
    let source_shared_buffers = source
        .memory
        .map_or(128 << 20, |memory| memory.shared_buffers_bytes);
    let plan = settings::plan(
        &source.settings,
        source_shared_buffers,
        scale,
        machine_memory_bytes().map(|bytes| bytes / 4),
    );
    let user = scratch::ServerUser::for_current_process()?;
    let mut start = StartOptions::new(dir);
    start.shared_buffers = plan.shared_buffers.clone();
    start.settings = plan.at_start.clone();
    let mut rejected: Vec<(String, String)> = Vec::new();
    let server = match scratch::start_with(&start, binaries.clone(), user.clone()) {
        Ok(server) => server,
        Err(error) if !start.settings.is_empty() => {
            let why = start_refusal(&error);
            let names: Vec<&str> = plan.at_start.iter().map(|(n, _)| n.as_str()).collect();
            notes.push(format!(
                "the scratch server did not start with the source's {} ({why}); started without them",
                names.join(", ")
            ));
            rejected.extend(
                plan.at_start
                    .iter()
                    .map(|(name, _)| (name.clone(), format!("it did not start with it: {why}"))),
            );
            start.settings.clear();
            scratch::start_with(&start, binaries, user)?
        }
        Err(error) => return Err(error.into()),
    };
    let guard = ScratchGuard(Some(server.clone()));
    let admin = ConnectionConfig::from_url(&server.url())?.connect().await?;
    for (name, value) in &plan.after_start {
        if let Err(error) = observe::alter_system_set(&admin, name, value).await {
            rejected.push((name.clone(), server_refusal(&error)));
        }
    }
    if !plan.after_start.is_empty()
        && !observe::reload_config(&admin, Duration::from_secs(5))
            .await
            .map_err(RehearseError::Copy)?
    {
        notes.push(
            "the scratch server had not reloaded its configuration 5 s after being asked: the settings read back \
             may be its defaults"
                .into(),
        );
    }
    let scratch_settings = observe::server_settings(&admin, &settings::names())
        .await
        .map_err(RehearseError::Copy)?;
    let (scratch_shared_buffers, _) = observe::memory_settings(&admin)
        .await
        .map_err(RehearseError::Copy)?;
    let report = SettingsReport {
        settings: settings::compare(
            &source.settings,
            &scratch_settings,
            &rejected,
            &plan,
            (source_shared_buffers, scratch_shared_buffers),
        ),
        table_options: source
            .tables
            .iter()
            .filter(|table| !table.schema.options.is_empty())
            .map(|table| (table.schema.qualified.clone(), table.schema.options.clone()))
            .collect(),
    };
    Ok((guard, report, notes))
}

/// The whole rehearsal: read the source, start the scratch server, build the copy, compare, stop the server.
pub async fn rehearse(
    source_config: &ConnectionConfig,
    targets: &Targets,
    options: &RehearseOptions,
) -> Result<RehearsalReport, RehearseError> {
    if !options.scale.is_finite() || options.scale <= 0.0 {
        return Err(RehearseError::Input(format!(
            "--scale {}: expected a positive fraction of the source's rows (1 = the same size)",
            options.scale
        )));
    }
    let source_client = source_config.connect().await?;
    let source = read_source(&source_client, targets, options).await?;
    drop(source_client);
    // Refused before anything starts: a history the copy cannot reproduce.
    let dirs = match targets {
        Targets::Migrations(migrations) => {
            Some(migration_dirs(migrations, source.applied.as_deref())?)
        }
        Targets::AllTables => None,
    };
    for scale in &options.extra_scales {
        if !scale.is_finite() || *scale <= 0.0 || *scale >= options.scale {
            return Err(RehearseError::Input(format!(
                "scale point {scale}: the extra scales extrapolation measures at must be positive and below --scale {}",
                options.scale
            )));
        }
    }
    let plan = synth::plan(&source.tables, options.scale, options.seed)?;
    let mut notes = source.notes.clone();
    notes.extend(plan.notes.iter().cloned());
    let replay = match (&source.stat_statements, options.measure.workload) {
        (Some(read), WorkloadChoice::Auto { .. }) => {
            let replay = replay::plan(read, &source.tables, &plan);
            if replay.statements.is_empty() {
                notes.push(
                    "none of the source's pg_stat_statements that touch the copied tables can be replayed (see \
                     the skipped ones): the workload runs key lookups and updates"
                        .into(),
                );
            }
            Some(Arc::new(replay))
        }
        _ => None,
    };
    let measure_at = |scale: f64, notes: &mut Vec<String>| {
        let mut measure = options.measure.clone();
        measure.replay = replay.clone();
        if let Some(replay) = replay.as_ref().filter(|r| !r.statements.is_empty()) {
            if options.replay_at_source_rate
                && matches!(measure.workload, WorkloadChoice::Auto { .. })
            {
                let rate = replay.source_calls_per_second * scale;
                if rate < MIN_REPLAY_RATE {
                    notes.push(format!(
                        "the source's replayed statements run {:.3}/s × scale {scale} = {rate:.3}/s; replayed at \
                         {MIN_REPLAY_RATE}/s so the phases see some traffic",
                        replay.source_calls_per_second
                    ));
                }
                measure.workload = WorkloadChoice::Auto {
                    rate: rate.max(MIN_REPLAY_RATE),
                };
            }
        }
        measure
    };

    let binaries = PgBinaries::find_for_major(source.server_major)?;
    if binaries.major_version != source.server_major {
        notes.push(format!(
            "PostgreSQL {} binaries are not installed here: the scratch server is PostgreSQL {}",
            source.server_major, binaries.major_version
        ));
    }
    let (guard, settings_report, settings_notes) =
        start_measuring_server(&source, options.scale, &options.scratch_dir, binaries).await?;
    notes.extend(settings_notes);
    let server = guard.server().clone();
    let schemas: Vec<_> = source.tables.iter().map(|t| t.schema.clone()).collect();

    // The smaller scales first, each on a database of its own on the same server, so the main copy is built last.
    let mut smaller = Vec::new();
    if let Some(dirs) = &dirs {
        let admin = ConnectionConfig::from_url(&server.url())?.connect().await?;
        for (index, scale) in options.extra_scales.iter().enumerate() {
            let database = format!("rehearsal_point_{}", index + 1);
            tidegate_db::observe::create_database(&admin, &database)
                .await
                .map_err(RehearseError::Copy)?;
            let url = server.url_for_database(&database);
            let config = ConnectionConfig::from_url(&url)?;
            let point_plan = synth::plan(&source.tables, *scale, options.seed)?;
            let copy = config.connect().await?;
            build_copy(&copy, &source, &point_plan)
                .await
                .map_err(RehearseError::Copy)?;
            analyze_copy(&copy, &source)
                .await
                .map_err(RehearseError::Copy)?;
            observe::checkpoint(&copy)
                .await
                .map_err(RehearseError::Copy)?;
            drop(copy);
            let measure = measure_at(*scale, &mut notes);
            let run = measurement::run_measured(&url, &config, dirs, &schemas, &measure).await?;
            smaller.push((*scale, run));
        }
    }

    let scratch_config = ConnectionConfig::from_url(&server.url())?;
    let copy = scratch_config.connect().await?;
    let outcome = build_copy(&copy, &source, &plan)
        .await
        .map_err(RehearseError::Copy)?;
    notes.extend(outcome.notes);
    let rehearsed = analyze_copy(&copy, &source)
        .await
        .map_err(RehearseError::Copy)?;
    // The migrations meet pages a checkpoint has written, as production's are: with full_page_writes on, their
    // first change to each page logs the whole page.
    observe::checkpoint(&copy)
        .await
        .map_err(RehearseError::Copy)?;
    drop(copy);
    let migration = match &dirs {
        Some(dirs) => {
            let measure = measure_at(options.scale, &mut notes);
            let mut run =
                measurement::run_measured(&server.url(), &scratch_config, dirs, &schemas, &measure)
                    .await?;
            notes.extend(run.notes.iter().cloned());
            extrapolate_run(&mut run, options.scale, &smaller, &source);
            Some(run)
        }
        None => None,
    };
    let calibration = match options.calibrate {
        Some(sizes) => {
            // A database of its own, so the calibration's table never meets the copy's.
            let admin = scratch_config.connect().await?;
            tidegate_db::observe::create_database(&admin, CALIBRATION_DATABASE)
                .await
                .map_err(RehearseError::Copy)?;
            drop(admin);
            let session =
                ConnectionConfig::from_url(&server.url_for_database(CALIBRATION_DATABASE))?
                    .connect()
                    .await?;
            let mut file = crate::calibrate::calibrate(&session, sizes)
                .await
                .map_err(RehearseError::Copy)?;
            file.measured_by = Some(format!(
                "tidegate rehearse of {}, on a scratch server with its settings",
                source_config.redacted()
            ));
            Some(file)
        }
        None => None,
    };
    drop(guard);

    let tables = source
        .tables
        .iter()
        .zip(&plan.tables)
        .zip(rehearsed.iter().zip(&outcome.loads))
        .map(|((table, generated), (copy_stats, load))| TableReport {
            fidelity: fidelity::compare_table(
                &table.schema.qualified,
                &table.statistics,
                table.source_rows(),
                copy_stats,
                generated.rows,
                &options.tolerance,
            ),
            load_seconds: load.seconds,
            load_rows_per_second: load.rows_per_second(),
        })
        .collect();
    Ok(RehearsalReport {
        source: source_config.redacted().to_string(),
        source_server_major: source.server_major,
        scratch_server_major: server.binaries.major_version,
        scale: options.scale,
        seed: options.seed,
        tolerance: options.tolerance,
        tables,
        settings: settings_report,
        replay: replay.map(|replay| replay.as_ref().clone()),
        migration,
        extra_scales: options.extra_scales.clone(),
        calibration,
        notes,
        not_yet: NOT_YET.iter().map(|s| s.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> (tempfile::TempDir, LoadedMigrations) {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            std::fs::write(dir.path().join(file), "SELECT 1;\n").unwrap();
        }
        let loaded = pipeline::load(&[dir.path().to_path_buf()], None).unwrap();
        (dir, loaded)
    }

    #[test]
    fn the_copy_is_baselined_to_the_last_version_the_source_applied() {
        let (_dir, loaded) = dir_with(&["001_a.sql", "002_b.sql", "003_c.sql"]);
        let applied = vec!["001_a.sql".to_string(), "002_b.sql".to_string()];
        let dirs = migration_dirs(&loaded, Some(&applied)).unwrap();
        assert_eq!(dirs.len(), 1);
        assert_eq!(dirs[0].baseline_to.as_deref(), Some("002_b.sql"));
        let dirs = migration_dirs(&loaded, None).unwrap();
        assert_eq!(dirs[0].baseline_to, None);
    }

    #[test]
    fn a_history_with_a_gap_is_refused() {
        let (_dir, loaded) = dir_with(&["001_a.sql", "002_b.sql", "003_c.sql"]);
        let applied = vec!["001_a.sql".to_string(), "003_c.sql".to_string()];
        let error = migration_dirs(&loaded, Some(&applied)).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, RehearseError::Input(_)));
        assert!(
            message.contains("003_c.sql") && message.contains("002_b.sql"),
            "{message}"
        );
    }
}
