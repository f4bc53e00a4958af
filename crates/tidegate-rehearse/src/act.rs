//! One act of a rehearsal: a migration runs while the foreground workload measures what the application felt
//! before, during and after it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::measure::{LatencySummary, SecondStats};
use crate::workload::{RequestSource, Workload, WorkloadConfig, WorkloadError};

/// Something that happened during an act, placed on its timeline (seconds since the workload started).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    pub at_s: f64,
    pub label: String,
}

/// What an act's migration reports back: when things happened, relative to the moment it was started.
#[derive(Debug, Clone, Default)]
pub struct MigrationLog {
    /// (offset since the migration started, label)
    pub events: Vec<(Duration, String)>,
}

impl MigrationLog {
    pub fn note(&mut self, since_start: Duration, label: impl Into<String>) {
        self.events.push((since_start, label.into()));
    }
}

/// How long to watch the workload around the migration.
#[derive(Debug, Clone)]
pub struct ActConfig {
    pub workload: WorkloadConfig,
    /// Baseline before the migration starts.
    pub before: Duration,
    /// Recovery watched after it ends.
    pub after: Duration,
}

/// The figures of one act.
#[derive(Debug, Clone, Serialize)]
pub struct ActReport {
    pub name: String,
    /// How long the migration ran, start to commit.
    pub duration_s: f64,
    /// Foreground latency while the migration ran.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Failed foreground requests while the migration ran.
    pub errors: u64,
    /// The longest any foreground request waited (from its scheduled start) over the whole act.
    pub longest_wait_ms: f64,
    pub before: LatencySummary,
    pub during: LatencySummary,
    pub after: LatencySummary,
    pub migration_started_s: f64,
    pub migration_finished_s: f64,
    /// The migration's error, when it failed.
    pub migration_error: Option<String>,
    pub per_second: Vec<SecondStats>,
    pub events: Vec<TimelineEvent>,
}

/// Which part of an act is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActPhase {
    Baseline,
    Migration,
    Recovery,
}

impl std::fmt::Display for ActPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActPhase::Baseline => "baseline",
            ActPhase::Migration => "migration running",
            ActPhase::Recovery => "recovery",
        })
    }
}

/// A once-a-second look at a running act, for live displays.
#[derive(Debug, Clone)]
pub struct ActProgress {
    pub phase: ActPhase,
    pub elapsed: Duration,
    /// The last complete second of foreground traffic.
    pub last_second: Option<SecondStats>,
    /// Requests and errors so far.
    pub requests: u64,
    pub errors: u64,
}

fn progress_of(workload: &Workload, phase: ActPhase) -> ActProgress {
    let recorder = workload.snapshot();
    let elapsed = workload.elapsed();
    let complete = elapsed.as_secs().saturating_sub(1);
    let last_second = recorder
        .per_second()
        .into_iter()
        .rev()
        .find(|second| second.second <= complete);
    let total = recorder.summary();
    ActProgress {
        phase,
        elapsed,
        last_second,
        requests: total.requests,
        errors: total.errors,
    }
}

/// Waits for `work` while reporting progress every second.
async fn with_progress<T>(
    workload: &Workload,
    phase: ActPhase,
    work: impl Future<Output = T>,
    progress: &mut impl FnMut(ActProgress),
) -> T {
    let mut work = std::pin::pin!(work);
    let second = Duration::from_secs(1);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = ticker.tick() => progress(progress_of(workload, phase)),
        }
    }
}

/// Runs `migration` under the workload: baseline, migration, recovery; `progress` hears about it every second.
pub async fn run_act<F, Fut>(
    name: &str,
    url: &str,
    config: &ActConfig,
    source: Arc<dyn RequestSource>,
    migration: F,
    progress: impl FnMut(ActProgress),
) -> Result<ActReport, WorkloadError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (MigrationLog, Result<(), String>)>,
{
    let workload = Workload::start(url, config.workload.clone(), source).await?;
    Ok(run_act_with(name, workload, config, migration, progress).await)
}

/// As [`run_act`], under a workload already started (e.g. [`Workload::start_sessions`] on MariaDB).
pub async fn run_act_with<F, Fut>(
    name: &str,
    workload: Workload,
    config: &ActConfig,
    migration: F,
    mut progress: impl FnMut(ActProgress),
) -> ActReport
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (MigrationLog, Result<(), String>)>,
{
    with_progress(
        &workload,
        ActPhase::Baseline,
        tokio::time::sleep(config.before),
        &mut progress,
    )
    .await;
    let started = workload.elapsed();
    let (log, outcome) =
        with_progress(&workload, ActPhase::Migration, migration(), &mut progress).await;
    let finished = workload.elapsed();
    with_progress(
        &workload,
        ActPhase::Recovery,
        tokio::time::sleep(config.after),
        &mut progress,
    )
    .await;
    let report = workload.stop().await;

    let recorder = &report.recorder;
    // Whole seconds: a second that saw the migration start or end counts as "during".
    let (during_first, during_end) = (started.as_secs(), finished.as_secs() + 1);
    let before = recorder.summary_of_seconds(0..during_first);
    let during = recorder.summary_of_seconds(during_first..during_end);
    let after = recorder.summary_of_seconds(during_end..u64::MAX);
    let mut events = vec![TimelineEvent {
        at_s: started.as_secs_f64(),
        label: "migration starts".into(),
    }];
    events.extend(log.events.into_iter().map(|(offset, label)| TimelineEvent {
        at_s: (started + offset).as_secs_f64(),
        label,
    }));
    let end_label = if outcome.is_ok() {
        "migration ends"
    } else {
        "migration fails"
    };
    events.push(TimelineEvent {
        at_s: finished.as_secs_f64(),
        label: end_label.into(),
    });

    ActReport {
        name: name.to_string(),
        duration_s: (finished - started).as_secs_f64(),
        p50_ms: during.p50_ms,
        p99_ms: during.p99_ms,
        max_ms: during.max_ms,
        errors: during.errors,
        longest_wait_ms: recorder.summary().max_ms,
        before,
        during,
        after,
        migration_started_s: started.as_secs_f64(),
        migration_finished_s: finished.as_secs_f64(),
        migration_error: outcome.err(),
        per_second: recorder.per_second(),
        events,
    }
}
