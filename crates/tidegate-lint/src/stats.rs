//! Table statistics (`--stats FILE`): how big each table is, so hazards on small tables can be reported as info.
//!
//! The file is JSON, written by `tidegate plan --write-stats` or by hand:
//!
//! ```json
//! {
//!   "version": 1,
//!   "tables": {
//!     "public.orders": { "rows": 48000000, "bytes": 21474836480 },
//!     "public.feature_flags": { "rows": 12 }
//!   }
//! }
//! ```
//!
//! Keys are `schema.table` (an unqualified key means `public`); `rows` is required (an estimate such as
//! `pg_class.reltuples` is fine), `bytes` is optional.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tidegate_sql::{TableName, TableSize};

/// One table's entry in the file: its rows (an estimate) and, optionally, its total bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
struct FileEntry {
    rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
}

impl From<FileEntry> for TableSize {
    fn from(entry: FileEntry) -> Self {
        TableSize {
            total_bytes: entry.bytes,
            ..TableSize::estimated(entry.rows)
        }
    }
}

impl From<TableSize> for FileEntry {
    fn from(size: TableSize) -> Self {
        FileEntry {
            rows: size.rows,
            bytes: size.total_bytes,
        }
    }
}

/// Table sizes by table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableStats {
    tables: HashMap<(String, String), TableSize>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("the stats file is not valid: {0}; expected {{\"version\": 1, \"tables\": {{\"schema.table\": {{\"rows\": N}}}}}}")]
    Invalid(String),
    #[error("the stats file has version {0}; this tidegate reads version 1")]
    Version(u32),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsFile {
    version: u32,
    tables: HashMap<String, FileEntry>,
}

impl TableStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one table's size (how `--db` support will fill it from `pg_class`).
    pub fn insert(&mut self, table: &TableName, stat: TableSize) {
        self.tables.insert(table.key(), stat);
    }

    pub fn from_json(text: &str) -> Result<TableStats, StatsError> {
        let file: StatsFile =
            serde_json::from_str(text).map_err(|error| StatsError::Invalid(error.to_string()))?;
        if file.version != 1 {
            return Err(StatsError::Version(file.version));
        }
        let tables = file
            .tables
            .into_iter()
            .map(|(name, stat)| {
                let table = match name.split_once('.') {
                    Some((schema, table)) => TableName::new(Some(schema), table),
                    None => TableName::new(None, &name),
                };
                (table.key(), TableSize::from(stat))
            })
            .collect();
        Ok(TableStats { tables })
    }

    pub fn get(&self, table: &TableName) -> Option<TableSize> {
        self.tables.get(&table.key()).copied()
    }

    /// The file `from_json` reads (what `tidegate plan --write-stats` writes): tables keyed `schema.table`, in
    /// name order, so the file diffs cleanly between runs.
    pub fn to_json(&self) -> String {
        let tables: std::collections::BTreeMap<String, FileEntry> = self
            .tables
            .iter()
            .map(|((schema, table), stat)| (format!("{schema}.{table}"), FileEntry::from(*stat)))
            .collect();
        let document = serde_json::json!({ "version": 1, "tables": tables });
        format!(
            "{}\n",
            serde_json::to_string_pretty(&document).expect("a map of numbers always serialises")
        )
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

impl FromIterator<(TableName, TableSize)> for TableStats {
    fn from_iter<I: IntoIterator<Item = (TableName, TableSize)>>(items: I) -> Self {
        let mut stats = TableStats::new();
        for (table, stat) in items {
            stats.insert(&table, stat);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_it_writes_it_reads_back() {
        let mut stats = TableStats::new();
        stats.insert(
            &TableName::new(Some("app"), "Orders"),
            TableSize::estimated(5).with_total_bytes(8192),
        );
        stats.insert(&TableName::new(None, "flags"), TableSize::estimated(0));
        let text = stats.to_json();
        assert_eq!(TableStats::from_json(&text).unwrap(), stats);
        assert!(text.starts_with("{\n  \"tables\""), "{text}");
    }

    #[test]
    fn reads_the_documented_format() {
        let stats = TableStats::from_json(
            r#"{"version":1,"tables":{"public.orders":{"rows":48000000,"bytes":1},"flags":{"rows":12}}}"#,
        )
        .unwrap();
        assert_eq!(
            stats.get(&TableName::new(None, "orders")).unwrap().rows,
            48_000_000
        );
        assert_eq!(
            stats
                .get(&TableName::new(Some("public"), "flags"))
                .unwrap()
                .rows,
            12
        );
        assert!(TableStats::from_json(r#"{"version":2,"tables":{}}"#).is_err());
        assert!(TableStats::from_json("not json").is_err());
    }
}
