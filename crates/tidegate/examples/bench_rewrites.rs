//! What each safe rewrite of `tidegate apply` costs and spares, on a table of a few million rows: the same
//! migration run by plain psql on one database and by `tidegate apply` on an identical copy, each beside the same
//! writer (50 single-row writes/s), with a second connection sampling `pg_locks` every 10 ms.
//!
//! ```text
//! cargo build --release -p tidegate
//! cargo run --release -p tidegate --example bench_rewrites -- [--rows 3000000] [--only NAME]
//! ```
//!
//! Prints one row per rewrite: wall time of each run, the longest time a write-blocking lock (SHARE or stronger)
//! was held on the table, and the writer's worst latency and errors. It also checks that both end states are the
//! same (pg_dump --schema-only and the rows) and says so.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use tidegate_testkit::behaviour::{RewriteCheck, RewriteReport, WriteSpec};

fn tidegate_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TIDEGATE_BIN") {
        return PathBuf::from(path);
    }
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/tidegate");
    if release.exists() {
        return release;
    }
    eprintln!(
        "no tidegate binary: run `cargo build --release -p tidegate` first, or set TIDEGATE_BIN"
    );
    std::process::exit(2);
}

fn argument(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1).cloned())
}

fn ms(duration: Duration) -> String {
    if duration >= Duration::from_secs(10) {
        format!("{:.1} s", duration.as_secs_f64())
    } else if duration >= Duration::from_secs(1) {
        format!("{:.2} s", duration.as_secs_f64())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows: i64 = argument("--rows")
        .map(|rows| rows.parse().expect("--rows takes a number"))
        .unwrap_or(3_000_000);
    let only = argument("--only");
    let binary = tidegate_binary();
    let setup = "
        CREATE TABLE customers (id bigint PRIMARY KEY, tier text NOT NULL);
        CREATE TABLE t (id bigint NOT NULL, customer_id bigint NOT NULL, a int NOT NULL, b int, note text);
        CREATE TABLE events (id bigint, payload text);";
    let populate = format!(
        "INSERT INTO customers SELECT g, 'gold' FROM generate_series(1, 1000) g;
         INSERT INTO t SELECT g, g % 1000 + 1, g % 1000 + 1, g % 7, 'note ' || (g % 100)
           FROM generate_series(1, {rows}) g;
         ALTER TABLE t ADD PRIMARY KEY (id);
         CREATE INDEX t_b_idx ON t (b);
         INSERT INTO events SELECT g, 'payload ' || g FROM generate_series(1, {rows}) g;"
    );
    let on_t = WriteSpec::new("t", "id")
        .inserting(
            "INSERT INTO t (id, customer_id, a, b, note) VALUES ($1, 1, 1, 1, 'w')",
            10_000_000_000,
        )
        .updating("UPDATE t SET a = a WHERE id = $1", 1..=rows);
    let on_events = WriteSpec::new("events", "id")
        .inserting(
            "INSERT INTO events (id, payload) VALUES ($1, 'w')",
            10_000_000_000,
        )
        .updating(
            "UPDATE events SET payload = payload WHERE id = $1",
            1..=rows,
        );
    let cases: Vec<(&str, &str, &WriteSpec, Option<&[&str]>)> = vec![
        ("create-index", "CREATE INDEX ON t (customer_id, a);", &on_t, None),
        ("unique", "ALTER TABLE t ADD UNIQUE (a, id);", &on_t, None),
        ("primary-key", "ALTER TABLE events ADD PRIMARY KEY (id);", &on_events, None),
        (
            "check",
            "ALTER TABLE t ADD CONSTRAINT t_note_format CHECK (note ~ '^note [0-9]+$' OR note = 'w');",
            &on_t,
            None,
        ),
        (
            "foreign-key",
            "ALTER TABLE t ADD FOREIGN KEY (customer_id) REFERENCES customers (id);",
            &on_t,
            None,
        ),
        ("set-not-null", "ALTER TABLE t ALTER COLUMN b SET NOT NULL;", &on_t, None),
        (
            "volatile-default",
            "ALTER TABLE t ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
            &on_t,
            Some(&["id", "customer_id", "a", "b", "note"]),
        ),
        ("reindex", "REINDEX INDEX t_b_idx;", &on_t, None),
        ("drop-index", "DROP INDEX t_b_idx;", &on_t, None),
        ("delete", "DELETE FROM t WHERE b = 3;", &on_t, None),
    ];
    println!("tidegate apply's safe rewrites vs plain psql, {rows} rows per table, a writer at 50 writes/s on each");
    println!();
    println!("| migration | psql time | psql: longest write-blocking lock | psql: writer max, errors | tidegate time | tidegate: longest write-blocking lock | tidegate: writer p99, max, errors | same end state |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, migration, writes, columns) in cases {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let migration = format!("{migration}\n");
        let mut check = RewriteCheck::new(setup, &populate, &migration)
            .writes(writes.clone())
            .table("customers", "id")
            .table("events", "id");
        check = match columns {
            Some(columns) => check.table_columns("t", "id", columns),
            None => check.table("t", "id"),
        };
        let binary = binary.clone();
        let report: RewriteReport<Output> = check
            .run(move |url| {
                let dir = tempfile::tempdir().expect("a temporary directory");
                std::fs::write(dir.path().join("0001_migration.sql"), &migration)
                    .expect("writing the migration");
                Command::new(&binary)
                    .args([
                        "apply",
                        dir.path().to_str().unwrap_or_default(),
                        "--db",
                        url,
                    ])
                    .output()
                    .expect("running tidegate")
            })
            .await;
        if !report.apply_output.status.success() {
            eprintln!(
                "{name}: tidegate apply failed:\n{}",
                String::from_utf8_lossy(&report.apply_output.stderr)
            );
        }
        let same =
            report.schema_difference().is_empty() && report.psql.digests == report.tidegate.digests;
        let errors = |report: Option<&tidegate_testkit::behaviour::WriteReport>| {
            report.map_or(0, |writes| writes.error_count())
        };
        println!(
            "| {name} | {} | {} | {}, {} | {} | {} | {}, {}, {} | {} |",
            ms(report.psql_elapsed),
            ms(report.psql_longest_write_block()),
            report
                .psql_writes
                .as_ref()
                .map(|writes| ms(writes.max()))
                .unwrap_or_default(),
            errors(report.psql_writes.as_ref()),
            ms(report.apply_elapsed),
            ms(report.tidegate_longest_write_block()),
            report
                .writes
                .as_ref()
                .map(|writes| ms(writes.p99()))
                .unwrap_or_default(),
            report
                .writes
                .as_ref()
                .map(|writes| ms(writes.max()))
                .unwrap_or_default(),
            errors(report.writes.as_ref()),
            if same { "yes" } else { "NO" }
        );
    }
}
