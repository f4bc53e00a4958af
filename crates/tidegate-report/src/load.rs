//! The I/O edge: which run or migration a `RUN_ID` names, and its journal, read in one `READ ONLY` transaction
//! through the state schema's own statements (`tidegate_backfill::state`). Nothing here decides anything.

use tidegate_backfill::state::{self, RunRow};
use tidegate_db::connect::DbError;
use tidegate_db::driver::Session;

use crate::build::{ReportInput, RunJournal};

/// What a `RUN_ID` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `run:N` (or `N` when no migration has that version): a backfill run, as `tidegate runs` lists it.
    Run(i64),
    /// `migration:VERSION` (or `apply:VERSION`; or a bare version that is not a number): a migration's applies,
    /// as `tidegate status` lists it.
    Migration(String),
    /// A bare number: a run id or a migration version (golang-migrate's and sqlx's versions are numbers too).
    Either(i64, String),
}

impl Target {
    /// Parses a `RUN_ID`. An error is a usage error: the text says what was expected.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "{text:?} is not a run id: give a backfill run's id (`42` or `run:42`, see `tidegate runs`) or a \
                 migration's version (`migration:20240101120000`, see `tidegate status`)"
            )
        };
        if let Some(id) = text.strip_prefix("run:") {
            return id.parse::<i64>().map(Target::Run).map_err(|_| bad());
        }
        if let Some(version) = text
            .strip_prefix("migration:")
            .or_else(|| text.strip_prefix("apply:"))
        {
            if version.is_empty() {
                return Err(bad());
            }
            return Ok(Target::Migration(version.to_string()));
        }
        if text.is_empty() {
            return Err(bad());
        }
        Ok(match text.parse::<i64>() {
            Ok(id) => Target::Either(id, text.to_string()),
            Err(_) => Target::Migration(text.to_string()),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Nothing in the journal has that id.
    #[error("{0}")]
    NotFound(String),
    /// A bare number is both a run's id and a migration's version.
    #[error(
        "{0} is both backfill run {0} and migration {0}: say which, `run:{0}` or `migration:{0}`"
    )]
    Ambiguous(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

async fn run_journal(session: &dyn Session, run: RunRow) -> Result<RunJournal, DbError> {
    let journal = state::read_journal(session, run.id).await?;
    Ok(RunJournal { run, journal })
}

/// Reads what a report of `target` is drawn from. `where_` names the database in errors (redacted).
pub async fn load(
    session: &dyn Session,
    target: &Target,
    where_: &str,
) -> Result<ReportInput, LoadError> {
    if !state::schema_exists(session).await? {
        return Err(LoadError::NotFound(format!(
            "{where_} has no tidegate journal (no `tidegate` schema): nothing was run there with tidegate, or \
             --db points at another database"
        )));
    }
    state::begin_read_only(session).await?;
    let loaded = load_in_transaction(session, target, where_).await;
    let _ = state::end_read_only(session).await;
    loaded
}

async fn load_in_transaction(
    session: &dyn Session,
    target: &Target,
    where_: &str,
) -> Result<ReportInput, LoadError> {
    let (run_id, version) = match target {
        Target::Run(id) => (Some(*id), None),
        Target::Migration(v) => (None, Some(v.as_str())),
        Target::Either(id, v) => (Some(*id), Some(v.as_str())),
    };
    let run = match run_id {
        Some(id) => state::find_run(session, id).await?,
        None => None,
    };
    let migration = match version {
        Some(v) => state::find_migration(session, v).await?,
        None => None,
    };
    match (run, migration) {
        (Some(_), Some(_)) => Err(LoadError::Ambiguous(run_id.unwrap_or_default())),
        (Some(run), None) => Ok(ReportInput::Backfill(run_journal(session, run).await?)),
        (None, Some(record)) => {
            let journal = state::read_migration_journal(session, &record.version).await?;
            let mut runs = Vec::new();
            let mut seen = Vec::new();
            for entry in journal.iter().filter(|e| e.event == "backfill_run") {
                let Some(id) = entry.detail.get("run_id").and_then(|v| v.as_i64()) else {
                    continue;
                };
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                if let Some(run) = state::find_run(session, id).await? {
                    runs.push(run_journal(session, run).await?);
                }
            }
            Ok(ReportInput::Migration {
                record,
                journal,
                runs,
            })
        }
        (None, None) => Err(LoadError::NotFound(match target {
            Target::Run(id) => format!(
                "there is no backfill run {id} in {where_}; `tidegate runs --db …` lists the runs"
            ),
            Target::Migration(v) => format!(
                "there is no migration {v} in {where_}; `tidegate status --db …` lists the migrations"
            ),
            Target::Either(id, _) => format!(
                "there is no backfill run {id} and no migration {id} in {where_}; `tidegate runs` lists the \
                 runs and `tidegate status` the migrations"
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_and_versions() {
        assert_eq!(Target::parse("run:7"), Ok(Target::Run(7)));
        assert_eq!(Target::parse("7"), Ok(Target::Either(7, "7".into())));
        assert_eq!(
            Target::parse("migration:0001"),
            Ok(Target::Migration("0001".into()))
        );
        assert_eq!(
            Target::parse("apply:V2"),
            Ok(Target::Migration("V2".into()))
        );
        assert_eq!(
            Target::parse("20240101_add_status"),
            Ok(Target::Migration("20240101_add_status".into()))
        );
        assert!(Target::parse("run:x").is_err());
        assert!(Target::parse("").is_err());
        assert!(Target::parse("migration:").is_err());
    }
}
