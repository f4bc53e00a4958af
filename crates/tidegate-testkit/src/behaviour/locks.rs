//! A lock sampler: which relation locks were held, and waited for, on a set of tables and their indexes while a
//! test ran something against them.
//!
//! The sampler reads `pg_locks` on a connection of its own, on a thread of its own (so a test can block its own
//! thread on a child process meanwhile), every [`LockSampler::DEFAULT_PERIOD`]. A lock is seen only when a sample
//! falls inside it: a lock held for less than one period may be missed, and a run of consecutive samples that saw a
//! lock is reported as (last sample − first sample) + one period. [`LockInterval::upper_bound`] is the honest
//! ceiling: the time between the samples that bracket the run without seeing it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// `pg_locks` for the relations being watched: the tables resolved at start (oids survive renames and rewrites)
/// and every index that exists on them at the moment of each sample, granted or still waiting.
const SAMPLE_LOCKS: &str = "\
SELECT l.relation, coalesce(c.relname, l.relation::text), l.mode, coalesce(l.pid, 0), l.granted
  FROM pg_locks l
  LEFT JOIN pg_class c ON c.oid = l.relation
 WHERE l.locktype = 'relation'
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.pid IS DISTINCT FROM pg_backend_pid()
   AND (l.relation = ANY($1) OR l.relation IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY($1)))";

const RESOLVE_TABLE: &str = "SELECT to_regclass($1)::oid";

/// PostgreSQL's table-level lock modes, weakest first, in the order of its documentation.
///
/// The order is not the conflict table, but one cut of it is exact: a mode at or above [`PgLockMode::Share`]
/// conflicts with ROW EXCLUSIVE, the lock every INSERT, UPDATE and DELETE takes, so `mode >= Share` is "blocks
/// writes" (and [`PgLockMode::AccessExclusive`] blocks reads too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PgLockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl PgLockMode {
    pub const ALL: [PgLockMode; 8] = [
        Self::AccessShare,
        Self::RowShare,
        Self::RowExclusive,
        Self::ShareUpdateExclusive,
        Self::Share,
        Self::ShareRowExclusive,
        Self::Exclusive,
        Self::AccessExclusive,
    ];

    /// The mode as `pg_locks.mode` spells it, e.g. `ShareUpdateExclusiveLock`.
    pub fn from_pg_locks(mode: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|candidate| candidate.pg_locks_name() == mode)
    }

    pub fn pg_locks_name(self) -> &'static str {
        match self {
            Self::AccessShare => "AccessShareLock",
            Self::RowShare => "RowShareLock",
            Self::RowExclusive => "RowExclusiveLock",
            Self::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            Self::Share => "ShareLock",
            Self::ShareRowExclusive => "ShareRowExclusiveLock",
            Self::Exclusive => "ExclusiveLock",
            Self::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The mode as SQL spells it (`LOCK TABLE … IN <this> MODE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            Self::AccessShare => "ACCESS SHARE",
            Self::RowShare => "ROW SHARE",
            Self::RowExclusive => "ROW EXCLUSIVE",
            Self::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Self::Share => "SHARE",
            Self::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Self::Exclusive => "EXCLUSIVE",
            Self::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// True for the modes an INSERT, UPDATE or DELETE has to wait for.
    pub fn blocks_writes(self) -> bool {
        self >= Self::Share
    }
}

impl fmt::Display for PgLockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// One row of `pg_locks` as a sample saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockObservation {
    pub relation_oid: u32,
    /// The relation's name at the time of the sample (its oid as text once it is gone).
    pub relation: String,
    pub mode: PgLockMode,
    pub pid: i32,
    pub granted: bool,
}

/// Everything one sample saw, and when (since the sampler started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSample {
    pub at: Duration,
    pub locks: Vec<LockObservation>,
}

/// A run of consecutive samples that all saw the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInterval {
    pub relation: String,
    pub relation_oid: u32,
    /// The mode for an interval of one lock; for the "any lock at or above" intervals of
    /// [`LockReport::longest_hold_at_least`], the strongest mode seen during it.
    pub mode: PgLockMode,
    /// The backend; 0 for the "any backend" intervals of [`LockReport::longest_hold_at_least`].
    pub pid: i32,
    pub granted: bool,
    pub first_seen: Duration,
    pub last_seen: Duration,
    pub samples: usize,
    /// The longest the interval can have lasted: from the last sample before it that did not see it to the first
    /// sample after it that did not (one period past the edge when it touched the start or the end of sampling).
    pub upper_bound: Duration,
    period: Duration,
}

impl LockInterval {
    /// (last sample − first sample) + one sampling period: a lock seen by one sample counts as one period.
    pub fn observed(&self) -> Duration {
        self.last_seen - self.first_seen + self.period
    }
}

impl fmt::Display for LockInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} by pid {} {} for {:?} (from {:?}, {} samples, at most {:?})",
            self.relation,
            self.mode,
            self.pid,
            if self.granted { "held" } else { "waited" },
            self.observed(),
            self.first_seen,
            self.samples,
            self.upper_bound,
        )
    }
}

/// The runs of consecutive samples in which `key` returned the same `Some` value for at least one lock.
///
/// Pure: this is the interval arithmetic of the sampler, tested without a server.
pub fn intervals_by<K, F>(
    samples: &[LockSample],
    period: Duration,
    key: F,
) -> Vec<(K, LockInterval)>
where
    K: Clone + Eq + std::hash::Hash + Ord,
    F: Fn(&LockObservation) -> Option<K>,
{
    struct Open {
        first: usize,
        last: usize,
        samples: usize,
        strongest: LockObservation,
    }
    let mut open: HashMap<K, Open> = HashMap::new();
    let mut done: Vec<(K, usize, usize, usize, LockObservation)> = Vec::new();
    for (index, sample) in samples.iter().enumerate() {
        let mut seen: BTreeMap<K, &LockObservation> = BTreeMap::new();
        for lock in &sample.locks {
            if let Some(k) = key(lock) {
                let entry = seen.entry(k).or_insert(lock);
                if lock.mode > entry.mode {
                    *entry = lock;
                }
            }
        }
        let ended: Vec<K> = open
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        for k in ended {
            let run = open.remove(&k).expect("listed from the map");
            done.push((k, run.first, run.last, run.samples, run.strongest));
        }
        for (k, lock) in seen {
            let run = open.entry(k).or_insert_with(|| Open {
                first: index,
                last: index,
                samples: 0,
                strongest: lock.clone(),
            });
            run.last = index;
            run.samples += 1;
            if lock.mode > run.strongest.mode {
                run.strongest = lock.clone();
            }
        }
    }
    done.extend(
        open.into_iter()
            .map(|(k, run)| (k, run.first, run.last, run.samples, run.strongest)),
    );
    let mut intervals: Vec<(K, LockInterval)> = done
        .into_iter()
        .map(|(k, first, last, count, strongest)| {
            let first_seen = samples[first].at;
            let last_seen = samples[last].at;
            let lead = first
                .checked_sub(1)
                .map(|i| first_seen - samples[i].at)
                .unwrap_or(period);
            let tail = samples
                .get(last + 1)
                .map(|sample| sample.at - last_seen)
                .unwrap_or(period);
            let interval = LockInterval {
                relation: strongest.relation,
                relation_oid: strongest.relation_oid,
                mode: strongest.mode,
                pid: strongest.pid,
                granted: strongest.granted,
                first_seen,
                last_seen,
                samples: count,
                upper_bound: lead + (last_seen - first_seen) + tail,
                period,
            };
            (k, interval)
        })
        .collect();
    intervals.sort_by(|a, b| a.1.first_seen.cmp(&b.1.first_seen).then(a.0.cmp(&b.0)));
    intervals
}

/// The longest hold and the longest wait of one lock request: one (relation, mode, pid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSummary {
    pub relation: String,
    pub mode: PgLockMode,
    pub pid: i32,
    pub longest_hold: Duration,
    pub longest_wait: Duration,
}

/// What a [`LockSampler`] saw between its start and its stop.
#[derive(Debug, Clone)]
pub struct LockReport {
    samples: Vec<LockSample>,
    period: Duration,
    tables: Vec<String>,
}

impl LockReport {
    /// A report over samples taken elsewhere (the sampler builds one; tests of the arithmetic build their own).
    pub fn from_samples(samples: Vec<LockSample>, period: Duration, tables: Vec<String>) -> Self {
        Self {
            samples,
            period,
            tables,
        }
    }

    pub fn samples(&self) -> &[LockSample] {
        &self.samples
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// The widest gap between two consecutive samples: the real resolution on a busy machine.
    pub fn max_sample_gap(&self) -> Duration {
        self.samples
            .windows(2)
            .map(|pair| pair[1].at - pair[0].at)
            .max()
            .unwrap_or_default()
    }

    /// Every interval of one lock request, per (relation, mode, pid, granted).
    pub fn intervals(&self) -> Vec<LockInterval> {
        intervals_by(&self.samples, self.period, |lock| {
            Some((lock.relation_oid, lock.mode, lock.pid, lock.granted))
        })
        .into_iter()
        .map(|(_, interval)| interval)
        .collect()
    }

    /// Per (relation, mode, pid): the longest continuous hold and the longest continuous wait.
    pub fn summaries(&self) -> Vec<LockSummary> {
        let mut by_request: BTreeMap<(String, PgLockMode, i32), LockSummary> = BTreeMap::new();
        for interval in self.intervals() {
            let summary = by_request
                .entry((interval.relation.clone(), interval.mode, interval.pid))
                .or_insert_with(|| LockSummary {
                    relation: interval.relation.clone(),
                    mode: interval.mode,
                    pid: interval.pid,
                    longest_hold: Duration::ZERO,
                    longest_wait: Duration::ZERO,
                });
            let slot = if interval.granted {
                &mut summary.longest_hold
            } else {
                &mut summary.longest_wait
            };
            *slot = (*slot).max(interval.observed());
        }
        by_request.into_values().collect()
    }

    /// The longest time during which some backend held a lock of `mode` or stronger on one watched relation (a
    /// table or one of its indexes), counting a hand-over from one backend or mode to another without a gap as one
    /// interval: that is what a writer queued behind it would have felt. Zero when no sample saw one.
    pub fn longest_hold_at_least(&self, mode: PgLockMode) -> Duration {
        self.longest_hold_interval_at_least(mode, None)
            .map(|interval| interval.observed())
            .unwrap_or_default()
    }

    /// [`LockReport::longest_hold_at_least`] on the relation named `relation` only.
    pub fn longest_hold_at_least_on(&self, relation: &str, mode: PgLockMode) -> Duration {
        self.longest_hold_interval_at_least(mode, Some(relation))
            .map(|interval| interval.observed())
            .unwrap_or_default()
    }

    /// The interval behind [`LockReport::longest_hold_at_least`], for assertion messages.
    pub fn longest_hold_interval_at_least(
        &self,
        mode: PgLockMode,
        relation: Option<&str>,
    ) -> Option<LockInterval> {
        intervals_by(&self.samples, self.period, |lock| {
            (lock.granted && lock.mode >= mode && relation.is_none_or(|name| lock.relation == name))
                .then_some(lock.relation_oid)
        })
        .into_iter()
        .map(|(_, mut interval)| {
            interval.pid = 0;
            interval
        })
        .max_by_key(|interval| interval.observed())
    }

    /// The longest continuous wait for a lock of `mode` or stronger on a watched relation by any one backend.
    pub fn longest_wait_at_least(&self, mode: PgLockMode) -> Duration {
        self.intervals()
            .into_iter()
            .filter(|interval| !interval.granted && interval.mode >= mode)
            .map(|interval| interval.observed())
            .max()
            .unwrap_or_default()
    }
}

impl fmt::Display for LockReport {
    /// A table of every lock request seen, for assertion messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "locks on {} ({} samples every {:?}, widest gap {:?}):",
            self.tables.join(", "),
            self.samples.len(),
            self.period,
            self.max_sample_gap()
        )?;
        for summary in self.summaries() {
            writeln!(
                f,
                "  {:<32} {:<24} pid {:<8} held {:>10.3?}  waited {:>10.3?}",
                summary.relation,
                summary.mode.sql_name(),
                summary.pid,
                summary.longest_hold,
                summary.longest_wait
            )?;
        }
        Ok(())
    }
}

/// Samples `pg_locks` for some tables until stopped. See the module docs for what its figures mean.
pub struct LockSampler {
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<Result<Vec<LockSample>, String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    period: Duration,
    tables: Vec<String>,
}

impl LockSampler {
    /// 10 ms: under the 20 ms the rewrite tests need even when a sample runs late on a busy machine.
    pub const DEFAULT_PERIOD: Duration = Duration::from_millis(10);

    /// Resolves `tables` (names as SQL would find them, optionally schema-qualified) and starts sampling; returns
    /// once the first sample is taken. Panics when a table does not exist or the server cannot be reached.
    pub async fn start(url: &str, tables: &[&str]) -> Self {
        Self::start_with_period(url, tables, Self::DEFAULT_PERIOD).await
    }

    pub async fn start_with_period(url: &str, tables: &[&str], period: Duration) -> Self {
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel();
        let url = url.to_string();
        let names: Vec<String> = tables.iter().map(|name| name.to_string()).collect();
        let thread_names = names.clone();
        let thread = std::thread::Builder::new()
            .name("lock-sampler".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("no runtime for the sampler: {error}")));
                        return;
                    }
                };
                let samples = runtime.block_on(sample_until_stopped(
                    url,
                    thread_names,
                    period,
                    ready_tx,
                    stop_rx,
                ));
                let _ = done_tx.send(samples);
            })
            .expect("could not start the lock sampler's thread");
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => panic!("{message}"),
            Err(_) => panic!("the lock sampler's thread ended before its first sample"),
        }
        Self {
            stop: Some(stop_tx),
            done: Some(done_rx),
            thread: Some(thread),
            period,
            tables: names,
        }
    }

    /// Stops sampling and reports. Panics when sampling failed part-way: a report with a hole would lie.
    pub async fn stop(mut self) -> LockReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let samples = match self.done.take().expect("stop runs once").await {
            Ok(Ok(samples)) => samples,
            Ok(Err(message)) => panic!("{message}"),
            Err(_) => panic!("the lock sampler's thread died"),
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        LockReport::from_samples(samples, self.period, self.tables.clone())
    }
}

impl Drop for LockSampler {
    fn drop(&mut self) {
        // A sampler dropped without stop (a panicking test) must not keep its thread and connection alive.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn sample_until_stopped(
    url: String,
    tables: Vec<String>,
    period: Duration,
    ready: oneshot::Sender<Result<(), String>>,
    mut stop: oneshot::Receiver<()>,
) -> Result<Vec<LockSample>, String> {
    let prepared = async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .map_err(|error| format!("the lock sampler could not connect to {url}: {error}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut oids: Vec<u32> = Vec::new();
        for table in &tables {
            let oid: Option<u32> = client
                .query_one(RESOLVE_TABLE, &[table])
                .await
                .map_err(|error| format!("the lock sampler could not look up {table}: {error}"))?
                .get(0);
            oids.push(
                oid.ok_or_else(|| format!("the lock sampler cannot watch {table}: no such table"))?,
            );
        }
        let statement = client
            .prepare(SAMPLE_LOCKS)
            .await
            .map_err(|error| format!("the lock sampler's query failed to prepare: {error}"))?;
        Ok::<_, String>((client, oids, statement))
    };
    let (client, oids, statement) = match prepared.await {
        Ok(prepared) => prepared,
        Err(message) => {
            let _ = ready.send(Err(message.clone()));
            return Err(message);
        }
    };
    let started = Instant::now();
    let take_sample = || async {
        let sent = started.elapsed();
        let rows = client
            .query(&statement, &[&oids])
            .await
            .map_err(|error| format!("a lock sample failed: {error}"))?;
        // pg_locks is read during the query; the midpoint is the best guess of when.
        let at = (sent + started.elapsed()) / 2;
        let locks = rows
            .iter()
            .filter_map(|row| {
                Some(LockObservation {
                    relation_oid: row.get(0),
                    relation: row.get(1),
                    mode: PgLockMode::from_pg_locks(row.get(2))?,
                    pid: row.get(3),
                    granted: row.get(4),
                })
            })
            .collect();
        Ok::<_, String>(LockSample { at, locks })
    };
    let mut samples = Vec::new();
    match take_sample().await {
        Ok(sample) => samples.push(sample),
        Err(message) => {
            let _ = ready.send(Err(message.clone()));
            return Err(message);
        }
    }
    let _ = ready.send(Ok(()));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => samples.push(take_sample().await?),
        }
    }
    // One last look, so a lock still held at stop is bracketed by the stop time.
    samples.push(take_sample().await?);
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(10);

    fn lock(relation: &str, mode: PgLockMode, pid: i32, granted: bool) -> LockObservation {
        LockObservation {
            relation_oid: relation.bytes().map(u32::from).sum(),
            relation: relation.to_string(),
            mode,
            pid,
            granted,
        }
    }

    fn sample(at_ms: u64, locks: Vec<LockObservation>) -> LockSample {
        LockSample {
            at: Duration::from_millis(at_ms),
            locks,
        }
    }

    #[test]
    fn lock_modes_are_ordered_weakest_first_and_share_is_where_writes_block() {
        let mut shuffled = PgLockMode::ALL;
        shuffled.reverse();
        shuffled.sort();
        assert_eq!(shuffled, PgLockMode::ALL);
        let blocking: Vec<PgLockMode> = PgLockMode::ALL
            .into_iter()
            .filter(|mode| mode.blocks_writes())
            .collect();
        assert_eq!(
            blocking,
            [
                PgLockMode::Share,
                PgLockMode::ShareRowExclusive,
                PgLockMode::Exclusive,
                PgLockMode::AccessExclusive
            ]
        );
        assert!(PgLockMode::ShareUpdateExclusive < PgLockMode::Share);
        for mode in PgLockMode::ALL {
            assert_eq!(PgLockMode::from_pg_locks(mode.pg_locks_name()), Some(mode));
        }
        assert_eq!(PgLockMode::from_pg_locks("SIReadLock"), None);
    }

    #[test]
    fn a_lock_seen_by_one_sample_counts_as_one_period() {
        let samples = vec![
            sample(0, vec![]),
            sample(10, vec![lock("t", PgLockMode::AccessExclusive, 7, true)]),
            sample(20, vec![]),
        ];
        let report = LockReport::from_samples(samples, PERIOD, vec!["t".into()]);
        let intervals = report.intervals();
        assert_eq!(intervals.len(), 1);
        assert_eq!(intervals[0].observed(), PERIOD);
        assert_eq!(intervals[0].upper_bound, Duration::from_millis(20));
        assert_eq!(report.longest_hold_at_least(PgLockMode::Share), PERIOD);
    }

    #[test]
    fn consecutive_samples_make_one_interval_and_a_gap_splits_it() {
        let held = || vec![lock("t", PgLockMode::Share, 7, true)];
        let samples = vec![
            sample(0, held()),
            sample(10, held()),
            sample(20, held()),
            sample(30, vec![]),
            sample(40, held()),
            sample(50, vec![]),
        ];
        let report = LockReport::from_samples(samples, PERIOD, vec!["t".into()]);
        let observed: Vec<Duration> = report.intervals().iter().map(|i| i.observed()).collect();
        assert_eq!(
            observed,
            [Duration::from_millis(30), Duration::from_millis(10)]
        );
        // At the start of sampling the lock may have been held for any time before; the bound says one period.
        assert_eq!(report.intervals()[0].upper_bound, Duration::from_millis(40));
        assert_eq!(
            report.longest_hold_at_least(PgLockMode::Share),
            Duration::from_millis(30)
        );
        assert_eq!(
            report.longest_hold_at_least(PgLockMode::Exclusive),
            Duration::ZERO
        );
    }

    #[test]
    fn waits_and_holds_are_reported_apart_per_request() {
        let samples = vec![
            sample(
                0,
                vec![
                    lock("t", PgLockMode::AccessShare, 1, true),
                    lock("t", PgLockMode::AccessExclusive, 2, false),
                ],
            ),
            sample(
                10,
                vec![
                    lock("t", PgLockMode::AccessShare, 1, true),
                    lock("t", PgLockMode::AccessExclusive, 2, false),
                ],
            ),
            sample(20, vec![lock("t", PgLockMode::AccessExclusive, 2, true)]),
            sample(30, vec![]),
        ];
        let report = LockReport::from_samples(samples, PERIOD, vec!["t".into()]);
        let summaries = report.summaries();
        let exclusive = summaries
            .iter()
            .find(|s| s.mode == PgLockMode::AccessExclusive)
            .unwrap();
        assert_eq!(exclusive.longest_wait, Duration::from_millis(20));
        assert_eq!(exclusive.longest_hold, Duration::from_millis(10));
        assert_eq!(
            report.longest_wait_at_least(PgLockMode::Share),
            Duration::from_millis(20)
        );
        assert_eq!(
            report.longest_hold_at_least(PgLockMode::Share),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn a_write_block_handed_from_one_backend_or_mode_to_another_is_one_interval() {
        let samples = vec![
            sample(0, vec![lock("t", PgLockMode::Share, 1, true)]),
            sample(10, vec![lock("t", PgLockMode::Share, 1, true)]),
            sample(20, vec![lock("t", PgLockMode::AccessExclusive, 2, true)]),
            sample(
                30,
                vec![
                    lock("t", PgLockMode::AccessExclusive, 2, true),
                    lock("t_pkey", PgLockMode::AccessExclusive, 2, true),
                ],
            ),
            sample(40, vec![lock("t", PgLockMode::RowExclusive, 3, true)]),
        ];
        let report = LockReport::from_samples(samples, PERIOD, vec!["t".into()]);
        let longest = report
            .longest_hold_interval_at_least(PgLockMode::Share, None)
            .unwrap();
        assert_eq!(longest.relation, "t");
        assert_eq!(longest.observed(), Duration::from_millis(40));
        assert_eq!(longest.mode, PgLockMode::AccessExclusive);
        assert_eq!(
            report.longest_hold_at_least_on("t_pkey", PgLockMode::Share),
            Duration::from_millis(10)
        );
        // Per request, the hand-over is two holds.
        assert_eq!(
            report
                .intervals()
                .iter()
                .filter(|i| i.relation == "t" && i.mode >= PgLockMode::Share)
                .count(),
            2
        );
    }

    #[test]
    fn an_interval_open_at_the_end_of_sampling_is_closed_there() {
        let samples = vec![
            sample(0, vec![]),
            sample(10, vec![lock("t", PgLockMode::Exclusive, 9, true)]),
            sample(25, vec![lock("t", PgLockMode::Exclusive, 9, true)]),
        ];
        let report = LockReport::from_samples(samples, PERIOD, vec!["t".into()]);
        assert_eq!(
            report.longest_hold_at_least(PgLockMode::Share),
            Duration::from_millis(25)
        );
        assert_eq!(report.max_sample_gap(), Duration::from_millis(15));
        assert_eq!(report.intervals()[0].upper_bound, Duration::from_millis(35));
    }
}
