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
//! | `UPDATE`/`DELETE`/`MERGE` of the whole table (a `WHERE` makes it an upper bound; one key batch counts as `small_table_rows` rows): new row versions, WAL, index entries | heap + TOAST + indexes | [`Policy::dml_factor`] (3) |
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
//! - *safe*: the table was created in this migration; or a data change is bounded to one batch of the key
//!   ([`RowScope::OneBatch`], decided by tidegate-sql for lint and apply alike); or the lock lets reads and
//!   writes continue; or the
//!   table is small ([`Policy::small_table_rows`]) and the lock is held briefly ([`Policy::brief_lock_seconds`]);
//!   or the change is catalog-only and held briefly.
//! - *needs batching*: `UPDATE`/`DELETE`/`MERGE` not bounded to one key batch over more than `small_table_rows`
//!   rows: run it as a backfill.
//! - *needs a window*: a scan or index build under a lock that blocks writes, on a table that is not small, or
//!   any traffic-blocking lock held longer than `brief_lock_seconds`; or a session holding a conflicting lock
//!   (idle in transaction, or open longer than [`Policy::long_transaction_seconds`]) that the statement would
//!   queue behind — while it queues, every query on the table queues behind *it*.
//! - *dangerous*: a rewrite of a table that is not small; a lock that blocks reads held longer than
//!   `brief_lock_seconds` on a table that is not small; any traffic-blocking lock held longer than
//!   [`Policy::window_limit_seconds`].

use serde::Serialize;

use crate::cost::{CostedWork, OperationRates};
use tidegate_sql::{AlterSubcommand, ConstraintKind, LockLevel, Operation, RowScope, TableSize};

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
    /// Measured per-operation rates (`tidegate plan --calibrate`); when present they replace the byte factors
    /// above. See [`crate::cost`].
    pub rates: Option<OperationRates>,
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
            rates: None,
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
    /// For UPDATE/DELETE/MERGE: how many of the table's rows it reaches ([`tidegate_sql::Statement::row_scope`]);
    /// `None` when not a data change.
    pub rows: Option<RowScope>,
    /// Seconds of work by later statements of the same transaction, during which this lock stays held.
    pub held_through_seconds: f64,
}

pub use tidegate_db::blockers::LockHolder;

/// A lock holder as plan's reasons name it: its lock in SQL's words.
pub struct HolderSummary<'a>(pub &'a LockHolder);

/// The table lock a holder holds or waits for, in lock-conflict terms.
pub fn holder_lock(holder: &LockHolder) -> Option<LockLevel> {
    holder.mode
}

impl std::fmt::Display for HolderSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let holder = self.0;
        let application = if holder.application_name.is_empty() {
            "no application_name"
        } else {
            &holder.application_name
        };
        write!(f, "pid {} ({application}, {}", holder.pid, holder.state)?;
        if let Some(age) = holder.transaction_age_seconds {
            write!(f, ", transaction open {}", format_duration(age))?;
        }
        if let Some(mode) = holder_lock(holder) {
            let verb = if holder.granted { "holds" } else { "waits for" };
            write!(f, ", {verb} {mode}")?;
        }
        write!(f, "): {}", holder.query)
    }
}

/// What the table looks like right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableFacts {
    /// Whether the table exists in the database (it may be created by an earlier pending migration).
    pub exists: bool,
    /// Rows (exact or estimated) and bytes: heap (what a scan reads) and total (what a rewrite rebuilds).
    #[serde(flatten)]
    pub size: TableSize,
    /// Measured sequential read rate; `None` when it could not be measured.
    pub scan_bytes_per_second: Option<f64>,
    /// Rows inserted, updated or deleted per second during the sample; `None` when not sampled.
    pub writes_per_second: Option<f64>,
    /// Indexes on the table, the primary key included; `None` when not read.
    pub indexes: Option<u32>,
    /// Sessions holding or waiting for locks on the table.
    pub lock_holders: Vec<LockHolder>,
    /// Long transactions anywhere in the database (they delay `CONCURRENTLY` builds and hold back VACUUM).
    pub long_transactions: Vec<LockHolder>,
}

impl TableFacts {
    pub fn rows(&self) -> u64 {
        self.size.rows
    }

    /// Bytes of the main fork (0 when unknown).
    pub fn heap_bytes(&self) -> u64 {
        self.size.heap_bytes.unwrap_or(0)
    }

    /// Heap, TOAST and indexes (0 when unknown).
    pub fn total_bytes(&self) -> u64 {
        self.size.total_bytes.unwrap_or(0)
    }

    /// A table that is not in the database.
    pub fn missing() -> Self {
        Self {
            exists: false,
            size: TableSize::exact(0).with_heap_bytes(0).with_total_bytes(0),
            scan_bytes_per_second: None,
            writes_per_second: None,
            indexes: None,
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
    pub blockers: Vec<LockHolder>,
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
    let work = work_of(effect);
    if let Some(rates) = &policy.rates {
        return (
            calibrated_seconds(effect, work, table, policy, rates),
            false,
        );
    }
    let (bytes, factor) = match work {
        Work::None => return (0.0, false),
        Work::Scan => (table.heap_bytes(), 1.0),
        Work::IndexBuild => (table.heap_bytes(), policy.index_build_factor),
        Work::Rewrite => (table.total_bytes(), policy.rewrite_factor),
        // The size of one batch is rarely written as a number (`BETWEEN $1 AND $2`): count it as a small table.
        Work::Dml if effect.rows.is_some_and(RowScope::is_one_batch) && table.rows() > 0 => (
            (table.total_bytes() as f64
                * (policy.small_table_rows.min(table.rows()) as f64 / table.rows() as f64))
                as u64,
            policy.dml_factor,
        ),
        Work::Dml => (table.total_bytes(), policy.dml_factor),
    };
    let (rate, assumed) = match table.scan_bytes_per_second {
        Some(rate) if rate.is_finite() && rate > 0.0 => (rate, false),
        _ => (policy.assumed_scan_bytes_per_second.max(1.0), true),
    };
    (bytes as f64 * factor / rate, assumed)
}

/// The estimate from measured rates ([`crate::cost`]); page-bound work scaled by the target's read rate against
/// the calibrated server's.
fn calibrated_seconds(
    effect: &EffectFacts,
    work: Work,
    table: &TableFacts,
    policy: &Policy,
    rates: &OperationRates,
) -> f64 {
    let costed = match work {
        Work::None => return 0.0,
        Work::Scan => CostedWork::Scan,
        Work::IndexBuild => CostedWork::IndexBuild,
        Work::Rewrite => CostedWork::Rewrite,
        Work::Dml => match effect.operation {
            Operation::Delete => CostedWork::Delete,
            _ => CostedWork::Update,
        },
    };
    let (mut rows, mut heap) = (table.rows(), table.heap_bytes());
    if work == Work::Dml && effect.rows.is_some_and(RowScope::is_one_batch) && rows > 0 {
        let batch = policy.small_table_rows.min(rows);
        heap = (heap as f64 * batch as f64 / rows as f64) as u64;
        rows = batch;
    }
    // Not read: at least the primary key a batched change walks.
    let indexes = table.indexes.unwrap_or(1);
    rates.estimate(costed, rows, heap, indexes, table.scan_bytes_per_second)
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
    let small = table.rows() <= policy.small_table_rows;
    let rows = format_rows(table);
    let work = work_of(effect);
    let lock = effect.lock;

    // Sessions the lock would queue behind.
    out.blockers = table
        .lock_holders
        .iter()
        .filter(|session| {
            holder_lock(session).is_some_and(|mode| lock.conflicts_with(mode))
                && (session.state.starts_with("idle in transaction")
                    || session
                        .transaction_age_seconds
                        .is_some_and(|age| age >= policy.long_transaction_seconds))
        })
        .cloned()
        .collect();

    if work == Work::Dml && effect.rows.is_some_and(RowScope::is_one_batch) {
        out.reasons.push(format!(
            "{} changes one batch of the key of a table of {rows}: short (~{}), its row locks end with it",
            operation_verb(effect.operation),
            format_duration(estimate)
        ));
    } else if work == Work::Dml {
        let what = operation_verb(effect.operation);
        let scope = if effect.rows.is_some_and(RowScope::is_limited) {
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
                HolderSummary(&table.long_transactions[0])
            ));
        }
        if !out.blockers.is_empty() {
            out.reasons.push(format!(
                "would wait behind {} (reads and writes continue meanwhile)",
                HolderSummary(&out.blockers[0])
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
            table.total_bytes()
        } else {
            table.heap_bytes()
        }),
        lock.blocks(),
        format_duration(hold)
    );
    let full_table_work = matches!(work, Work::Scan | Work::IndexBuild | Work::Rewrite);
    let dangerous = (work == Work::Rewrite && !small)
        || hold > policy.window_limit_seconds
        || (lock.blocks_reads() && hold > policy.brief_lock_seconds && !small);
    let needs_window = (full_table_work && !small) || hold > policy.brief_lock_seconds;
    let verdict = if dangerous {
        Verdict::Dangerous
    } else if needs_window {
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
            HolderSummary(&out.blockers[0])
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
    let approx = if table.size.rows_exact { "" } else { "~" };
    let unit = if table.rows() == 1 { "row" } else { "rows" };
    format!("{approx}{} {unit}", group_thousands(table.rows()))
}

/// `48000000` → `48,000,000`.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let head = match digits.len() % 3 {
        0 => 3,
        n => n,
    };
    let (first, rest) = digits.split_at(head.min(digits.len()));
    let mut out = first.to_string();
    for group in rest.as_bytes().chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
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

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_sql::{lock_facts, ColumnFill, PgVersion};

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    fn effect(operation: Operation) -> EffectFacts {
        let facts = lock_facts(operation, PgVersion(17));
        EffectFacts {
            operation,
            lock: facts.lock,
            rewrite: facts.rewrite,
            scan: facts.scan,
            created_in_migration: false,
            rows: None,
            held_through_seconds: 0.0,
        }
    }

    /// A table of `rows` rows, `heap` bytes of heap and 1.5× that in total, read at 100 MiB/s.
    fn table(rows: u64, heap: u64) -> TableFacts {
        TableFacts {
            exists: true,
            size: TableSize::estimated(rows)
                .with_heap_bytes(heap)
                .with_total_bytes(heap + heap / 2),
            scan_bytes_per_second: Some(100.0 * MIB as f64),
            writes_per_second: Some(0.0),
            indexes: Some(2),
            lock_holders: Vec::new(),
            long_transactions: Vec::new(),
        }
    }

    fn session(mode: LockLevel, state: &str, age: f64) -> LockHolder {
        LockHolder {
            pid: 4242,
            application_name: "billing-worker".into(),
            user: "billing".into(),
            state: state.into(),
            transaction_age_seconds: Some(age),
            query: "SELECT * FROM orders".into(),
            mode: Some(mode),
            granted: true,
        }
    }

    fn alter_type() -> Operation {
        Operation::AlterTable(AlterSubcommand::AlterColumnType {
            binary_coercible: false,
        })
    }

    fn add_nullable_column() -> Operation {
        Operation::AlterTable(AlterSubcommand::AddColumn {
            fill: ColumnFill::Null,
            not_null: false,
        })
    }

    const CREATE_INDEX: Operation = Operation::CreateIndex {
        concurrently: false,
    };

    fn policy() -> Policy {
        Policy::default()
    }

    #[test]
    fn a_rewrite_of_a_big_table_is_dangerous_with_its_estimate() {
        let orders = table(48_000_000, 20 * GIB);
        let out = assess(&effect(alter_type()), &orders, &policy());
        assert_eq!(out.verdict, Verdict::Dangerous);
        // 30 GiB (heap, TOAST, indexes) × rewrite factor 3 ÷ 100 MiB/s.
        let expected = (30 * GIB) as f64 * 3.0 / (100 * MIB) as f64;
        assert!((out.estimate_seconds - expected).abs() < 1e-6);
        assert!(!out.rate_assumed);
        assert!(out.actions.contains(&Action::NewColumnAndBackfill));
        assert!(
            out.reasons[0].contains("rewrites ~48,000,000 rows"),
            "{:?}",
            out.reasons
        );
        assert!(out.reasons[0].contains("blocks all reads and writes"));
    }

    #[test]
    fn a_rewrite_is_dangerous_even_when_the_measured_estimate_is_short() {
        let out = assess(&effect(alter_type()), &table(200_000, 10 * MIB), &policy());
        assert!(out.estimate_seconds < 1.0);
        assert_eq!(out.verdict, Verdict::Dangerous);
    }

    #[test]
    fn a_rewrite_of_a_small_table_is_safe() {
        let out = assess(&effect(alter_type()), &table(500, 64 * 1024), &policy());
        assert_eq!(out.verdict, Verdict::Safe);
        assert!(out.reasons[0].starts_with("small table"));
        assert!(out.actions.is_empty());
    }

    #[test]
    fn a_nullable_column_is_a_catalog_change_even_on_a_huge_busy_table() {
        let mut orders = table(48_000_000, 20 * GIB);
        orders.writes_per_second = Some(5_000.0);
        let out = assess(&effect(add_nullable_column()), &orders, &policy());
        assert_eq!(out.verdict, Verdict::Safe);
        assert_eq!(out.estimate_seconds, 0.0);
        assert!(out.reasons[0].contains("catalog change"));
    }

    #[test]
    fn an_idle_in_transaction_session_holding_a_conflicting_lock_is_a_blocker() {
        let mut orders = table(48_000_000, 20 * GIB);
        orders.lock_holders = vec![session(LockLevel::AccessShare, "idle in transaction", 0.5)];
        let out = assess(&effect(add_nullable_column()), &orders, &policy());
        assert_eq!(out.verdict, Verdict::NeedsWindow);
        assert_eq!(out.blockers.len(), 1);
        assert!(out.actions.contains(&Action::EndBlockingTransactions));
        let reason = out.reasons.last().unwrap();
        assert!(
            reason.contains("pid 4242 (billing-worker, idle in transaction"),
            "{reason}"
        );
        assert!(reason.contains("holds ACCESS SHARE"), "{reason}");
    }

    #[test]
    fn a_long_active_transaction_is_a_blocker_and_a_young_one_is_traffic() {
        let mut orders = table(48_000_000, 20 * GIB);
        orders.lock_holders = vec![session(LockLevel::RowExclusive, "active", 0.2)];
        let young = assess(&effect(add_nullable_column()), &orders, &policy());
        assert_eq!(young.verdict, Verdict::Safe);
        assert!(young.blockers.is_empty());

        orders.lock_holders = vec![session(LockLevel::RowExclusive, "active", 120.0)];
        let old = assess(&effect(add_nullable_column()), &orders, &policy());
        assert_eq!(old.verdict, Verdict::NeedsWindow);
        assert_eq!(old.blockers.len(), 1);
    }

    #[test]
    fn a_holder_whose_lock_does_not_conflict_is_not_a_blocker() {
        // CREATE INDEX takes SHARE, which does not conflict with ACCESS SHARE (readers).
        let mut orders = table(1_000, 64 * 1024);
        orders.lock_holders = vec![session(
            LockLevel::AccessShare,
            "idle in transaction",
            600.0,
        )];
        let out = assess(&effect(CREATE_INDEX), &orders, &policy());
        assert!(out.blockers.is_empty());
        assert_eq!(out.verdict, Verdict::Safe);
        // But it conflicts with a writer's ROW EXCLUSIVE.
        orders.lock_holders = vec![session(
            LockLevel::RowExclusive,
            "idle in transaction",
            600.0,
        )];
        let out = assess(&effect(CREATE_INDEX), &orders, &policy());
        assert_eq!(out.blockers.len(), 1);
        assert_eq!(out.verdict, Verdict::NeedsWindow);
    }

    #[test]
    fn an_index_build_on_a_big_table_needs_a_window_and_concurrently() {
        let mut orders = table(2_000_000, GIB);
        orders.writes_per_second = Some(200.0);
        let out = assess(&effect(CREATE_INDEX), &orders, &policy());
        assert_eq!(out.verdict, Verdict::NeedsWindow);
        // 1 GiB of heap × 2 ÷ 100 MiB/s.
        assert!((out.estimate_seconds - 20.48).abs() < 1e-9);
        assert_eq!(
            out.actions,
            vec![Action::UseConcurrently, Action::RunInWindow]
        );
        assert!(out.reasons[0].contains("blocks INSERT, UPDATE and DELETE"));
        assert!(
            out.reasons[0].contains("about 4096 writes would wait"),
            "{}",
            out.reasons[0]
        );
    }

    #[test]
    fn an_index_build_longer_than_any_window_is_dangerous() {
        let out = assess(
            &effect(CREATE_INDEX),
            &table(400_000_000, 100 * GIB),
            &policy(),
        );
        assert!(out.estimate_seconds > policy().window_limit_seconds);
        assert_eq!(out.verdict, Verdict::Dangerous);
    }

    #[test]
    fn a_concurrent_index_build_is_safe_but_mentions_long_transactions() {
        let mut orders = table(48_000_000, 20 * GIB);
        let mut long = session(LockLevel::AccessShare, "idle in transaction", 900.0);
        long.mode = None;
        orders.long_transactions = vec![long];
        let out = assess(
            &effect(Operation::CreateIndex { concurrently: true }),
            &orders,
            &policy(),
        );
        assert_eq!(out.verdict, Verdict::Safe);
        assert!(out.estimate_seconds > 0.0);
        assert!(out
            .reasons
            .iter()
            .any(|r| r.contains("CONCURRENTLY waits for 1 long transaction")));
    }

    #[test]
    fn an_update_of_a_big_table_needs_batching() {
        let out = assess(
            &effect(Operation::Update),
            &table(48_000_000, 20 * GIB),
            &policy(),
        );
        assert_eq!(out.verdict, Verdict::NeedsBatching);
        assert_eq!(out.actions, vec![Action::ConvertToBackfill]);
        assert!(out.reasons[0].starts_with("UPDATE changes ~48,000,000 rows"));
        let mut filtered = effect(Operation::Delete);
        filtered.rows = Some(RowScope::Filtered);
        let out = assess(&filtered, &table(48_000_000, 20 * GIB), &policy());
        assert_eq!(out.verdict, Verdict::NeedsBatching);
        assert!(
            out.reasons[0].contains("up to ~48,000,000 rows"),
            "{}",
            out.reasons[0]
        );
    }

    #[test]
    fn one_key_batch_of_a_big_table_is_safe() {
        let mut batch = effect(Operation::Update);
        batch.rows = Some(RowScope::OneBatch);
        let out = assess(&batch, &table(48_000_000, 20 * GIB), &policy());
        assert_eq!(out.verdict, Verdict::Safe, "{:?}", out.reasons);
        assert!(out.actions.is_empty());
        assert!(
            out.reasons[0].starts_with("UPDATE changes one batch of the key"),
            "{}",
            out.reasons[0]
        );
        let whole = assess(
            &effect(Operation::Update),
            &table(48_000_000, 20 * GIB),
            &policy(),
        );
        assert!(out.estimate_seconds * 1000.0 < whole.estimate_seconds);
    }

    #[test]
    fn an_update_of_a_small_table_is_safe() {
        let out = assess(&effect(Operation::Update), &table(9_000, MIB), &policy());
        assert_eq!(out.verdict, Verdict::Safe);
    }

    #[test]
    fn a_table_created_in_the_migration_is_safe_whatever_happens_to_it() {
        for operation in [
            alter_type(),
            CREATE_INDEX,
            Operation::Update,
            add_nullable_column(),
        ] {
            let mut new = effect(operation);
            new.created_in_migration = true;
            let out = assess(&new, &TableFacts::missing(), &policy());
            assert_eq!(out.verdict, Verdict::Safe, "{operation:?}");
            assert_eq!(out.estimate_seconds, 0.0);
        }
    }

    #[test]
    fn a_table_not_in_the_database_yet_is_safe_and_says_so() {
        let out = assess(&effect(alter_type()), &TableFacts::missing(), &policy());
        assert_eq!(out.verdict, Verdict::Safe);
        assert!(out.reasons[0].contains("not in the database yet"));
    }

    #[test]
    fn a_catalog_change_held_through_a_long_transaction_is_dangerous() {
        // The incident: ADD COLUMN then a whole-table UPDATE in one transaction keeps ACCESS EXCLUSIVE for the
        // whole UPDATE.
        let mut add = effect(add_nullable_column());
        add.held_through_seconds = 900.0;
        let out = assess(&add, &table(48_000_000, 20 * GIB), &policy());
        assert_eq!(out.verdict, Verdict::Dangerous);
        assert_eq!(out.lock_hold_seconds, 900.0);
        assert!(out.actions.contains(&Action::SplitTransaction));
        assert!(out.reasons[0].contains("held until the transaction commits"));

        add.held_through_seconds = 30.0;
        let out = assess(&add, &table(48_000_000, 20 * GIB), &policy());
        assert_eq!(out.verdict, Verdict::Dangerous, "blocks reads for 30 s");

        // The same under SHARE (an index build) blocks only writes: a window.
        let mut index = effect(CREATE_INDEX);
        index.held_through_seconds = 30.0;
        let out = assess(&index, &table(5_000, MIB), &policy());
        assert_eq!(out.verdict, Verdict::NeedsWindow);
    }

    #[test]
    fn set_not_null_scans_under_access_exclusive() {
        let op = Operation::AlterTable(AlterSubcommand::SetNotNull {
            proven_by_constraint: false,
        });
        // A short scan on a mid-size table: a window.
        let out = assess(&effect(op), &table(50_000, 10 * MIB), &policy());
        assert_eq!(out.verdict, Verdict::NeedsWindow);
        assert!(out.actions.contains(&Action::AddNotValidThenValidate));
        // A long one blocks reads for minutes: dangerous.
        let out = assess(&effect(op), &table(48_000_000, 20 * GIB), &policy());
        assert_eq!(out.verdict, Verdict::Dangerous);
        // Proven by a constraint: no scan, catalog-only.
        let proven = Operation::AlterTable(AlterSubcommand::SetNotNull {
            proven_by_constraint: true,
        });
        let out = assess(&effect(proven), &table(48_000_000, 20 * GIB), &policy());
        assert_eq!(out.verdict, Verdict::Safe);
    }

    #[test]
    fn a_validating_foreign_key_needs_a_window_and_not_valid_does_not() {
        let validating = Operation::AlterTable(AlterSubcommand::AddConstraint {
            kind: ConstraintKind::ForeignKey,
            not_valid: false,
            using_index: false,
        });
        let out = assess(&effect(validating), &table(2_000_000, GIB), &policy());
        assert_eq!(out.verdict, Verdict::NeedsWindow);
        assert!(out.actions.contains(&Action::AddNotValidThenValidate));
        let not_valid = Operation::AlterTable(AlterSubcommand::AddConstraint {
            kind: ConstraintKind::ForeignKey,
            not_valid: true,
            using_index: false,
        });
        let out = assess(&effect(not_valid), &table(2_000_000, GIB), &policy());
        assert_eq!(out.verdict, Verdict::Safe);
        let validate = Operation::AlterTable(AlterSubcommand::ValidateConstraint);
        let out = assess(&effect(validate), &table(2_000_000, GIB), &policy());
        assert_eq!(
            out.verdict,
            Verdict::Safe,
            "SHARE UPDATE EXCLUSIVE lets traffic through"
        );
    }

    #[test]
    fn an_unmeasured_rate_falls_back_to_the_assumed_one_and_says_so() {
        let mut orders = table(2_000_000, GIB);
        orders.scan_bytes_per_second = None;
        let out = assess(&effect(CREATE_INDEX), &orders, &policy());
        assert!(out.rate_assumed);
        assert!((out.estimate_seconds - 20.48).abs() < 1e-9);
        orders.scan_bytes_per_second = Some(0.0);
        assert!(assess(&effect(CREATE_INDEX), &orders, &policy()).rate_assumed);
    }

    #[test]
    fn the_policy_thresholds_move_the_verdicts() {
        let strict = Policy {
            small_table_rows: 0,
            ..Policy::default()
        };
        let out = assess(&effect(alter_type()), &table(500, 64 * 1024), &strict);
        assert_eq!(out.verdict, Verdict::Dangerous);
        let lenient = Policy {
            small_table_rows: 100_000_000,
            brief_lock_seconds: 10_000.0,
            ..Policy::default()
        };
        let out = assess(&effect(CREATE_INDEX), &table(2_000_000, GIB), &lenient);
        assert_eq!(out.verdict, Verdict::Safe);
    }

    #[test]
    fn verdicts_order_from_safe_to_dangerous() {
        assert!(Verdict::Safe < Verdict::NeedsBatching);
        assert!(Verdict::NeedsBatching < Verdict::NeedsWindow);
        assert!(Verdict::NeedsWindow < Verdict::Dangerous);
        assert_eq!(
            serde_json::to_string(&Verdict::NeedsWindow).unwrap(),
            "\"needs_window\""
        );
    }

    #[test]
    fn numbers_render_for_people() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(48_000_000), "48,000,000");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(30 * GIB), "30.0 GiB");
        assert_eq!(format_duration(0.0), "<1 ms");
        assert_eq!(format_duration(0.35), "350 ms");
        assert_eq!(format_duration(4.24), "4.2 s");
        assert_eq!(format_duration(200.0), "3 min 20 s");
        assert_eq!(format_duration(7500.0), "2 h 5 min");
        assert_eq!(format_duration(f64::NAN), "unknown");
    }
}
