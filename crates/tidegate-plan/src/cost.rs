//! Measured per-operation rates: what `tidegate plan --calibrate` (or `tidegate rehearse`) measures on a scratch
//! server, and how plan turns them into a duration for a table of another size on another machine.
//!
//! **Pure**: no I/O, no clock. The calibration run that fills [`OperationRates`] lives in tidegate-rehearse
//! (`calibrate`); the file it writes is [`CalibrationFile`], read here.
//!
//! **Model.** Each kind of work costs seconds per row or per byte, measured as the slope between two table sizes
//! (so a statement's fixed cost, planning and commit, does not count as per-row work):
//!
//! | work | cost |
//! |---|---|
//! | `UPDATE` / `MERGE` | rows × (`update_row` + indexes × `update_index_entry`): a non-HOT update writes a new heap version and one entry in every index |
//! | `DELETE` | rows × `delete_row` (only `xmax` is set; indexes are untouched until vacuum) |
//! | index build (`CREATE INDEX`, `REINDEX`) | rows × `index_build_row` |
//! | scan (`VALIDATE` a `CHECK` or a foreign key, `SET NOT NULL`, `ATTACH PARTITION`) | heap bytes × `scan_byte` |
//! | rewrite (`ALTER … TYPE`, volatile default, `VACUUM FULL`, `CLUSTER`) | heap bytes × `rewrite_byte` + rows × indexes × `index_build_row` |
//!
//! A foreign key's validation is priced as a scan of the referencing table: PostgreSQL checks it with one
//! anti-join query, and measured beside a `CHECK`'s validation it took 0.5–0.8× as long (the referenced
//! table's own read is not counted).
//!
//! **Another machine, or a table that does not fit in memory.** The calibration also records the scratch
//! server's sequential read rate, measured the way plan measures the target's (a timed read of the first pages).
//! Work that is bound by reading and writing pages — scans, index builds, rewrites, `DELETE` — is scaled by the
//! ratio of the two, within [`MAX_MACHINE_SCALE`] either way: a table read at half the calibrated rate (another
//! disk, or a table bigger than the cache) takes twice as long. `UPDATE` is not scaled: its time goes to new row
//! versions, index entries and WAL, and measured on 1M and 3M-row tables the unscaled rate stayed within 15% while
//! the read rate halved. See docs/benchmarks.md (plan's estimates).

use serde::{Deserialize, Serialize};

/// The file `tidegate plan --calibrate` writes and `tidegate plan` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFile {
    /// Format version of this file.
    pub version: u32,
    /// `server_version_num` of the server measured (150020 for 15.20).
    pub server_version_num: i32,
    /// When it was measured, RFC 3339 UTC.
    pub measured_at: String,
    /// The table sizes the slopes were measured between.
    pub rows_measured: [u64; 2],
    pub rates: OperationRates,
    /// What measured it when not `plan --calibrate` on a default scratch server: `tidegate rehearse` names its
    /// source, whose WAL- and cost-relevant settings the measuring server took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_by: Option<String>,
}

impl CalibrationFile {
    pub const VERSION: u32 = 1;

    /// Reads a calibration file's text; the error says what is wrong in words a user can act on.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: CalibrationFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a tidegate calibration file ({e}); write one with `tidegate plan --calibrate`"
            )
        })?;
        if file.version != Self::VERSION {
            return Err(format!(
                "calibration file version {} (this tidegate reads version {}): run `tidegate plan --calibrate` again",
                file.version,
                Self::VERSION
            ));
        }
        file.rates.check()?;
        Ok(file)
    }
}

/// Seconds per unit of work, measured on one server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperationRates {
    pub update_row: f64,
    pub update_index_entry: f64,
    pub delete_row: f64,
    pub index_build_row: f64,
    pub scan_byte: f64,
    pub rewrite_byte: f64,
    /// The measured server's sequential read rate (bytes/s), for scaling to another server.
    pub read_bytes_per_second: Option<f64>,
}

/// How far the read-rate ratio may scale an estimate, either way.
pub const MAX_MACHINE_SCALE: f64 = 10.0;

impl OperationRates {
    fn check(&self) -> Result<(), String> {
        let all = [
            ("update_row", self.update_row),
            ("update_index_entry", self.update_index_entry),
            ("delete_row", self.delete_row),
            ("index_build_row", self.index_build_row),
            ("scan_byte", self.scan_byte),
            ("rewrite_byte", self.rewrite_byte),
        ];
        for (name, value) in all {
            if !value.is_finite() || value < 0.0 {
                return Err(format!(
                    "calibration rate {name} is {value}: run `tidegate plan --calibrate` again"
                ));
            }
        }
        Ok(())
    }

    /// The factor by which work on a server reading at `target_read` (bytes/s) is faster or slower than on the
    /// calibrated one: 1 when either rate is unknown.
    pub fn machine_scale(&self, target_read: Option<f64>) -> f64 {
        match (self.read_bytes_per_second, target_read) {
            (Some(ours), Some(theirs)) if ours > 0.0 && theirs > 0.0 => {
                (ours / theirs).clamp(1.0 / MAX_MACHINE_SCALE, MAX_MACHINE_SCALE)
            }
            _ => 1.0,
        }
    }

    /// Seconds of `work` on a table of `rows` rows, `heap_bytes` heap bytes and `indexes` indexes, on a server
    /// that reads that table at `target_read` bytes/s (`None`: as the calibrated one).
    pub fn estimate(
        &self,
        work: CostedWork,
        rows: u64,
        heap_bytes: u64,
        indexes: u32,
        target_read: Option<f64>,
    ) -> f64 {
        let scale = if work.is_page_bound() {
            self.machine_scale(target_read)
        } else {
            1.0
        };
        self.seconds(work, rows, heap_bytes, indexes) * scale
    }

    /// Seconds of `work` on a table of `rows` rows, `heap_bytes` heap bytes and `indexes` indexes, on the
    /// calibrated server.
    pub fn seconds(&self, work: CostedWork, rows: u64, heap_bytes: u64, indexes: u32) -> f64 {
        let rows = rows as f64;
        let heap = heap_bytes as f64;
        let indexes = f64::from(indexes);
        match work {
            CostedWork::Update => rows * (self.update_row + indexes * self.update_index_entry),
            CostedWork::Delete => rows * self.delete_row,
            CostedWork::IndexBuild => rows * self.index_build_row,
            CostedWork::Scan => heap * self.scan_byte,
            CostedWork::Rewrite => heap * self.rewrite_byte + rows * indexes * self.index_build_row,
        }
    }
}

/// The kinds of work the rates price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostedWork {
    Update,
    Delete,
    IndexBuild,
    Scan,
    Rewrite,
}

impl CostedWork {
    /// Whether the work's time follows the rate pages are read and written at (see the module docs).
    pub fn is_page_bound(self) -> bool {
        !matches!(self, CostedWork::Update)
    }
}

/// A per-unit rate from two measurements at different sizes: the slope, so fixed costs drop out; never
/// negative (a noisy pair whose larger size ran faster gives the larger size's average instead).
pub fn slope(small: (f64, f64), large: (f64, f64)) -> f64 {
    let (units_small, seconds_small) = small;
    let (units_large, seconds_large) = large;
    let per_unit = (seconds_large - seconds_small) / (units_large - units_small);
    if per_unit.is_finite() && per_unit > 0.0 {
        per_unit
    } else if units_large > 0.0 {
        (seconds_large / units_large).max(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> OperationRates {
        OperationRates {
            update_row: 2e-6,
            update_index_entry: 1e-6,
            delete_row: 0.5e-6,
            index_build_row: 0.8e-6,
            scan_byte: 1e-9,
            rewrite_byte: 4e-9,
            read_bytes_per_second: Some(500e6),
        }
    }

    #[test]
    fn each_kind_of_work_is_priced_by_its_own_rate() {
        let r = rates();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // 1M rows, 100 MB heap, 3 indexes (the primary key and two more).
        assert!(close(
            r.seconds(CostedWork::Update, 1_000_000, 100_000_000, 3),
            5.0
        ));
        assert!(close(
            r.seconds(CostedWork::Delete, 1_000_000, 100_000_000, 3),
            0.5
        ));
        assert!(close(
            r.seconds(CostedWork::IndexBuild, 1_000_000, 100_000_000, 3),
            0.8
        ));
        assert!(close(
            r.seconds(CostedWork::Scan, 1_000_000, 100_000_000, 3),
            0.1
        ));
        assert!(close(
            r.seconds(CostedWork::Rewrite, 1_000_000, 100_000_000, 3),
            0.4 + 2.4
        ));
    }

    #[test]
    fn a_faster_reader_is_taken_to_be_faster_at_everything_within_bounds() {
        let r = rates();
        assert_eq!(r.machine_scale(Some(1000e6)), 0.5);
        assert_eq!(r.machine_scale(Some(250e6)), 2.0);
        assert_eq!(r.machine_scale(Some(1e3)), MAX_MACHINE_SCALE);
        assert_eq!(r.machine_scale(None), 1.0);
        // Page-bound work follows the read rate; an UPDATE does not.
        let half_as_fast = Some(250e6);
        assert!((r.estimate(CostedWork::Scan, 0, 100_000_000, 1, half_as_fast) - 0.2).abs() < 1e-9);
        assert!(
            (r.estimate(CostedWork::Update, 1_000_000, 100_000_000, 3, half_as_fast) - 5.0).abs()
                < 1e-9
        );
        let unknown = OperationRates {
            read_bytes_per_second: None,
            ..r
        };
        assert_eq!(unknown.machine_scale(Some(1000e6)), 1.0);
    }

    #[test]
    fn the_slope_drops_fixed_costs_and_is_never_negative() {
        // 10 ms fixed + 1 µs per row.
        let per_row = slope((100_000.0, 0.11), (300_000.0, 0.31));
        assert!((per_row - 1e-6).abs() < 1e-12);
        // Noise: the larger run was faster; the larger run's average stands in.
        assert!((slope((100_000.0, 0.5), (300_000.0, 0.3)) - 1e-6).abs() < 1e-12);
        assert_eq!(slope((0.0, 0.0), (0.0, 0.0)), 0.0);
    }

    #[test]
    fn a_calibration_file_round_trips_and_bad_ones_say_what_to_do() {
        let file = CalibrationFile {
            version: CalibrationFile::VERSION,
            server_version_num: 150020,
            measured_at: "2026-12-02T15:00:00Z".into(),
            rows_measured: [100_000, 300_000],
            rates: rates(),
            measured_by: None,
        };
        let text = serde_json::to_string_pretty(&file).unwrap();
        assert_eq!(CalibrationFile::parse(&text).unwrap(), file);
        let old = text.replace("\"version\": 1", "\"version\": 99");
        assert!(CalibrationFile::parse(&old)
            .unwrap_err()
            .contains("--calibrate"));
        let negative = text.replace("\"delete_row\": 5e-7", "\"delete_row\": -1.0");
        assert_ne!(negative, text, "the replacement must hit: {text}");
        assert!(CalibrationFile::parse(&negative)
            .unwrap_err()
            .contains("delete_row"));
        assert!(CalibrationFile::parse("{}")
            .unwrap_err()
            .contains("not a tidegate calibration"));
    }
}
