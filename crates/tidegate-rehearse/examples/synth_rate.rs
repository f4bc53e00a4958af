//! Benchmark: how fast `tidegate rehearse` generates rows and loads them with COPY, for a 6-column table.
//!
//! ```text
//! cargo run --release -p tidegate-rehearse --example synth_rate -- [ROWS]
//! ```
//!
//! Prints three figures: generation alone (rows/s into memory, one thread), the load (rows/s from the first COPY
//! message to COPY's end, generation on one thread while a scratch PostgreSQL parses and stores the rows), and the
//! server's limit on this machine: the same rows, pre-generated into a file, loaded by `psql`'s `\copy` into the
//! same table definition in a second database of the same server (psql's C client reading a file; no generation).
//! The two loads alternate, twice each, so that the machine's other load falls on both. The table: a sorted
//! bigint key, a skewed bigint, a text status with six MCVs, a numeric(10,2), a sorted timestamptz and a 30-byte
//! text that is NULL in 20% of rows.

use std::io::Write as _;
use std::process::Command;
use std::time::Instant;

use tidegate_db::column_stats::{ColumnStats, TableStatistics};
use tidegate_db::connect::ConnectionConfig;
use tidegate_db::scratch::{self, StartOptions};
use tidegate_db::table_schema::{
    ColumnDefinition, ConstraintDefinition, ConstraintKind, TableSchema,
};
use tidegate_rehearse::rehearsal::{build_copy, SourceReading};
use tidegate_rehearse::synth::{self, SourceTable};

fn column(
    name: &str,
    base_type: &str,
    type_sql: &str,
    typmod: i32,
    not_null: bool,
) -> ColumnDefinition {
    ColumnDefinition {
        name: name.into(),
        quoted_name: name.into(),
        type_sql: type_sql.into(),
        base_type: base_type.into(),
        base_kind: "b".into(),
        base_typmod: typmod,
        enum_labels: Vec::new(),
        not_null,
        default_sql: None,
        identity: String::new(),
        generated: String::new(),
        collation: None,
        statistics_target: None,
    }
}

fn stats(
    name: &str,
    null_frac: f64,
    avg_width: i32,
    n_distinct: f64,
    common: &[(&str, f64)],
    bounds: &[&str],
    correlation: f64,
) -> ColumnStats {
    ColumnStats {
        column: name.into(),
        null_frac,
        avg_width,
        n_distinct,
        most_common_vals: common.iter().map(|(v, _)| v.to_string()).collect(),
        most_common_freqs: common.iter().map(|(_, f)| *f).collect(),
        histogram_bounds: bounds.iter().map(|b| b.to_string()).collect(),
        correlation: Some(correlation),
    }
}

fn source(rows: u64) -> SourceTable {
    let top = rows.to_string();
    SourceTable {
        schema: TableSchema {
            oid: 1,
            schema: "public".into(),
            name: "orders".into(),
            qualified: "public.orders".into(),
            options: String::new(),
            persistence: "p".into(),
            columns: vec![
                column("id", "int8", "bigint", -1, true),
                column("customer_id", "int8", "bigint", -1, true),
                column("status", "varchar", "character varying(20)", 24, true),
                column(
                    "amount",
                    "numeric",
                    "numeric(10,2)",
                    (10 << 16 | 2) + 4,
                    true,
                ),
                column(
                    "created_at",
                    "timestamptz",
                    "timestamp with time zone",
                    -1,
                    true,
                ),
                column("note", "text", "text", -1, false),
            ],
            constraints: vec![ConstraintDefinition {
                name: "orders_pkey".into(),
                quoted_name: "orders_pkey".into(),
                kind: ConstraintKind::PrimaryKey,
                definition: "PRIMARY KEY (id)".into(),
                columns: vec!["id".into()],
                references: None,
            }],
            indexes: Vec::new(),
            sequences: Vec::new(),
            type_oids: Vec::new(),
        },
        statistics: TableStatistics {
            oid: 1,
            estimated_rows: Some(rows),
            heap_bytes: 0,
            total_bytes: 0,
            default_statistics_target: 100,
            columns: vec![
                stats("id", 0.0, 8, -1.0, &[], &["1", &top], 1.0),
                stats(
                    "customer_id",
                    0.0,
                    8,
                    -0.25,
                    &[("17", 0.02)],
                    &["1", "10", "100", "1000", "250000"],
                    0.0,
                ),
                stats(
                    "status",
                    0.0,
                    9,
                    6.0,
                    &[
                        ("delivered", 0.7),
                        ("shipped", 0.12),
                        ("pending", 0.08),
                        ("processing", 0.04),
                        ("cancelled", 0.04),
                        ("refunded", 0.02),
                    ],
                    &[],
                    0.3,
                ),
                stats(
                    "amount",
                    0.0,
                    7,
                    -0.1,
                    &[],
                    &["0.50", "12.00", "30.00", "75.00", "50000.00"],
                    0.0,
                ),
                stats(
                    "created_at",
                    0.0,
                    8,
                    -1.0,
                    &[],
                    &["2024-01-01 00:00:00+00", "2025-12-31 23:59:59+00"],
                    1.0,
                ),
                stats("note", 0.2, 31, -0.8, &[], &["a", "m", "z"], 0.0),
            ],
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    let table = source(rows);
    let plan = synth::plan(std::slice::from_ref(&table), 1.0, 42)?;

    let dir = tempfile::tempdir()?;
    let rows_file = dir.path().join("rows.copy");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&rows_file)?);
    let mut generating = 0.0;
    let mut writer = plan.tables[0].writer();
    let mut buffer = Vec::with_capacity(1 << 20);
    let mut bytes = 0u64;
    loop {
        buffer.clear();
        let started = Instant::now();
        if writer.write_rows(8192, &mut buffer) == 0 {
            break;
        }
        generating += started.elapsed().as_secs_f64();
        bytes += buffer.len() as u64;
        file.write_all(&buffer)?;
    }
    file.flush()?;
    drop(file);
    let seconds = generating;
    println!(
        "generation: {rows} rows, {:.1} MB of COPY text in {seconds:.2} s = {:.0} rows/s (one thread)",
        bytes as f64 / 1e6,
        rows as f64 / seconds
    );

    let server = scratch::start(&StartOptions::new(dir.path().join("scratch")))?;
    let result = async {
        let psql = server.binaries.bin_dir.join("psql");
        let psql_run = |database: &str, command: &str| -> Result<(), Box<dyn std::error::Error>> {
            let output = Command::new(&psql)
                .arg("--no-psqlrc")
                .arg("--quiet")
                .arg("-v")
                .arg("ON_ERROR_STOP=1")
                .arg("-d")
                .arg(server.url_for_database(database))
                .arg("-c")
                .arg(command)
                .output()?;
            if !output.status.success() {
                return Err(format!(
                    "psql {command}: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
                .into());
            }
            Ok(())
        };
        let mut ours = Vec::new();
        let mut limits = Vec::new();
        for round in 0..2 {
            let database = format!("rate{round}");
            let limit_database = format!("limit{round}");
            for name in [&database, &limit_database] {
                psql_run("postgres", &format!("CREATE DATABASE {name}"))?;
            }
            for statement in table.schema.ddl_create() {
                psql_run(&limit_database, &statement)?;
            }
            let copy = tidegate_db::table_schema::copy_statement(&table.schema);
            let from_file = copy.replacen("COPY", "\\copy", 1).replace(
                "FROM STDIN",
                &format!("FROM '{}'", rows_file.display()),
            );
            let started = Instant::now();
            psql_run(&limit_database, &from_file)?;
            limits.push(started.elapsed().as_secs_f64());

            let client = ConnectionConfig::from_url(&server.url_for_database(&database))?
                .connect()
                .await?;
            ours.push(load(&client, &server, &table, &plan).await?);
        }
        let best = |figures: &[f64]| figures.iter().copied().fold(f64::INFINITY, f64::min);
        let ours_seconds = best(&ours);
        let limit_seconds = best(&limits);
        println!(
            "load: {rows} rows through COPY into PostgreSQL {} in {ours_seconds:.2} s = {:.0} rows/s (best of {:.2} s, {:.2} s; {} cores here)",
            server.binaries.major_version,
            rows as f64 / ours_seconds,
            ours[0],
            ours[1],
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "server limit: psql \\copy of the same rows from a file in {limit_seconds:.2} s = {:.0} rows/s (best of {:.2} s, {:.2} s); ours is {:.0}% of it",
            rows as f64 / limit_seconds,
            limits[0],
            limits[1],
            100.0 * limit_seconds / ours_seconds
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    scratch::stop(&server.dir)?;
    result
}

/// One load through the rehearsal's own path (`build_copy`): COPY's seconds.
async fn load(
    client: &tokio_postgres::Client,
    server: &scratch::ScratchServer,
    table: &SourceTable,
    plan: &synth::SynthesisPlan,
) -> Result<f64, Box<dyn std::error::Error>> {
    let reading = SourceReading {
        server_major: server.binaries.major_version,
        applied: None,
        tables: vec![table.clone()],
        types: Vec::new(),
        memory: None,
        settings: Vec::new(),
        stat_statements: None,
        notes: Vec::new(),
    };
    let outcome = build_copy(client, &reading, plan).await?;
    Ok(outcome.loads[0].seconds)
}
