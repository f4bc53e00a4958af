//! What ANALYZE knows about a table's columns (`pg_stats`) and about the table's size, as pure data: the input of
//! `tidegate rehearse`'s data synthesis, and what its fidelity check compares between the source and the copy.
//!
//! Values (`most_common_vals`, `histogram_bounds`) are kept as the server prints them (text), in the server's
//! order; frequencies are fractions of all rows, NULLs included, as in `pg_stats`.
//!
//! **Invariant:** the readers write nothing; call them inside a transaction opened with
//! [`crate::table_stats::begin_read_only`].

use serde::Serialize;

use crate::connect::DbError;
use crate::driver::{Session, SessionExt};
use crate::table_stats;

/// One column's row of `pg_stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnStats {
    pub column: String,
    /// Fraction of rows that are NULL.
    pub null_frac: f64,
    /// Average stored width of the non-null values, in bytes (the varlena header included).
    pub avg_width: i32,
    /// Distinct non-null values: a positive count, or a negative fraction of the rows (-1: every row distinct).
    pub n_distinct: f64,
    pub most_common_vals: Vec<String>,
    /// Each most-common value's fraction of all rows.
    pub most_common_freqs: Vec<f64>,
    /// Bounds of equal-population buckets over the values outside `most_common_vals`.
    pub histogram_bounds: Vec<String>,
    /// Correlation between physical row order and the order of the values (-1 … 1); `None` when not computed.
    pub correlation: Option<f64>,
}

impl ColumnStats {
    /// The number of distinct non-null values in a table of `rows` rows.
    pub fn distinct_values(&self, rows: u64) -> f64 {
        if self.n_distinct < 0.0 {
            -self.n_distinct * rows as f64
        } else {
            self.n_distinct
        }
    }
}

/// A table's size and statistics: what synthesis needs to reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStatistics {
    pub oid: u32,
    /// `pg_class.reltuples` (an estimate); `None` when the table was never vacuumed or analysed.
    pub estimated_rows: Option<u64>,
    /// `pg_relation_size`, `pg_total_relation_size`.
    pub heap_bytes: u64,
    pub total_bytes: u64,
    /// One entry per column ANALYZE has statistics for (a column without is absent).
    pub columns: Vec<ColumnStats>,
    /// `default_statistics_target` of the server that gathered them.
    pub default_statistics_target: i32,
}

impl TableStatistics {
    pub fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.iter().find(|column| column.column == name)
    }
}

const COLUMN_STATS: &str = "
SELECT s.attname::text AS column_name,
       s.null_frac::float8 AS null_frac,
       s.avg_width::int AS avg_width,
       s.n_distinct::float8 AS n_distinct,
       s.most_common_vals::text::text[] AS most_common_vals,
       s.most_common_freqs::text[] AS most_common_freqs,
       s.histogram_bounds::text::text[] AS histogram_bounds,
       s.correlation::float8 AS correlation
  FROM pg_stats s
 WHERE s.schemaname = $1::text AND s.tablename = $2::text AND NOT s.inherited
 ORDER BY s.attname";

/// `pg_stats` of every column of `schema.name`.
pub async fn read_column_stats(
    client: &dyn Session,
    schema: &str,
    name: &str,
) -> Result<Vec<ColumnStats>, DbError> {
    let rows = client
        .rows(COLUMN_STATS, &[schema.into(), name.into()])
        .await
        .map_err(|e| e.context(format!("reading pg_stats of {schema}.{name}")))?;
    let mut columns = Vec::new();
    for row in rows {
        let column: String = row.get("column_name")?;
        let freqs = row
            .get::<Option<Vec<String>>>("most_common_freqs")?
            .unwrap_or_default()
            .iter()
            .map(|text| {
                text.parse::<f64>().map_err(|_| {
                    DbError::other(
                        format!("reading pg_stats of {schema}.{name}.{column}"),
                        format!("most_common_freqs holds {text:?}, not a number"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        columns.push(ColumnStats {
            null_frac: row.get("null_frac")?,
            avg_width: row.get("avg_width")?,
            n_distinct: row.get("n_distinct")?,
            most_common_vals: row
                .get::<Option<Vec<String>>>("most_common_vals")?
                .unwrap_or_default(),
            most_common_freqs: freqs,
            histogram_bounds: row
                .get::<Option<Vec<String>>>("histogram_bounds")?
                .unwrap_or_default(),
            correlation: row.get("correlation")?,
            column,
        });
    }
    Ok(columns)
}

/// The size and statistics of `schema.name` (its oid `oid`): reltuples, exact sizes (the catalog's when a lock
/// keeps the exact functions from running) and `pg_stats`.
pub async fn read_table_statistics(
    client: &dyn Session,
    oid: u32,
    schema: &str,
    name: &str,
) -> Result<TableStatistics, DbError> {
    let reading = table_stats::table_size(client, schema, name)
        .await?
        .ok_or_else(|| {
            DbError::other(
                format!("reading the size of {schema}.{name}"),
                "the table no longer exists",
            )
        })?;
    let target = client
        .query_one(
            "SELECT current_setting('default_statistics_target')::int AS target",
            &[],
        )
        .await?;
    Ok(TableStatistics {
        oid,
        estimated_rows: reading.reltuples(),
        heap_bytes: reading.heap_bytes(),
        total_bytes: reading.size.total_bytes.unwrap_or(0),
        columns: read_column_stats(client, schema, name).await?,
        default_statistics_target: target.get("target")?,
    })
}

/// Runs ANALYZE on the table (a write: for the scratch copy only, never the source).
pub async fn analyze(
    client: &dyn Session,
    qualified: &str,
    statistics_target: i32,
) -> Result<(), DbError> {
    client
        .batch_execute(&format!(
            "SET default_statistics_target = {statistics_target}; ANALYZE {qualified}; RESET default_statistics_target"
        ))
        .await
        .map_err(|e| e.context(format!("analysing {qualified}")))
}
