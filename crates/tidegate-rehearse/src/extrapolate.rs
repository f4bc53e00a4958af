//! From figures measured at two or more scales to the source's size, with a low–high interval. Pure.
//!
//! **The model.** Every table of a rehearsal is scaled by the same fraction, so a statement's cost is a function of
//! the scale `x` (rows = x × the source's rows). Two readings of the points are fitted:
//! - *affine* (least squares over all points): `y = a + b·x`, a fixed cost (catalog work, waiting for snapshots,
//!   apply's bookkeeping) plus a cost per row;
//! - *proportional*, one per point: `y_i · X / x_i`, all of the cost per row.
//!
//! The estimate at the target `X` (1 = the source's size) is the affine prediction. If the cost really is linear in
//! rows the readings agree; where they disagree (timing noise, a fixed cost, a per-row cost that grows with size) the
//! spread of their predictions measures how much the points can be trusted, and the interval is that spread widened
//! by half of it on either side: `[min − spread/2, max + spread/2]`, and at least [`NOISE_FLOOR`] of the estimate
//! on either side, never below 0. The floor is for what two points cannot show: runs differ by a few percent in
//! WAL when a checkpoint falls inside one (the first change to each page after it writes the whole page), and by
//! as much in time on a shared machine; measured here, a backfill's WAL at full size was 0.9% above a line through
//! points that agreed to 0.1%. Costs that are not linear —
//! an index build's sort (n log n), a table that no longer fits in memory — are what the regime notes are for.

use serde::Serialize;

/// The interval's least half-width, as a share of the estimate.
pub const NOISE_FLOOR: f64 = 0.05;

/// One measurement at a scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The fraction of the source's rows.
    pub scale: f64,
    pub value: f64,
}

/// A figure at the target scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Extrapolated {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// Extrapolates `points` to `target` (a scale); `None` with fewer than two distinct scales or a value that is not
/// a finite number.
pub fn extrapolate(points: &[Point], target: f64) -> Option<Extrapolated> {
    let usable: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.scale.is_finite() && p.scale > 0.0 && p.value.is_finite())
        .collect();
    if usable.len() != points.len() || !target.is_finite() || target <= 0.0 {
        return None;
    }
    let n = usable.len() as f64;
    let mean_x = usable.iter().map(|p| p.scale).sum::<f64>() / n;
    let mean_y = usable.iter().map(|p| p.value).sum::<f64>() / n;
    let var_x: f64 = usable.iter().map(|p| (p.scale - mean_x).powi(2)).sum();
    if var_x <= f64::EPSILON * mean_x * mean_x {
        return None;
    }
    let cov: f64 = usable
        .iter()
        .map(|p| (p.scale - mean_x) * (p.value - mean_y))
        .sum();
    let slope = cov / var_x;
    let affine = (mean_y + slope * (target - mean_x)).max(0.0);
    let predictions: Vec<f64> = std::iter::once(affine)
        .chain(usable.iter().map(|p| (p.value * target / p.scale).max(0.0)))
        .collect();
    let min = predictions.iter().copied().fold(f64::INFINITY, f64::min);
    let max = predictions
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let spread = max - min;
    let floor = affine * NOISE_FLOOR;
    Some(Extrapolated {
        estimate: affine,
        low: (min - spread / 2.0).min(affine - floor).max(0.0),
        high: (max + spread / 2.0).max(affine + floor),
    })
}

/// A statement's figures at the source's size, from the scales it was measured at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementExtrapolation {
    pub extrapolated_seconds: f64,
    pub extrapolated_seconds_low: f64,
    pub extrapolated_seconds_high: f64,
    pub extrapolated_wal_bytes: u64,
    pub extrapolated_wal_bytes_low: u64,
    pub extrapolated_wal_bytes_high: u64,
    /// Growth of every table it changed, together (tables and their indexes).
    pub extrapolated_growth_bytes: f64,
    pub extrapolated_growth_bytes_low: f64,
    pub extrapolated_growth_bytes_high: f64,
    pub extrapolated_from_scales: Vec<f64>,
    /// Where the figures at full size may leave the line through the points.
    pub regime_notes: Vec<String>,
}

/// One scale's measurement of a statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatementPoint {
    pub scale: f64,
    pub seconds: f64,
    pub wal_bytes: f64,
    pub growth_bytes: f64,
}

/// Extrapolates a statement measured at `points` to `target`; `None` with fewer than two scales.
pub fn extrapolate_statement(
    points: &[StatementPoint],
    target: f64,
    regime_notes: Vec<String>,
) -> Option<StatementExtrapolation> {
    let of = |value: fn(&StatementPoint) -> f64| {
        let points: Vec<Point> = points
            .iter()
            .map(|p| Point {
                scale: p.scale,
                value: value(p),
            })
            .collect();
        extrapolate(&points, target)
    };
    let seconds = of(|p| p.seconds)?;
    let wal = of(|p| p.wal_bytes)?;
    let growth = of(|p| p.growth_bytes)?;
    let mut scales: Vec<f64> = points.iter().map(|p| p.scale).collect();
    scales.sort_by(f64::total_cmp);
    Some(StatementExtrapolation {
        extrapolated_seconds: seconds.estimate,
        extrapolated_seconds_low: seconds.low,
        extrapolated_seconds_high: seconds.high,
        extrapolated_wal_bytes: wal.estimate.round() as u64,
        extrapolated_wal_bytes_low: wal.low.round() as u64,
        extrapolated_wal_bytes_high: wal.high.round() as u64,
        extrapolated_growth_bytes: growth.estimate,
        extrapolated_growth_bytes_low: growth.low,
        extrapolated_growth_bytes_high: growth.high,
        extrapolated_from_scales: scales,
        regime_notes,
    })
}

/// What the source's memory settings say about a statement at full size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceMemory {
    pub shared_buffers_bytes: u64,
    pub maintenance_work_mem_bytes: u64,
}

/// One table a statement changed: its size in the source, the largest copy's size before the statement, and the
/// index growth extrapolated to full size.
#[derive(Debug, Clone, PartialEq)]
pub struct TableAtFullSize {
    pub table: String,
    pub source_bytes: u64,
    pub rehearsed_bytes: u64,
    pub index_growth_at_full_size: f64,
    pub index_growth_rehearsed: f64,
}

fn human(bytes: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024.0 * MIB {
        format!("{:.1} GiB", bytes / (1024.0 * MIB))
    } else {
        format!("{:.0} MiB", bytes / MIB)
    }
}

/// The regimes that may change between the rehearsed size and the source's: a table that fitted in shared_buffers
/// and will not, an index build that sorted in maintenance_work_mem and will spill.
pub fn regime_changes(tables: &[TableAtFullSize], memory: SourceMemory) -> Vec<String> {
    let buffers = memory.shared_buffers_bytes as f64;
    let sort_memory = memory.maintenance_work_mem_bytes as f64;
    let mut notes = Vec::new();
    for table in tables {
        if table.source_bytes as f64 > buffers && table.rehearsed_bytes as f64 <= buffers {
            notes.push(format!(
                "{} is {} in the source, more than its shared_buffers ({}), but the copy fitted: at full size \
                 the statement reads it from the OS cache or disk, and may take longer than the line through the \
                 points",
                table.table,
                human(table.source_bytes as f64),
                human(buffers)
            ));
        }
        if table.index_growth_at_full_size > sort_memory
            && table.index_growth_rehearsed <= sort_memory
        {
            notes.push(format!(
                "an index of about {} is built on {} at full size, more than the source's maintenance_work_mem \
                 ({}): its sort spills to disk there, and did not in the rehearsal",
                human(table.index_growth_at_full_size),
                table.table,
                human(sort_memory)
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(f64, f64)]) -> Vec<Point> {
        values
            .iter()
            .map(|&(scale, value)| Point { scale, value })
            .collect()
    }

    #[test]
    fn a_cost_proportional_to_rows_extrapolates_exactly_within_the_noise_floor() {
        let fit = extrapolate(&points(&[(0.25, 1.0), (0.5, 2.0)]), 1.0).unwrap();
        assert!((fit.estimate - 4.0).abs() < 1e-9);
        // The points agree: the interval is the noise floor alone.
        assert!(
            (fit.low - 3.8).abs() < 1e-9 && (fit.high - 4.2).abs() < 1e-9,
            "{fit:?}"
        );
    }

    #[test]
    fn a_fixed_cost_shows_as_disagreement_and_the_estimate_is_the_affine_line() {
        // y = 1 + 4x: the affine fit says 5 at full size; the points alone say 8 (from 0.25) and 6 (from 0.5).
        let fit = extrapolate(&points(&[(0.25, 2.0), (0.5, 3.0)]), 1.0).unwrap();
        assert!((fit.estimate - 5.0).abs() < 1e-9);
        assert!((fit.low - 3.5).abs() < 1e-9, "{fit:?}");
        assert!((fit.high - 9.5).abs() < 1e-9, "{fit:?}");
    }

    #[test]
    fn more_points_fit_by_least_squares() {
        let fit = extrapolate(&points(&[(0.1, 1.0), (0.2, 2.0), (0.3, 3.0)]), 1.0).unwrap();
        assert!((fit.estimate - 10.0).abs() < 1e-9);
        assert!((fit.high - fit.low - 1.0).abs() < 1e-9, "{fit:?}");
    }

    #[test]
    fn nothing_is_extrapolated_from_one_scale_or_bad_values() {
        assert!(extrapolate(&points(&[(0.5, 1.0)]), 1.0).is_none());
        assert!(extrapolate(&points(&[(0.5, 1.0), (0.5, 2.0)]), 1.0).is_none());
        assert!(extrapolate(&points(&[(0.25, f64::NAN), (0.5, 2.0)]), 1.0).is_none());
        assert!(extrapolate(&points(&[(0.0, 1.0), (0.5, 2.0)]), 1.0).is_none());
        assert!(extrapolate(&points(&[(0.25, 1.0), (0.5, 2.0)]), 0.0).is_none());
    }

    #[test]
    fn a_falling_cost_never_goes_below_zero() {
        let fit = extrapolate(&points(&[(0.25, 3.0), (0.5, 1.0)]), 1.0).unwrap();
        assert_eq!(fit.estimate, 0.0);
        assert_eq!(fit.low, 0.0);
        assert!(fit.high > 0.0);
    }

    #[test]
    fn regime_notes_name_shared_buffers_and_maintenance_work_mem() {
        const MIB: u64 = 1024 * 1024;
        let memory = SourceMemory {
            shared_buffers_bytes: 128 * MIB,
            maintenance_work_mem_bytes: 64 * MIB,
        };
        let table = |source_bytes, rehearsed_bytes, full, rehearsed| TableAtFullSize {
            table: "public.orders".into(),
            source_bytes,
            rehearsed_bytes,
            index_growth_at_full_size: full,
            index_growth_rehearsed: rehearsed,
        };
        let both = regime_changes(
            &[table(
                2048 * MIB,
                100 * MIB,
                200.0 * MIB as f64,
                20.0 * MIB as f64,
            )],
            memory,
        );
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(both[0].contains("shared_buffers (128 MiB)") && both[0].contains("2.0 GiB"));
        assert!(both[1].contains("maintenance_work_mem (64 MiB)"));
        // Already beyond both in the rehearsal, or within both at full size: no change of regime.
        assert!(regime_changes(
            &[table(
                2048 * MIB,
                1024 * MIB,
                200.0 * MIB as f64,
                100.0 * MIB as f64
            )],
            memory
        )
        .is_empty());
        assert!(regime_changes(&[table(10 * MIB, 5 * MIB, 1.0, 0.5)], memory).is_empty());
    }
}
