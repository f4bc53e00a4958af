//! What samples of `pg_locks` say about a span of time: every lock held and waited for (all modes), and the
//! longest stretch during which writers could not proceed.
//!
//! Pure: [`crate::observer::Observer`] takes the samples (a connection and thread of its own); this module only
//! summarises them, so its figures are tested on made-up samples.
//!
//! **What a figure means.** A lock is seen only when a sample falls inside it, so a lock held for less than one
//! sampling period may be missed. A run of consecutive samples that all saw something is reported as
//! (last − first) + one period (`estimated_ms`), between a `lower_ms` of (last − first) and an `upper_ms` of the
//! time between the samples that bracket the run without seeing it.
//!
//! **Write-blocking** is a lock, granted or waiting, at or above SHARE on a table or one of its indexes: such a
//! mode conflicts with ROW EXCLUSIVE, which every INSERT, UPDATE and DELETE takes, and a waiting request queues the
//! writers that come after it. Stretches are per relation and ignore which backend holds the lock, so hand-overs
//! (a parallel build's workers, a retry) join into one stretch, as a queued writer feels them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tidegate_db::observe::ObservedLock;
use tidegate_sql::LockLevel;

/// Everything one sample saw, and when (since the sampler started; the midpoint of its query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSample {
    pub at: Duration,
    pub locks: Vec<ObservedLock>,
}

/// A run of consecutive samples that all saw the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stretch {
    /// When its first sample was taken (ms since the sampler started).
    pub first_seen_ms: f64,
    /// (last − first) + one period: the best single figure.
    pub estimated_ms: f64,
    /// (last − first): it lasted at least this long.
    pub lower_ms: f64,
    /// The gap between the samples that bracket it without seeing it: at most this long.
    pub upper_ms: f64,
}

/// The longest stretch one relation's lock of one mode was held (or waited for).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockSeen {
    pub relation: String,
    #[serde(serialize_with = "serialize_mode")]
    pub mode: LockLevel,
    pub granted: bool,
    /// Who held or wanted it (application names and backend types of the sessions seen), sorted.
    pub holders: Vec<String>,
    pub longest: Stretch,
    pub samples: usize,
}

/// The longest write-blocking stretch on one relation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockingStretch {
    pub relation: String,
    /// The strongest mode seen during it.
    #[serde(serialize_with = "serialize_mode")]
    pub strongest_mode: LockLevel,
    /// Whether part of it was a request still waiting (a queue in front of writers) rather than a granted lock.
    pub waited: bool,
    #[serde(flatten)]
    pub stretch: Stretch,
}

fn serialize_mode<S: serde::Serializer>(
    mode: &LockLevel,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(mode.sql_name())
}

/// What the samples of a span say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockSummary {
    pub samples: usize,
    pub period_ms: f64,
    /// The widest gap between two consecutive samples: the resolution actually achieved.
    pub widest_gap_ms: f64,
    /// Every (relation, mode, granted) seen, longest first.
    pub locks: Vec<LockSeen>,
    /// The longest write-blocking stretch on any relation; `None` when no sample saw one.
    pub longest_blocking: Option<BlockingStretch>,
}

impl LockSummary {
    /// `longest_blocking`'s estimate, 0 when there was none.
    pub fn longest_blocking_ms(&self) -> f64 {
        self.longest_blocking
            .as_ref()
            .map_or(0.0, |blocking| blocking.stretch.estimated_ms)
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The runs of consecutive samples for which `seen` holds, as (first index, last index).
fn runs(samples: &[LockSample], seen: impl Fn(&LockSample) -> bool) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut open: Option<usize> = None;
    for (index, sample) in samples.iter().enumerate() {
        match (seen(sample), open) {
            (true, None) => open = Some(index),
            (false, Some(first)) => {
                runs.push((first, index - 1));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(first) = open {
        runs.push((first, samples.len() - 1));
    }
    runs
}

fn stretch_of(samples: &[LockSample], (first, last): (usize, usize), period: Duration) -> Stretch {
    let (start, end) = (samples[first].at, samples[last].at);
    // Bracketed by the samples on either side; at the edges of the span, by one period.
    let gap_before = first
        .checked_sub(1)
        .map_or(period, |i| start.saturating_sub(samples[i].at));
    let gap_after = samples
        .get(last + 1)
        .map_or(period, |sample| sample.at.saturating_sub(end));
    Stretch {
        first_seen_ms: ms(start),
        estimated_ms: ms(end - start + period),
        lower_ms: ms(end - start),
        upper_ms: ms(gap_before + (end - start) + gap_after),
    }
}

fn longest(stretches: impl Iterator<Item = Stretch>) -> Option<Stretch> {
    stretches.max_by(|a, b| a.estimated_ms.total_cmp(&b.estimated_ms))
}

/// Summarises samples taken every `period`. Write-blocking stretches are per table: a lock on an index counts for
/// its table.
pub fn summarize(samples: &[LockSample], period: Duration) -> LockSummary {
    let widest_gap = samples
        .windows(2)
        .map(|pair| pair[1].at.saturating_sub(pair[0].at))
        .max()
        .unwrap_or_default();

    // Every (relation, mode, granted) any sample saw.
    let mut kinds: BTreeMap<(String, LockLevel, bool), Vec<String>> = BTreeMap::new();
    for lock in samples.iter().flat_map(|sample| &sample.locks) {
        let holder = if lock.application_name.is_empty() {
            lock.backend_type.clone()
        } else {
            lock.application_name.clone()
        };
        let holders = kinds
            .entry((lock.relation.clone(), lock.mode, lock.granted))
            .or_default();
        if !holders.contains(&holder) {
            holders.push(holder);
        }
    }
    let mut locks: Vec<LockSeen> = kinds
        .into_iter()
        .filter_map(|((relation, mode, granted), mut holders)| {
            let matches = |sample: &LockSample| {
                sample.locks.iter().any(|lock| {
                    lock.relation == relation && lock.mode == mode && lock.granted == granted
                })
            };
            let runs = runs(samples, matches);
            let count = samples.iter().filter(|sample| matches(sample)).count();
            let longest = longest(runs.into_iter().map(|run| stretch_of(samples, run, period)))?;
            holders.sort();
            Some(LockSeen {
                relation,
                mode,
                granted,
                holders,
                longest,
                samples: count,
            })
        })
        .collect();
    locks.sort_by(|a, b| b.longest.estimated_ms.total_cmp(&a.longest.estimated_ms));

    let blocked_tables: std::collections::BTreeSet<&str> = samples
        .iter()
        .flat_map(|sample| &sample.locks)
        .filter(|lock| lock.mode.blocks_writes())
        .map(|lock| lock.table.as_str())
        .collect();
    let longest_blocking = blocked_tables
        .into_iter()
        .flat_map(|table| {
            let blocking_locks = move |sample: &LockSample| -> Vec<ObservedLock> {
                sample
                    .locks
                    .iter()
                    .filter(|lock| lock.mode.blocks_writes() && lock.table == table)
                    .cloned()
                    .collect()
            };
            runs(samples, |sample| !blocking_locks(sample).is_empty())
                .into_iter()
                .filter_map(move |run| {
                    let seen: Vec<ObservedLock> = samples[run.0..=run.1]
                        .iter()
                        .flat_map(blocking_locks)
                        .collect();
                    Some(BlockingStretch {
                        relation: table.to_string(),
                        strongest_mode: seen.iter().map(|lock| lock.mode).max()?,
                        waited: seen.iter().any(|lock| !lock.granted),
                        stretch: stretch_of(samples, run, period),
                    })
                })
        })
        .max_by(|a, b| a.stretch.estimated_ms.total_cmp(&b.stretch.estimated_ms));

    LockSummary {
        samples: samples.len(),
        period_ms: ms(period),
        widest_gap_ms: ms(widest_gap),
        locks,
        longest_blocking,
    }
}

/// The samples taken between `from` and `to` (inclusive), for one phase's summary.
pub fn samples_between(samples: &[LockSample], from: Duration, to: Duration) -> &[LockSample] {
    let start = samples.partition_point(|sample| sample.at < from);
    let end = samples.partition_point(|sample| sample.at <= to);
    &samples[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(50);

    fn lock(relation: &str, mode: LockLevel, granted: bool) -> ObservedLock {
        ObservedLock {
            relation_oid: relation.bytes().map(u32::from).sum(),
            relation: relation.to_string(),
            table: relation.trim_end_matches("_idx").to_string(),
            mode,
            granted,
            pid: 7,
            application_name: "tidegate".into(),
            backend_type: "client backend".into(),
        }
    }

    fn sample(at_ms: u64, locks: Vec<ObservedLock>) -> LockSample {
        LockSample {
            at: Duration::from_millis(at_ms),
            locks,
        }
    }

    #[test]
    fn a_run_of_samples_is_its_span_plus_a_period_between_its_brackets() {
        let ae = || vec![lock("orders", LockLevel::AccessExclusive, true)];
        let samples = vec![
            sample(0, vec![]),
            sample(50, ae()),
            sample(100, ae()),
            sample(150, ae()),
            sample(200, vec![]),
        ];
        let summary = summarize(&samples, PERIOD);
        let blocking = summary.longest_blocking.clone().unwrap();
        assert_eq!(blocking.relation, "orders");
        assert_eq!(blocking.strongest_mode, LockLevel::AccessExclusive);
        assert!(!blocking.waited);
        assert_eq!(blocking.stretch.lower_ms, 100.0);
        assert_eq!(blocking.stretch.estimated_ms, 150.0);
        assert_eq!(blocking.stretch.upper_ms, 200.0);
        assert_eq!(blocking.stretch.first_seen_ms, 50.0);
        assert_eq!(summary.longest_blocking_ms(), 150.0);
        assert_eq!(summary.widest_gap_ms, 50.0);
        assert_eq!(summary.locks.len(), 1);
        assert_eq!(summary.locks[0].samples, 3);
        assert_eq!(summary.locks[0].holders, vec!["tidegate".to_string()]);
    }

    #[test]
    fn every_mode_is_listed_but_only_share_and_above_block_writes() {
        for mode in LockLevel::ALL {
            let samples = vec![
                sample(0, vec![]),
                sample(50, vec![lock("t", mode, true)]),
                sample(100, vec![]),
            ];
            let summary = summarize(&samples, PERIOD);
            assert_eq!(summary.locks.len(), 1, "{mode:?}");
            assert_eq!(summary.locks[0].mode, mode);
            assert_eq!(
                summary.longest_blocking.is_some(),
                mode >= LockLevel::Share,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn a_waiting_request_blocks_writers_and_hand_overs_join() {
        // A granted SHARE (an index build) hands over to a waiting ACCESS EXCLUSIVE of another backend: a writer
        // queued behind them waits through both.
        let samples = vec![
            sample(0, vec![lock("t", LockLevel::Share, true)]),
            sample(
                50,
                vec![
                    lock("t", LockLevel::Share, true),
                    lock("t", LockLevel::AccessExclusive, false),
                ],
            ),
            sample(100, vec![lock("t", LockLevel::AccessExclusive, true)]),
            sample(150, vec![lock("t", LockLevel::RowExclusive, true)]),
            sample(200, vec![lock("t", LockLevel::ShareUpdateExclusive, true)]),
        ];
        let summary = summarize(&samples, PERIOD);
        let blocking = summary.longest_blocking.unwrap();
        assert_eq!(blocking.strongest_mode, LockLevel::AccessExclusive);
        assert!(blocking.waited);
        assert_eq!(blocking.stretch.estimated_ms, 150.0);
        // At the start of the span it is bracketed by one period before its first sample.
        assert_eq!(blocking.stretch.upper_ms, 200.0);
        assert_eq!(summary.locks.len(), 5);
    }

    #[test]
    fn index_locks_count_for_their_table_and_tables_apart_do_not_join() {
        let index = lock("t_idx", LockLevel::AccessExclusive, true);
        let samples = vec![
            sample(0, vec![lock("t", LockLevel::Share, true)]),
            sample(50, vec![index.clone()]),
            sample(100, vec![lock("other", LockLevel::Exclusive, true)]),
            sample(150, vec![]),
        ];
        let summary = summarize(&samples, PERIOD);
        let blocking = summary.longest_blocking.unwrap();
        assert_eq!(blocking.relation, "t");
        assert_eq!(blocking.stretch.estimated_ms, 100.0);
    }

    #[test]
    fn no_samples_or_no_blocking_lock_says_so() {
        let summary = summarize(&[], PERIOD);
        assert_eq!(summary.samples, 0);
        assert!(summary.longest_blocking.is_none());
        assert_eq!(summary.longest_blocking_ms(), 0.0);
        let quiet = vec![sample(0, vec![lock("t", LockLevel::RowExclusive, true)])];
        assert!(summarize(&quiet, PERIOD).longest_blocking.is_none());
    }

    #[test]
    fn samples_between_is_inclusive() {
        let samples: Vec<LockSample> = (0..5).map(|i| sample(i * 50, vec![])).collect();
        let picked = samples_between(
            &samples,
            Duration::from_millis(50),
            Duration::from_millis(150),
        );
        assert_eq!(picked.len(), 3);
        assert!(samples_between(
            &samples,
            Duration::from_millis(300),
            Duration::from_millis(400)
        )
        .is_empty());
        assert!(samples_between(
            &samples,
            Duration::from_millis(60),
            Duration::from_millis(70)
        )
        .is_empty());
    }
}
