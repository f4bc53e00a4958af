//! The monitor: one task on its own connection that reads the control flags and the health signals every
//! `health_interval`, decides through the pure [`ThrottlePolicy`], opens or closes the gate the workers pass before
//! each batch, writes status changes and the journal, and reconnects (failing closed) when its connection drops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_db::connect::DbError;
use tidegate_db::driver::{ErrorClass, Session, SessionExt, Value};

use super::{Ctx, Gate, StopHandle, WaitReason};
use crate::dialect::{dialect_for, Dialect};
use crate::events::{Event, PauseCause};
use crate::pacing::utc_second_of_day;
use crate::retry::{RetryDecision, RetryState};
use crate::state::{self, Control, RunStatus};
use crate::throttle::{LatencyWindow, Level, Observation, Reading, Thresholds, ThrottlePolicy};

pub(super) async fn monitor_loop(
    ctx: Arc<Ctx>,
    client: Box<dyn Session>,
    mut journal_rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    probe_key: Option<Vec<String>>,
    write_probe: Option<WriteProbe>,
    mut replicas: super::ReplicaWatch,
    stop: StopHandle,
) -> Option<(
    Box<dyn Session>,
    tokio::sync::mpsc::UnboundedReceiver<Event>,
)> {
    let d = ctx.dialect;
    let sql = d.state();
    let mut client = Some(client);
    let mut attached = false;
    let mut policy = ThrottlePolicy::new(ctx.options.thresholds.clone());
    let mut reconnect = RetryState::default();
    let mut status = RunStatus::Running;
    let mut last_gate = Gate::Wait(WaitReason::Starting);
    // The first tick samples at once: the report's series and WAL figure start at the run's start.
    let mut last_sample: Option<Instant> = None;
    let mut last_note = String::new();
    let mut foreground = LatencyWindow::new(LatencyWindow::DEFAULT_CAPACITY);
    // The write-path probe runs only when a budget is set to judge it against.
    let write_probe = write_probe.filter(|_| ctx.options.thresholds.max_fg_latency.is_some());
    let probe = match &ctx.options.probe_sql {
        Some(sql) => Probe::Custom(sql.clone()),
        None => match probe_key {
            Some(key) => Probe::Key(
                d.default_probe(&ctx.shape),
                d.probe_params(&ctx.shape, &key),
            ),
            None => Probe::None,
        },
    };
    loop {
        // Workers finished (or are finishing): hand the connection back for the final write.
        if ctx.finishing.load(Ordering::Relaxed) {
            return client.map(|c| (c, journal_rx));
        }
        if client.is_none() {
            match ctx.driver.open().await {
                Ok(c) => {
                    reconnect.on_success();
                    client = Some(c);
                    attached = false;
                    ctx.emit(Event::Reconnected {
                        run_id: ctx.run_id,
                        worker: None,
                    });
                }
                Err(e) if e.class == ErrorClass::Other => {
                    // Retrying cannot fix a refusal like a wrong password: stop at the batch, resumable.
                    ctx.set_gate(Gate::Stop(format!(
                        "the database refused to reconnect: {e}"
                    )));
                    tokio::time::sleep(ctx.options.health_interval).await;
                    continue;
                }
                Err(e) => {
                    ctx.set_gate(Gate::Wait(WaitReason::MonitorReconnecting));
                    match reconnect.on_failure(&ctx.options.reconnect, ctx.now(), fastrand::f64()) {
                        RetryDecision::RetryAfter { delay, attempt } => {
                            if attempt == 1 || attempt % 10 == 0 {
                                (ctx.sink)(&Event::Reconnecting {
                                    run_id: ctx.run_id,
                                    worker: None,
                                    attempt,
                                    reason: e.to_string(),
                                });
                            }
                            tokio::time::sleep(delay).await;
                        }
                        RetryDecision::GiveUp { .. } => {
                            ctx.set_gate(Gate::Stop(format!(
                                "lost the database and could not reconnect: {e}"
                            )));
                            tokio::time::sleep(ctx.options.health_interval).await;
                        }
                    }
                    continue;
                }
            }
        }
        let Some(c) = client.as_deref() else { continue };
        let tick = async {
            if !attached {
                let settings = d.session_settings(
                    ctx.options.lock_timeout,
                    probe_timeout(&ctx.options.thresholds),
                );
                c.batch_execute(&settings).await?;
                c.run(sql.attach_lock, &[ctx.run_id.into()]).await?;
            }
            // Journal what the workers reported.
            while let Ok(event) = journal_rx.try_recv() {
                if let Some(name) = event.journal_name() {
                    state::journal(c, ctx.run_id, name, &event.to_json()).await?;
                }
            }
            let due = match last_sample {
                None => true,
                Some(at) => at.elapsed() >= ctx.options.journal_sample_every,
            };
            if due {
                last_sample = Some(Instant::now());
                let wal = match d.wal_position(c).await {
                    Ok(lsn) => lsn,
                    Err(e) if e.is_connection_lost() => return Err(e),
                    Err(_) => None,
                };
                let detail = ctx.take_sample(wal);
                state::journal(c, ctx.run_id, "batch_stats", &detail).await?;
                c.run(sql.touch, &[ctx.run_id.into()]).await?;
            }
            let control_row = c.query_opt(sql.read_control, &[ctx.run_id.into()]).await?;
            let (control, db_status) = match &control_row {
                Some(r) => (
                    r.get::<Option<String>>("control")?
                        .as_deref()
                        .and_then(Control::from_db),
                    RunStatus::from_db(&r.get::<String>("status")?),
                ),
                // The run's row is gone: nothing is left to work for.
                None => (Some(Control::Abort), RunStatus::Aborted),
            };
            let pids = ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut obs = observe(
                c,
                d,
                &pids,
                &probe,
                ctx.options.throttle_query.as_deref(),
                ctx.now(),
            )
            .await?;
            if let Some(write_probe) = &write_probe {
                obs.foreground_latency = match write_probe.sample(c, d, fastrand::u64(..)).await? {
                    Reading::Value(latency) => {
                        foreground.push(latency);
                        if let Some(median) = foreground.median() {
                            ctx.fg_now_us
                                .store((median.as_micros() as u64).max(1), Ordering::Relaxed);
                        }
                        foreground
                            .median()
                            .map_or(Reading::NotWatched, Reading::Value)
                    }
                    other => other,
                };
            }
            Ok::<_, DbError>((control, db_status, obs))
        };
        let (control, db_status, mut obs) = match tick.await {
            Ok(v) => {
                attached = true;
                v
            }
            Err(e) if e.is_connection_lost() => {
                client = None;
                ctx.set_gate(Gate::Wait(WaitReason::MonitorReconnecting));
                ctx.emit(Event::Reconnecting {
                    run_id: ctx.run_id,
                    worker: None,
                    attempt: 0,
                    reason: e.message,
                });
                continue;
            }
            Err(e) => {
                // A state query failed for another reason: fail closed and say so.
                ctx.set_gate(Gate::Wait(WaitReason::MonitorQueryFailed {
                    error: e.message,
                }));
                tokio::time::sleep(ctx.options.health_interval).await;
                continue;
            }
        };
        if !replicas.is_empty() {
            let on_replicas = replicas.read(d).await;
            obs.replica_lag = super::replicas::merge(obs.replica_lag, on_replicas);
        }
        let decision = policy.decide(&obs);
        for note in &decision.notes {
            if *note != last_note {
                last_note = note.clone();
                ctx.emit(Event::Note {
                    run_id: ctx.run_id,
                    message: note.clone(),
                });
            }
        }
        if decision.changed && decision.level > Level::Healthy {
            ctx.throttle_epoch.fetch_add(1, Ordering::Relaxed);
        }
        let gate = if let Some(reason) = stop.requested() {
            Gate::Stop(reason)
        } else if control == Some(Control::Abort) || db_status == RunStatus::Aborted {
            Gate::Abort("aborted by tidegate abort".into())
        } else if control == Some(Control::Pause) {
            Gate::Paused("paused by tidegate pause".into())
        } else if decision.level == Level::Critical && ctx.options.critical_abort {
            Gate::Abort(format!("critical: {} (--critical-abort)", decision.reason))
        } else if decision.level == Level::Critical {
            Gate::Paused(format!("critical: {}", decision.reason))
        } else if decision.level == Level::Throttle {
            Gate::Wait(WaitReason::Throttled {
                reason: decision.reason.clone(),
                signals: decision.signals.clone(),
                recovering: decision.recovering,
            })
        } else if let Some(window) = ctx
            .options
            .window
            .filter(|w| !w.contains(utc_second_of_day()))
        {
            let wait = window.until_open(utc_second_of_day());
            Gate::Wait(WaitReason::OutsideWindow {
                window: window.to_string(),
                opens_in_minutes: wait.as_secs().div_ceil(60),
            })
        } else {
            Gate::Go
        };
        if gate != last_gate {
            let (new_status, reason) = match &gate {
                Gate::Go => (RunStatus::Running, None),
                Gate::Wait(r) => (RunStatus::Throttled, Some(r.cause())),
                Gate::Paused(r) => (RunStatus::Paused, Some(r.clone())),
                Gate::Stop(_) | Gate::Abort(_) => (status, None),
            };
            match &gate {
                Gate::Go if matches!(last_gate, Gate::Paused(_)) => {
                    ctx.emit(Event::Resumed { run_id: ctx.run_id })
                }
                Gate::Go if matches!(last_gate, Gate::Wait(ref r) if *r != WaitReason::Starting) => {
                    ctx.emit(Event::ThrottleLifted { run_id: ctx.run_id })
                }
                Gate::Wait(r @ WaitReason::OutsideWindow { .. }) => ctx.emit(Event::Waiting {
                    run_id: ctx.run_id,
                    reason: r.to_string(),
                }),
                Gate::Wait(r) => {
                    let (reason, signals, recovering) = match r {
                        WaitReason::Throttled {
                            reason,
                            signals,
                            recovering,
                        } => (reason.clone(), signals.clone(), *recovering),
                        other => (other.to_string(), Vec::new(), None),
                    };
                    let readings = if signals.is_empty() {
                        Vec::new()
                    } else {
                        decision.readings.clone()
                    };
                    let event = Event::Throttled {
                        run_id: ctx.run_id,
                        level: Level::Throttle,
                        reason,
                        signals,
                        readings,
                        recovering,
                    };
                    // The recovering countdown changes every tick; journal only real changes.
                    let cause = |g: &Gate| match g {
                        Gate::Wait(r) => r.cause(),
                        _ => String::new(),
                    };
                    if cause(&gate) != cause(&last_gate) {
                        ctx.emit(event);
                    } else {
                        (ctx.sink)(&event);
                    }
                }
                Gate::Paused(r) if !matches!(last_gate, Gate::Paused(_)) => {
                    // The same order as the gate's choice above: a pause someone asked for wins over critical.
                    let (cause, critical, readings) =
                        if control != Some(Control::Pause) && decision.level == Level::Critical {
                            (
                                PauseCause::Critical,
                                decision.signals.clone(),
                                decision.readings.clone(),
                            )
                        } else {
                            (PauseCause::Requested, Vec::new(), Vec::new())
                        };
                    ctx.emit(Event::Paused {
                        run_id: ctx.run_id,
                        reason: r.clone(),
                        cause,
                        critical,
                        readings,
                    })
                }
                _ => {}
            }
            if new_status != status || matches!(gate, Gate::Wait(_) | Gate::Paused(_)) {
                let base_reason = reason;
                if let Err(e) = c
                    .run(
                        sql.set_status,
                        &[
                            ctx.run_id.into(),
                            new_status.as_str().into(),
                            base_reason.into(),
                        ],
                    )
                    .await
                {
                    if e.is_connection_lost() {
                        client = None;
                        continue;
                    }
                }
                status = new_status;
            }
            // Sample at the next tick when the run changed state (not when a throttle's recovery countdown
            // ticked): a report's rows-over-time chart then bends where the state changed.
            let waits_for = |g: &Gate| match g {
                Gate::Wait(r) => Some(r.cause()),
                _ => None,
            };
            if std::mem::discriminant(&gate) != std::mem::discriminant(&last_gate)
                || waits_for(&gate) != waits_for(&last_gate)
            {
                last_sample = None;
            }
            last_gate = gate.clone();
            // Never reopen the gate over a stop or an abort.
            if !matches!(ctx.gate(), Gate::Stop(_) | Gate::Abort(_))
                || matches!(gate, Gate::Stop(_) | Gate::Abort(_))
            {
                ctx.set_gate(gate);
            }
        } else if !matches!(ctx.gate(), Gate::Stop(_) | Gate::Abort(_)) {
            ctx.set_gate(gate);
        }
        ctx.idle(ctx.options.health_interval).await;
    }
}

/// The write-path probe: the statement, and which keys it locks.
#[derive(Debug, Clone)]
pub(super) struct WriteProbe {
    sql: String,
    shape: crate::dialect::BatchShape,
    keys: ProbeKeys,
    /// How long one probe may wait on a row lock (then it counts as that slow).
    lock_timeout: Duration,
}

/// The keys the write-path probe locks: spread over the key range as an application's writes are, when the
/// key is one integer column; otherwise the first key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeKeys {
    Uniform { low: i64, high: i64 },
    Fixed(Vec<String>),
}

impl ProbeKeys {
    pub(crate) fn from_range(
        key_types: &[String],
        min: Option<&Vec<String>>,
        max: Option<&Vec<String>>,
    ) -> Option<ProbeKeys> {
        let min = min?;
        let integer = |t: &str| {
            matches!(
                t.to_ascii_lowercase().as_str(),
                "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8"
            )
        };
        if let ([ty], [low], Some([high])) = (key_types, min.as_slice(), max.map(Vec::as_slice)) {
            if integer(ty) {
                if let (Ok(low), Ok(high)) = (low.parse::<i64>(), high.parse::<i64>()) {
                    if low <= high {
                        return Some(ProbeKeys::Uniform { low, high });
                    }
                }
            }
        }
        Some(ProbeKeys::Fixed(min.clone()))
    }

    /// The key for one probe, from a random number.
    pub(crate) fn pick(&self, random: u64) -> Vec<String> {
        match self {
            ProbeKeys::Uniform { low, high } => {
                let span = (*high as i128 - *low as i128 + 1) as u128;
                let offset = (random as u128) % span;
                vec![(*low as i128 + offset as i128).to_string()]
            }
            ProbeKeys::Fixed(key) => key.clone(),
        }
    }
}

impl WriteProbe {
    pub(super) fn new(
        d: &dyn Dialect,
        shape: &crate::dialect::BatchShape,
        keys: ProbeKeys,
        thresholds: &Thresholds,
    ) -> Self {
        Self {
            sql: d.write_probe(shape),
            shape: shape.clone(),
            keys,
            lock_timeout: probe_timeout(thresholds),
        }
    }

    /// One probe: how long locking the row took. A probe stopped by its lock timeout was at least that slow;
    /// a lost connection is an error; anything else is an unknown reading (fail closed).
    pub(super) async fn sample(
        &self,
        session: &dyn Session,
        d: &dyn Dialect,
        random: u64,
    ) -> Result<Reading<Duration>, DbError> {
        let params = d.probe_params(&self.shape, &self.keys.pick(random));
        let result = async {
            session
                .batch_execute(&d.write_probe_begin(self.lock_timeout))
                .await
                .map_err(|e| (e, Duration::ZERO))?;
            let started = Instant::now();
            let locked = session.rows(self.sql.as_str(), &params).await;
            let elapsed = started.elapsed();
            // Rolled back whatever happened: the probe never keeps a lock or changes a row.
            let ended = session.batch_execute(d.write_probe_end()).await;
            match (locked, ended) {
                (Err(e), _) | (Ok(_), Err(e)) => Err((e, elapsed)),
                (Ok(_), Ok(())) => Ok(elapsed),
            }
        }
        .await;
        match result {
            Ok(elapsed) => Ok(Reading::Value(elapsed)),
            Err((e, _)) if e.is_connection_lost() => Err(e),
            Err((e, elapsed))
                if matches!(
                    e.class,
                    ErrorClass::LockTimeout | ErrorClass::StatementTimeout
                ) =>
            {
                let _ = session.batch_execute(d.write_probe_end()).await;
                Ok(Reading::Value(elapsed))
            }
            Err((e, _)) => {
                let _ = session.batch_execute(d.write_probe_end()).await;
                Ok(Reading::Unknown(e.message))
            }
        }
    }
}

/// The pause between the probes taken before the run: apart enough not to measure one instant twice, short
/// enough that twenty of them cost the run a tenth of a second (at 20 ms they were a tenth of a 1M-row run).
const BASELINE_PROBE_SPACING: Duration = Duration::from_millis(5);

/// The write-path probe's latency before the run: `samples` probes, a little apart.
pub(super) async fn measure_write_probe(
    session: &dyn Session,
    d: &dyn Dialect,
    probe: &WriteProbe,
    samples: usize,
) -> Result<Vec<Duration>, DbError> {
    let mut measured = Vec::with_capacity(samples);
    for _ in 0..samples {
        match probe.sample(session, d, fastrand::u64(..)).await? {
            Reading::Value(latency) => measured.push(latency),
            Reading::Unknown(why) => return Err(DbError::other("the write-path probe", why)),
            Reading::NotWatched => {}
        }
        tokio::time::sleep(BASELINE_PROBE_SPACING).await;
    }
    Ok(measured)
}

fn probe_timeout(t: &Thresholds) -> Duration {
    (t.max_probe_latency * t.critical_factor.max(1) + Duration::from_millis(100))
        .max(Duration::from_millis(500))
}

enum Probe {
    None,
    /// The statement and its parameters.
    Key(String, Vec<Value>),
    Custom(String),
}

/// One reading of the signals a backfill watches, judged by a fresh policy: the gate `apply` checks before each
/// migration and between phases. `own_pids` are the caller's backends (not counted as active or as blocked by
/// us); `probe_sql` is a custom probe query, `throttle_query` the user's (true means wait).
pub async fn check_health(
    session: &dyn Session,
    own_pids: &[i32],
    thresholds: &Thresholds,
    probe_sql: Option<&str>,
    throttle_query: Option<&str>,
) -> Result<crate::throttle::Decision, DbError> {
    check_health_with(
        session,
        own_pids,
        thresholds,
        probe_sql,
        throttle_query,
        &mut super::ReplicaWatch::none(),
    )
    .await
}

/// As [`check_health`], with the lag of the replicas `replicas` watches (`--replica`) read on them.
pub async fn check_health_with(
    session: &dyn Session,
    own_pids: &[i32],
    thresholds: &Thresholds,
    probe_sql: Option<&str>,
    throttle_query: Option<&str>,
    replicas: &mut super::ReplicaWatch,
) -> Result<crate::throttle::Decision, DbError> {
    let probe = probe_sql.map_or(Probe::None, |sql| Probe::Custom(sql.to_string()));
    let d = dialect_for(session.family())?;
    let mut observation =
        observe(session, d, own_pids, &probe, throttle_query, Duration::ZERO).await?;
    if !replicas.is_empty() {
        let on_replicas = replicas.read(d).await;
        observation.replica_lag = super::replicas::merge(observation.replica_lag, on_replicas);
    }
    Ok(ThrottlePolicy::new(thresholds.clone()).decide(&observation))
}

/// Reads every health signal once. A connection loss is an error; any other failure is an unknown reading.
async fn observe(
    session: &dyn Session,
    d: &dyn Dialect,
    pids: &[i32],
    probe: &Probe,
    throttle_query: Option<&str>,
    at: Duration,
) -> Result<Observation, DbError> {
    fn reading<T>(result: Result<T, DbError>) -> Result<Reading<T>, DbError> {
        match result {
            Ok(v) => Ok(Reading::Value(v)),
            Err(e) if e.is_connection_lost() => Err(e),
            Err(e) => Ok(Reading::Unknown(e.message)),
        }
    }
    let blocked = reading(d.blocked_by_us(session, pids).await)?;
    let lag = match reading(d.replica_lag(session).await)? {
        Reading::Value(lag) if lag.replicas == 0 => Reading::Value(None),
        Reading::Value(lag) if lag.hidden > 0 => Reading::Unknown(format!(
            "{} replica(s) hidden from this role; grant pg_monitor or pass a higher --max-replica-lag",
            lag.hidden
        )),
        Reading::Value(lag) => Reading::Value(Some(lag.max_lag)),
        Reading::Unknown(why) => Reading::Unknown(why),
        Reading::NotWatched => Reading::NotWatched,
    };
    let active = reading(d.active_backends(session, pids).await)?;
    let oldest = reading(
        d.oldest_transaction(session, pids)
            .await
            .map(|o| o.map(|o| (o.pid, o.age))),
    )?;
    let started = Instant::now();
    let probe_result = match probe {
        Probe::None => None,
        Probe::Key(sql, key) => Some(session.rows(sql.as_str(), key).await.map(|_| ())),
        Probe::Custom(sql) => Some(session.query_text(sql).await.map(|_| ())),
    };
    let probe_latency = match probe_result {
        None => Reading::NotWatched,
        Some(Ok(())) => Reading::Value(started.elapsed()),
        Some(Err(e)) if e.is_connection_lost() => return Err(e),
        // A probe stopped by its timeout or by a lock timeout was at least that slow.
        Some(Err(e))
            if matches!(
                e.class,
                ErrorClass::StatementTimeout | ErrorClass::LockTimeout
            ) =>
        {
            Reading::Value(started.elapsed())
        }
        Some(Err(e)) => Reading::Unknown(e.message),
    };
    let throttle = match throttle_query {
        None => Reading::NotWatched,
        Some(sql) => match session.query_text(sql).await {
            Ok(rows) => match rows.first().map(|row| row.first().cloned().flatten()) {
                Some(Some(v)) => {
                    Reading::Value(matches!(v.as_str(), "t" | "true" | "1" | "on" | "yes"))
                }
                Some(None) => Reading::Value(false),
                None => Reading::Unknown("the throttle query returned no row".into()),
            },
            Err(e) if e.is_connection_lost() => return Err(e),
            Err(e) => Reading::Unknown(e.message),
        },
    };
    Ok(Observation {
        at,
        blocked_by_us: blocked,
        replica_lag: lag,
        active_backends: active,
        probe_latency,
        throttle_query: throttle,
        foreground_latency: Reading::NotWatched,
        oldest_transaction: oldest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn probe_keys_spread_over_an_integer_key_and_stay_inside_it() {
        let keys = ProbeKeys::from_range(
            &texts(&["bigint"]),
            Some(&texts(&["10"])),
            Some(&texts(&["19"])),
        )
        .unwrap();
        assert_eq!(keys, ProbeKeys::Uniform { low: 10, high: 19 });
        let picked: std::collections::BTreeSet<i64> = (0..200u64)
            .map(|r| {
                keys.pick(r.wrapping_mul(0x9e37_79b9_7f4a_7c15))[0]
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(picked, (10..=19).collect());
        // The whole i64 range does not overflow.
        let wide = ProbeKeys::Uniform {
            low: i64::MIN,
            high: i64::MAX,
        };
        assert_eq!(wide.pick(0), vec![i64::MIN.to_string()]);
        assert_eq!(wide.pick(u64::MAX), vec![i64::MAX.to_string()]);
    }

    #[test]
    fn other_keys_probe_the_first_key_and_an_empty_table_has_no_probe() {
        let composite = ProbeKeys::from_range(
            &texts(&["bigint", "bigint"]),
            Some(&texts(&["1", "2"])),
            Some(&texts(&["3", "4"])),
        );
        assert_eq!(composite, Some(ProbeKeys::Fixed(texts(&["1", "2"]))));
        let text_key = ProbeKeys::from_range(
            &texts(&["text"]),
            Some(&texts(&["a"])),
            Some(&texts(&["z"])),
        );
        assert_eq!(text_key, Some(ProbeKeys::Fixed(texts(&["a"]))));
        assert_eq!(ProbeKeys::from_range(&texts(&["bigint"]), None, None), None);
    }
}
