//! Every safe rewrite `tidegate apply` makes, proved on a real PostgreSQL the way a DBA would check it: the same
//! migration file run by plain psql on one database and by `tidegate apply` on an identical copy while a writer
//! runs on it, a second connection sampling `pg_locks` on both. The end states (pg_dump --schema-only and the
//! rows) must be equal, and tidegate must never hold a write-blocking lock (SHARE or stronger) for more than a
//! short catalog change, where psql held one for the whole scan or build.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use tidegate_testkit::behaviour::{RewriteCheck, RewriteReport, WriteSpec};

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

/// A few hundred milliseconds: what a catalog-only ALTER may hold its lock for on a loaded 2-core machine. The
/// scans and builds psql runs under those locks take seconds on these tables.
const SHORT_LOCK: Duration = Duration::from_millis(400);

const ROWS: i64 = 2_000_000;

const SETUP: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, tier text NOT NULL);
CREATE TABLE t (id bigint NOT NULL, customer_id bigint NOT NULL, a int NOT NULL, b int, note text);
CREATE TABLE events (id bigint, payload text);
";

fn populate() -> String {
    format!(
        "INSERT INTO customers SELECT g, 'gold' FROM generate_series(1, 1000) g;
         INSERT INTO t SELECT g, g % 1000 + 1, g % 1000 + 1, g % 7, 'note ' || (g % 100)
           FROM generate_series(1, {ROWS}) g;
         ALTER TABLE t ADD PRIMARY KEY (id);
         CREATE INDEX t_b_idx ON t (b);
         INSERT INTO events SELECT g, 'payload ' || g FROM generate_series(1, {ROWS}) g;"
    )
}

fn writer_on_t() -> WriteSpec {
    WriteSpec::new("t", "id")
        .inserting(
            "INSERT INTO t (id, customer_id, a, b, note) VALUES ($1, 1, 1, 1, 'w')",
            10_000_000,
        )
        .updating("UPDATE t SET a = a WHERE id = $1", 1..=ROWS)
}

/// Runs `tidegate apply` on a directory holding just this migration.
fn tidegate_apply(migration: &str) -> impl FnOnce(&str) -> Output {
    let migration = migration.to_string();
    move |url: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Path::new(dir.path()).join("0001_migration.sql"), &migration).unwrap();
        Command::new(TIDEGATE)
            .args(["apply", dir.path().to_str().unwrap(), "--db", url])
            .args(["--batch-time", "50ms"])
            .output()
            .unwrap()
    }
}

fn assert_safe_and_equivalent(report: &RewriteReport<Output>) {
    let log = String::from_utf8_lossy(&report.apply_output.stderr);
    assert!(report.apply_output.status.success(), "{log}");
    assert!(
        report.psql_output.status.success(),
        "{}",
        String::from_utf8_lossy(&report.psql_output.stderr)
    );
    report.assert_same_end_state();
    let writes = report.writes.as_ref().expect("a writer ran");
    assert_eq!(writes.error_count(), 0, "the writer saw errors: {report}");
    assert!(
        report.tidegate_longest_write_block() < SHORT_LOCK,
        "tidegate held a write-blocking lock too long: {report}\n{log}"
    );
    assert!(
        report.psql_longest_write_block() > report.tidegate_longest_write_block(),
        "plain psql did not block writes longer than tidegate, so the table is too small to show anything: {report}"
    );
    eprintln!("{report}");
}

async fn check(migration: &str, writes: WriteSpec) -> RewriteReport<Output> {
    RewriteCheck::new(SETUP, &populate(), migration)
        .table("t", "id")
        .table("events", "id")
        .table("customers", "id")
        .writes(writes)
        .run(tidegate_apply(migration))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_runs_concurrently_under_the_name_postgres_gives_it() {
    let report = check("CREATE INDEX ON t (customer_id, a);\n", writer_on_t()).await;
    assert_safe_and_equivalent(&report);
    assert!(report
        .tidegate
        .schema
        .contains("CREATE INDEX t_customer_id_a_idx ON public.t USING btree (customer_id, a);"));
    // The journal records what ran instead of the statement as written.
    let client = report.tidegate_database.connect().await;
    let runs_as: String = client
        .query_one(
            "SELECT (detail -> 'runs_as')::text FROM tidegate.journal WHERE event = 'statement_rewritten'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let runs_as: serde_json::Value = serde_json::from_str(&runs_as).unwrap();
    assert_eq!(
        runs_as,
        serde_json::json!([
            "CREATE INDEX CONCURRENTLY t_customer_id_a_idx ON t USING btree (customer_id, a)"
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_constraint_is_built_concurrently_then_attached() {
    let report = check("ALTER TABLE t ADD UNIQUE (a, id);\n", writer_on_t()).await;
    assert_safe_and_equivalent(&report);
    assert!(report.tidegate.schema.contains("t_a_id_key UNIQUE (a, id)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_key_on_a_nullable_column_goes_through_a_check_and_an_index() {
    let writes = WriteSpec::new("events", "id")
        .inserting(
            "INSERT INTO events (id, payload) VALUES ($1, 'w')",
            10_000_000,
        )
        .updating(
            "UPDATE events SET payload = payload WHERE id = $1",
            1..=ROWS,
        );
    let report = check("ALTER TABLE events ADD PRIMARY KEY (id);\n", writes).await;
    assert_safe_and_equivalent(&report);
    assert!(report
        .tidegate
        .schema
        .contains("events_pkey PRIMARY KEY (id)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_constraint_is_added_not_valid_then_validated() {
    let report = check(
        "ALTER TABLE t ADD CONSTRAINT t_note_format CHECK (note ~ '^note [0-9]+$' OR note = 'w');\n",
        writer_on_t(),
    )
    .await;
    assert_safe_and_equivalent(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_key_is_added_not_valid_then_validated() {
    let report = check(
        "ALTER TABLE t ADD FOREIGN KEY (customer_id) REFERENCES customers (id);\n",
        writer_on_t(),
    )
    .await;
    assert_safe_and_equivalent(&report);
    assert!(report.tidegate.schema.contains("t_customer_id_fkey"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_not_null_is_proved_by_a_validated_check() {
    let report = check(
        "ALTER TABLE t ALTER COLUMN b SET NOT NULL;\n",
        writer_on_t(),
    )
    .await;
    assert_safe_and_equivalent(&report);
    assert!(report.tidegate.schema.contains("b integer NOT NULL"));
    assert!(
        !report.tidegate.schema.contains("tidegate_not_null"),
        "the helper CHECK is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volatile_default_is_set_then_the_existing_rows_are_backfilled() {
    let migration = "ALTER TABLE t ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();\n";
    // The tokens are random on both sides: compare every other column.
    let report = RewriteCheck::new(SETUP, &populate(), migration)
        .table_columns("t", "id", &["id", "customer_id", "a", "b", "note"])
        .writes(writer_on_t())
        .run(tidegate_apply(migration))
        .await;
    assert_safe_and_equivalent(&report);
    let client = report.tidegate_database.connect().await;
    let distinct: i64 = client
        .query_one("SELECT count(DISTINCT token) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, ROWS, "every existing row got its own token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_and_drop_index_run_concurrently() {
    let report = check(
        "REINDEX INDEX t_b_idx;\nDROP INDEX t_b_idx;\n",
        writer_on_t(),
    )
    .await;
    assert_safe_and_equivalent(&report);
    assert!(!report.tidegate.schema.contains("t_b_idx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbatched_delete_runs_as_a_batched_delete() {
    let report = check("DELETE FROM t WHERE b = 3;\n", writer_on_t()).await;
    let log = String::from_utf8_lossy(&report.apply_output.stderr);
    assert!(report.apply_output.status.success(), "{log}");
    report.assert_same_end_state();
    assert_eq!(report.writes.as_ref().unwrap().error_count(), 0, "{report}");
    let client = report.tidegate_database.connect().await;
    let batches: i64 = client
        .query_one(
            "SELECT sum(c.batches)::bigint FROM tidegate.runs r JOIN tidegate.chunks c ON c.run_id = r.id \
              WHERE r.kind = 'delete' AND r.status = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(batches > 1, "deleted in {batches} batch(es): {log}");
}
