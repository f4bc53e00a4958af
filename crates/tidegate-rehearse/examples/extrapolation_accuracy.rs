//! Benchmark: how close `tidegate rehearse`'s extrapolation to the source's size comes to the real figures at
//! that size, for a table of a few million rows.
//!
//! ```text
//! nice cargo run --release -p tidegate-rehearse --example extrapolation_accuracy -- [ROWS] [SCALES]
//! ```
//!
//! Builds a source on a private scratch cluster (`events`: bigint key, an int of 1,000 values, a 32-byte text;
//! ROWS rows, default 3,000,000, VACUUM ANALYZEd), then rehearses two migrations on it twice, without traffic:
//! at the scale points SCALES (comma-separated, default `0.1,0.25`: the largest is the main copy, the others extra
//! scales), which extrapolate to the source's size, and at scale 1.0, which measures the real thing. Prints, per
//! statement, the extrapolated duration and WAL with their low–high interval beside the full-size measurement.

use std::time::Instant;

use tidegate_db::connect::ConnectionConfig;
use tidegate_db::scratch::{self, StartOptions};
use tidegate_rehearse::measurement::WorkloadChoice;
use tidegate_rehearse::rehearsal::{rehearse, RehearseOptions, Targets};

const MIGRATIONS: [(&str, &str); 2] = [
    (
        "001_events_kind_idx.sql",
        "CREATE INDEX events_kind_idx ON events (kind);\n",
    ),
    (
        "002_events_payload.sql",
        "UPDATE events SET payload = upper(payload);\n",
    ),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(3_000_000);
    let mut scales: Vec<f64> = match args.next() {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![0.1, 0.25],
    };
    scales.sort_by(f64::total_cmp);
    let main_scale = scales.pop().ok_or("at least one scale point")?;
    if scales.is_empty() {
        return Err("two scale points at least: an extrapolation needs two".into());
    }

    let dir = tempfile::tempdir()?;
    let server = scratch::start(&StartOptions::new(dir.path().join("source")))?;
    let result = run(&server, dir.path(), rows, main_scale, scales).await;
    scratch::stop(&server.dir)?;
    result
}

async fn run(
    server: &scratch::ScratchServer,
    dir: &std::path::Path,
    rows: u64,
    main_scale: f64,
    extra_scales: Vec<f64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let config = ConnectionConfig::from_url(&server.url())?;
    let client = config.connect().await?;
    // The benchmark's own source table, built on its own cluster: the application's SQL, not tidegate's.
    client
        .batch_execute(&format!(
            "SET statement_timeout = 0;
             CREATE TABLE events (id bigint PRIMARY KEY, kind int NOT NULL, payload text NOT NULL);
             INSERT INTO events SELECT g, abs(hashint4(g)) % 1000, md5(g::text) FROM generate_series(1, {rows}) g"
        ))
        .await?;
    // Alone: a batch of several statements is one implicit transaction, which VACUUM refuses.
    client.batch_execute("VACUUM ANALYZE events").await?;
    drop(client);
    println!(
        "source: {rows} rows built and analysed in {:.1} s (PostgreSQL {})",
        started.elapsed().as_secs_f64(),
        server.binaries.major_version
    );

    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    for (name, sql) in MIGRATIONS {
        std::fs::write(migrations.join(name), sql)?;
    }
    let targets = || -> Result<Targets, Box<dyn std::error::Error>> {
        Ok(Targets::Migrations(tidegate_plan::pipeline::load(
            std::slice::from_ref(&migrations),
            None,
        )?))
    };
    let options = |scale: f64, extra_scales: Vec<f64>, name: &str| {
        let mut options = RehearseOptions {
            scale,
            seed: 11,
            extra_scales,
            scratch_dir: dir.join(name),
            statement_timeout: std::time::Duration::from_secs(300),
            ..RehearseOptions::default()
        };
        options.measure.workload = WorkloadChoice::None;
        options
    };

    let mut points: Vec<f64> = extra_scales.clone();
    points.push(main_scale);
    let started = Instant::now();
    let extrapolated = rehearse(
        &config,
        &targets()?,
        &options(main_scale, extra_scales, "points"),
    )
    .await?;
    println!(
        "rehearsed at scales {points:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let actual = rehearse(&config, &targets()?, &options(1.0, Vec::new(), "full")).await?;
    println!(
        "rehearsed at full size ({} rows) in {:.1} s",
        actual.tables[0].fidelity.rehearsed_rows,
        started.elapsed().as_secs_f64()
    );

    let predicted = &extrapolated
        .migration
        .as_ref()
        .ok_or("the scale points ran no migration")?
        .statements;
    let measured = &actual
        .migration
        .as_ref()
        .ok_or("the full-size run ran no migration")?
        .statements;
    println!();
    println!("| statement | phase | duration: extrapolated [low, high] | actual | ×actual | WAL: extrapolated [low, high] | actual | ×actual |");
    println!("|---|---|---|---|---|---|---|---|");
    for (predicted, measured) in predicted.iter().zip(measured) {
        if (&predicted.migration, predicted.phase) != (&measured.migration, measured.phase) {
            return Err(format!(
                "the runs' phases differ: {} {:?} against {} {:?}",
                predicted.migration, predicted.phase, measured.migration, measured.phase
            )
            .into());
        }
        let Some(full) = predicted.extrapolation.as_ref() else {
            println!(
                "| {} | {:?} | not extrapolated | {:.2} s | | | {:.1} MB | |",
                measured.migration,
                measured.phase,
                measured.measured_seconds,
                measured.measured_wal_bytes as f64 / 1e6
            );
            continue;
        };
        let megabytes = |bytes: u64| bytes as f64 / 1e6;
        let inside = |low: f64, high: f64, value: f64| {
            if (low..=high).contains(&value) {
                "in"
            } else {
                "outside"
            }
        };
        println!(
            "| {} | {:?} | {:.2} s [{:.2}, {:.2}] | {:.2} s ({}) | {:.2} | {:.1} MB [{:.1}, {:.1}] | {:.1} MB ({}) | {:.2} |",
            measured.migration,
            measured.phase,
            full.extrapolated_seconds,
            full.extrapolated_seconds_low,
            full.extrapolated_seconds_high,
            measured.measured_seconds,
            inside(
                full.extrapolated_seconds_low,
                full.extrapolated_seconds_high,
                measured.measured_seconds
            ),
            full.extrapolated_seconds / measured.measured_seconds.max(1e-9),
            megabytes(full.extrapolated_wal_bytes),
            megabytes(full.extrapolated_wal_bytes_low),
            megabytes(full.extrapolated_wal_bytes_high),
            megabytes(measured.measured_wal_bytes),
            inside(
                full.extrapolated_wal_bytes_low as f64,
                full.extrapolated_wal_bytes_high as f64,
                measured.measured_wal_bytes as f64
            ),
            full.extrapolated_wal_bytes as f64 / (measured.measured_wal_bytes as f64).max(1.0),
        );
        for note in &full.regime_notes {
            println!("  regime: {note}");
        }
    }
    Ok(())
}
