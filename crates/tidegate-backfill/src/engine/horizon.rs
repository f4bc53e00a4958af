//! The horizon holder: one read-only snapshot held open beside the workers, for at most `--hold-horizon` at a
//! time, so batches run at one UPDATE's speed (why: [`crate::dialect::HorizonSql`]).
//!
//! It is an optimisation, never a reason to stop: any error drops the snapshot and the run goes on without it.
//! It lets go at once when another session waits for its snapshot to end (CREATE INDEX CONCURRENTLY and its
//! kin), when the run pauses, throttles or stops, and every `--hold-horizon`, so vacuum is held back for at most
//! that long; then it takes a fresh snapshot.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_db::driver::{Session, SessionExt};

use super::{Ctx, Gate};
use crate::events::Event;

/// How often the holder checks whether anyone waits for it (and the gate).
const CHECK_EVERY: Duration = Duration::from_millis(200);
/// After letting go for a waiter: how long before holding again.
const AFTER_A_WAITER: Duration = Duration::from_secs(10);
/// After an error: how long before trying again.
const AFTER_AN_ERROR: Duration = Duration::from_secs(5);

/// What the holder does next, from what it knows now: a pure decision, tested without a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HolderStep {
    /// Keep the snapshot (or take one when none is held).
    Hold,
    /// End the held transaction (if any) and take a fresh snapshot: the hold time is up.
    Renew,
    /// End the held transaction (if any) and wait: the gate is closed or someone waits.
    Release,
    /// End the held transaction (if any) and return: the run is stopping.
    Quit,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct HolderState {
    /// How long the current snapshot has been held; `None` when none is.
    pub held_for: Option<Duration>,
    /// Sessions waiting for the held snapshot to end.
    pub waiters: u32,
    /// Whether batches may run now.
    pub gate_open: bool,
    pub stopping: bool,
}

pub(crate) fn next_step(state: HolderState, hold: Duration) -> HolderStep {
    if state.stopping {
        HolderStep::Quit
    } else if state.waiters > 0 || !state.gate_open {
        HolderStep::Release
    } else if state.held_for.is_some_and(|held| held >= hold) {
        HolderStep::Renew
    } else {
        HolderStep::Hold
    }
}

pub(super) async fn horizon_loop(ctx: Arc<Ctx>, hold: Duration) {
    let Some(sql) = ctx.dialect.horizon() else {
        return;
    };
    let mut session: Option<(Box<dyn Session>, i32)> = None;
    let mut held_since: Option<Instant> = None;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let stopping = ctx.finishing.load(Ordering::Relaxed)
            || matches!(ctx.gate(), Gate::Stop(_) | Gate::Abort(_));
        // Starting counts as open: the snapshot is in place before the first batch, not after a few.
        let gate_open = matches!(
            ctx.gate(),
            Gate::Go | Gate::Wait(super::WaitReason::Starting)
        );
        let mut waiters = 0;
        if let (Some((s, _)), Some(_)) = (&session, held_since) {
            match s.query_one(sql.waiters, &[]).await {
                Ok(row) => waiters = row.get::<i64>("waiting").unwrap_or(0).max(0) as u32,
                Err(_) => {
                    drop_session(&ctx, &mut session, &mut held_since);
                    quiet_until = Some(Instant::now() + AFTER_AN_ERROR);
                    continue;
                }
            }
        }
        let step = next_step(
            HolderState {
                held_for: held_since.map(|at| at.elapsed()),
                waiters,
                gate_open,
                stopping,
            },
            hold,
        );
        if step != HolderStep::Hold {
            if let (Some((s, _)), Some(_)) = (&session, held_since.take()) {
                if s.batch_execute(sql.end).await.is_err() {
                    drop_session(&ctx, &mut session, &mut held_since);
                }
            }
        }
        match step {
            HolderStep::Quit => {
                drop_session(&ctx, &mut session, &mut held_since);
                return;
            }
            HolderStep::Release => {
                if waiters > 0 {
                    quiet_until = Some(Instant::now() + AFTER_A_WAITER);
                    ctx.emit(Event::Note {
                        run_id: ctx.run_id,
                        message: format!(
                            "let go of the snapshot held to speed up batches: {waiters} session(s) waited for it; \
                             holding again in {}s",
                            AFTER_A_WAITER.as_secs()
                        ),
                    });
                }
            }
            HolderStep::Renew | HolderStep::Hold => {
                let quiet = quiet_until.is_some_and(|until| Instant::now() < until);
                if held_since.is_none() && !quiet {
                    match take_snapshot(&ctx, &mut session, hold).await {
                        Ok(()) => held_since = Some(Instant::now()),
                        Err(()) => {
                            drop_session(&ctx, &mut session, &mut held_since);
                            quiet_until = Some(Instant::now() + AFTER_AN_ERROR);
                        }
                    }
                }
            }
        }
        ctx.idle(CHECK_EVERY).await;
    }
}

async fn take_snapshot(
    ctx: &Ctx,
    session: &mut Option<(Box<dyn Session>, i32)>,
    hold: Duration,
) -> Result<(), ()> {
    let Some(sql) = ctx.dialect.horizon() else {
        return Err(());
    };
    if session.is_none() {
        let opened = ctx.driver.open().await.map_err(|_| ())?;
        let settings = ctx
            .dialect
            .session_settings(ctx.options.lock_timeout, Duration::from_secs(5));
        opened.batch_execute(&settings).await.map_err(|_| ())?;
        // The held transaction sits idle by design; the server's idle timeout would otherwise end it.
        let idle = hold + CHECK_EVERY * 10;
        opened
            .batch_execute(&(sql.idle_timeout)(idle.as_millis()))
            .await
            .map_err(|_| ())?;
        let pid = ctx
            .dialect
            .backend_pid(opened.as_ref())
            .await
            .map_err(|_| ())?;
        // Ours: not an application transaction for the health signals, and a session waiting on it counts as
        // blocked by us.
        ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
        *session = Some((opened, pid));
    }
    let Some((s, _)) = session.as_ref() else {
        return Err(());
    };
    s.batch_execute(sql.begin).await.map_err(|_| ())?;
    s.query_one(sql.take_snapshot, &[]).await.map_err(|_| ())?;
    Ok(())
}

fn drop_session(
    ctx: &Ctx,
    session: &mut Option<(Box<dyn Session>, i32)>,
    held_since: &mut Option<Instant>,
) {
    if let Some((_, pid)) = session.take() {
        ctx.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != pid);
    }
    *held_since = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(60);

    fn state(held_for: Option<u64>, waiters: u32, gate_open: bool, stopping: bool) -> HolderState {
        HolderState {
            held_for: held_for.map(Duration::from_secs),
            waiters,
            gate_open,
            stopping,
        }
    }

    #[test]
    fn holds_while_batches_run_and_renews_when_the_hold_time_is_up() {
        assert_eq!(
            next_step(state(None, 0, true, false), HOLD),
            HolderStep::Hold
        );
        assert_eq!(
            next_step(state(Some(59), 0, true, false), HOLD),
            HolderStep::Hold
        );
        assert_eq!(
            next_step(state(Some(60), 0, true, false), HOLD),
            HolderStep::Renew
        );
    }

    #[test]
    fn lets_go_for_a_waiter_a_closed_gate_and_a_stop() {
        assert_eq!(
            next_step(state(Some(1), 1, true, false), HOLD),
            HolderStep::Release
        );
        // Paused or throttled: holding back vacuum buys nothing while no batch runs.
        assert_eq!(
            next_step(state(Some(1), 0, false, false), HOLD),
            HolderStep::Release
        );
        assert_eq!(
            next_step(state(Some(1), 3, false, true), HOLD),
            HolderStep::Quit
        );
        assert_eq!(
            next_step(state(None, 0, true, true), HOLD),
            HolderStep::Quit
        );
    }
}
