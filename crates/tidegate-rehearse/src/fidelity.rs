//! How close the rehearsal's copy is to the source, column by column, as ANALYZE sees both: the fraction of
//! NULLs, the number of distinct values, the most-common values' frequencies and the physical order. Pure: two
//! [`TableStatistics`] in, a [`TableFidelity`] out.
//!
//! The tolerances ([`Tolerance::default`]) are wider than ANALYZE's own sampling noise (it reads 300 × the
//! statistics target rows: at the default 30,000, a frequency near 0.5 moves by about ±0.003 from one ANALYZE to
//! the next) and narrower than a difference that changes a plan:
//!
//! | measure | off when | why this much |
//! |---|---|---|
//! | `null_frac` | differs by more than 0.02 | sampling noise is ±0.003; 2 points of NULLs change little else |
//! | `n_distinct` | the distinct counts (both as counts at the copy's size) differ by more than ×1.5 | ANALYZE's estimator (Haas–Stokes) is itself this uncertain for columns between a few hundred distinct values and unique |
//! | `most_common_freqs` | any frequency, paired in order (a missing one counts as 0), differs by more than 0.02 | as for NULLs; a value that falls out of the list has a frequency near the list's smallest |
//! | `correlation` | differs by more than 0.25 | it decides index scan costs only coarsely, and is noisy for columns with few values |

use serde::Serialize;
use tidegate_db::column_stats::{ColumnStats, TableStatistics};

/// When a column counts as off (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerance {
    pub null_frac: f64,
    /// The largest ratio between the two distinct counts.
    pub n_distinct_ratio: f64,
    pub most_common_freq: f64,
    pub correlation: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            null_frac: 0.02,
            n_distinct_ratio: 1.5,
            most_common_freq: 0.02,
            correlation: 0.25,
        }
    }
}

/// One side's statistics of a column, as `pg_stats` has them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnSide {
    pub null_frac: f64,
    /// As in `pg_stats`: a count, or a negative fraction of the rows.
    pub n_distinct: f64,
    pub most_common_freqs: Vec<f64>,
    pub correlation: Option<f64>,
}

impl From<&ColumnStats> for ColumnSide {
    fn from(stats: &ColumnStats) -> Self {
        Self {
            null_frac: stats.null_frac,
            n_distinct: stats.n_distinct,
            most_common_freqs: stats.most_common_freqs.clone(),
            correlation: stats.correlation,
        }
    }
}

/// A measure that is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    NullFrac,
    NDistinct,
    MostCommonFreqs,
    Correlation,
    /// The copy has no statistics for the column (or the source has none).
    Missing,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Measure::NullFrac => "null_frac",
            Measure::NDistinct => "n_distinct",
            Measure::MostCommonFreqs => "most_common_freqs",
            Measure::Correlation => "correlation",
            Measure::Missing => "statistics missing",
        }
    }
}

/// One column, source beside copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnFidelity {
    pub name: String,
    pub source: Option<ColumnSide>,
    pub rehearsed: Option<ColumnSide>,
    /// The measures beyond their tolerance; empty when the column is faithful.
    pub off: Vec<Measure>,
}

/// One table, source beside copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableFidelity {
    pub table: String,
    pub source_rows: u64,
    pub rehearsed_rows: u64,
    pub columns: Vec<ColumnFidelity>,
}

impl TableFidelity {
    /// The columns with at least one measure off.
    pub fn off_columns(&self) -> impl Iterator<Item = &ColumnFidelity> {
        self.columns.iter().filter(|column| !column.off.is_empty())
    }
}

/// Distinct values at `rows` rows: a negative `n_distinct` scales with the table, a positive one does not.
fn distinct_at(n_distinct: f64, rows: u64) -> f64 {
    if n_distinct < 0.0 {
        -n_distinct * rows as f64
    } else {
        n_distinct.min(rows as f64)
    }
}

/// Compares one column's statistics; `rehearsed_rows` is the copy's size, at which both distinct counts are read.
pub fn compare_column(
    source: &ColumnStats,
    rehearsed: &ColumnStats,
    rehearsed_rows: u64,
    tolerance: &Tolerance,
) -> Vec<Measure> {
    let mut off = Vec::new();
    if (source.null_frac - rehearsed.null_frac).abs() > tolerance.null_frac {
        off.push(Measure::NullFrac);
    }
    // Both as counts at the copy's size; +1 keeps an all-NULL column (0 distinct) comparable.
    let expected = distinct_at(source.n_distinct, rehearsed_rows) + 1.0;
    let measured = distinct_at(rehearsed.n_distinct, rehearsed_rows) + 1.0;
    if expected.max(measured) / expected.min(measured) > tolerance.n_distinct_ratio {
        off.push(Measure::NDistinct);
    }
    let longest = source
        .most_common_freqs
        .len()
        .max(rehearsed.most_common_freqs.len());
    let freq = |list: &[f64], i: usize| list.get(i).copied().unwrap_or(0.0);
    if (0..longest).any(|i| {
        (freq(&source.most_common_freqs, i) - freq(&rehearsed.most_common_freqs, i)).abs()
            > tolerance.most_common_freq
    }) {
        off.push(Measure::MostCommonFreqs);
    }
    if let (Some(a), Some(b)) = (source.correlation, rehearsed.correlation) {
        if (a - b).abs() > tolerance.correlation {
            off.push(Measure::Correlation);
        }
    }
    off
}

/// Compares every column the source has statistics for, in the source's order.
pub fn compare_table(
    table: &str,
    source: &TableStatistics,
    source_rows: u64,
    rehearsed: &TableStatistics,
    rehearsed_rows: u64,
    tolerance: &Tolerance,
) -> TableFidelity {
    let mut names: Vec<&str> = source
        .columns
        .iter()
        .map(|column| column.column.as_str())
        .collect();
    for column in &rehearsed.columns {
        if !names.contains(&column.column.as_str()) {
            names.push(&column.column);
        }
    }
    let columns = names
        .into_iter()
        .map(|name| {
            let (from, to) = (source.column(name), rehearsed.column(name));
            let off = match (from, to) {
                (Some(from), Some(to)) => compare_column(from, to, rehearsed_rows, tolerance),
                // An empty copy has nothing to analyse: not a departure when the source was empty too.
                _ if rehearsed_rows == 0 && source_rows == 0 => Vec::new(),
                _ => vec![Measure::Missing],
            };
            ColumnFidelity {
                name: name.to_string(),
                source: from.map(ColumnSide::from),
                rehearsed: to.map(ColumnSide::from),
                off,
            }
        })
        .collect();
    TableFidelity {
        table: table.to_string(),
        source_rows,
        rehearsed_rows,
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(null_frac: f64, n_distinct: f64, freqs: &[f64], correlation: f64) -> ColumnStats {
        ColumnStats {
            column: "c".into(),
            null_frac,
            avg_width: 4,
            n_distinct,
            most_common_vals: freqs.iter().map(|f| f.to_string()).collect(),
            most_common_freqs: freqs.to_vec(),
            histogram_bounds: Vec::new(),
            correlation: Some(correlation),
        }
    }

    #[test]
    fn a_faithful_column_is_not_off() {
        let source = stats(0.1, -0.5, &[0.2, 0.1], 0.9);
        let copy = stats(0.105, -0.45, &[0.205, 0.098], 0.95);
        assert!(compare_column(&source, &copy, 1000, &Tolerance::default()).is_empty());
    }

    #[test]
    fn each_measure_beyond_its_tolerance_is_named() {
        let source = stats(0.1, 100.0, &[0.2, 0.1], 0.9);
        let copy = stats(0.2, 400.0, &[0.2], 0.1);
        assert_eq!(
            compare_column(&source, &copy, 1000, &Tolerance::default()),
            vec![
                Measure::NullFrac,
                Measure::NDistinct,
                Measure::MostCommonFreqs,
                Measure::Correlation
            ]
        );
    }

    #[test]
    fn distinct_counts_are_compared_at_the_copys_size() {
        // Every row distinct in both, whether written as a fraction or as the count.
        let source = stats(0.0, -1.0, &[], 1.0);
        let copy = stats(0.0, 1000.0, &[], 1.0);
        assert!(compare_column(&source, &copy, 1000, &Tolerance::default()).is_empty());
    }
}
