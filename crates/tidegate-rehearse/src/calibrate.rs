//! `tidegate plan --calibrate`: measures what each kind of work costs per row and per byte on a scratch server,
//! for plan's cost model ([`tidegate_plan::cost`]).
//!
//! For each of two table sizes it loads a fresh table shaped like an application's (a bigint key, a customer
//! id, an amount, a status and a note: about 100 bytes a row) and times, from the client, each
//! statement plan prices: a `VALIDATE` of a `CHECK` (a scan), `CREATE INDEX`, an
//! `UPDATE` of every row with the primary key only and with two more indexes (the difference is the price of
//! an index entry), a rewrite (`ALTER COLUMN … TYPE`) and a `DELETE` of every row. The rates are the slopes
//! between the two sizes, so the fixed cost of a statement drops out. Indexes exist before the rows arrive,
//! as a production index grows with its table (an index built after a load is packed, and the first updates
//! split all of its leaves at once, which no long-lived table shows).
//!
//! The SQL here is the workload being measured, on a scratch server only; nothing touches a user's database.

use std::time::Instant;

use tidegate_db::connect::{ConnectError, ConnectionConfig, DbError};
use tidegate_db::driver::Session;
use tidegate_db::scratch::{self, PgBinaries, ScratchError, StartOptions};
use tidegate_db::table_stats;
use tidegate_plan::cost::{slope, CalibrationFile, OperationRates};
use tidegate_plan::probe::ProbeOptions;

/// Why a calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("the scratch server: {0}")]
    Scratch(#[from] ScratchError),
    #[error("connecting to the scratch server: {0}")]
    Connect(#[from] ConnectError),
    #[error("calibrating on the scratch server: {0}")]
    Database(#[from] DbError),
}

/// Table sizes measured: big enough that per-row work dominates a statement's fixed cost, small enough that a
/// calibration takes well under a minute on two cores.
pub const DEFAULT_SIZES: [u64; 2] = [100_000, 400_000];

const TABLE: &str = "tidegate_calibration";

/// One size's measured seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Timings {
    rows: f64,
    heap_bytes: f64,
    read_bytes_per_second: Option<f64>,
    scan: f64,
    index_build: f64,
    update_one_index: f64,
    update_three_indexes: f64,
    rewrite: f64,
    delete: f64,
}

async fn timed(session: &dyn Session, sql: &str) -> Result<f64, DbError> {
    let started = Instant::now();
    session.batch_execute(sql).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// Drops and loads the calibration table with `rows` rows; `secondary_indexes` exist before the rows.
async fn load(session: &dyn Session, rows: u64, secondary_indexes: bool) -> Result<(), DbError> {
    let indexes = if secondary_indexes {
        format!(
            "CREATE INDEX {TABLE}_customer ON {TABLE} (customer_id); \
             CREATE INDEX {TABLE}_status ON {TABLE} (status);"
        )
    } else {
        String::new()
    };
    session
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE}; \
             CREATE TABLE {TABLE} (id bigint PRIMARY KEY, customer_id bigint NOT NULL, \
                                   amount numeric(12,2) NOT NULL, status text NOT NULL, note text, \
                                   n int NOT NULL DEFAULT 0); \
             {indexes} \
             INSERT INTO {TABLE} (id, customer_id, amount, status, note) \
               SELECT g, (g * 104729) % 99991, (g % 100000) / 100.0, \
                      (ARRAY['new','paid','shipped','delivered','returned'])[1 + g % 5], md5(g::text) \
               FROM generate_series(1::int8, {rows}) g;"
        ))
        .await?;
    // One statement each: VACUUM refuses to run inside a multi-statement string's transaction.
    session
        .batch_execute(&format!("VACUUM ANALYZE {TABLE}"))
        .await?;
    session.batch_execute("CHECKPOINT").await
}

async fn measure_size(
    session: &dyn Session,
    rows: u64,
    server_major: u32,
) -> Result<Timings, DbError> {
    let mut t = Timings {
        rows: rows as f64,
        ..Timings::default()
    };
    // 1. The primary key only: the read rate plan would measure, the scans, one UPDATE.
    load(session, rows, false).await?;
    // The size and timed read use savepoints, as in plan's read-only transactions.
    session.batch_execute("BEGIN").await?;
    if let Some(size) = table_stats::table_size(session, "public", TABLE).await? {
        t.heap_bytes = size.heap_bytes() as f64;
        if let Ok(sample) = table_stats::timed_bounded_read(
            session,
            &size,
            ProbeOptions::default().read_pages,
            server_major,
        )
        .await?
        {
            t.read_bytes_per_second = (sample.pages > 0 && sample.seconds > 0.0)
                .then(|| (sample.pages * size.block_size) as f64 / sample.seconds);
        }
    }
    session.batch_execute("COMMIT").await?;
    session
        .batch_execute(&format!(
            "ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_amount CHECK (amount >= 0) NOT VALID"
        ))
        .await?;
    t.scan = timed(
        session,
        &format!("ALTER TABLE {TABLE} VALIDATE CONSTRAINT {TABLE}_amount"),
    )
    .await?;
    t.update_one_index = timed(session, &format!("UPDATE {TABLE} SET n = n + 1")).await?;

    // 2. The primary key and two indexes grown with the table: the same UPDATE.
    load(session, rows, true).await?;
    t.update_three_indexes = timed(session, &format!("UPDATE {TABLE} SET n = n + 1")).await?;

    // 3. A fresh table: an index build, a rewrite that rebuilds both indexes, then a DELETE of every row.
    load(session, rows, false).await?;
    t.index_build = timed(
        session,
        &format!("CREATE INDEX {TABLE}_customer ON {TABLE} (customer_id)"),
    )
    .await?;
    t.rewrite = timed(
        session,
        &format!("ALTER TABLE {TABLE} ALTER COLUMN n TYPE bigint"),
    )
    .await?;
    session
        .batch_execute(&format!("VACUUM ANALYZE {TABLE}"))
        .await?;
    t.delete = timed(session, &format!("DELETE FROM {TABLE}")).await?;
    session
        .batch_execute(&format!("DROP TABLE {TABLE}"))
        .await?;
    Ok(t)
}

/// The rates from two sizes' timings (pure).
fn rates_from(small: &Timings, large: &Timings) -> OperationRates {
    let per_row = |f: fn(&Timings) -> f64| slope((small.rows, f(small)), (large.rows, f(large)));
    let update_row_with_pk = per_row(|t| t.update_one_index);
    let update_row_with_three = per_row(|t| t.update_three_indexes);
    // Two more index entries per row version.
    let update_index_entry = ((update_row_with_three - update_row_with_pk) / 2.0).max(0.0);
    let index_build_row = per_row(|t| t.index_build);
    // The rewrite rebuilt the primary key and the customer index: what is left is the heap's. Parts derived by
    // subtraction keep at least a tenth of what was measured, so a noisy pair never prices work at zero.
    let heap_part =
        |t: &Timings| (t.rewrite - 2.0 * t.rows * index_build_row).max(t.rewrite / 10.0);
    OperationRates {
        update_row: (update_row_with_pk - update_index_entry).max(update_row_with_pk / 10.0),
        update_index_entry,
        delete_row: per_row(|t| t.delete),
        index_build_row,
        scan_byte: slope(
            (small.heap_bytes, small.scan),
            (large.heap_bytes, large.scan),
        ),
        rewrite_byte: slope(
            (small.heap_bytes, heap_part(small)),
            (large.heap_bytes, heap_part(large)),
        ),
        read_bytes_per_second: large.read_bytes_per_second.or(small.read_bytes_per_second),
    }
}

/// Measures the rates on the server `session` is connected to (a scratch server: it creates and drops its
/// own tables in `public`).
pub async fn calibrate(session: &dyn Session, sizes: [u64; 2]) -> Result<CalibrationFile, DbError> {
    let [small, large] = sizes;
    if small == 0 || large <= small {
        return Err(DbError::other(
            "calibrating",
            format!(
                "two sizes, the second larger than the first, are needed (got {small} and {large})"
            ),
        ));
    }
    let server_major = table_stats::server_major_version(session).await?;
    let (server_version_num, measured_at) = table_stats::server_version_and_time(session).await?;
    let small_timings = measure_size(session, small, server_major).await?;
    let large_timings = measure_size(session, large, server_major).await?;
    Ok(CalibrationFile {
        version: CalibrationFile::VERSION,
        server_version_num,
        measured_at,
        rows_measured: sizes,
        rates: rates_from(&small_timings, &large_timings),
        measured_by: None,
    })
}

/// Starts a scratch server of `major` (or the newest installed) in `dir`, calibrates on it and removes it.
pub async fn calibrate_on_scratch(
    dir: &std::path::Path,
    major: Option<u32>,
    sizes: [u64; 2],
) -> Result<CalibrationFile, CalibrateError> {
    let binaries = match major {
        Some(major) => PgBinaries::find_for_major(major)?,
        None => PgBinaries::find()?,
    };
    let user = scratch::ServerUser::for_current_process()?;
    let server = scratch::start_with(&StartOptions::new(dir), binaries, user)?;
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = scratch::stop(&self.0);
        }
    }
    let _remove = Remove(server.dir.clone());
    let session = ConnectionConfig::from_url(&server.url())?.connect().await?;
    Ok(calibrate(&session, sizes).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_slopes_and_the_index_entry_is_the_difference_of_two_updates() {
        // Fixed costs of 10 ms everywhere; per row: update 2 µs + 1 µs per index, delete 0.5 µs, build 0.8 µs,
        // per heap byte: scan 1 ns, rewrite 4 ns. 100 bytes a row.
        let at = |rows: f64| Timings {
            rows,
            heap_bytes: rows * 100.0,
            read_bytes_per_second: Some(400e6),
            scan: 0.01 + rows * 100.0 * 1e-9,
            index_build: 0.01 + rows * 0.8e-6,
            update_one_index: 0.01 + rows * (2e-6 + 1e-6),
            update_three_indexes: 0.01 + rows * (2e-6 + 3e-6),
            rewrite: 0.01 + rows * 100.0 * 4e-9 + 2.0 * rows * 0.8e-6,
            delete: 0.01 + rows * 0.5e-6,
        };
        let r = rates_from(&at(100_000.0), &at(400_000.0));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(r.update_row, 2e-6), "{r:?}");
        assert!(close(r.update_index_entry, 1e-6), "{r:?}");
        assert!(close(r.delete_row, 0.5e-6), "{r:?}");
        assert!(close(r.index_build_row, 0.8e-6), "{r:?}");
        assert!(close(r.scan_byte, 1e-9), "{r:?}");
        assert!(close(r.rewrite_byte, 4e-9), "{r:?}");
        assert_eq!(r.read_bytes_per_second, Some(400e6));
    }
}
