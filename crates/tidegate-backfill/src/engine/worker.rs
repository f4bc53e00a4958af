//! Workers: each claims a chunk of the key space (candidates read with `FOR UPDATE SKIP LOCKED`, ownership held
//! as a session-level advisory lock that dies with its connection) and walks it in batches, one short transaction
//! each, with the checkpoint in the same transaction. Lock conflicts shrink the batch and retry with backoff; a lost
//! connection reconnects and re-reads the checkpoint from the database; anything else stops the worker with the
//! reason.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_db::connect::{describe, is_connection_lost, sqlstate};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::{Ctx, Gate};
use crate::controller::{BatchController, ControllerConfig};
use crate::dialect::state as state_sql;
use crate::events::Event;
use crate::retry::{RetryDecision, RetryState};

pub(super) enum WorkerEnd {
    Done,
    Stopped,
    Failed(String),
}

struct WorkerConn {
    client: Client,
    pid: i32,
    bound: [Statement; 2],
    key_count: [Statement; 2],
    /// The batch's UPDATE or DELETE, without and with a lower bound.
    change: [Statement; 2],
    checkpoint: Statement,
}

#[derive(Debug, Clone)]
struct Chunk {
    no: i32,
    hi: Vec<String>,
    cursor: Option<Vec<String>>,
}

enum Failure {
    LockConflict(&'static str),
    StatementTimeout,
    ConnectionLost(String),
    ClaimLost,
    Fatal(String),
}

fn classify(error: &tokio_postgres::Error) -> Failure {
    if is_connection_lost(error) {
        return Failure::ConnectionLost(describe(error));
    }
    match sqlstate(error) {
        Some("55P03") => Failure::LockConflict("lock_timeout"),
        Some("40P01") => Failure::LockConflict("deadlock"),
        Some("40001") => Failure::LockConflict("serialization_failure"),
        Some("57014") => Failure::StatementTimeout,
        _ => Failure::Fatal(describe(error)),
    }
}

pub(super) async fn worker_loop(ctx: Arc<Ctx>, worker: u32) -> WorkerEnd {
    let mut conn: Option<WorkerConn> = None;
    let mut chunk: Option<Chunk> = None;
    let mut controller = BatchController::new(ctx.options.controller.clone());
    if let Some(limiter) = &ctx.limiter {
        let cap = limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .batch_cap();
        if controller.size() > cap {
            controller = BatchController::new(ControllerConfig {
                initial: cap,
                max: cap,
                ..ctx.options.controller.clone()
            });
        }
    }
    let mut lock_retry = RetryState::default();
    let mut reconnect = RetryState::default();
    let mut epoch_seen = ctx.throttle_epoch.load(Ordering::Relaxed);
    loop {
        match ctx.gate() {
            Gate::Go => {}
            Gate::Wait(_) | Gate::Paused(_) => {
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            Gate::Stop(_) | Gate::Abort(_) => return WorkerEnd::Stopped,
        }
        let epoch = ctx.throttle_epoch.load(Ordering::Relaxed);
        if epoch != epoch_seen {
            epoch_seen = epoch;
            controller.on_throttle();
        }
        if let Some(limiter) = &ctx.limiter {
            let wait = limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .wait_at(ctx.now());
            if !wait.is_zero() {
                tokio::time::sleep(wait.min(Duration::from_millis(50))).await;
                continue;
            }
        }
        if conn.is_none() {
            match connect_worker_checked(&ctx).await {
                Ok(c) => {
                    if reconnect.attempts() > 0 {
                        ctx.emit(Event::Reconnected {
                            run_id: ctx.run_id,
                            worker: Some(worker),
                        });
                    }
                    reconnect.on_success();
                    ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).push(c.pid);
                    conn = Some(c);
                }
                Err((message, true)) => {
                    return WorkerEnd::Failed(format!("preparing the batch statements: {message}"))
                }
                Err((message, false)) => match reconnect.on_failure(&ctx.options.reconnect, ctx.now(), fastrand::f64()) {
                    RetryDecision::RetryAfter { delay, attempt } => {
                        if attempt == 1 || attempt % 10 == 0 {
                            ctx.emit(Event::Reconnecting {
                                run_id: ctx.run_id,
                                worker: Some(worker),
                                attempt,
                                reason: message,
                            });
                        }
                        sleep_unless_stopped(&ctx, delay).await;
                        continue;
                    }
                    RetryDecision::GiveUp { attempts } => {
                        return WorkerEnd::Failed(format!(
                            "lost the database and could not reconnect after {attempts} attempts: {message}"
                        ))
                    }
                },
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        if chunk.is_none() {
            match claim_chunk(&ctx, c).await {
                Ok(Claim::Chunk(found)) => chunk = Some(found),
                Ok(Claim::Finished) => return WorkerEnd::Done,
                Ok(Claim::OthersBusy) => {
                    sleep_unless_stopped(&ctx, Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => match classify(&e) {
                    Failure::ConnectionLost(_) => {
                        drop_conn(&ctx, &mut conn, &mut chunk);
                        continue;
                    }
                    Failure::LockConflict(_) | Failure::StatementTimeout | Failure::ClaimLost => {
                        sleep_unless_stopped(&ctx, Duration::from_millis(100)).await;
                        continue;
                    }
                    Failure::Fatal(message) => {
                        return WorkerEnd::Failed(format!("claiming work: {message}"))
                    }
                },
            }
        }
        let Some(current) = chunk.clone() else {
            continue;
        };
        let size = controller.size();
        let started_at = ctx.now();
        match run_batch(&ctx, c, &current, size).await {
            Ok(batch) => {
                lock_retry.on_success();
                controller.observe(
                    batch.scanned.max(if batch.done { 0 } else { size }),
                    batch.statement_time,
                );
                if let Some(limiter) = &ctx.limiter {
                    limiter
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(started_at, batch.changed.max(1));
                }
                let rows_done =
                    ctx.rows_done.fetch_add(batch.changed, Ordering::Relaxed) + batch.changed;
                let rows_scanned =
                    ctx.rows_scanned.fetch_add(batch.scanned, Ordering::Relaxed) + batch.scanned;
                let batches = ctx.batches.fetch_add(1, Ordering::Relaxed) + 1;
                ctx.last_batch_size.store(size, Ordering::Relaxed);
                ctx.last_statement_us
                    .store(batch.statement_time.as_micros() as u64, Ordering::Relaxed);
                let elapsed = ctx.now().as_secs_f64().max(0.001);
                let scan_rate = rows_scanned.saturating_sub(ctx.initial_scanned) as f64 / elapsed;
                let eta = ctx.estimated_rows.and_then(|est| {
                    (scan_rate > 0.0)
                        .then(|| ((est as f64 - rows_scanned as f64).max(0.0)) / scan_rate)
                });
                (ctx.sink)(&Event::Batch {
                    run_id: ctx.run_id,
                    worker,
                    rows: batch.changed,
                    scanned: batch.scanned,
                    batch_size: size,
                    next_batch_size: controller.size(),
                    statement_ms: batch.statement_time.as_secs_f64() * 1000.0,
                    rows_done,
                    rows_scanned,
                    batches,
                    rows_per_second: rows_done.saturating_sub(ctx.initial_done) as f64 / elapsed,
                    estimated_rows: ctx.estimated_rows,
                    eta_seconds: eta,
                });
                if batch.done {
                    let _ = c
                        .client
                        .execute(state_sql::RELEASE_CLAIM, &[&ctx.run_id, &current.no])
                        .await;
                    chunk = None;
                } else {
                    chunk = Some(Chunk {
                        cursor: Some(batch.new_cursor),
                        ..current
                    });
                }
            }
            Err(failure) => match failure {
                Failure::LockConflict(_) | Failure::StatementTimeout => {
                    let cause = match failure {
                        Failure::LockConflict(cause) => {
                            controller.on_lock_conflict();
                            cause
                        }
                        _ => {
                            controller.on_statement_timeout();
                            "statement_timeout"
                        }
                    };
                    match lock_retry.on_failure(&ctx.options.lock_retry, ctx.now(), fastrand::f64())
                    {
                        RetryDecision::RetryAfter { delay, attempt } => {
                            ctx.emit(Event::Retry {
                                run_id: ctx.run_id,
                                worker,
                                cause: cause.to_string(),
                                attempt,
                                backoff_ms: delay.as_millis() as u64,
                                next_batch_size: controller.size(),
                            });
                            sleep_unless_stopped(&ctx, delay).await;
                        }
                        RetryDecision::GiveUp { attempts } => {
                            let blockers = lock_holders(&ctx, c).await;
                            return WorkerEnd::Failed(format!(
                                "batches on {}.{} kept failing with {cause} ({attempts} attempts in a row); {blockers}. \
                                 End or wait for that session, then run the same command to resume",
                                ctx.shape.schema, ctx.shape.table
                            ));
                        }
                    }
                }
                Failure::ConnectionLost(message) => {
                    ctx.emit(Event::Reconnecting {
                        run_id: ctx.run_id,
                        worker: Some(worker),
                        attempt: 0,
                        reason: message,
                    });
                    drop_conn(&ctx, &mut conn, &mut chunk);
                }
                Failure::ClaimLost => {
                    // Someone else moved this chunk's cursor: let go of it and claim again from the database.
                    let _ = c
                        .client
                        .execute(state_sql::RELEASE_CLAIM, &[&ctx.run_id, &current.no])
                        .await;
                    chunk = None;
                }
                Failure::Fatal(message) => {
                    let range = match &current.cursor {
                        Some(lo) => format!(
                            "({}) > ({}) up to {size} rows",
                            ctx.shape.key_columns.join(", "),
                            lo.join(", ")
                        ),
                        None => format!("the first {size} rows of chunk {}", current.no),
                    };
                    return WorkerEnd::Failed(format!(
                        "the batch over {range} failed: {message}. Nothing of that batch was applied; fix the cause \
                         and run the same command to resume"
                    ));
                }
            },
        }
    }
}

/// Connects and prepares a worker's statements. The error says whether retrying can help: a lost or refused
/// connection and lock timeouts can; anything else the server reports (the table is gone, a privilege was
/// revoked) cannot.
async fn connect_worker_checked(ctx: &Ctx) -> Result<WorkerConn, (String, bool)> {
    let d = ctx.dialect.as_ref();
    let client = ctx
        .config
        .connect()
        .await
        // A refusal that retrying cannot fix (a wrong password, a missing database) is fatal at once.
        .map_err(|e| (e.to_string(), e.is_permanent()))?;
    let setup = async {
        client
            .batch_execute(&d.session_settings(
                ctx.options.lock_timeout,
                ctx.options.effective_statement_timeout(),
            ))
            .await?;
        let pid: i32 = client.query_one(d.backend_pid(), &[]).await?.get(0);
        let bound = [
            client
                .prepare(&d.batch_upper_bound(&ctx.shape, false))
                .await?,
            client
                .prepare(&d.batch_upper_bound(&ctx.shape, true))
                .await?,
        ];
        let key_count = [
            client
                .prepare(&d.batch_key_count(&ctx.shape, false))
                .await?,
            client.prepare(&d.batch_key_count(&ctx.shape, true)).await?,
        ];
        let change = [
            client.prepare(&d.batch_change(&ctx.shape, false)).await?,
            client.prepare(&d.batch_change(&ctx.shape, true)).await?,
        ];
        let checkpoint = client.prepare(state_sql::CHECKPOINT).await?;
        Ok::<_, tokio_postgres::Error>((pid, bound, key_count, change, checkpoint))
    };
    match setup.await {
        Ok((pid, bound, key_count, change, checkpoint)) => Ok(WorkerConn {
            client,
            pid,
            bound,
            key_count,
            change,
            checkpoint,
        }),
        Err(e) => {
            let fatal = !matches!(
                classify(&e),
                Failure::ConnectionLost(_) | Failure::LockConflict(_) | Failure::StatementTimeout
            );
            Err((describe(&e), fatal))
        }
    }
}

/// Names the sessions holding locks on the table (the likely blockers), for the give-up message.
async fn lock_holders(ctx: &Ctx, conn: &WorkerConn) -> String {
    let d = ctx.dialect.as_ref();
    let table = format!(
        "{}.{}",
        d.quote_ident(&ctx.shape.schema),
        d.quote_ident(&ctx.shape.table)
    );
    let pids = ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match conn.client.query(d.lock_holders(), &[&table, &pids]).await {
        Ok(rows) if !rows.is_empty() => {
            let named: Vec<String> =
                rows.iter()
                    .map(|r| {
                        let (pid, app, state, age, query): (i32, String, String, f64, String) =
                            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                        format!(
                        "pid {pid} ({}{state}, transaction open {age:.0}s, last query: {query})",
                        if app.is_empty() { String::new() } else { format!("{app}, ") }
                    )
                    })
                    .collect();
            format!("sessions holding locks on the table: {}", named.join("; "))
        }
        Ok(_) => "no session holds a lock on the table any more".into(),
        Err(e) => format!("could not list the lock holders ({})", describe(&e)),
    }
}

fn drop_conn(ctx: &Ctx, conn: &mut Option<WorkerConn>, chunk: &mut Option<Chunk>) {
    if let Some(c) = conn.take() {
        ctx.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != c.pid);
    }
    // The claim died with the connection; the cursor is re-read from the database on the next claim.
    *chunk = None;
}

async fn sleep_unless_stopped(ctx: &Ctx, total: Duration) {
    let until = Instant::now() + total;
    while Instant::now() < until {
        if matches!(ctx.gate(), Gate::Stop(_) | Gate::Abort(_)) {
            return;
        }
        tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(50))).await;
    }
}

enum Claim {
    Chunk(Chunk),
    /// Every chunk is done and the frontier is exhausted.
    Finished,
    /// Work remains but other workers hold it.
    OthersBusy,
}

async fn claim_chunk(ctx: &Ctx, conn: &WorkerConn) -> Result<Claim, tokio_postgres::Error> {
    let d = ctx.dialect.as_ref();
    let client = &conn.client;
    // 1. An unfinished chunk nobody holds (left by a dead or stopped worker).
    client.batch_execute(state_sql::BEGIN).await?;
    let claimed = async {
        let candidates = client
            .query(state_sql::CLAIM_CANDIDATES, &[&ctx.run_id])
            .await?;
        for row in candidates {
            let no: i32 = row.get(0);
            let ok: bool = client
                .query_one(state_sql::TRY_CLAIM, &[&ctx.run_id, &no])
                .await?
                .get(0);
            if ok {
                return Ok::<_, tokio_postgres::Error>(Some(Chunk {
                    no,
                    hi: row.get(2),
                    cursor: row.get(3),
                }));
            }
        }
        Ok(None)
    }
    .await;
    match claimed {
        Ok(found) => {
            client.batch_execute(state_sql::COMMIT).await?;
            if let Some(chunk) = found {
                return Ok(Claim::Chunk(chunk));
            }
        }
        Err(e) => {
            let _ = client.batch_execute(state_sql::ROLLBACK).await;
            return Err(e);
        }
    }
    // 2. Extend the frontier by one chunk.
    client.batch_execute(state_sql::BEGIN).await?;
    let extended = async {
        let row = client
            .query_one(state_sql::LOCK_FRONTIER, &[&ctx.run_id])
            .await?;
        let frontier: Option<Vec<String>> = row.get(0);
        let key_max: Option<Vec<String>> = row.get(1);
        let exhausted: bool = row.get(2);
        let next_no: i32 = row.get(3);
        let Some(key_max) = key_max.filter(|_| !exhausted) else {
            return Ok::<_, tokio_postgres::Error>(None);
        };
        let mut params: Vec<String> = Vec::new();
        if let Some(f) = &frontier {
            params.extend(f.iter().cloned());
        }
        params.extend(key_max.iter().cloned());
        params.push((ctx.options.chunk_rows.max(1) - 1).to_string());
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let bound = client
            .query_opt(&d.batch_upper_bound(&ctx.shape, frontier.is_some()), &refs)
            .await?
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, String>(i))
                    .collect::<Vec<String>>()
            });
        let (hi, exhausted) = match bound {
            Some(hi) if hi != key_max => (hi, false),
            _ => (key_max, true),
        };
        client
            .execute(
                state_sql::INSERT_CHUNK,
                &[&ctx.run_id, &next_no, &frontier, &hi],
            )
            .await?;
        let _: bool = client
            .query_one(state_sql::TRY_CLAIM, &[&ctx.run_id, &next_no])
            .await?
            .get(0);
        client
            .execute(
                state_sql::ADVANCE_FRONTIER,
                &[&ctx.run_id, &Some(hi.clone()), &exhausted],
            )
            .await?;
        Ok(Some(Chunk {
            no: next_no,
            hi,
            cursor: frontier,
        }))
    }
    .await;
    match extended {
        Ok(Some(chunk)) => {
            client.batch_execute(state_sql::COMMIT).await?;
            Ok(Claim::Chunk(chunk))
        }
        Ok(None) => {
            client.batch_execute(state_sql::COMMIT).await?;
            let row = client
                .query_one(state_sql::REMAINING, &[&ctx.run_id])
                .await?;
            let (exhausted, remaining): (bool, i64) = (row.get(0), row.get(1));
            if exhausted && remaining == 0 {
                Ok(Claim::Finished)
            } else {
                Ok(Claim::OthersBusy)
            }
        }
        Err(e) => {
            let _ = client.batch_execute(state_sql::ROLLBACK).await;
            Err(e)
        }
    }
}

struct BatchDone {
    changed: u64,
    scanned: u64,
    statement_time: Duration,
    new_cursor: Vec<String>,
    done: bool,
}

/// One batch: bound, UPDATE or DELETE, and checkpoint in one short transaction.
async fn run_batch(
    ctx: &Ctx,
    conn: &WorkerConn,
    chunk: &Chunk,
    size: u64,
) -> Result<BatchDone, Failure> {
    let d = ctx.dialect.as_ref();
    let client = &conn.client;
    let has_lower = chunk.cursor.is_some();
    let which = usize::from(has_lower);
    let fail = |e: tokio_postgres::Error| classify(&e);
    client
        .batch_execute(&format!(
            "{}; {}",
            state_sql::BEGIN,
            d.batch_settings(
                ctx.options.lock_timeout,
                ctx.options.effective_statement_timeout()
            )
        ))
        .await
        .map_err(fail)?;
    let body = async {
        let mut params: Vec<String> = Vec::new();
        if let Some(lo) = &chunk.cursor {
            params.extend(lo.iter().cloned());
        }
        params.extend(chunk.hi.iter().cloned());
        params.push((size.max(1) - 1).to_string());
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let bound = client
            .query_opt(&conn.bound[which], &refs)
            .await
            .map_err(fail)?
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, String>(i))
                    .collect::<Vec<String>>()
            });
        let (upper, done, counted) = match bound {
            Some(b) if b != chunk.hi => (b, false, Some(size)),
            Some(b) => (b, true, Some(size)),
            None => (chunk.hi.clone(), true, None),
        };
        let mut change_params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(lo) = &chunk.cursor {
            change_params.extend(lo.iter().map(|p| p as &(dyn ToSql + Sync)));
        }
        change_params.extend(upper.iter().map(|p| p as &(dyn ToSql + Sync)));
        // Counted before the change: after a DELETE the rows it removed are no longer there to count.
        let scanned = match counted {
            Some(n) => n,
            None => {
                let n: i64 = client
                    .query_one(&conn.key_count[which], &change_params)
                    .await
                    .map_err(fail)?
                    .get(0);
                n.max(0) as u64
            }
        };
        let started = Instant::now();
        let changed = client
            .execute(&conn.change[which], &change_params)
            .await
            .map_err(fail)?;
        let statement_time = started.elapsed();
        let moved = client
            .execute(
                &conn.checkpoint,
                &[
                    &ctx.run_id,
                    &chunk.no,
                    &Some(upper.clone()),
                    &(changed as i64),
                    &(scanned as i64),
                    &done,
                    &chunk.cursor,
                ],
            )
            .await
            .map_err(fail)?;
        if moved != 1 {
            return Err(Failure::ClaimLost);
        }
        Ok(BatchDone {
            changed,
            scanned,
            statement_time,
            new_cursor: upper,
            done,
        })
    }
    .await;
    match body {
        Ok(batch) => {
            client
                .batch_execute(state_sql::COMMIT)
                .await
                .map_err(fail)?;
            Ok(batch)
        }
        Err(failure) => {
            let _ = client.batch_execute(state_sql::ROLLBACK).await;
            Err(failure)
        }
    }
}
