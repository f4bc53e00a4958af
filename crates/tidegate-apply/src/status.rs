//! `tidegate status`: every migration of a directory with its state in the database — applied, baselined,
//! pending, failed, running or interrupted at phase N of M, or changed since it was applied — and the progress of
//! a backfill phase that is running.
//!
//! [`migration_states`] and [`StatusReport`] are pure; [`status`] reads the database in one `READ ONLY`
//! transaction and changes nothing, not even when the `tidegate` schema does not exist yet.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tidegate_db::connect::{ConnectionConfig, DbError};
use tidegate_db::driver::{Driver, SessionExt};
use tidegate_sql::discovery::Layout;

use crate::baseline::unadopted_history;
use crate::{load, sql, ApplyError, MigrationSource, MigrationStatus};
use tidegate_backfill::state::{self, RunRow};

/// A migration's state, as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    Applied,
    Baselined,
    /// Applied or baselined, but the file's checksum is no longer the recorded one.
    Changed,
    Pending,
    Failed,
    /// An apply is working on it now.
    Running,
    /// Recorded as running, but no apply holds the migration lock: the apply died; the next one resumes it.
    Interrupted,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Baselined => "baselined",
            MigrationState::Changed => "changed",
            MigrationState::Pending => "pending",
            MigrationState::Failed => "failed",
            MigrationState::Running => "running",
            MigrationState::Interrupted => "interrupted",
        }
    }

    /// Whether the database is where the directory says it should be, as far as this migration goes.
    pub fn is_settled(self) -> bool {
        matches!(self, MigrationState::Applied | MigrationState::Baselined)
    }
}

/// A row of `tidegate.migrations`, as status reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMigration {
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub status: MigrationStatus,
    pub phases_done: usize,
    pub phases: usize,
    /// The kind (`schema`, `backfill`, …) of the phase after the done ones, if any.
    pub next_phase_kind: Option<String>,
    pub last_error: Option<String>,
    /// When it was applied, or (otherwise) first started or baselined; UTC, ISO 8601.
    pub at: Option<String>,
}

/// The progress of a backfill run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillProgress {
    pub run_id: i64,
    pub status: tidegate_backfill::state::RunStatus,
    pub status_reason: Option<String>,
    pub rows_done: i64,
    pub estimated_rows: Option<i64>,
    pub rows_per_second: f64,
}

impl BackfillProgress {
    pub fn of(run: &RunRow) -> Self {
        Self {
            run_id: run.id,
            status: run.status,
            status_reason: run.status_reason.clone(),
            rows_done: run.rows_done,
            estimated_rows: run.estimated_rows,
            rows_per_second: run.rows_per_second,
        }
    }

    /// Percent of the estimate done, capped at 100 (the estimate comes from statistics).
    pub fn percent(&self) -> Option<f64> {
        self.estimated_rows
            .filter(|estimate| *estimate > 0)
            .map(|estimate| (self.rows_done as f64 * 100.0 / estimate as f64).min(100.0))
    }
}

/// One migration's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationLine {
    pub version: String,
    pub name: String,
    /// `None` for a record whose file is no longer in the directory.
    pub path: Option<PathBuf>,
    pub state: MigrationState,
    /// For a failed, running or interrupted migration: the phase it is at (1-based) and how many it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillProgress>,
}

/// Joins the directory's migrations with their records. Pure. Records without a file come last, in version
/// order.
pub fn migration_states(
    sources: &[MigrationSource],
    records: &[RecordedMigration],
    backfills: &[(String, BackfillProgress)],
    apply_running: bool,
) -> Vec<MigrationLine> {
    let line = |record: Option<&RecordedMigration>, source: Option<&MigrationSource>| {
        let version = source
            .map(|s| s.version.clone())
            .or_else(|| record.map(|r| r.version.clone()))
            .unwrap_or_default();
        let state = match record {
            None => MigrationState::Pending,
            Some(record) => match record.status {
                MigrationStatus::Applied | MigrationStatus::Baselined
                    if source.is_some_and(|source| source.checksum != record.checksum) =>
                {
                    MigrationState::Changed
                }
                MigrationStatus::Applied => MigrationState::Applied,
                MigrationStatus::Baselined => MigrationState::Baselined,
                MigrationStatus::Failed => MigrationState::Failed,
                MigrationStatus::Running if apply_running => MigrationState::Running,
                MigrationStatus::Running => MigrationState::Interrupted,
            },
        };
        let in_progress = matches!(
            state,
            MigrationState::Failed | MigrationState::Running | MigrationState::Interrupted
        );
        MigrationLine {
            name: source
                .map(|s| s.name.clone())
                .or_else(|| record.map(|r| r.name.clone()))
                .unwrap_or_default(),
            path: source.map(|s| s.path.clone()),
            state,
            phase: record
                .filter(|_| in_progress)
                .map(|r| (r.phases_done + 1).min(r.phases.max(1))),
            phases: record.filter(|_| in_progress).map(|r| r.phases),
            recorded_checksum: record.map(|r| r.checksum.clone()),
            file_checksum: source.map(|s| s.checksum.clone()),
            at: record.and_then(|r| r.at.clone()),
            last_error: record
                .filter(|_| in_progress)
                .and_then(|r| r.last_error.clone()),
            backfill: backfills
                .iter()
                .find(|(v, _)| *v == version && in_progress)
                .map(|(_, progress)| progress.clone()),
            version,
        }
    };
    let mut lines: Vec<MigrationLine> = sources
        .iter()
        .map(|source| {
            line(
                records.iter().find(|r| r.version == source.version),
                Some(source),
            )
        })
        .collect();
    let mut orphans: Vec<&RecordedMigration> = records
        .iter()
        .filter(|record| !sources.iter().any(|s| s.version == record.version))
        .collect();
    orphans.sort_by(|a, b| a.version.cmp(&b.version));
    lines.extend(orphans.into_iter().map(|record| line(Some(record), None)));
    lines
}

/// What `tidegate status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub root: PathBuf,
    pub layout: &'static str,
    /// Whether the `tidegate` schema exists (status never creates it).
    pub state_schema: bool,
    /// The session holding the migration lock, when an apply is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_running: Option<String>,
    /// Set when tidegate records nothing but a framework's history records migrations: `tidegate baseline`
    /// adopts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_baseline: Option<String>,
    pub migrations: Vec<MigrationLine>,
}

impl StatusReport {
    pub fn count(&self, state: MigrationState) -> usize {
        self.migrations
            .iter()
            .filter(|line| line.state == state)
            .count()
    }

    /// True when every migration of the directory is applied or baselined, unchanged. A record whose file is
    /// gone counts against it only when it failed or is unfinished.
    pub fn all_applied(&self) -> bool {
        self.migrations.iter().all(|line| line.state.is_settled())
    }

    /// The report as JSON, with the count of each state and `all_applied` beside the lines.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        let counts: serde_json::Map<String, serde_json::Value> = self
            .migrations
            .iter()
            .fold(
                std::collections::BTreeMap::<&str, usize>::new(),
                |mut counts, line| {
                    *counts.entry(line.state.as_str()).or_default() += 1;
                    counts
                },
            )
            .into_iter()
            .map(|(state, count)| (state.to_string(), count.into()))
            .collect();
        if let Some(object) = value.as_object_mut() {
            object.insert("all_applied".into(), self.all_applied().into());
            object.insert("counts".into(), counts.into());
        }
        value
    }
}

fn database(context: &str) -> impl Fn(DbError) -> ApplyError + '_ {
    move |error| ApplyError::Database(error.context(context))
}

/// Reads the state of every migration of `dir`, in a `READ ONLY` transaction.
pub async fn status(
    config: &ConnectionConfig,
    dir: &Path,
    layout: Option<Layout>,
) -> Result<StatusReport, ApplyError> {
    let (layout, sources) = load(dir, layout)?;
    let session = config.open().await.map_err(ApplyError::Database)?;
    session
        .batch_execute(sql::BEGIN_READ_ONLY)
        .await
        .map_err(database("starting a read-only transaction"))?;
    let transaction = session.as_ref();
    let state_schema: bool = transaction
        .query_one(sql::HISTORY_EXISTS, &[])
        .await
        .map_err(database("reading the history"))?
        .get("present")?;
    let mut records = Vec::new();
    let mut backfills = Vec::new();
    if state_schema {
        for row in transaction
            .rows(sql::STATUS_HISTORY, &[])
            .await
            .map_err(database("reading tidegate.migrations"))?
        {
            let version: String = row.get("version")?;
            let status: String = row.get("status")?;
            let status = MigrationStatus::recorded(&version, &status)?;
            records.push(RecordedMigration {
                version,
                name: row.get("name")?,
                checksum: row.get("checksum")?,
                status,
                phases_done: row.get::<i64>("phases_done")?.max(0) as usize,
                phases: row.get::<Option<i64>>("phases")?.unwrap_or(0).max(0) as usize,
                next_phase_kind: row.get("next_phase_kind")?,
                last_error: row.get("last_error")?,
                at: row.get("at")?,
            });
        }
        for row in transaction
            .rows(sql::BACKFILL_OF_CURRENT_PHASE, &[])
            .await
            .map_err(database("reading the backfill runs of running migrations"))?
        {
            let version: String = row.get("version")?;
            let run_id: i64 = row.get("run_id")?;
            if let Some(run) = state::find_run(transaction, run_id)
                .await
                .map_err(|e| ApplyError::Database(e.context("reading a backfill run")))?
            {
                backfills.push((version, BackfillProgress::of(&run)));
            }
        }
    }
    let apply_running = transaction
        .query_opt(sql::APPLY_LOCK_HOLDER, &[])
        .await
        .map_err(database("looking for a running apply"))?
        .map(|row| -> Result<String, ApplyError> {
            let application: String = row.get("application")?;
            Ok(format!(
                "pid {}, application '{application}', from {}",
                row.get::<i64>("pid")?,
                row.get::<String>("client")?
            ))
        })
        .transpose()?;
    let needs_baseline = if records.is_empty() {
        unadopted_history(transaction)
            .await?
            .map(|(found, history)| {
                format!(
                    "{}'s {} {}, and tidegate records nothing: run `tidegate baseline {}` before `tidegate \
                     apply`",
                    found.framework.name(),
                    found.table,
                    history.describe(),
                    dir.display()
                )
            })
    } else {
        None
    };
    // Nothing was written; ending the transaction either way changes nothing.
    transaction
        .batch_execute(sql::ROLLBACK)
        .await
        .map_err(database("ending the read-only transaction"))?;
    let migrations = migration_states(&sources, &records, &backfills, apply_running.is_some());
    Ok(StatusReport {
        root: dir.to_path_buf(),
        layout: layout.name(),
        state_schema,
        apply_running,
        needs_baseline,
        migrations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, checksum: &str) -> MigrationSource {
        MigrationSource {
            version: name.into(),
            name: name.into(),
            path: PathBuf::from(name),
            sql: String::new(),
            framework_transaction: false,
            checksum: checksum.into(),
            parsed: Default::default(),
        }
    }

    fn record(version: &str, checksum: &str, status: MigrationStatus) -> RecordedMigration {
        RecordedMigration {
            version: version.into(),
            name: version.into(),
            checksum: checksum.into(),
            status,
            phases_done: 1,
            phases: 3,
            next_phase_kind: Some("backfill".into()),
            last_error: Some("boom".into()),
            at: None,
        }
    }

    fn states(lines: &[MigrationLine]) -> Vec<(&str, MigrationState)> {
        lines
            .iter()
            .map(|line| (line.version.as_str(), line.state))
            .collect()
    }

    #[test]
    fn every_state_is_told_apart() {
        let sources = [
            source("1.sql", "a"),
            source("2.sql", "b"),
            source("3.sql", "c-now"),
            source("4.sql", "d"),
            source("5.sql", "e"),
            source("6.sql", "f"),
        ];
        let records = [
            record("1.sql", "a", MigrationStatus::Applied),
            record("2.sql", "b", MigrationStatus::Baselined),
            record("3.sql", "c-then", MigrationStatus::Applied),
            record("4.sql", "d", MigrationStatus::Failed),
            record("5.sql", "e", MigrationStatus::Running),
        ];
        let lines = migration_states(&sources, &records, &[], false);
        assert_eq!(
            states(&lines),
            [
                ("1.sql", MigrationState::Applied),
                ("2.sql", MigrationState::Baselined),
                ("3.sql", MigrationState::Changed),
                ("4.sql", MigrationState::Failed),
                ("5.sql", MigrationState::Interrupted),
                ("6.sql", MigrationState::Pending),
            ]
        );
        assert_eq!((lines[3].phase, lines[3].phases), (Some(2), Some(3)));
        assert_eq!(lines[3].last_error.as_deref(), Some("boom"));
        assert_eq!(lines[0].phase, None, "an applied migration is at no phase");

        let running = migration_states(&sources, &records, &[], true);
        assert_eq!(running[4].state, MigrationState::Running);
    }

    #[test]
    fn a_backfill_belongs_to_its_migration_and_shows_a_percentage() {
        let sources = [source("1.sql", "a")];
        let records = [record("1.sql", "a", MigrationStatus::Running)];
        let progress = BackfillProgress {
            run_id: 7,
            status: tidegate_backfill::state::RunStatus::Running,
            status_reason: None,
            rows_done: 250,
            estimated_rows: Some(1000),
            rows_per_second: 50.0,
        };
        let lines = migration_states(&sources, &records, &[("1.sql".into(), progress)], true);
        let backfill = lines[0].backfill.as_ref().expect("progress attached");
        assert_eq!(backfill.run_id, 7);
        assert_eq!(backfill.percent(), Some(25.0));
    }

    #[test]
    fn all_applied_only_when_nothing_is_pending_failed_or_changed() {
        let report = |sources: &[MigrationSource], records: &[RecordedMigration]| StatusReport {
            root: PathBuf::from("m"),
            layout: "plain",
            state_schema: true,
            apply_running: None,
            needs_baseline: None,
            migrations: migration_states(sources, records, &[], false),
        };
        let sources = [source("1.sql", "a"), source("2.sql", "b")];
        let done = [
            record("1.sql", "a", MigrationStatus::Applied),
            record("2.sql", "b", MigrationStatus::Baselined),
        ];
        assert!(report(&sources, &done).all_applied());
        assert!(!report(&sources, &done[..1]).all_applied(), "2 is pending");
        let changed = [
            record("1.sql", "a", MigrationStatus::Applied),
            record("2.sql", "other", MigrationStatus::Applied),
        ];
        assert!(!report(&sources, &changed).all_applied());

        // A record whose file was removed is listed, after the files, and does not fail an applied directory.
        let with_orphan = [
            record("0.sql", "z", MigrationStatus::Applied),
            record("1.sql", "a", MigrationStatus::Applied),
            record("2.sql", "b", MigrationStatus::Applied),
        ];
        let report = report(&sources, &with_orphan);
        assert_eq!(report.migrations.last().unwrap().version, "0.sql");
        assert_eq!(report.migrations.last().unwrap().path, None);
        assert!(report.all_applied());
    }
}
