//! The risk model: a pure function from what a statement does to a table ([`EffectFacts`]) and what the
//! table looks like right now ([`TableFacts`]) to an estimated duration, a [`Verdict`] and its reasons.
//!
//! **Estimate.** Work is proportional to bytes, divided by the table's measured sequential read rate
//! (`scan_bytes_per_second`, from a timed read of its first pages; [`Policy::assumed_scan_bytes_per_second`] when
//! nothing could be measured):
//!
//! | work | bytes | factor |
//! |---|---|---|
//! | scan (validate a constraint, `SET NOT NULL`, `ATTACH PARTITION`) | heap | 1 |
//! | index build (`CREATE INDEX`, `REINDEX`): scan + sort + write the index | heap | [`Policy::index_build_factor`] (2) |
//! | rewrite (`ALTER … TYPE`, volatile default, `VACUUM FULL`, `CLUSTER`): read, write a new heap and WAL, rebuild every index | heap + TOAST + indexes | [`Policy::rewrite_factor`] (3) |
//! | `UPDATE`/`DELETE`/`MERGE` of the whole table (a `WHERE` makes it an upper bound): new row versions, WAL, index entries | heap + TOAST + indexes | [`Policy::dml_factor`] (3) |
//! | catalog-only change | — | 0 |
//!
//! The factors are deliberately round: the read rate is measured on a warm sample, the writes are not measured
//! at all, so an estimate is an order of magnitude to plan a window with, not a promise.
//!
//! **Lock hold.** A lock is held until its transaction ends: inside a transaction (explicit or the framework's),
//! a statement's lock is held through the work of every later statement of that transaction too
//! ([`EffectFacts::held_through_seconds`]).
//!
//! **Verdict** (the worst over the statement's tables):
//! - *safe*: the table was created in this migration; or the lock lets reads and writes continue; or the
//!   table is small ([`Policy::small_table_rows`]) and the lock is held briefly ([`Policy::brief_lock_seconds`]);
//!   or the change is catalog-only and held briefly.
//! - *needs batching*: `UPDATE`/`DELETE`/`MERGE` over more than `small_table_rows` rows: run it as a backfill.
//! - *needs a window*: a scan or index build under a lock that blocks writes, on a table that is not small, or
//!   any traffic-blocking lock held longer than `brief_lock_seconds`; or a session holding a conflicting lock
//!   (idle in transaction, or open longer than [`Policy::long_transaction_seconds`]) that the statement would
//!   queue behind — while it queues, every query on the table queues behind *it*.
//! - *dangerous*: a rewrite of a table that is not small; a lock that blocks reads held longer than
//!   `brief_lock_seconds` on a table that is not small; any traffic-blocking lock held longer than
//!   [`Policy::window_limit_seconds`].

use serde::Serialize;
use tidegate_sql::{AlterSubcommand, ConstraintKind, LockLevel, Operation};

/// How risky a statement is, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Safe,
    NeedsBatching,
    NeedsWindow,
    Dangerous,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::NeedsBatching => "needs batching",
            Verdict::NeedsWindow => "needs a window",
            Verdict::Dangerous => "dangerous",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a release manager can do about a statement. The renderers turn these into checklist items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Run the UPDATE/DELETE as a batched, throttled backfill (`tidegate apply` does this; `tidegate backfill`).
    ConvertToBackfill,
    /// Build the index with `CREATE INDEX CONCURRENTLY` (outside a transaction).
    UseConcurrently,
    /// Add the constraint `NOT VALID`, then `VALIDATE CONSTRAINT` in a later transaction.
    AddNotValidThenValidate,
    /// Add a new column, backfill it, switch readers, drop the old one: no rewrite under ACCESS EXCLUSIVE.
    NewColumnAndBackfill,
    /// Move the slow statement out of the transaction that holds the lock.
    SplitTransaction,
    /// End (or wait out) the sessions holding conflicting locks before starting.
    EndBlockingTransactions,
    /// Run the statement in a maintenance window (the fallback when none of the above applies or is wanted).
    RunInWindow,
}

impl Action {
    /// The checklist text.
    pub fn text(self) -> &'static str {
        match self {
            Action::RunInWindow => "run in a maintenance window",
            Action::ConvertToBackfill => {
                "convert to a batched backfill (tidegate apply / tidegate backfill)"
            }
            Action::UseConcurrently => "use CREATE INDEX CONCURRENTLY (outside a transaction)",
            Action::AddNotValidThenValidate => {
                "add the constraint NOT VALID, then VALIDATE CONSTRAINT separately"
            }
            Action::NewColumnAndBackfill => {
                "add a new column and backfill it instead of rewriting the table"
            }
            Action::SplitTransaction => {
                "move the slow statement out of the transaction that holds the lock"
            }
            Action::EndBlockingTransactions => {
                "end or wait out the transactions holding conflicting locks"
            }
        }
    }
}

/// Thresholds and cost factors. [`Policy::default`] is what `tidegate plan` uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Policy {
    /// At or below this many rows, full-table work is short whatever it is.
    pub small_table_rows: u64,
    /// A traffic-blocking lock held this long or less is tolerated (apply's default lock_timeout is 2 s).
    pub brief_lock_seconds: f64,
    /// A traffic-blocking lock held longer than this is dangerous even in a window.
    pub window_limit_seconds: f64,
    /// A session holding a conflicting lock counts as a blocker once its transaction is this old (or at any age
    /// when it is idle in transaction).
    pub long_transaction_seconds: f64,
    /// The read rate used when none could be measured.
    pub assumed_scan_bytes_per_second: f64,
    pub index_build_factor: f64,
    pub rewrite_factor: f64,
    pub dml_factor: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            small_table_rows: 10_000,
            brief_lock_seconds: 2.0,
            window_limit_seconds: 600.0,
            long_transaction_seconds: 5.0,
            assumed_scan_bytes_per_second: 100.0 * 1024.0 * 1024.0,
            index_build_factor: 2.0,
            rewrite_factor: 3.0,
            dml_factor: 3.0,
        }
    }
}

/// What one statement does to one table (from tidegate-sql's analysis) plus its place in a transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectFacts {
    pub operation: Operation,
    pub lock: LockLevel,
    pub rewrite: bool,
    pub scan: bool,
    /// Created earlier in the same migration: empty, and no application uses it yet.
    pub created_in_migration: bool,
    /// For UPDATE/DELETE: whether a WHERE clause limits the rows (then the table's rows are an upper bound).
    pub filtered: bool,
    /// Seconds of work by later statements of the same transaction, during which this lock stays held.
    pub held_through_seconds: f64,
}

/// A session holding or waiting for a lock on the table, or with a long transaction open.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub pid: i32,
    pub application_name: String,
    pub state: String,
    pub transaction_age_seconds: Option<f64>,
    pub query: String,
    /// The lock it holds or waits for on this table; `None` for a long transaction elsewhere.
    pub mode: Option<LockLevel>,
    pub granted: bool,
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let application = if self.application_name.is_empty() {
            "no application_name"
        } else {
            &self.application_name
        };
        write!(f, "pid {} ({application}, {}", self.pid, self.state)?;
        if let Some(age) = self.transaction_age_seconds {
            write!(f, ", transaction open {}", format_duration(age))?;
        }
        if let Some(mode) = self.mode {
            let verb = if self.granted { "holds" } else { "waits for" };
            write!(f, ", {verb} {mode}")?;
        }
        write!(f, "): {}", self.query)
    }
}

/// What the table looks like right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableFacts {
    /// Whether the table exists in the database (it may be created by an earlier pending migration).
    pub exists: bool,
    pub rows: u64,
    /// `rows` is an exact count rather than an estimate.
    pub rows_exact: bool,
    pub heap_bytes: u64,
    pub total_bytes: u64,
    /// Measured sequential read rate; `None` when it could not be measured.
    pub scan_bytes_per_second: Option<f64>,
    /// Rows inserted, updated or deleted per second during the sample; `None` when not sampled.
    pub writes_per_second: Option<f64>,
    /// Sessions holding or waiting for locks on the table.
    pub lock_holders: Vec<Session>,
    /// Long transactions anywhere in the database (they delay `CONCURRENTLY` builds and hold back VACUUM).
    pub long_transactions: Vec<Session>,
}

impl TableFacts {
    /// A table that is not in the database.
    pub fn missing() -> Self {
        Self {
            exists: false,
            rows: 0,
            rows_exact: true,
            heap_bytes: 0,
            total_bytes: 0,
            scan_bytes_per_second: None,
            writes_per_second: None,
            lock_holders: Vec::new(),
            long_transactions: Vec::new(),
        }
    }
}

/// The model's answer for one statement on one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub verdict: Verdict,
    /// Estimated seconds of the statement's own work on this table (0 for catalog-only changes).
    pub estimate_seconds: f64,
    /// Estimated seconds the lock is held: the work plus `held_through_seconds`.
    pub lock_hold_seconds: f64,
    /// Whether the estimate used [`Policy::assumed_scan_bytes_per_second`] instead of a measured rate.
    pub rate_assumed: bool,
    pub reasons: Vec<String>,
    pub actions: Vec<Action>,
    /// Sessions the statement would queue behind.
    pub blockers: Vec<Session>,
}

/// The kind of work a statement does on a table, which decides its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    None,
    Scan,
    IndexBuild,
    Rewrite,
    Dml,
}

fn work_of(effect: &EffectFacts) -> Work {
    match effect.operation {
        Operation::Update | Operation::Delete | Operation::Merge => Work::Dml,
        _ if effect.rewrite => Work::Rewrite,
        Operation::CreateIndex { .. } | Operation::Reindex { .. } => Work::IndexBuild,
        _ if effect.scan => Work::Scan,
        _ => Work::None,
    }
}

/// Estimated seconds of `effect`'s own work on `table`, and whether the read rate was assumed.
pub fn estimate_seconds(effect: &EffectFacts, table: &TableFacts, policy: &Policy) -> (f64, bool) {
    if effect.created_in_migration || !table.exists {
        return (0.0, false);
    }
    let (bytes, factor) = match work_of(effect) {
        Work::None => return (0.0, false),
        Work::Scan => (table.heap_bytes, 1.0),
        Work::IndexBuild => (table.heap_bytes, policy.index_build_factor),
        Work::Rewrite => (table.total_bytes, policy.rewrite_factor),
        Work::Dml => (table.total_bytes, policy.dml_factor),
    };
    let (rate, assumed) = match table.scan_bytes_per_second {
        Some(rate) if rate.is_finite() && rate > 0.0 => (rate, false),
        _ => (policy.assumed_scan_bytes_per_second.max(1.0), true),
    };
    (bytes as f64 * factor / rate, assumed)
}

/// Assesses one statement's effect on one table. Pure and deterministic.
pub fn assess(effect: &EffectFacts, table: &TableFacts, policy: &Policy) -> Assessment {
    let (estimate, rate_assumed) = estimate_seconds(effect, table, policy);
    let hold = estimate + effect.held_through_seconds.max(0.0);
    let mut out = Assessment {
        verdict: Verdict::Safe,
        estimate_seconds: estimate,
        lock_hold_seconds: hold,
        rate_assumed,
        reasons: Vec::new(),
        actions: Vec::new(),
        blockers: Vec::new(),
    };
    if effect.created_in_migration {
        out.reasons
            .push("created earlier in this migration: empty, no traffic yet".into());
        return out;
    }
    if !table.exists {
        out.reasons.push(
            "not in the database yet (created by an earlier pending migration, or the statement will fail)"
                .into(),
        );
        return out;
    }
    let small = table.rows <= policy.small_table_rows;
    let rows = format_rows(table);
    let work = work_of(effect);
    let lock = effect.lock;

    // Sessions the lock would queue behind.
    out.blockers = table
        .lock_holders
        .iter()
        .filter(|session| {
            session.mode.is_some_and(|mode| lock.conflicts_with(mode))
                && (session.state.starts_with("idle in transaction")
                    || session
                        .transaction_age_seconds
                        .is_some_and(|age| age >= policy.long_transaction_seconds))
        })
        .cloned()
        .collect();

    if work == Work::Dml {
        let what = operation_verb(effect.operation);
        let scope = if effect.filtered {
            format!("up to {rows} (a WHERE clause limits it)")
        } else {
            rows.clone()
        };
        if small {
            out.reasons.push(format!(
                "{what} touches {scope}: small enough for one transaction (~{})",
                format_duration(estimate)
            ));
        } else {
            out.verdict = Verdict::NeedsBatching;
            out.reasons.push(format!(
                "{what} changes {scope} in one transaction (~{}): row locks held to the end, a burst of WAL and dead rows; run it in batches",
                format_duration(estimate)
            ));
            out.actions.push(Action::ConvertToBackfill);
        }
    }

    if !lock.blocks_traffic() {
        if work != Work::Dml {
            out.reasons.push(format!(
                "takes {lock}: {} (~{})",
                lock.blocks(),
                format_duration(estimate)
            ));
        }
        if effect_is_concurrent(effect.operation) && !table.long_transactions.is_empty() {
            out.reasons.push(format!(
                "CONCURRENTLY waits for {} long transaction(s) to end first: {}",
                table.long_transactions.len(),
                table.long_transactions[0]
            ));
        }
        if !out.blockers.is_empty() {
            out.reasons.push(format!(
                "would wait behind {} (reads and writes continue meanwhile)",
                out.blockers[0]
            ));
        }
        return out;
    }

    // From here the lock makes application traffic wait.
    let held_through = if effect.held_through_seconds > 0.0 {
        format!(
            ", held until the transaction commits (~{} of later statements)",
            format_duration(effect.held_through_seconds)
        )
    } else {
        String::new()
    };
    let writes = match table.writes_per_second {
        Some(rate) if rate > 0.0 && hold > 0.0 => format!(
            "; at {rate:.0} writes/s about {:.0} writes would wait",
            rate * hold
        ),
        _ => String::new(),
    };
    let verb = match work {
        Work::Rewrite => "rewrites",
        Work::IndexBuild => "builds an index over",
        Work::Scan => "scans",
        Work::Dml | Work::None => "locks",
    };
    let what = format!(
        "{verb} {rows} ({}) under {lock}, which {}, for ~{}{held_through}{writes}",
        format_bytes(if work == Work::Rewrite {
            table.total_bytes
        } else {
            table.heap_bytes
        }),
        lock.blocks(),
        format_duration(hold)
    );
    let verdict = if work == Work::Rewrite && !small {
        Verdict::Dangerous
    } else if hold > policy.window_limit_seconds {
        Verdict::Dangerous
    } else if lock.blocks_reads() && hold > policy.brief_lock_seconds && !small {
        Verdict::Dangerous
    } else if matches!(work, Work::Scan | Work::IndexBuild | Work::Rewrite) && !small {
        Verdict::NeedsWindow
    } else if hold > policy.brief_lock_seconds {
        Verdict::NeedsWindow
    } else {
        Verdict::Safe
    };
    if verdict == Verdict::Safe {
        if work == Work::None && effect.held_through_seconds <= 0.0 {
            out.reasons
                .push(format!("takes {lock} only for a catalog change (brief)"));
        } else {
            out.reasons.push(format!("small table: {what}"));
        }
    } else {
        out.reasons.push(what);
        out.actions.extend(actions_for(effect, work));
        if effect.held_through_seconds > 0.0 && effect.held_through_seconds >= estimate {
            out.actions.push(Action::SplitTransaction);
        }
        out.actions.push(Action::RunInWindow);
    }
    out.verdict = out.verdict.max(verdict);

    if !out.blockers.is_empty() {
        out.verdict = out.verdict.max(Verdict::NeedsWindow);
        let more = match out.blockers.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        out.reasons.push(format!(
            "would queue behind {}{more}; while it waits, every query on the table queues behind it",
            out.blockers[0]
        ));
        out.actions.push(Action::EndBlockingTransactions);
    }
    out.actions.sort();
    out.actions.dedup();
    out
}

fn actions_for(effect: &EffectFacts, work: Work) -> Vec<Action> {
    match effect.operation {
        Operation::CreateIndex {
            concurrently: false,
        } => vec![Action::UseConcurrently],
        Operation::AlterTable(AlterSubcommand::AddConstraint {
            kind: ConstraintKind::Check | ConstraintKind::ForeignKey | ConstraintKind::NotNull,
            not_valid: false,
            ..
        })
        | Operation::AlterTable(AlterSubcommand::SetNotNull { .. }) => {
            vec![Action::AddNotValidThenValidate]
        }
        Operation::AlterTable(AlterSubcommand::AlterColumnType { .. })
        | Operation::AlterTable(AlterSubcommand::AddColumn { .. })
            if work == Work::Rewrite =>
        {
            vec![Action::NewColumnAndBackfill]
        }
        _ => Vec::new(),
    }
}

fn effect_is_concurrent(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::CreateIndex { concurrently: true }
            | Operation::Reindex { concurrently: true }
            | Operation::DropIndex { concurrently: true }
            | Operation::AlterTable(AlterSubcommand::DetachPartition { concurrently: true })
    )
}

fn operation_verb(operation: Operation) -> &'static str {
    match operation {
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Merge => "MERGE",
        _ => "the statement",
    }
}

fn format_rows(table: &TableFacts) -> String {
    let approx = if table.rows_exact { "" } else { "~" };
    let unit = if table.rows == 1 { "row" } else { "rows" };
    format!("{approx}{} {unit}", group_thousands(table.rows))
}

/// `48000000` → `48,000,000`.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `1536` → `1.5 KiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as a short human duration: `<1 ms`, `350 ms`, `4.2 s`, `3 min 20 s`, `2 h 5 min`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".into();
    }
    if seconds < 0.001 {
        "<1 ms".into()
    } else if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let whole = seconds.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    } else {
        let whole = seconds.round() as u64;
        format!("{} h {} min", whole / 3600, (whole % 3600) / 60)
    }
}
