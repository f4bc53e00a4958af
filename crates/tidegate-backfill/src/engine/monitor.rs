//! The monitor: one task on its own connection that reads the control flags and the health signals every
//! `health_interval`, decides through the pure [`ThrottlePolicy`], opens or closes the gate the workers pass before
//! each batch, writes status changes and the journal, and reconnects (failing closed) when its connection drops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_db::connect::{describe, is_connection_lost, sqlstate};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::{Ctx, Gate, StopHandle, WaitReason};
use crate::dialect::{state as state_sql, Dialect};
use crate::events::Event;
use crate::pacing::utc_second_of_day;
use crate::retry::{RetryDecision, RetryState};
use crate::state::{self, Control, RunStatus};
use crate::throttle::{Level, Observation, Reading, Thresholds, ThrottlePolicy};

pub(super) async fn monitor_loop(
    ctx: Arc<Ctx>,
    client: Client,
    mut journal_rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    probe_key: Option<Vec<String>>,
    stop: StopHandle,
) -> Option<(Client, tokio::sync::mpsc::UnboundedReceiver<Event>)> {
    let d = ctx.dialect.clone();
    let mut client = Some(client);
    let mut attached = false;
    let mut policy = ThrottlePolicy::new(ctx.options.thresholds.clone());
    let mut reconnect = RetryState::default();
    let mut status = RunStatus::Running;
    let mut last_gate = Gate::Wait(WaitReason::Starting);
    let mut last_sample = Instant::now();
    let mut last_note = String::new();
    let probe = match &ctx.options.probe_sql {
        Some(sql) => Probe::Custom(sql.clone()),
        None => match probe_key {
            Some(key) => Probe::Key(d.default_probe(&ctx.shape), key),
            None => Probe::None,
        },
    };
    loop {
        // Workers finished (or are finishing): hand the connection back for the final write.
        if ctx.finishing.load(Ordering::Relaxed) {
            return client.map(|c| (c, journal_rx));
        }
        if client.is_none() {
            match ctx.config.connect().await {
                Ok(c) => {
                    reconnect.on_success();
                    client = Some(c);
                    attached = false;
                    ctx.emit(Event::Reconnected {
                        run_id: ctx.run_id,
                        worker: None,
                    });
                }
                Err(e) if e.is_permanent() => {
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
        let Some(c) = client.as_ref() else { continue };
        let tick = async {
            if !attached {
                let settings = d.session_settings(
                    ctx.options.lock_timeout,
                    probe_timeout(&ctx.options.thresholds),
                );
                c.batch_execute(&settings).await?;
                c.execute(state_sql::ATTACH_LOCK, &[&ctx.run_id]).await?;
            }
            // Journal what the workers reported.
            while let Ok(event) = journal_rx.try_recv() {
                if let Some(name) = event.journal_name() {
                    state::journal(c, ctx.run_id, name, &event.to_json()).await?;
                }
            }
            if last_sample.elapsed() >= ctx.options.journal_sample_every {
                last_sample = Instant::now();
                let detail = serde_json::json!({
                    "rows_done": ctx.rows_done.load(Ordering::Relaxed),
                    "rows_scanned": ctx.rows_scanned.load(Ordering::Relaxed),
                    "batches": ctx.batches.load(Ordering::Relaxed),
                    "batch_size": ctx.last_batch_size.load(Ordering::Relaxed),
                    "statement_ms": ctx.last_statement_us.load(Ordering::Relaxed) as f64 / 1000.0,
                });
                state::journal(c, ctx.run_id, "batch_stats", &detail).await?;
                c.execute(state_sql::TOUCH, &[&ctx.run_id]).await?;
            }
            let control_row = c.query_opt(state_sql::READ_CONTROL, &[&ctx.run_id]).await?;
            let (control, db_status) = match &control_row {
                Some(r) => (
                    r.get::<_, Option<&str>>(0).and_then(Control::from_db),
                    RunStatus::from_db(r.get::<_, &str>(1)),
                ),
                // The run's row is gone: nothing is left to work for.
                None => (Some(Control::Abort), RunStatus::Aborted),
            };
            let pids = ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let obs = observe(
                c,
                d.as_ref(),
                &pids,
                &probe,
                ctx.options.throttle_query.as_deref(),
                ctx.now(),
            )
            .await?;
            Ok::<_, tokio_postgres::Error>((control, db_status, obs))
        };
        let (control, db_status, obs) = match tick.await {
            Ok(v) => {
                attached = true;
                v
            }
            Err(e) if is_connection_lost(&e) => {
                client = None;
                ctx.set_gate(Gate::Wait(WaitReason::MonitorReconnecting));
                ctx.emit(Event::Reconnecting {
                    run_id: ctx.run_id,
                    worker: None,
                    attempt: 0,
                    reason: describe(&e),
                });
                continue;
            }
            Err(e) => {
                // A state query failed for another reason: fail closed and say so.
                ctx.set_gate(Gate::Wait(WaitReason::MonitorQueryFailed {
                    error: describe(&e),
                }));
                tokio::time::sleep(ctx.options.health_interval).await;
                continue;
            }
        };
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
                    let event = Event::Throttled {
                        run_id: ctx.run_id,
                        level: Level::Throttle,
                        reason,
                        signals,
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
                    let critical =
                        if control != Some(Control::Pause) && decision.level == Level::Critical {
                            decision.signals.clone()
                        } else {
                            Vec::new()
                        };
                    ctx.emit(Event::Paused {
                        run_id: ctx.run_id,
                        reason: r.clone(),
                        critical,
                    })
                }
                _ => {}
            }
            if new_status != status || matches!(gate, Gate::Wait(_) | Gate::Paused(_)) {
                let base_reason = reason;
                if let Err(e) = c
                    .execute(
                        state_sql::SET_STATUS,
                        &[&ctx.run_id, &new_status.as_str(), &base_reason],
                    )
                    .await
                {
                    if is_connection_lost(&e) {
                        client = None;
                        continue;
                    }
                }
                status = new_status;
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
        tokio::time::sleep(ctx.options.health_interval).await;
    }
}

fn probe_timeout(t: &Thresholds) -> Duration {
    (t.max_probe_latency * t.critical_factor.max(1) + Duration::from_millis(100))
        .max(Duration::from_millis(500))
}

enum Probe {
    None,
    Key(String, Vec<String>),
    Custom(String),
}

/// One reading of the signals a backfill watches, judged by a fresh policy: the gate `apply` checks before each
/// migration and between phases. `own_pids` are the caller's backends (not counted as active or as blocked by
/// us); `probe_sql` is a custom probe query, `throttle_query` the user's (true means wait).
pub async fn check_health(
    client: &Client,
    own_pids: &[i32],
    thresholds: &Thresholds,
    probe_sql: Option<&str>,
    throttle_query: Option<&str>,
) -> Result<crate::throttle::Decision, tokio_postgres::Error> {
    let probe = probe_sql.map_or(Probe::None, |sql| Probe::Custom(sql.to_string()));
    let observation = observe(
        client,
        &crate::dialect::Postgres,
        own_pids,
        &probe,
        throttle_query,
        Duration::ZERO,
    )
    .await?;
    Ok(ThrottlePolicy::new(thresholds.clone()).decide(&observation))
}

/// Reads every health signal once. A connection loss is an error; any other failure is an unknown reading.
async fn observe(
    client: &Client,
    d: &dyn Dialect,
    pids: &[i32],
    probe: &Probe,
    throttle_query: Option<&str>,
    at: Duration,
) -> Result<Observation, tokio_postgres::Error> {
    fn reading<T>(
        result: Result<T, tokio_postgres::Error>,
    ) -> Result<Reading<T>, tokio_postgres::Error> {
        match result {
            Ok(v) => Ok(Reading::Value(v)),
            Err(e) if is_connection_lost(&e) => Err(e),
            Err(e) => Ok(Reading::Unknown(describe(&e))),
        }
    }
    let pids = pids.to_vec();
    let blocked = reading(
        client
            .query_one(d.blocked_by_us(), &[&pids])
            .await
            .map(|r| r.get::<_, i64>(0) as u32),
    )?;
    let lag = match client.query_one(d.replica_lag(), &[]).await {
        Ok(r) => {
            let (replicas, hidden, lag): (i64, i64, f64) = (r.get(0), r.get(1), r.get(2));
            if replicas == 0 {
                Reading::Value(None)
            } else if hidden > 0 {
                Reading::Unknown(format!(
                    "{hidden} replica(s) hidden from this role; grant pg_monitor or pass a higher --max-replica-lag"
                ))
            } else {
                Reading::Value(Some(Duration::from_secs_f64(lag.max(0.0))))
            }
        }
        Err(e) if is_connection_lost(&e) => return Err(e),
        Err(e) => Reading::Unknown(describe(&e)),
    };
    let active = reading(
        client
            .query_one(d.active_backends(), &[&pids])
            .await
            .map(|r| r.get::<_, i64>(0) as u32),
    )?;
    let oldest = reading(
        client
            .query_opt(d.oldest_transaction(), &[&pids])
            .await
            .map(|r| {
                r.map(|r| {
                    let age: f64 = r.get(1);
                    (r.get::<_, i32>(0), Duration::from_secs_f64(age.max(0.0)))
                })
            }),
    )?;
    let started = Instant::now();
    let probe_result = match probe {
        Probe::None => None,
        Probe::Key(sql, key) => {
            let params: Vec<&(dyn ToSql + Sync)> =
                key.iter().map(|k| k as &(dyn ToSql + Sync)).collect();
            Some(client.query(sql.as_str(), &params).await.map(|_| ()))
        }
        Probe::Custom(sql) => Some(client.simple_query(sql).await.map(|_| ())),
    };
    let probe_latency = match probe_result {
        None => Reading::NotWatched,
        Some(Ok(())) => Reading::Value(started.elapsed()),
        Some(Err(e)) if is_connection_lost(&e) => return Err(e),
        // A probe stopped by its timeout or by a lock timeout was at least that slow.
        Some(Err(e)) if matches!(sqlstate(&e), Some("57014") | Some("55P03")) => {
            Reading::Value(started.elapsed())
        }
        Some(Err(e)) => Reading::Unknown(describe(&e)),
    };
    let throttle = match throttle_query {
        None => Reading::NotWatched,
        Some(sql) => match client.simple_query(sql).await {
            Ok(messages) => {
                let first = messages.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).map(str::to_string))
                    }
                    _ => None,
                });
                match first {
                    Some(Some(v)) => {
                        Reading::Value(matches!(v.as_str(), "t" | "true" | "1" | "on" | "yes"))
                    }
                    Some(None) => Reading::Value(false),
                    None => Reading::Unknown("the throttle query returned no row".into()),
                }
            }
            Err(e) if is_connection_lost(&e) => return Err(e),
            Err(e) => Reading::Unknown(describe(&e)),
        },
    };
    Ok(Observation {
        at,
        blocked_by_us: blocked,
        replica_lag: lag,
        active_backends: active,
        probe_latency,
        throttle_query: throttle,
        oldest_transaction: oldest,
    })
}
