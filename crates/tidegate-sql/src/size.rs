//! A table's size: the one type for it across tidegate. Lint's `--stats` file, plan's probe and risk model,
//! apply's reading of the target before planning and the statistics file `plan --write-stats` writes all carry a
//! [`TableSize`]; each reads from it what it needs (rows for "small table" decisions, bytes for cost estimates).

use serde::{Deserialize, Serialize};

/// How big a table is, as far as tidegate knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSize {
    /// Rows: an exact count when `rows_exact`, otherwise an estimate (`pg_class.reltuples`, a statistics file)
    /// or a lower bound (a count stopped at a limit, or a table that could not be counted: unknown is not small).
    pub rows: u64,
    pub rows_exact: bool,
    /// Bytes of the main fork: what a sequential scan reads. `None` when not known.
    pub heap_bytes: Option<u64>,
    /// Heap, TOAST and indexes: what a rewrite rebuilds. `None` when not known.
    pub total_bytes: Option<u64>,
}

impl TableSize {
    /// An estimated number of rows, no bytes known.
    pub fn estimated(rows: u64) -> Self {
        Self {
            rows,
            ..Self::default()
        }
    }

    /// An exact number of rows, no bytes known.
    pub fn exact(rows: u64) -> Self {
        Self {
            rows,
            rows_exact: true,
            ..Self::default()
        }
    }

    pub fn with_heap_bytes(self, bytes: u64) -> Self {
        Self {
            heap_bytes: Some(bytes),
            ..self
        }
    }

    pub fn with_total_bytes(self, bytes: u64) -> Self {
        Self {
            total_bytes: Some(bytes),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_keep_what_they_do_not_set() {
        let size = TableSize::exact(12)
            .with_heap_bytes(8192)
            .with_total_bytes(16384);
        assert_eq!(
            size,
            TableSize {
                rows: 12,
                rows_exact: true,
                heap_bytes: Some(8192),
                total_bytes: Some(16384)
            }
        );
        assert!(!TableSize::estimated(5).rows_exact);
    }
}
