//! Synthetic rows from a table's statistics: pure, seeded and deterministic (the same inputs and seed give the
//! same bytes), written as COPY text-format rows.
//!
//! For each column the generator lays out the table's non-null values *in value order* — the most-common values
//! as blocks of exactly their frequency, placed where their value falls among the histogram, and between them the
//! other values, `n_distinct − |MCVs|` of them, spread over the histogram's equal-population buckets — and then
//! deals that sorted layout out to the physical rows:
//!
//! - **NULLs**: exactly `null_frac × rows` rows, at positions a seeded permutation picks.
//! - **Order** (`correlation` ρ): the k-th non-null row takes the value at layout position `π(k)`, where `π` keeps
//!   windows of `√(1−|ρ|)` of the rows in place and shuffles inside each window. A window-shuffled sequence has a
//!   correlation of `1 − w²` with its position, so ρ = 1 loads the values sorted, ρ = 0 shuffled, and a negative ρ
//!   reverses the layout. Every layout position is dealt exactly once, so the frequencies are exact whatever the
//!   order.
//! - **Uniqueness**: a column of a primary key, unique constraint or unique index (for a key of several columns,
//!   the one with the most distinct values that is not a foreign key) has no repeated value: its layout is one
//!   value per row, evenly spaced over the source's range (stretched beyond it when the range has fewer values
//!   than the rows).
//! - **Foreign keys** (of one column): the column's distribution (NULLs, MCV frequencies, distinct count, order) is
//!   drawn over the *ranks* of the parent's key, and each rank is written as the parent's generated key at that
//!   rank, so every value exists in the parent.
//! - **Foreign keys of several columns** (a, b) → (x, y): the child row picks a parent *row* — the child's
//!   distinct tuples (the largest `n_distinct` of its columns) spread evenly over the parent's rows, dealt to child rows
//!   by a permutation — and each column writes the parent's generated value of its column at that row, so every
//!   non-null tuple is one the parent holds. Each column keeps its own NULLs (MATCH SIMPLE checks only tuples
//!   without one; under MATCH FULL the columns hold none); the columns' own most-common values and order are not
//!   kept (said in the notes). A parent column with NULLs cannot be addressed by row, and such a key is left to
//!   the rehearsal, which adds it `NOT VALID` when the rows break it.
//! - **Values**: integers, numerics, floats, dates and timestamps interpolate the histogram's bounds; text takes the
//!   prefix of its bucket's lower bound and a base-62 counter, padded to the width `avg_width` implies for the
//!   values outside the MCVs; enums and booleans use their labels; UUIDs take their high bits from the histogram
//!   and their low bits from the counter; json/jsonb is an opaque `{"k": "…"}` of the right width. Other types
//!   repeat the source's own most-common values and histogram bounds, as text.
//!
//! Frequencies in `pg_stats` are fractions of all rows; a column without statistics (added after the last
//! ANALYZE) gets distinct values over a default range.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

use tidegate_db::column_stats::{ColumnStats, TableStatistics};
use tidegate_db::table_schema::{ColumnDefinition, ConstraintKind, TableSchema};

/// One source table: its definition and its statistics.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub schema: TableSchema,
    pub statistics: TableStatistics,
}

impl SourceTable {
    /// The rows the source has by the catalog's estimate (0 when never analysed).
    pub fn source_rows(&self) -> u64 {
        self.statistics.estimated_rows.unwrap_or(0)
    }
}

/// Why rows cannot be synthesized for a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynthesisError {
    #[error("{table}.{column}: {reason}")]
    Column {
        table: String,
        column: String,
        reason: String,
    },
    #[error("{table}: {reason}")]
    Table { table: String, reason: String },
}

/// What will be generated for every table, and what the generator could not honour.
#[derive(Debug)]
pub struct SynthesisPlan {
    pub tables: Vec<TableGenerator>,
    /// Departures from the source, for the report (a composite foreign key, a column without statistics, …).
    pub notes: Vec<String>,
}

/// The generator of one table's rows (cheap to clone: its columns are shared).
#[derive(Debug, Clone)]
pub struct TableGenerator {
    /// `schema.name`, quoted.
    pub qualified: String,
    pub oid: u32,
    pub rows: u64,
    /// The columns COPY loads, in the table's order (generated columns are left to PostgreSQL).
    pub columns: Vec<(String, Arc<ColumnGenerator>)>,
}

impl TableGenerator {
    /// A writer that produces rows `0..rows` in order.
    pub fn writer(&self) -> RowWriter<'_> {
        RowWriter {
            table: self,
            next_row: 0,
            non_null_seen: vec![0; self.columns.len()],
        }
    }
}

/// Writes a table's rows in physical order, in COPY text format.
#[derive(Debug)]
pub struct RowWriter<'a> {
    table: &'a TableGenerator,
    next_row: u64,
    non_null_seen: Vec<u64>,
}

impl RowWriter<'_> {
    /// Appends up to `count` rows to `out`; returns how many (0 once every row is written).
    pub fn write_rows(&mut self, count: u64, out: &mut Vec<u8>) -> u64 {
        let end = (self.next_row + count).min(self.table.rows);
        let written = end - self.next_row;
        for row in self.next_row..end {
            for (index, (_, column)) in self.table.columns.iter().enumerate() {
                if index > 0 {
                    out.push(b'\t');
                }
                if column.is_null(row) {
                    out.extend_from_slice(b"\\N");
                } else if column.tuple.is_some() {
                    // The row itself picks the parent row, so that every column of the key picks the same one.
                    column.write_rank(row, out);
                } else {
                    let ordinal = self.non_null_seen[index];
                    self.non_null_seen[index] += 1;
                    column.write_rank(column.order.rank(ordinal), out);
                }
            }
            out.push(b'\n');
        }
        self.next_row = end;
        written
    }
}

// ---- permutations ---------------------------------------------------------------------------------------------

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: a cheap, well-spread hash.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A bijection of `0..n` keyed by `key`: a four-round Feistel network over the smallest even number of bits that
/// covers `n`, with cycle walking back into range.
fn permute(x: u64, n: u64, key: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let bits = 64 - (n - 1).leading_zeros();
    let half = bits.div_ceil(2);
    let mask = (1u64 << half) - 1;
    let mut value = x;
    loop {
        let mut left = value >> half;
        let mut right = value & mask;
        for round in 0..4u64 {
            let next = left
                ^ (mix(right ^ key.wrapping_add(round.wrapping_mul(0x632B_E59B_D9B4_E019))) & mask);
            left = right;
            right = next;
        }
        value = (left << half) | right;
        if value < n {
            return value;
        }
    }
}

/// The window, as a fraction `x` of the values, whose shuffle leaves a correlation of `strength`: windows of `x`
/// and a last one of the remainder `r` keep `1 − (⌊1/x⌋·x³ + r³)` (each window takes its share of the variance of
/// position away), which grows with `x`; found by bisection.
fn window_fraction(strength: f64) -> f64 {
    let lost = |x: f64| {
        let full = (1.0 / x).floor();
        let remainder = (1.0 - full * x).max(0.0);
        full * x * x * x + remainder * remainder * remainder
    };
    let target = 1.0 - strength;
    let (mut low, mut high) = (0.0f64, 1.0f64);
    for _ in 0..50 {
        let middle = (low + high) / 2.0;
        if middle <= 0.0 || lost(middle) < target {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// Which layout position the k-th non-null row takes (see the module documentation).
#[derive(Debug, Clone)]
pub struct Order {
    values: u64,
    window: u64,
    descending: bool,
    key: u64,
}

impl Order {
    fn new(values: u64, correlation: f64, key: u64) -> Self {
        let strength = correlation.abs().clamp(0.0, 1.0);
        let window = (window_fraction(strength) * values as f64).ceil().max(1.0) as u64;
        Self {
            values,
            window: window.min(values.max(1)),
            descending: correlation < 0.0,
            key,
        }
    }

    fn rank(&self, ordinal: u64) -> u64 {
        let block = ordinal / self.window;
        let start = block * self.window;
        let length = self.window.min(self.values - start);
        let rank = start + permute(ordinal - start, length, mix(self.key ^ block));
        if self.descending {
            self.values - 1 - rank
        } else {
            rank
        }
    }
}

// ---- one column -------------------------------------------------------------------------------------------------

/// A stretch of the sorted layout: one most-common value, or a run of the other values.
#[derive(Debug, Clone, Copy)]
enum Segment {
    Common { start: u64, value: usize },
    Rest { start: u64, rest_offset: u64 },
}

impl Segment {
    fn start(&self) -> u64 {
        match self {
            Segment::Common { start, .. } | Segment::Rest { start, .. } => *start,
        }
    }
}

/// How the values outside the most-common ones are written.
#[derive(Debug)]
enum RestValues {
    /// A number-like value interpolated over `bounds` (or spaced evenly when `unique`).
    Ordered {
        kind: OrderedKind,
        bounds: Vec<f64>,
        unique: Option<(f64, f64)>,
    },
    /// Text: the prefix of the bucket's lower bound, filler, a base-62 counter; `length` bytes in all.
    Text {
        prefixes: Vec<Vec<u8>>,
        length: usize,
        digits: usize,
    },
    Uuid {
        high_bounds: Vec<f64>,
    },
    Json {
        length: usize,
        digits: usize,
    },
    /// The source's own histogram bounds, repeated (types the generator does not know).
    Verbatim {
        bounds: Vec<Vec<u8>>,
    },
    /// The parent key at a rank: a foreign key.
    ParentKey {
        parent: Arc<ColumnGenerator>,
        parent_values: u64,
    },
    None,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OrderedKind {
    Integer { min: f64, max: f64 },
    Decimal { places: usize },
    Date,
    Timestamp { with_zone: bool },
    Boolean,
    Label,
}

impl OrderedKind {
    /// Values are whole steps (integers, days, labels): keys are floored.
    fn is_discrete(self) -> bool {
        !matches!(
            self,
            OrderedKind::Decimal { .. } | OrderedKind::Timestamp { .. }
        )
    }
}

/// The generator of one column's values.
#[derive(Debug)]
pub struct ColumnGenerator {
    rows: u64,
    nulls: u64,
    null_key: u64,
    order: Order,
    segments: Vec<Segment>,
    /// The most-common values, COPY-escaped (for a foreign key: the parent ranks they stand for, in `parent_ranks`).
    common: Vec<Vec<u8>>,
    parent_ranks: Vec<u64>,
    /// Layout positions outside the most-common values, and the distinct values among them.
    rest_rows: u64,
    rest_distinct: u64,
    rest: RestValues,
    labels: Vec<Vec<u8>>,
    /// A column of a foreign key of several columns: its values are the parent's at a parent row.
    tuple: Option<TupleSource>,
}

/// How a column of a several-column foreign key finds its value: one parent column, at the parent row its child
/// row picks (the same pick for every column of the key: the same `key`, `distinct` and rows).
#[derive(Debug)]
struct TupleSource {
    parent: Arc<ColumnGenerator>,
    child_rows: u64,
    distinct: u64,
    key: u64,
}

impl TupleSource {
    fn parent_row(&self, row: u64) -> u64 {
        let rows = self.child_rows.max(1);
        let distinct = self.distinct.clamp(1, rows);
        let k = (u128::from(permute(row % rows, rows, self.key)) * u128::from(distinct)
            / u128::from(rows)) as u64;
        spread(k, distinct, self.parent.rows)
    }
}

impl ColumnGenerator {
    /// Non-null values this column holds (its layout's length).
    pub fn values(&self) -> u64 {
        self.rows - self.nulls
    }

    /// A non-null value of the column, as text (COPY escapes undone), drawn from its distribution: `pick` (any
    /// number, a random one for a random draw) selects a layout position, so the most-common values come up at
    /// their frequencies. `None` when the column holds only NULLs.
    pub fn draw(&self, pick: u64) -> Option<String> {
        let values = self.values();
        if values == 0 {
            return None;
        }
        let mut escaped = Vec::new();
        self.write_rank(pick % values, &mut escaped);
        if escaped == b"\\N" {
            return None;
        }
        Some(String::from_utf8_lossy(&unescape(&escaped)).into_owned())
    }

    /// Writes the value this column holds at physical row `row`; only for a column without NULLs, whose k-th
    /// non-null value is row k's.
    fn write_at_row(&self, row: u64, out: &mut Vec<u8>) {
        if self.tuple.is_some() {
            self.write_rank(row, out);
        } else {
            self.write_rank(self.order.rank(row), out);
        }
    }

    fn is_null(&self, row: u64) -> bool {
        self.nulls > 0 && permute(row, self.rows, self.null_key) < self.nulls
    }

    /// Writes the value at layout position `rank` (value order); for a column of a several-column foreign key,
    /// `rank` is the child row.
    fn write_rank(&self, rank: u64, out: &mut Vec<u8>) {
        if let Some(tuple) = &self.tuple {
            tuple.parent.write_at_row(tuple.parent_row(rank), out);
            return;
        }
        let index = self
            .segments
            .partition_point(|segment| segment.start() <= rank)
            .saturating_sub(1);
        match self.segments.get(index) {
            Some(Segment::Common { value, .. }) => match &self.rest {
                RestValues::ParentKey { parent, .. } => {
                    parent.write_rank(self.parent_ranks[*value], out)
                }
                _ => out.extend_from_slice(&self.common[*value]),
            },
            Some(Segment::Rest { start, rest_offset }) => {
                let position = rank - start + rest_offset;
                let distinct = self.rest_distinct.max(1);
                let k = (u128::from(position) * u128::from(distinct)
                    / u128::from(self.rest_rows.max(1))) as u64;
                self.write_rest(k.min(distinct - 1), distinct, out);
            }
            None => out.extend_from_slice(b"\\N"),
        }
    }

    fn write_rest(&self, k: u64, distinct: u64, out: &mut Vec<u8>) {
        let quantile = (k as f64 + 0.5) / distinct as f64;
        match &self.rest {
            RestValues::Ordered {
                kind,
                bounds,
                unique,
            } => {
                let key = match unique {
                    Some((low, step)) => low + *step * k as f64,
                    None => interpolate(bounds, quantile),
                };
                write_ordered(*kind, key, &self.labels, out);
            }
            RestValues::Text {
                prefixes,
                length,
                digits,
            } => {
                let prefix = if prefixes.is_empty() {
                    &[][..]
                } else {
                    let bucket = ((k as u128 * prefixes.len() as u128) / distinct as u128) as usize;
                    &prefixes[bucket.min(prefixes.len() - 1)][..]
                };
                let body = length.saturating_sub(*digits);
                let take = prefix_len(prefix, body);
                out.extend_from_slice(&prefix[..take]);
                out.extend(std::iter::repeat_n(b'x', body - take));
                write_base62(k, *digits, out);
            }
            RestValues::Uuid { high_bounds } => {
                let high = interpolate(high_bounds, quantile).clamp(0.0, u64::MAX as f64) as u64;
                let value = (u128::from(high) << 64) | u128::from(k);
                let hex = format!("{value:032x}");
                let _ = write!(
                    out,
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                );
            }
            RestValues::Json { length, digits } => {
                out.extend_from_slice(b"{\"k\": \"");
                let fill = length.saturating_sub(digits + 10);
                out.extend(std::iter::repeat_n(b'x', fill));
                write_base62(k, *digits, out);
                out.extend_from_slice(b"\"}");
            }
            RestValues::Verbatim { bounds } => {
                if bounds.is_empty() {
                    out.extend_from_slice(b"\\N");
                } else {
                    let index = ((k as u128 * bounds.len() as u128) / distinct as u128) as usize;
                    out.extend_from_slice(&bounds[index.min(bounds.len() - 1)]);
                }
            }
            RestValues::ParentKey {
                parent,
                parent_values,
            } => parent.write_rank(spread(k, distinct, *parent_values), out),
            RestValues::None => out.extend_from_slice(b"\\N"),
        }
    }
}

/// The parent rank the k-th of `distinct` values stands for: spread evenly over the parent's keys.
fn spread(k: u64, distinct: u64, parent_values: u64) -> u64 {
    let rank = ((u128::from(k) * 2 + 1) * u128::from(parent_values)
        / (2 * u128::from(distinct.max(1)))) as u64;
    rank.min(parent_values.saturating_sub(1))
}

/// Whether some value outside the MCVs already stands for parent rank `rank`.
fn is_spread_rank(rank: u64, distinct: u64, parent_values: u64) -> bool {
    if distinct == 0 || parent_values == 0 {
        return false;
    }
    let near = (u128::from(rank) * u128::from(distinct) / u128::from(parent_values)) as u64;
    (near.saturating_sub(1)..=(near + 1).min(distinct - 1))
        .any(|k| spread(k, distinct, parent_values) == rank)
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a character boundary.
fn prefix_len(text: &[u8], limit: usize) -> usize {
    let mut end = limit.min(text.len());
    // UTF-8 continuation bytes are 0b10xx_xxxx; an escaped backslash pair is never split either.
    while end > 0 && end < text.len() && (text[end] & 0xC0 == 0x80 || text[end - 1] == b'\\') {
        end -= 1;
    }
    end
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62_digits(count: u64) -> usize {
    let mut digits = 1;
    let mut capacity: u128 = 62;
    while capacity < u128::from(count) {
        digits += 1;
        capacity *= 62;
    }
    digits
}

fn write_base62(mut value: u64, digits: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + digits, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
}

/// The value at `quantile` of a histogram whose bounds split the values into equal-population buckets.
fn interpolate(bounds: &[f64], quantile: f64) -> f64 {
    match bounds.len() {
        0 => 0.0,
        1 => bounds[0],
        n => {
            let position = quantile.clamp(0.0, 1.0) * (n - 1) as f64;
            let bucket = (position.floor() as usize).min(n - 2);
            let fraction = position - bucket as f64;
            bounds[bucket] + fraction * (bounds[bucket + 1] - bounds[bucket])
        }
    }
}

/// Where `key` falls in the histogram, as a quantile.
fn quantile_of(bounds: &[f64], key: f64) -> f64 {
    if bounds.len() < 2 {
        return 0.5;
    }
    let upper = bounds.partition_point(|bound| *bound < key);
    if upper == 0 {
        return 0.0;
    }
    if upper >= bounds.len() {
        return 1.0;
    }
    let (low, high) = (bounds[upper - 1], bounds[upper]);
    let within = if high > low {
        (key - low) / (high - low)
    } else {
        0.0
    };
    ((upper - 1) as f64 + within) / (bounds.len() - 1) as f64
}

fn write_ordered(kind: OrderedKind, key: f64, labels: &[Vec<u8>], out: &mut Vec<u8>) {
    match kind {
        OrderedKind::Integer { min, max } => {
            write_i64(key.floor().clamp(min, max) as i64, out);
        }
        OrderedKind::Decimal { places } => write_decimal(key, places, out),
        OrderedKind::Date => write_date(key.floor() as i64, out),
        OrderedKind::Timestamp { with_zone } => {
            let micros = key.round() as i64;
            let days = micros.div_euclid(86_400_000_000);
            let rest = micros.rem_euclid(86_400_000_000);
            write_date(days, out);
            let seconds = (rest / 1_000_000) as u64;
            out.push(b' ');
            write_padded(seconds / 3600, 2, out);
            out.push(b':');
            write_padded((seconds / 60) % 60, 2, out);
            out.push(b':');
            write_padded(seconds % 60, 2, out);
            out.push(b'.');
            write_padded((rest % 1_000_000) as u64, 6, out);
            if with_zone {
                out.extend_from_slice(b"+00");
            }
        }
        OrderedKind::Boolean => out.push(if key >= 1.0 { b't' } else { b'f' }),
        OrderedKind::Label => {
            if let Some(label) = labels.get(
                key.floor()
                    .clamp(0.0, labels.len().saturating_sub(1) as f64) as usize,
            ) {
                out.extend_from_slice(label);
            }
        }
    }
}

fn write_date(days: i64, out: &mut Vec<u8>) {
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}");
        return;
    }
    write_padded(year as u64, 4, out);
    out.push(b'-');
    write_padded(month as u64, 2, out);
    out.push(b'-');
    write_padded(day as u64, 2, out);
}

// Hand-written number formatting: `write!` through `fmt` was the generator's largest cost after the permutations
// (a formatter and its padding logic per value, several values per row).

/// `value` in decimal, left-padded with zeros to at least `width` digits.
fn write_padded(mut value: u64, width: usize, out: &mut Vec<u8>) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let start = start.min(digits.len().saturating_sub(width));
    out.extend_from_slice(&digits[start..]);
}

fn write_i64(value: i64, out: &mut Vec<u8>) {
    if value < 0 {
        out.push(b'-');
    }
    write_padded(value.unsigned_abs(), 1, out);
}

/// `key` with `places` decimals, rounded half away from zero. Falls back to `fmt` where scaling by `10^places`
/// would lose the exactness of an integer in an f64 (or the value is not finite).
fn write_decimal(key: f64, places: usize, out: &mut Vec<u8>) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if places <= 9 {
        let unit = 10u64.pow(places as u32);
        let scaled = (key * unit as f64).round();
        if scaled.is_finite() && scaled.abs() < EXACT {
            let magnitude = scaled.abs() as u64;
            if scaled < 0.0 && magnitude > 0 {
                out.push(b'-');
            }
            write_padded(magnitude / unit, 1, out);
            if places > 0 {
                out.push(b'.');
                write_padded(magnitude % unit, places, out);
            }
            return;
        }
    }
    let _ = write!(out, "{key:.places$}");
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DD` → days since 1970-01-01.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.get(..10)?.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day))
        .then(|| days_from_civil(year, month, day))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]]` → microseconds since 1970-01-01 UTC (the offset applied).
fn parse_timestamp(text: &str) -> Option<f64> {
    let days = parse_date(text)?;
    let time = text.get(11..)?;
    let (clock, offset_seconds) = match time.find(['+', '-']) {
        Some(at) => {
            let (clock, offset) = time.split_at(at);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let mut fields = offset[1..].split(':').map(|f| f.parse::<i64>().ok());
            let hours = fields.next().flatten()?;
            let minutes = fields.next().flatten().unwrap_or(0);
            let seconds = fields.next().flatten().unwrap_or(0);
            (clock, sign * (hours * 3600 + minutes * 60 + seconds))
        }
        None => (time, 0),
    };
    let mut fields = clock.split(':');
    let hours: i64 = fields.next()?.parse().ok()?;
    let minutes: i64 = fields.next()?.parse().ok()?;
    let seconds: f64 = fields.next()?.parse().ok()?;
    let local = (days * 86_400 + hours * 3600 + minutes * 60) as f64 + seconds;
    Some((local - offset_seconds as f64) * 1e6)
}

/// COPY text format escapes: backslash, and the characters that would end a field or a row.
fn escape(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
    out
}

/// The text a COPY text-format field stands for: [`escape`] undone.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match bytes.next() {
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(&other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

/// What a column's type asks of the generator.
#[derive(Debug, Clone, PartialEq)]
enum ColumnKind {
    Ordered(OrderedKind),
    Text { max_chars: Option<usize> },
    Uuid,
    Json,
    Other,
}

fn column_kind(column: &ColumnDefinition) -> ColumnKind {
    let typmod = column.base_typmod;
    match (column.base_kind.as_str(), column.base_type.as_str()) {
        ("e", _) => ColumnKind::Ordered(OrderedKind::Label),
        (_, "int2") => ColumnKind::Ordered(OrderedKind::Integer {
            min: f64::from(i16::MIN),
            max: f64::from(i16::MAX),
        }),
        (_, "int4") => ColumnKind::Ordered(OrderedKind::Integer {
            min: f64::from(i32::MIN),
            max: f64::from(i32::MAX),
        }),
        (_, "int8") => ColumnKind::Ordered(OrderedKind::Integer {
            min: i64::MIN as f64,
            max: i64::MAX as f64,
        }),
        (_, "numeric") => ColumnKind::Ordered(OrderedKind::Decimal {
            // numeric(p, s): typmod = ((p << 16) | s) + 4; unconstrained: -1, written with the source's places.
            places: if typmod >= 4 {
                ((typmod - 4) & 0xFFFF) as usize
            } else {
                usize::MAX
            },
        }),
        (_, "float4" | "float8") => {
            ColumnKind::Ordered(OrderedKind::Decimal { places: usize::MAX })
        }
        (_, "date") => ColumnKind::Ordered(OrderedKind::Date),
        (_, "timestamp") => ColumnKind::Ordered(OrderedKind::Timestamp { with_zone: false }),
        (_, "timestamptz") => ColumnKind::Ordered(OrderedKind::Timestamp { with_zone: true }),
        (_, "bool") => ColumnKind::Ordered(OrderedKind::Boolean),
        (_, "text" | "name" | "citext") => ColumnKind::Text { max_chars: None },
        (_, "varchar" | "bpchar") => ColumnKind::Text {
            max_chars: (typmod >= 4).then(|| (typmod - 4) as usize),
        },
        (_, "uuid") => ColumnKind::Uuid,
        (_, "json" | "jsonb") => ColumnKind::Json,
        _ => ColumnKind::Other,
    }
}

fn ordered_key(kind: OrderedKind, text: &str, labels: &[String]) -> Option<f64> {
    match kind {
        OrderedKind::Integer { .. } | OrderedKind::Decimal { .. } => {
            text.parse::<f64>().ok().filter(|v| v.is_finite())
        }
        OrderedKind::Date => parse_date(text).map(|days| days as f64),
        OrderedKind::Timestamp { .. } => parse_timestamp(text),
        OrderedKind::Boolean => match text {
            "t" | "true" => Some(1.0),
            "f" | "false" => Some(0.0),
            _ => None,
        },
        OrderedKind::Label => labels.iter().position(|l| l == text).map(|i| i as f64),
    }
}

/// Decimal places the source's own values are written with (at most 6), for a numeric without a scale.
fn source_places(texts: &[String]) -> usize {
    texts
        .iter()
        .filter_map(|text| text.split_once('.').map(|(_, fraction)| fraction.len()))
        .max()
        .unwrap_or(0)
        .min(6)
}

/// The typical stored length of a value (bytes) from `avg_width`, which counts the varlena header.
fn payload_bytes(avg_width: i32) -> f64 {
    let width = f64::from(avg_width.max(1));
    if width - 1.0 < 127.0 {
        (width - 1.0).max(1.0)
    } else {
        width - 4.0
    }
}

/// A column of a foreign key of several columns, before its parent is built.
struct TupleRequest {
    parent: (u32, String),
    distinct: u64,
    key: u64,
    match_full: bool,
}

/// A seed from a name (a constraint's), so that every column of one key shares it.
fn text_key(text: &str) -> u64 {
    text.bytes()
        .fold(0, |hash, byte| mix(hash ^ u64::from(byte)))
}

/// How one column is to be generated, before any foreign key is resolved.
struct ColumnRequest<'a> {
    table: &'a str,
    column: &'a ColumnDefinition,
    stats: Option<&'a ColumnStats>,
    rows: u64,
    unique: bool,
    key: u64,
}

fn build_column(
    request: &ColumnRequest<'_>,
    parent: Option<Arc<ColumnGenerator>>,
    notes: &mut Vec<String>,
) -> Result<ColumnGenerator, SynthesisError> {
    let ColumnRequest {
        table,
        column,
        stats,
        rows,
        unique,
        key,
    } = *request;
    let error = |reason: String| SynthesisError::Column {
        table: table.to_string(),
        column: column.name.clone(),
        reason,
    };
    let kind = column_kind(column);
    let null_frac = if column.not_null {
        0.0
    } else {
        stats.map_or(0.0, |s| s.null_frac.clamp(0.0, 1.0))
    };
    let mut nulls = (null_frac * rows as f64).round() as u64;
    if let Some(parent) = &parent {
        if parent.values() == 0 {
            if column.not_null {
                return Err(error(
                    "references a parent table that has no rows; nothing to point at".to_string(),
                ));
            }
            nulls = rows;
        }
    }
    let values = rows - nulls.min(rows);
    let nulls = rows - values;
    let labels: Vec<Vec<u8>> = column.enum_labels.iter().map(|l| escape(l)).collect();

    // The most-common values: none for a unique column (every value appears once).
    let (common_texts, common_freqs): (Vec<String>, Vec<f64>) = match stats {
        Some(stats) if !unique => stats
            .most_common_vals
            .iter()
            .cloned()
            .zip(stats.most_common_freqs.iter().copied())
            .unzip(),
        _ => (Vec::new(), Vec::new()),
    };
    let mut common_counts: Vec<u64> = common_freqs
        .iter()
        .map(|freq| (freq * rows as f64).round() as u64)
        .collect();
    // Rounding must not give the MCVs more rows than there are values.
    let mut total: u64 = common_counts.iter().sum();
    while total > values {
        if let Some(largest) = common_counts.iter_mut().max() {
            let cut = (*largest).min(total - values);
            *largest -= cut;
            total -= cut;
        }
    }
    let rest_rows = values - total;
    let distinct_total = match stats {
        _ if unique => values as f64,
        Some(stats) if stats.n_distinct != 0.0 => stats.distinct_values(rows),
        Some(_) => 1.0,
        None => values as f64,
    };
    let mut rest_distinct = ((distinct_total - common_texts.len() as f64)
        .round()
        .max(1.0) as u64)
        .min(rest_rows);
    if unique {
        rest_distinct = rest_rows;
    }
    let histogram: Vec<String> = stats.map_or_else(Vec::new, |s| s.histogram_bounds.clone());

    // Rest values, and where each MCV sits among them (a quantile).
    let mut positions: Vec<f64> = common_texts
        .iter()
        .enumerate()
        .map(|(i, _)| (i as f64 + 0.5) / common_texts.len().max(1) as f64)
        .collect();
    let mut parent_ranks = Vec::new();
    let rest = if let Some(parent) = parent {
        let parent_values = parent.values();
        // Each MCV stands for a parent key no other value uses (while the parent has keys to spare).
        let spare = parent_values > rest_distinct + positions.len() as u64;
        for position in &positions {
            let mut rank =
                ((position * parent_values as f64) as u64).min(parent_values.saturating_sub(1));
            while spare
                && (is_spread_rank(rank, rest_distinct, parent_values)
                    || parent_ranks.contains(&rank))
            {
                rank = (rank + 1) % parent_values;
            }
            parent_ranks.push(rank);
        }
        if rest_distinct + positions.len() as u64 > parent_values && !unique {
            notes.push(format!(
                "{table}.{}: {} distinct values at this scale, but the referenced table has {parent_values} keys: the copy has at most that many",
                column.quoted_name,
                rest_distinct + positions.len() as u64
            ));
        }
        if unique && rest_distinct > parent_values {
            return Err(error(format!(
                "is unique and references a parent with {parent_values} keys: too few for {rest_distinct} rows"
            )));
        }
        RestValues::ParentKey {
            parent,
            parent_values,
        }
    } else {
        match &kind {
            ColumnKind::Ordered(ordered) => {
                let ordered = match ordered {
                    OrderedKind::Decimal { places } if *places == usize::MAX => {
                        OrderedKind::Decimal {
                            places: source_places(
                                &histogram
                                    .iter()
                                    .chain(&common_texts)
                                    .cloned()
                                    .collect::<Vec<_>>(),
                            ),
                        }
                    }
                    other => *other,
                };
                let mut bounds: Vec<f64> = histogram
                    .iter()
                    .filter_map(|text| ordered_key(ordered, text, &column.enum_labels))
                    .collect();
                let common_keys: Vec<Option<f64>> = common_texts
                    .iter()
                    .map(|text| ordered_key(ordered, text, &column.enum_labels))
                    .collect();
                if bounds.len() < 2 {
                    // No histogram: the MCVs' range, else the type's whole range of labels, else a default span.
                    let known: Vec<f64> = common_keys.iter().flatten().copied().collect();
                    bounds = match ordered {
                        OrderedKind::Boolean => vec![0.0, 1.0],
                        OrderedKind::Label => vec![0.0, labels.len().saturating_sub(1) as f64],
                        _ if known.len() >= 2 => {
                            let low = known.iter().copied().fold(f64::INFINITY, f64::min);
                            let high = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            vec![low, high]
                        }
                        OrderedKind::Date => vec![18_262.0, 18_262.0 + values.max(1) as f64],
                        OrderedKind::Timestamp { .. } => {
                            vec![1.577_836_8e15, 1.577_836_8e15 + values.max(1) as f64 * 1e6]
                        }
                        _ => vec![1.0, values.max(1) as f64],
                    };
                }
                // A discrete type's last bound is a value too: the histogram covers [first, last + 1), and a
                // value is the floor of its interpolated key.
                if ordered.is_discrete() {
                    if let Some(last) = bounds.last_mut() {
                        *last += 1.0;
                    }
                }
                for (position, key) in positions.iter_mut().zip(&common_keys) {
                    if let Some(key) = key {
                        *position = quantile_of(&bounds, *key);
                    }
                }
                let unique_spacing = unique.then(|| {
                    let low = bounds[0];
                    let high = bounds[bounds.len() - 1];
                    let count = rest_distinct.max(1) as f64;
                    let step = match ordered {
                        OrderedKind::Integer { .. } | OrderedKind::Date => {
                            ((high - low) / count).floor().max(1.0)
                        }
                        OrderedKind::Timestamp { .. } => ((high - low) / count).floor().max(1.0),
                        OrderedKind::Decimal { places } => {
                            ((high - low) / count).max(10f64.powi(-(places.min(15) as i32)))
                        }
                        OrderedKind::Boolean | OrderedKind::Label => 1.0,
                    };
                    (low, step)
                });
                if unique {
                    let capacity = match ordered {
                        OrderedKind::Boolean => 2,
                        OrderedKind::Label => labels.len() as u64,
                        _ => u64::MAX,
                    };
                    if rest_distinct > capacity {
                        return Err(error(format!(
                            "is unique, but its type has {capacity} values for {rest_distinct} rows"
                        )));
                    }
                }
                RestValues::Ordered {
                    kind: ordered,
                    bounds,
                    unique: unique_spacing,
                }
            }
            ColumnKind::Text { max_chars } => {
                let width = stats.map_or(8.0, |s| payload_bytes(s.avg_width));
                let common_share: f64 = common_freqs.iter().sum();
                let common_bytes: f64 = common_texts
                    .iter()
                    .zip(&common_freqs)
                    .map(|(text, freq)| text.len() as f64 * freq)
                    .sum();
                let non_null_share = (1.0 - null_frac).max(1e-9);
                let rest_share = (non_null_share - common_share).max(1e-9);
                let rest_width = ((width * non_null_share - common_bytes) / rest_share)
                    .round()
                    .max(1.0) as usize;
                let mut digits = base62_digits(rest_distinct.max(1));
                let mut length = rest_width.max(digits);
                if let Some(max) = max_chars {
                    length = length.min(*max);
                    if digits > *max {
                        if unique {
                            return Err(error(format!(
                                "is unique, but {max} characters cannot tell {rest_distinct} values apart"
                            )));
                        }
                        digits = *max;
                        rest_distinct = rest_distinct.min(62u64.saturating_pow(*max as u32));
                    }
                }
                // Where each MCV falls in value order: among the histogram's bounds, or among the MCVs themselves.
                let mut sorted_common: Vec<&String> = common_texts.iter().collect();
                sorted_common.sort();
                for (position, text) in positions.iter_mut().zip(&common_texts) {
                    *position = if histogram.len() >= 2 {
                        histogram.partition_point(|bound| bound.as_str() < text.as_str()) as f64
                            / histogram.len() as f64
                    } else {
                        (sorted_common.partition_point(|other| *other < text) as f64 + 0.5)
                            / sorted_common.len() as f64
                    };
                }
                let prefixes = if histogram.len() >= 2 {
                    histogram[..histogram.len() - 1]
                        .iter()
                        .map(|bound| escape(bound))
                        .collect()
                } else {
                    Vec::new()
                };
                RestValues::Text {
                    prefixes,
                    length,
                    digits,
                }
            }
            ColumnKind::Uuid => RestValues::Uuid {
                high_bounds: histogram
                    .iter()
                    .filter_map(|text| {
                        let hex: String = text.chars().filter(char::is_ascii_hexdigit).collect();
                        u64::from_str_radix(hex.get(..16)?, 16)
                            .ok()
                            .map(|v| v as f64)
                    })
                    .collect::<Vec<f64>>(),
            }
            .with_default_range(),
            ColumnKind::Json => {
                let width = stats.map_or(16.0, |s| payload_bytes(s.avg_width));
                let digits = base62_digits(rest_distinct.max(1));
                RestValues::Json {
                    length: (width.round() as usize).max(digits + 10),
                    digits,
                }
            }
            ColumnKind::Other => {
                if unique {
                    return Err(error(format!(
                        "is unique, and the generator cannot make distinct values of type {}",
                        column.type_sql
                    )));
                }
                if rest_rows > 0 && histogram.is_empty() && common_texts.is_empty() {
                    if column.not_null {
                        return Err(error(format!(
                            "has type {} and no statistics to copy values from; ANALYZE the source table",
                            column.type_sql
                        )));
                    }
                    RestValues::None
                } else {
                    RestValues::Verbatim {
                        bounds: histogram.iter().map(|text| escape(text)).collect(),
                    }
                }
            }
        }
    };
    let rest = match rest {
        // Verbatim values with no histogram repeat the MCVs for the other rows.
        RestValues::Verbatim { bounds } if bounds.is_empty() => RestValues::Verbatim {
            bounds: common_texts.iter().map(|text| escape(text)).collect(),
        },
        other => other,
    };

    // The sorted layout: rest values up to each MCV's position, then the MCV's block.
    let mut order_of_common: Vec<usize> = (0..common_texts.len()).collect();
    order_of_common.sort_by(|a, b| positions[*a].total_cmp(&positions[*b]));
    let mut segments = Vec::new();
    let mut start = 0u64;
    let mut rest_used = 0u64;
    for index in order_of_common {
        let rest_until =
            ((positions[index] * rest_rows as f64).round() as u64).clamp(rest_used, rest_rows);
        if rest_until > rest_used {
            segments.push(Segment::Rest {
                start,
                rest_offset: rest_used,
            });
            start += rest_until - rest_used;
            rest_used = rest_until;
        }
        if common_counts[index] > 0 {
            segments.push(Segment::Common {
                start,
                value: index,
            });
            start += common_counts[index];
        }
    }
    if rest_used < rest_rows {
        segments.push(Segment::Rest {
            start,
            rest_offset: rest_used,
        });
    }
    // ANALYZE breaks ties between equal values by physical position, so a column of few values reads as
    // correlated even in random order: by Σ share², over its groups of equal values. The order to generate is
    // what remains of the source's correlation beyond that.
    let ties: f64 = if values == 0 {
        0.0
    } else {
        let share = |count: u64| count as f64 / values as f64;
        common_counts.iter().map(|c| share(*c).powi(2)).sum::<f64>()
            + share(rest_rows).powi(2) / rest_distinct.max(1) as f64
    };
    let measured = stats.and_then(|s| s.correlation).unwrap_or(0.0);
    let correlation = if ties < 1.0 {
        ((measured - ties) / (1.0 - ties)).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    Ok(ColumnGenerator {
        rows,
        nulls,
        null_key: mix(key ^ 0x6E75_6C6C),
        order: Order::new(values, correlation, mix(key ^ 0x6F72_6465)),
        segments,
        common: common_texts.iter().map(|text| escape(text)).collect(),
        parent_ranks,
        rest_rows,
        rest_distinct,
        rest,
        labels,
        tuple: None,
    })
}

impl RestValues {
    /// UUIDs without a histogram spread over the whole space.
    fn with_default_range(self) -> Self {
        match self {
            RestValues::Uuid { high_bounds } if high_bounds.len() < 2 => RestValues::Uuid {
                high_bounds: vec![0.0, u64::MAX as f64],
            },
            other => other,
        }
    }
}

impl fmt::Display for SynthesisPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for table in &self.tables {
            writeln!(f, "{}: {} rows", table.qualified, table.rows)?;
        }
        Ok(())
    }
}

/// Plans the synthesis of every table at `scale` × its source rows, with `seed`. Parent keys are generated
/// before the foreign keys that use them (their generators are shared); a cycle of foreign keys on key columns
/// is an error.
pub fn plan(
    tables: &[SourceTable],
    scale: f64,
    seed: u64,
) -> Result<SynthesisPlan, SynthesisError> {
    let mut notes = Vec::new();
    let rows_of: HashMap<u32, u64> = tables
        .iter()
        .map(|table| {
            let rows = (table.source_rows() as f64 * scale).round() as u64;
            (table.schema.oid, rows)
        })
        .collect();
    // Which column of each unique set carries the uniqueness.
    let mut unique_columns: HashMap<(u32, String), ()> = HashMap::new();
    // Single-column foreign keys: child (table, column) → parent (table, column).
    let mut references: HashMap<(u32, String), (u32, String)> = HashMap::new();
    // Columns of foreign keys of several columns.
    let mut tuples: HashMap<(u32, String), TupleRequest> = HashMap::new();
    for table in tables {
        let schema = &table.schema;
        let foreign_key_columns: Vec<&String> = schema
            .constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::ForeignKey)
            .flat_map(|c| &c.columns)
            .collect();
        for set in schema.unique_column_sets() {
            let carrier = if set.len() == 1 {
                set[0].clone()
            } else {
                let candidates: Vec<&String> = set
                    .iter()
                    .filter(|column| !foreign_key_columns.contains(column))
                    .collect();
                let pick = candidates
                    .iter()
                    .max_by(|a, b| {
                        let distinct = |name: &str| {
                            table
                                .statistics
                                .column(name)
                                .map_or(0.0, |s| s.distinct_values(table.source_rows()))
                        };
                        distinct(a).total_cmp(&distinct(b))
                    })
                    .map(|name| (*name).clone());
                match pick {
                    Some(name) => {
                        notes.push(format!(
                            "{}: the key ({}) is kept unique through {name} alone, whose values are all distinct in the copy",
                            schema.qualified,
                            set.join(", ")
                        ));
                        name
                    }
                    None => {
                        notes.push(format!(
                            "{}: the key ({}) is made only of foreign-key columns; its uniqueness is not guaranteed",
                            schema.qualified,
                            set.join(", ")
                        ));
                        continue;
                    }
                }
            };
            unique_columns.insert((schema.oid, carrier), ());
        }
        for constraint in schema
            .constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::ForeignKey)
        {
            let Some(target) = &constraint.references else {
                continue;
            };
            if !rows_of.contains_key(&target.oid) {
                notes.push(format!(
                    "{}: the foreign key {} references a table outside the rehearsal",
                    schema.qualified, constraint.name
                ));
                continue;
            }
            if constraint.columns.len() != 1 || target.columns.len() != 1 {
                let claimed = constraint.columns.iter().any(|column| {
                    let id = (schema.oid, column.clone());
                    references.contains_key(&id)
                        || tuples.contains_key(&id)
                        || unique_columns.contains_key(&id)
                });
                if constraint.columns.len() != target.columns.len() || claimed {
                    notes.push(format!(
                        "{}: the foreign key {} shares a column with another key; synthetic rows do not satisfy it",
                        schema.qualified, constraint.name
                    ));
                    continue;
                }
                let child_rows = rows_of[&schema.oid];
                // A tuple has at least as many distinct values as its most varied column.
                let distinct = constraint
                    .columns
                    .iter()
                    .map(|column| {
                        table
                            .statistics
                            .column(column)
                            .map_or(child_rows as f64, |s| s.distinct_values(child_rows))
                    })
                    .fold(1.0, f64::max)
                    .round() as u64;
                let key = mix(seed ^ mix(u64::from(schema.oid)) ^ text_key(&constraint.name));
                // MATCH FULL is in PostgreSQL's definition text only when asked for; MATCH SIMPLE is the default.
                let match_full = constraint.definition.contains("MATCH FULL");
                for (column, parent_column) in constraint.columns.iter().zip(&target.columns) {
                    tuples.insert(
                        (schema.oid, column.clone()),
                        TupleRequest {
                            parent: (target.oid, parent_column.clone()),
                            distinct,
                            key,
                            match_full,
                        },
                    );
                }
                notes.push(format!(
                    "{}: the foreign key {} has several columns; its tuples are drawn from the parent's generated keys (the columns' own most-common values and order are not kept)",
                    schema.qualified, constraint.name
                ));
                continue;
            }
            references.insert(
                (schema.oid, constraint.columns[0].clone()),
                (target.oid, target.columns[0].clone()),
            );
        }
    }

    let mut built: BTreeMap<(u32, String), Arc<ColumnGenerator>> = BTreeMap::new();
    let mut pending: Vec<(usize, usize)> = Vec::new();
    for (table_index, table) in tables.iter().enumerate() {
        for (column_index, column) in table.schema.columns.iter().enumerate() {
            if !column.is_generated() {
                pending.push((table_index, column_index));
            }
            if table.statistics.column(&column.name).is_none()
                && !column.is_generated()
                && table.source_rows() > 0
            {
                notes.push(format!(
                    "{}.{}: no statistics (added after the last ANALYZE?); distinct values over a default range",
                    table.schema.qualified, column.quoted_name
                ));
            }
        }
    }
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for (table_index, column_index) in pending {
            let table = &tables[table_index];
            let column = &table.schema.columns[column_index];
            let id = (table.schema.oid, column.name.clone());
            let parent = match references.get(&id) {
                Some(parent_id) => match built.get(parent_id) {
                    Some(parent) => Some(parent.clone()),
                    None => {
                        waiting.push((table_index, column_index));
                        continue;
                    }
                },
                None => None,
            };
            let tuple_parent = match tuples.get(&id) {
                Some(request) => match built.get(&request.parent) {
                    Some(parent) => Some((request, parent.clone())),
                    None => {
                        waiting.push((table_index, column_index));
                        continue;
                    }
                },
                None => None,
            };
            let request = ColumnRequest {
                table: &table.schema.qualified,
                column,
                stats: table.statistics.column(&column.name),
                rows: rows_of[&table.schema.oid],
                unique: unique_columns.contains_key(&id),
                key: mix(seed ^ mix(u64::from(table.schema.oid)) ^ mix(column_index as u64 + 1)),
            };
            let mut generator = build_column(&request, parent, &mut notes)?;
            if let Some((tuple, parent)) = tuple_parent {
                if parent.nulls > 0 || parent.rows == 0 {
                    notes.push(format!(
                        "{}.{}: the parent column it references {}; the foreign key is not satisfied",
                        table.schema.qualified,
                        column.quoted_name,
                        if parent.rows == 0 { "has no rows" } else { "holds NULLs" }
                    ));
                } else {
                    if tuple.match_full {
                        generator.nulls = 0;
                    }
                    generator.tuple = Some(TupleSource {
                        parent,
                        child_rows: generator.rows,
                        distinct: tuple.distinct,
                        key: tuple.key,
                    });
                }
            }
            built.insert(id, Arc::new(generator));
        }
        if waiting.len() == before {
            let (table_index, column_index) = waiting[0];
            return Err(SynthesisError::Column {
                table: tables[table_index].schema.qualified.clone(),
                column: tables[table_index].schema.columns[column_index].name.clone(),
                reason: "is part of a cycle of foreign keys through key columns; cannot generate a parent first"
                    .to_string(),
            });
        }
        pending = waiting;
    }
    let generators = tables
        .iter()
        .map(|table| TableGenerator {
            qualified: table.schema.qualified.clone(),
            oid: table.schema.oid,
            rows: rows_of[&table.schema.oid],
            columns: table
                .schema
                .columns
                .iter()
                .filter(|column| !column.is_generated())
                .map(|column| {
                    (
                        column.name.clone(),
                        built[&(table.schema.oid, column.name.clone())].clone(),
                    )
                })
                .collect(),
        })
        .collect();
    Ok(SynthesisPlan {
        tables: generators,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use tidegate_db::table_schema::{ConstraintDefinition, ForeignKeyTarget};

    use super::*;

    fn column(name: &str, base_type: &str, not_null: bool) -> ColumnDefinition {
        ColumnDefinition {
            name: name.into(),
            quoted_name: name.into(),
            type_sql: base_type.into(),
            base_type: base_type.into(),
            base_kind: "b".into(),
            base_typmod: -1,
            enum_labels: Vec::new(),
            not_null,
            default_sql: None,
            identity: String::new(),
            generated: String::new(),
            collation: None,
            statistics_target: None,
        }
    }

    fn stats(name: &str) -> ColumnStats {
        ColumnStats {
            column: name.into(),
            null_frac: 0.0,
            avg_width: 8,
            n_distinct: -1.0,
            most_common_vals: Vec::new(),
            most_common_freqs: Vec::new(),
            histogram_bounds: Vec::new(),
            correlation: Some(0.0),
        }
    }

    fn table(
        oid: u32,
        name: &str,
        rows: u64,
        columns: Vec<(ColumnDefinition, ColumnStats)>,
    ) -> SourceTable {
        let (definitions, stats): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
        SourceTable {
            schema: TableSchema {
                oid,
                schema: "public".into(),
                name: name.into(),
                qualified: format!("public.{name}"),
                options: String::new(),
                persistence: "p".into(),
                columns: definitions,
                constraints: Vec::new(),
                indexes: Vec::new(),
                sequences: Vec::new(),
                type_oids: Vec::new(),
            },
            statistics: TableStatistics {
                oid,
                estimated_rows: Some(rows),
                heap_bytes: 0,
                total_bytes: 0,
                columns: stats,
                default_statistics_target: 100,
            },
        }
    }

    fn primary_key(table: &mut SourceTable, column: &str) {
        table.schema.constraints.push(ConstraintDefinition {
            name: format!("{}_pkey", table.schema.name),
            quoted_name: format!("{}_pkey", table.schema.name),
            kind: ConstraintKind::PrimaryKey,
            definition: format!("PRIMARY KEY ({column})"),
            columns: vec![column.into()],
            references: None,
        });
    }

    /// Every table's rows, as columns of optional text values.
    fn generate(tables: &[SourceTable], scale: f64, seed: u64) -> Vec<Vec<Vec<Option<String>>>> {
        let plan = plan(tables, scale, seed).unwrap();
        plan.tables
            .iter()
            .map(|table| {
                let mut out = Vec::new();
                let mut writer = table.writer();
                while writer.write_rows(1000, &mut out) > 0 {}
                let text = String::from_utf8(out).unwrap();
                let mut columns = vec![Vec::new(); table.columns.len()];
                for line in text.lines() {
                    let fields: Vec<&str> = line.split('\t').collect();
                    assert_eq!(fields.len(), table.columns.len(), "{line}");
                    for (index, field) in fields.iter().enumerate() {
                        columns[index].push((*field != "\\N").then(|| field.to_string()));
                    }
                }
                assert_eq!(columns[0].len() as u64, table.rows);
                columns
            })
            .collect()
    }

    fn frequencies(values: &[Option<String>]) -> HashMap<Option<String>, usize> {
        let mut counts = HashMap::new();
        for value in values {
            *counts.entry(value.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Pearson correlation of physical position and value rank (ties share a rank), as ANALYZE computes it.
    fn correlation(keys: &[f64]) -> f64 {
        let mut sorted: Vec<f64> = keys.to_vec();
        sorted.sort_by(f64::total_cmp);
        let ranks: Vec<f64> = keys
            .iter()
            .map(|key| sorted.partition_point(|s| s < key) as f64)
            .collect();
        let n = keys.len() as f64;
        let mean_position = (n - 1.0) / 2.0;
        let mean_rank = ranks.iter().sum::<f64>() / n;
        let (mut covariance, mut position_var, mut rank_var) = (0.0, 0.0, 0.0);
        for (position, rank) in ranks.iter().enumerate() {
            let dp = position as f64 - mean_position;
            let dr = rank - mean_rank;
            covariance += dp * dr;
            position_var += dp * dp;
            rank_var += dr * dr;
        }
        covariance / (position_var * rank_var).sqrt()
    }

    #[test]
    fn permutations_are_bijections() {
        for n in [1u64, 2, 3, 7, 64, 1000, 4097] {
            let seen: HashSet<u64> = (0..n).map(|x| permute(x, n, 99)).collect();
            assert_eq!(seen.len() as u64, n);
            assert!(seen.iter().all(|v| *v < n));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_rows_and_another_seed_others() {
        let mut amount = stats("amount");
        amount.n_distinct = 500.0;
        amount.histogram_bounds = vec!["1".into(), "50".into(), "1000".into()];
        let tables = [table(
            1,
            "t",
            5000,
            vec![(column("amount", "int4", true), amount)],
        )];
        assert_eq!(generate(&tables, 1.0, 7), generate(&tables, 1.0, 7));
        assert_ne!(generate(&tables, 1.0, 7), generate(&tables, 1.0, 8));
    }

    #[test]
    fn nulls_and_most_common_values_take_exactly_their_share() {
        let mut status = stats("status");
        status.null_frac = 0.6;
        status.n_distinct = 5.0;
        status.most_common_vals = vec!["new".into(), "paid".into()];
        status.most_common_freqs = vec![0.3, 0.05];
        status.histogram_bounds = vec!["a".into(), "m".into(), "z".into()];
        status.avg_width = 5;
        let tables = [table(
            1,
            "t",
            10_000,
            vec![(column("status", "text", false), status)],
        )];
        let values = &generate(&tables, 1.0, 1)[0][0];
        let counts = frequencies(values);
        assert_eq!(counts[&None], 6000);
        assert_eq!(counts[&Some("new".to_string())], 3000);
        assert_eq!(counts[&Some("paid".to_string())], 500);
        // Five distinct values in all: the two MCVs and three others.
        assert_eq!(counts.len(), 1 + 5);
    }

    #[test]
    fn n_distinct_is_a_count_or_a_fraction_of_the_rows() {
        let mut fraction = stats("fraction");
        fraction.n_distinct = -0.25;
        fraction.histogram_bounds = vec!["0".into(), "100000".into()];
        let mut count = stats("count");
        count.n_distinct = 40.0;
        count.histogram_bounds = vec!["0".into(), "100000".into()];
        let tables = [table(
            1,
            "t",
            8000,
            vec![
                (column("fraction", "int8", true), fraction),
                (column("count", "int8", true), count),
            ],
        )];
        let columns = &generate(&tables, 1.0, 3)[0];
        assert_eq!(frequencies(&columns[0]).len(), 2000);
        assert_eq!(frequencies(&columns[1]).len(), 40);
        // At half the scale, a fraction scales with the rows, a count does not.
        let half = &generate(&tables, 0.5, 3)[0];
        assert_eq!(frequencies(&half[0]).len(), 1000);
        assert_eq!(frequencies(&half[1]).len(), 40);
    }

    #[test]
    fn values_follow_the_histogram() {
        let mut skewed = stats("skewed");
        skewed.n_distinct = -1.0;
        // Three quarters of the values between 0 and 10, the last quarter up to 1000.
        skewed.histogram_bounds = vec![
            "0".into(),
            "5".into(),
            "8".into(),
            "10".into(),
            "1000".into(),
        ];
        let tables = [table(
            1,
            "t",
            4000,
            vec![(column("skewed", "numeric", true), skewed)],
        )];
        let values: Vec<f64> = generate(&tables, 1.0, 5)[0][0]
            .iter()
            .map(|v| v.as_ref().unwrap().parse().unwrap())
            .collect();
        let below_ten = values.iter().filter(|v| **v <= 10.0).count();
        assert!((2900..=3100).contains(&below_ten), "{below_ten}");
        assert!(values.iter().all(|v| (0.0..=1000.0).contains(v)));
    }

    #[test]
    fn correlation_sets_the_physical_order() {
        let mut rows = Vec::new();
        for (name, correlation) in [
            ("sorted", 1.0),
            ("shuffled", 0.0),
            ("half", 0.5),
            ("reversed", -1.0),
        ] {
            let mut s = stats(name);
            s.n_distinct = -1.0;
            s.histogram_bounds = vec!["0".into(), "100000".into()];
            s.correlation = Some(correlation);
            rows.push((column(name, "int8", true), s));
        }
        let tables = [table(1, "t", 20_000, rows)];
        let columns = &generate(&tables, 1.0, 11)[0];
        let measured: Vec<f64> = columns
            .iter()
            .map(|values| {
                let keys: Vec<f64> = values
                    .iter()
                    .map(|v| v.as_ref().unwrap().parse().unwrap())
                    .collect();
                correlation(&keys)
            })
            .collect();
        assert!(measured[0] > 0.999, "{measured:?}");
        assert!(measured[1].abs() < 0.05, "{measured:?}");
        assert!((measured[2] - 0.5).abs() < 0.1, "{measured:?}");
        assert!(measured[3] < -0.999, "{measured:?}");
    }

    #[test]
    fn text_has_the_average_width_and_copy_escapes() {
        let mut note = stats("note");
        note.n_distinct = -0.5;
        note.avg_width = 41; // 40 bytes and a one-byte header
        note.histogram_bounds = vec!["alpha".into(), "kilo".into(), "zulu".into()];
        note.most_common_vals = vec!["tab\there\\".into()];
        note.most_common_freqs = vec![0.1];
        let tables = [table(
            1,
            "t",
            5000,
            vec![(column("note", "text", true), note)],
        )];
        let values = &generate(&tables, 1.0, 2)[0][0];
        assert!(values
            .iter()
            .any(|v| v.as_deref() == Some("tab\\there\\\\")));
        let others: Vec<&String> = values
            .iter()
            .flatten()
            .filter(|v| !v.starts_with("tab"))
            .collect();
        let average = others.iter().map(|v| v.len()).sum::<usize>() as f64 / others.len() as f64;
        // (40 − 0.1 × 9) / 0.9 ≈ 43.4 bytes for the values outside the MCV.
        assert!((42.0..=45.0).contains(&average), "{average}");
        let mut varchar = column("code", "varchar", true);
        varchar.base_typmod = 4 + 3;
        let tables = [table(2, "u", 5000, vec![(varchar, stats("code"))])];
        let codes = &generate(&tables, 1.0, 2)[0][0];
        assert!(codes.iter().flatten().all(|code| code.chars().count() <= 3));
        assert_eq!(frequencies(codes).len(), 5000);
    }

    #[test]
    fn every_kind_writes_values_postgresql_reads() {
        let mut created = stats("created");
        created.histogram_bounds = vec![
            "2024-01-01 00:00:00+00".into(),
            "2024-12-31 23:59:59.5+00".into(),
        ];
        let mut day = stats("day");
        day.histogram_bounds = vec!["2023-02-27".into(), "2023-03-02".into()];
        day.n_distinct = 4.0;
        let mut flag = stats("flag");
        flag.n_distinct = 2.0;
        flag.most_common_vals = vec!["t".into(), "f".into()];
        flag.most_common_freqs = vec![0.7, 0.3];
        let mut mood = column("mood", "mood", true);
        mood.base_kind = "e".into();
        mood.enum_labels = vec!["sad".into(), "ok".into(), "happy".into()];
        let mut mood_stats = stats("mood");
        mood_stats.n_distinct = 3.0;
        let mut doc = stats("doc");
        doc.avg_width = 30;
        let tables = [table(
            1,
            "t",
            3000,
            vec![
                (column("created", "timestamptz", true), created),
                (column("day", "date", true), day),
                (column("flag", "bool", true), flag),
                (mood, mood_stats),
                (column("id", "uuid", true), stats("id")),
                (column("doc", "jsonb", true), doc),
            ],
        )];
        let columns = &generate(&tables, 1.0, 4)[0];
        for value in columns[0].iter().flatten() {
            assert!(
                value.starts_with("2024-") && value.ends_with("+00"),
                "{value}"
            );
            assert!(parse_timestamp(value).is_some(), "{value}");
        }
        let days: HashSet<&str> = columns[1].iter().flatten().map(String::as_str).collect();
        assert_eq!(
            days,
            HashSet::from(["2023-02-27", "2023-02-28", "2023-03-01", "2023-03-02"])
        );
        let flags = frequencies(&columns[2]);
        assert_eq!(flags[&Some("t".to_string())], 2100);
        let moods: HashSet<&str> = columns[3].iter().flatten().map(String::as_str).collect();
        assert_eq!(moods, HashSet::from(["sad", "ok", "happy"]));
        let uuids: HashSet<&String> = columns[4].iter().flatten().collect();
        assert_eq!(uuids.len(), 3000);
        assert!(uuids
            .iter()
            .all(|u| u.len() == 36 && u.matches('-').count() == 4));
        for doc in columns[5].iter().flatten() {
            assert!(
                doc.starts_with("{\"k\": \"") && doc.ends_with("\"}"),
                "{doc}"
            );
            assert!((28..=30).contains(&doc.len()), "{doc}");
        }
    }

    #[test]
    fn hand_written_numbers_read_as_fmt_writes_them() {
        let text = |write: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            write(&mut out);
            String::from_utf8(out).unwrap()
        };
        for value in [0i64, 7, -7, 1_234_567, i64::MIN, i64::MAX] {
            assert_eq!(text(&|o| write_i64(value, o)), value.to_string());
        }
        assert_eq!(text(&|o| write_padded(7, 4, o)), "0007");
        assert_eq!(text(&|o| write_padded(123_456, 2, o)), "123456");
        for (key, places) in [
            (12.5f64, 2usize),
            (-3.25, 1),
            (0.004, 2),
            (49_999.99, 2),
            (1e300, 2),
            (7.0, 0),
            (-0.000_001, 6),
        ] {
            let ours = text(&|o| write_decimal(key, places, o));
            let parsed: f64 = ours.parse().unwrap();
            // Within half a unit of the last place (ties may round the other way than `fmt`'s half-to-even).
            assert!(
                (parsed - key).abs() <= 0.5 * 10f64.powi(-(places as i32)) * 1.000_001
                    || ours == format!("{key:.places$}"),
                "{key} at {places}: {ours}"
            );
            assert_eq!(
                ours.split_once('.').map_or(0, |(_, f)| f.len()),
                places,
                "{ours}"
            );
        }
        assert_eq!(text(&|o| write_decimal(1.25, 1, o)), "1.3");
        assert_eq!(text(&|o| write_decimal(12.5, 2, o)), "12.50");
        assert_eq!(text(&|o| write_decimal(-0.001, 2, o)), "0.00");
        let mut date = Vec::new();
        write_date(days_from_civil(2024, 2, 29), &mut date);
        assert_eq!(date, b"2024-02-29");
    }

    #[test]
    fn keys_are_unique_and_foreign_keys_point_at_generated_parents() {
        let mut customers = table(
            1,
            "customers",
            1000,
            vec![(column("id", "int8", true), {
                let mut s = stats("id");
                s.histogram_bounds = vec!["1".into(), "1000".into()];
                s.correlation = Some(1.0);
                s
            })],
        );
        primary_key(&mut customers, "id");
        let mut customer_id = stats("customer_id");
        customer_id.null_frac = 0.1;
        customer_id.n_distinct = 300.0;
        customer_id.most_common_vals = vec!["17".into()];
        customer_id.most_common_freqs = vec![0.2];
        let mut orders = table(
            2,
            "orders",
            20_000,
            vec![
                (column("id", "int8", true), stats("id")),
                (column("customer_id", "int8", false), customer_id),
            ],
        );
        primary_key(&mut orders, "id");
        orders.schema.constraints.push(ConstraintDefinition {
            name: "orders_customer_id_fkey".into(),
            quoted_name: "orders_customer_id_fkey".into(),
            kind: ConstraintKind::ForeignKey,
            definition: "FOREIGN KEY (customer_id) REFERENCES customers(id)".into(),
            columns: vec!["customer_id".into()],
            references: Some(ForeignKeyTarget {
                oid: 1,
                columns: vec!["id".into()],
            }),
        });
        // The child first: the plan still generates the parent's keys before the foreign key.
        let generated = generate(&[orders, customers], 1.0, 9);
        let parent_keys: HashSet<&String> = generated[1][0].iter().flatten().collect();
        assert_eq!(parent_keys.len(), 1000);
        let order_ids: HashSet<&String> = generated[0][0].iter().flatten().collect();
        assert_eq!(order_ids.len(), 20_000);
        let references = frequencies(&generated[0][1]);
        assert_eq!(references[&None], 2000);
        assert!(references
            .keys()
            .flatten()
            .all(|key| parent_keys.contains(key)));
        // 300 distinct customers referenced, one of them by a fifth of the orders.
        assert_eq!(references.len(), 1 + 300);
        assert_eq!(references.values().copied().max(), Some(4000));
    }

    #[test]
    fn a_foreign_key_of_two_columns_takes_tuples_the_parent_holds() {
        // The parent's key is (region, id): region a few values, id the carrier of uniqueness.
        let mut region = stats("region");
        region.n_distinct = 5.0;
        region.histogram_bounds = vec!["1".into(), "5".into()];
        let mut id = stats("id");
        id.histogram_bounds = vec!["1".into(), "1000".into()];
        let mut accounts = table(
            1,
            "accounts",
            1000,
            vec![
                (column("region", "int4", true), region),
                (column("id", "int8", true), id),
            ],
        );
        accounts.schema.constraints.push(ConstraintDefinition {
            name: "accounts_pkey".into(),
            quoted_name: "accounts_pkey".into(),
            kind: ConstraintKind::PrimaryKey,
            definition: "PRIMARY KEY (region, id)".into(),
            columns: vec!["region".into(), "id".into()],
            references: None,
        });
        let mut account_region = stats("account_region");
        account_region.n_distinct = 5.0;
        account_region.null_frac = 0.1;
        let mut account_id = stats("account_id");
        account_id.n_distinct = 200.0;
        let mut payments = table(
            2,
            "payments",
            10_000,
            vec![
                (column("id", "int8", true), stats("id")),
                (column("account_region", "int4", false), account_region),
                (column("account_id", "int8", true), account_id),
            ],
        );
        primary_key(&mut payments, "id");
        payments.schema.constraints.push(ConstraintDefinition {
            name: "payments_account_fkey".into(),
            quoted_name: "payments_account_fkey".into(),
            kind: ConstraintKind::ForeignKey,
            definition: "FOREIGN KEY (account_region, account_id) REFERENCES accounts(region, id)"
                .into(),
            columns: vec!["account_region".into(), "account_id".into()],
            references: Some(ForeignKeyTarget {
                oid: 1,
                columns: vec!["region".into(), "id".into()],
            }),
        });
        let tables = [payments, accounts];
        let notes = plan(&tables, 1.0, 5).unwrap().notes;
        assert!(
            notes
                .iter()
                .any(|n| n.contains("payments_account_fkey") && n.contains("drawn from the parent")),
            "{notes:?}"
        );
        let generated = generate(&tables, 1.0, 5);
        let parent: HashSet<(&String, &String)> = generated[1][0]
            .iter()
            .zip(&generated[1][1])
            .map(|(region, id)| (region.as_ref().unwrap(), id.as_ref().unwrap()))
            .collect();
        assert_eq!(parent.len(), 1000, "the parent's key is unique");
        let child = &generated[0];
        let mut tuples = HashSet::new();
        let mut nulls = 0;
        for (region, id) in child[1].iter().zip(&child[2]) {
            match (region, id) {
                (Some(region), Some(id)) => {
                    assert!(parent.contains(&(region, id)), "({region}, {id})");
                    tuples.insert((region, id));
                }
                _ => nulls += 1,
            }
        }
        // MATCH SIMPLE: a NULL in either column exempts the row; the region keeps its 10% of NULLs.
        assert_eq!(nulls, 1000);
        // The most varied column's n_distinct (200) decides how many parent rows are referenced.
        assert_eq!(tuples.len(), 200);
        let again = generate(&tables, 1.0, 5);
        assert_eq!(again[0], generated[0], "deterministic");
    }

    #[test]
    fn a_unique_column_of_a_small_type_is_refused_with_a_reason() {
        let mut flag = table(
            1,
            "t",
            10,
            vec![(column("flag", "bool", true), stats("flag"))],
        );
        primary_key(&mut flag, "flag");
        let error = plan(&[flag], 1.0, 1).unwrap_err();
        assert!(
            error.to_string().contains("public.t.flag: is unique"),
            "{error}"
        );
    }

    #[test]
    fn a_drawn_value_is_the_unescaped_text_of_a_generated_one() {
        assert_eq!(unescape(&escape("a\\b\tc\nd")), b"a\\b\tc\nd");
    }
}
