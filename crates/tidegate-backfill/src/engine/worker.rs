//! Workers: each claims a chunk of the key space (candidates read with `FOR UPDATE SKIP LOCKED`, ownership held
//! as a session-level advisory lock that dies with its connection) and walks it in batches, one short transaction
//! each, with the checkpoint in the same transaction. Lock conflicts shrink the batch and retry with backoff; a lost
//! connection reconnects and re-reads the checkpoint from the database; anything else stops the worker with the
//! reason.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_db::connect::DbError;
use tidegate_db::driver::{ErrorClass, Prepared, Session, SessionExt};

use super::{Ctx, Gate};
use crate::controller::{BatchController, ControllerConfig};
use crate::events::Event;
use crate::retry::{RetryDecision, RetryState};

pub(super) enum WorkerEnd {
    Done,
    /// Fewer workers are wanted (`--workers auto`): left between two chunks, nothing held.
    Retired,
    Stopped,
    Failed(String),
}

struct WorkerConn {
    session: Box<dyn Session>,
    pid: i32,
    bound: [Prepared; 2],
    key_count: [Prepared; 2],
    /// The batch's UPDATE or DELETE, without and with a lower bound.
    change: [Prepared; 2],
    checkpoint: Prepared,
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

fn classify(error: &DbError) -> Failure {
    match error.class {
        ErrorClass::ConnectionLost => Failure::ConnectionLost(error.message.clone()),
        class @ (ErrorClass::LockTimeout
        | ErrorClass::Deadlock
        | ErrorClass::SerializationFailure) => Failure::LockConflict(class.as_str()),
        ErrorClass::StatementTimeout => Failure::StatementTimeout,
        ErrorClass::UniqueViolation | ErrorClass::Other => Failure::Fatal(error.message.clone()),
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
            if worker >= ctx.worker_target.load(Ordering::Relaxed) {
                drop_conn(&ctx, &mut conn, &mut chunk);
                return WorkerEnd::Retired;
            }
            match claim_chunk(
                &ctx,
                c,
                chunk_keys(ctx.options.chunk_rows, controller.size()),
            )
            .await
            {
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
                ctx.batch_ms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((batch.statement_time.as_secs_f64() * 100_000.0).round() / 100.0);
                let elapsed = ctx.now().as_secs_f64().max(0.001);
                let eta = {
                    let mut rates = ctx.rates.lock().unwrap_or_else(|e| e.into_inner());
                    rates.record(ctx.now(), rows_scanned);
                    ctx.estimated_rows
                        .and_then(|est| rates.eta_seconds(est.max(0) as u64))
                };
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
                        .session
                        .run(
                            ctx.dialect.state().release_claim,
                            &[ctx.run_id.into(), current.no.into()],
                        )
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
                        .session
                        .run(
                            ctx.dialect.state().release_claim,
                            &[ctx.run_id.into(), current.no.into()],
                        )
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
    let d = ctx.dialect;
    let session = ctx
        .driver
        .open()
        .await
        // A refusal that retrying cannot fix (a wrong password, a missing database) is fatal at once.
        .map_err(|e| (e.to_string(), e.class == ErrorClass::Other))?;
    let setup = async {
        session
            .batch_execute(&d.session_settings(
                ctx.options.lock_timeout,
                ctx.options.effective_statement_timeout(),
            ))
            .await?;
        let pid = d.backend_pid(session.as_ref()).await?;
        let prepare = |sql: String| {
            let session = session.as_ref();
            async move { session.prepare(&sql).await }
        };
        let bound = [
            prepare(d.batch_upper_bound(&ctx.shape, false)).await?,
            prepare(d.batch_upper_bound(&ctx.shape, true)).await?,
        ];
        let key_count = [
            prepare(d.batch_key_count(&ctx.shape, false)).await?,
            prepare(d.batch_key_count(&ctx.shape, true)).await?,
        ];
        let change = [
            prepare(d.batch_change(&ctx.shape, false)).await?,
            prepare(d.batch_change(&ctx.shape, true)).await?,
        ];
        let checkpoint = prepare(d.state().checkpoint.to_string()).await?;
        Ok::<_, DbError>((pid, bound, key_count, change, checkpoint))
    };
    match setup.await {
        Ok((pid, bound, key_count, change, checkpoint)) => Ok(WorkerConn {
            session,
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
            Err((e.message, fatal))
        }
    }
}

/// Names the sessions holding locks on the table (the likely blockers), for the give-up message.
async fn lock_holders(ctx: &Ctx, conn: &WorkerConn) -> String {
    let pids = ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match ctx
        .dialect
        .lock_holders(conn.session.as_ref(), &ctx.shape, &pids)
        .await
    {
        Ok(holders) if !holders.is_empty() => {
            let named: Vec<String> = holders
                .iter()
                .map(|h| {
                    format!(
                        "pid {} ({}{}, transaction open {:.0}s, last query: {})",
                        h.pid,
                        if h.application_name.is_empty() {
                            String::new()
                        } else {
                            format!("{}, ", h.application_name)
                        },
                        h.state,
                        h.transaction_age_seconds.unwrap_or(0.0),
                        h.query
                    )
                })
                .collect();
            format!("sessions holding locks on the table: {}", named.join("; "))
        }
        Ok(_) => "no session holds a lock on the table any more".into(),
        Err(e) => format!("could not list the lock holders ({})", e.message),
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

/// Batches a new chunk holds at the worker's current batch size. A chunk capped below the batch size the
/// controller asks for caps every batch (a plain table's batches wanted 30,000+ keys and got 20,000), and one batch
/// per chunk pays a claim (two transactions and a key-range scan) per batch; a few batches per chunk keep both away
/// while leaving chunks small enough to share the table's tail between workers.
const BATCHES_PER_CHUNK: u64 = 4;

/// The keys a new chunk is cut to: `chunk_rows` at least, else room for [`BATCHES_PER_CHUNK`] batches.
fn chunk_keys(chunk_rows: u64, batch_size: u64) -> u64 {
    chunk_rows
        .max(batch_size.saturating_mul(BATCHES_PER_CHUNK))
        .max(1)
}

enum Claim {
    Chunk(Chunk),
    /// Every chunk is done and the frontier is exhausted.
    Finished,
    /// Work remains but other workers hold it.
    OthersBusy,
}

async fn claim_chunk(ctx: &Ctx, conn: &WorkerConn, keys: u64) -> Result<Claim, DbError> {
    let d = ctx.dialect;
    let sql = d.state();
    let session = conn.session.as_ref();
    // 1. An unfinished chunk nobody holds (left by a dead or stopped worker).
    session.batch_execute(sql.begin).await?;
    let claimed = async {
        let candidates = session
            .rows(sql.claim_candidates, &[ctx.run_id.into()])
            .await?;
        for row in candidates {
            let no: i32 = row.get("chunk_no")?;
            let ok: bool = session
                .query_one(sql.try_claim, &[ctx.run_id.into(), no.into()])
                .await?
                .get("claimed")?;
            if ok {
                return Ok::<_, DbError>(Some(Chunk {
                    no,
                    hi: row.get("hi")?,
                    cursor: row.get("cursor")?,
                }));
            }
        }
        Ok(None)
    }
    .await;
    match claimed {
        Ok(found) => {
            session.batch_execute(sql.commit).await?;
            if let Some(chunk) = found {
                return Ok(Claim::Chunk(chunk));
            }
        }
        Err(e) => {
            let _ = session.batch_execute(sql.rollback).await;
            return Err(e);
        }
    }
    // 2. Extend the frontier by one chunk.
    session.batch_execute(sql.begin).await?;
    let extended = async {
        let row = session
            .query_one(sql.lock_frontier, &[ctx.run_id.into()])
            .await?;
        let frontier: Option<Vec<String>> = row.get("frontier")?;
        let key_max: Option<Vec<String>> = row.get("key_max")?;
        let exhausted: bool = row.get("exhausted")?;
        let next_no: i32 = row.get("next_chunk")?;
        let Some(key_max) = key_max.filter(|_| !exhausted) else {
            return Ok::<_, DbError>(None);
        };
        let params = d.bound_params(
            &ctx.shape,
            frontier.as_deref(),
            &key_max,
            Some(keys.max(1) - 1),
        );
        let bound = session
            .query_opt(
                &d.batch_upper_bound(&ctx.shape, frontier.is_some()),
                &params,
            )
            .await?
            .map(|r| r.texts())
            .transpose()?;
        let (hi, exhausted) = match bound {
            Some(hi) if hi != key_max => (hi, false),
            _ => (key_max, true),
        };
        session
            .run(
                sql.insert_chunk,
                &[
                    ctx.run_id.into(),
                    next_no.into(),
                    frontier.clone().into(),
                    hi.clone().into(),
                ],
            )
            .await?;
        session
            .query_one(sql.try_claim, &[ctx.run_id.into(), next_no.into()])
            .await?;
        session
            .run(
                sql.advance_frontier,
                &[ctx.run_id.into(), hi.clone().into(), exhausted.into()],
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
            session.batch_execute(sql.commit).await?;
            Ok(Claim::Chunk(chunk))
        }
        Ok(None) => {
            session.batch_execute(sql.commit).await?;
            let row = session
                .query_one(sql.remaining, &[ctx.run_id.into()])
                .await?;
            let (exhausted, remaining): (bool, i64) =
                (row.get("exhausted")?, row.get("remaining")?);
            if exhausted && remaining == 0 {
                Ok(Claim::Finished)
            } else {
                Ok(Claim::OthersBusy)
            }
        }
        Err(e) => {
            let _ = session.batch_execute(sql.rollback).await;
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
    let d = ctx.dialect;
    let sql = d.state();
    let session = conn.session.as_ref();
    let has_lower = chunk.cursor.is_some();
    let which = usize::from(has_lower);
    let fail = |e: DbError| classify(&e);
    session
        .batch_execute(&format!(
            "{}; {}",
            sql.begin,
            d.batch_settings(
                ctx.options.lock_timeout,
                ctx.options.effective_statement_timeout()
            )
        ))
        .await
        .map_err(fail)?;
    let body = async {
        let params = d.bound_params(
            &ctx.shape,
            chunk.cursor.as_deref(),
            &chunk.hi,
            Some(size.max(1) - 1),
        );
        let bound = session
            .query_opt(&conn.bound[which], &params)
            .await
            .map_err(fail)?
            .map(|r| r.texts())
            .transpose()
            .map_err(|e| fail(e.into()))?;
        let (upper, done, counted) = match bound {
            Some(b) if b != chunk.hi => (b, false, Some(size)),
            Some(b) => (b, true, Some(size)),
            None => (chunk.hi.clone(), true, None),
        };
        let change_params = d.bound_params(&ctx.shape, chunk.cursor.as_deref(), &upper, None);
        // Counted before the change: after a DELETE the rows it removed are no longer there to count.
        let scanned = match counted {
            Some(n) => n,
            None => {
                let n: i64 = session
                    .query_one(&conn.key_count[which], &change_params)
                    .await
                    .map_err(fail)?
                    .get("keys")
                    .map_err(|e| fail(e.into()))?;
                n.max(0) as u64
            }
        };
        let started = Instant::now();
        let changed = session
            .run(&conn.change[which], &change_params)
            .await
            .map_err(fail)?;
        let statement_time = started.elapsed();
        let moved = session
            .run(
                &conn.checkpoint,
                &[
                    ctx.run_id.into(),
                    chunk.no.into(),
                    upper.clone().into(),
                    (changed as i64).into(),
                    (scanned as i64).into(),
                    done.into(),
                    chunk.cursor.clone().into(),
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
            session.batch_execute(sql.commit).await.map_err(fail)?;
            Ok(batch)
        }
        Err(failure) => {
            let _ = session.batch_execute(sql.rollback).await;
            Err(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_holds_a_few_batches_and_never_less_than_chunk_rows() {
        // Small batches: the configured floor.
        assert_eq!(chunk_keys(20_000, 1_000), 20_000);
        assert_eq!(chunk_keys(20_000, 5_000), 20_000);
        // Batches past a quarter of the floor: room for four of them, so no batch is capped by its chunk.
        assert_eq!(chunk_keys(20_000, 30_000), 120_000);
        assert_eq!(chunk_keys(20_000, 100_000), 400_000);
        // Degenerate inputs do not overflow or give an empty chunk.
        assert_eq!(chunk_keys(0, 0), 1);
        assert_eq!(chunk_keys(1, u64::MAX), u64::MAX);
    }
}
