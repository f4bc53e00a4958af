//! `tidegate status` on MySQL/MariaDB: the directory against `tidegate.migrations`, read in one READ ONLY
//! transaction, with the same states, report and exit codes as PostgreSQL's ([`crate::status`]).

use std::path::Path;

use tidegate_backfill::spec::BackfillSpec;
use tidegate_backfill::state;
use tidegate_db::connect::DbError;
use tidegate_db::driver::{Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;

use super::plan::MyPhase;
use super::sql;
use crate::status::{migration_states, BackfillProgress, RecordedMigration, StatusReport};
use crate::{load, ApplyError, Layout, MigrationStatus};

fn database(context: &str) -> impl Fn(DbError) -> ApplyError + '_ {
    move |error| ApplyError::Database(error.context(context))
}

/// What the server records of the migrations in `dir`. Read-only: nothing is created, not even the `tidegate`
/// database.
pub async fn status_mysql(
    config: &MySqlConfig,
    dir: &Path,
    layout: Option<Layout>,
) -> Result<StatusReport, ApplyError> {
    let (layout, sources) = load(dir, layout)?;
    let session = config.connect().await.map_err(ApplyError::Database)?;
    let session: &dyn Session = &session;
    session
        .batch_execute(sql::BEGIN_READ_ONLY)
        .await
        .map_err(database("starting a read-only transaction"))?;
    let state_schema: bool = session
        .query_one(sql::HISTORY_EXISTS, &[])
        .await
        .map_err(database("reading the history"))?
        .get("present")?;
    let mut records = Vec::new();
    // (version, the spec of the backfill phase it is at) of running and failed migrations.
    let mut at_backfill: Vec<(String, BackfillSpec)> = Vec::new();
    if state_schema {
        for row in session
            .rows(sql::STATUS_HISTORY, &[])
            .await
            .map_err(database("reading tidegate.migrations"))?
        {
            let version: String = row.get("version")?;
            let status: String = row.get("status")?;
            let status = MigrationStatus::recorded(&version, &status)?;
            let phases_done = row.get::<i64>("phases_done")?.max(0) as usize;
            let phases_text: String = row.get("phases")?;
            // A baselined record has no phases; one this build cannot read is shown without them.
            let phases: Vec<MyPhase> = serde_json::from_str(&phases_text).unwrap_or_default();
            let next = phases.get(phases_done);
            if let (
                Some(MyPhase::Backfill { spec }),
                MigrationStatus::Running | MigrationStatus::Failed,
            ) = (next, status)
            {
                at_backfill.push((version.clone(), spec.clone()));
            }
            records.push(RecordedMigration {
                version,
                name: row.get("name")?,
                checksum: row.get("checksum")?,
                status,
                phases_done,
                phases: phases.len(),
                next_phase_kind: next.map(|phase| phase.class().to_string()),
                last_error: row.get("last_error")?,
                at: row.get("at")?,
            });
        }
    }
    let mut backfills = Vec::new();
    if !at_backfill.is_empty() {
        let runs = state::list_runs(session)
            .await
            .map_err(|e| ApplyError::Database(e.context("reading the backfill runs")))?;
        for (version, spec) in at_backfill {
            // The latest run of that spec: the one the phase started or resumed.
            let run = runs.iter().rev().find(|run| {
                serde_json::from_str::<BackfillSpec>(&run.spec_json).is_ok_and(|s| s == spec)
            });
            if let Some(run) = run {
                backfills.push((version, BackfillProgress::of(run)));
            }
        }
    }
    let apply_running = session
        .query_one(sql::APPLY_LOCK_HOLDER, &[])
        .await
        .map_err(database("looking for a running apply"))?
        .get::<i64>("holder")?;
    // 0: no session holds it.
    let apply_running = (apply_running != 0).then(|| format!("connection {apply_running}"));
    // Nothing was written; ending the transaction changes nothing.
    session
        .batch_execute(sql::COMMIT)
        .await
        .map_err(database("ending the read-only transaction"))?;
    let migrations = migration_states(&sources, &records, &backfills, apply_running.is_some());
    Ok(StatusReport {
        root: dir.to_path_buf(),
        layout: layout.name(),
        state_schema,
        apply_running,
        needs_baseline: None,
        migrations,
    })
}
