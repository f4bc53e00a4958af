//! The behaviour instruments against a real server: they must see what PostgreSQL does, or the rewrite tests built
//! on them prove nothing.

use std::process::Command;
use std::time::Duration;

use tidegate_testkit::behaviour::{client_tool, dump_difference, TIDEGATE_SCHEMA};
use tidegate_testkit::{
    data_digest, data_digest_columns, psql_file, schema_dump, LockSampler, PgLockMode, PsqlInput,
    RewriteCheck, TestDatabase, WriteLoad, WriteSpec,
};
use tokio_postgres::Client;

/// Waits until some other backend holds `mode` on `table`, so a test acts while the lock is certainly held.
async fn until_held(client: &Client, table: &str, mode: PgLockMode) {
    for _ in 0..500 {
        let held: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = to_regclass($1) AND mode = $2 AND granted)",
                &[&table, &mode.pg_locks_name()],
            )
            .await
            .unwrap()
            .get(0);
        if held {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nobody took {mode} on {table}");
}

async fn populated(rows: i64) -> TestDatabase {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id bigint NOT NULL, a int NOT NULL, b text);
             INSERT INTO t SELECT g, g % 1000 + 1, 'row ' || g FROM generate_series(1, {rows}) g;
             ALTER TABLE t ADD PRIMARY KEY (id);
             ANALYZE t;"
        ))
        .await
        .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_exclusive_lock_held_for_one_and_a_half_seconds_is_reported_at_least_one_second()
{
    let db = populated(1_000).await;
    let sampler = LockSampler::start(db.url(), &["t"]).await;

    let holder = db.connect().await;
    let watcher = db.connect().await;
    let holding = tokio::spawn(async move {
        holder
            .batch_execute(
                "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;",
            )
            .await
            .unwrap();
    });
    until_held(&watcher, "t", PgLockMode::AccessExclusive).await;
    // A reader arriving now queues behind the lock: the sampler must see it waiting.
    let reader = db.connect().await;
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let reading = tokio::spawn(async move {
        reader
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
    });
    holding.await.unwrap();
    reading.await.unwrap();
    let report = sampler.stop().await;

    let held = report.longest_hold_at_least(PgLockMode::AccessExclusive);
    assert!(held >= Duration::from_secs(1), "{held:?}\n{report}");
    let interval = report
        .longest_hold_interval_at_least(PgLockMode::AccessExclusive, Some("t"))
        .unwrap();
    assert!(interval.upper_bound >= interval.observed(), "{interval}");
    assert!(
        report.max_sample_gap() <= Duration::from_millis(200),
        "the sampler fell far behind its 10 ms period: {report}"
    );
    let waited = report
        .summaries()
        .into_iter()
        .find(|summary| summary.pid == reader_pid && summary.relation == "t")
        .unwrap_or_else(|| panic!("the queued reader was not seen: {report}"));
    assert_eq!(waited.mode, PgLockMode::AccessShare);
    assert!(waited.longest_wait > Duration::ZERO, "{report}");
    // The primary key's index is watched too: the reader's plan may touch it, the lock holder's LOCK does not.
    assert!(report
        .summaries()
        .iter()
        .all(|summary| summary.relation == "t" || summary.relation == "t_pkey"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_concurrently_shows_no_write_blocking_lock_and_plain_create_index_shows_share()
{
    let db = populated(300_000).await;
    let client = db.connect().await;

    let sampler = LockSampler::start(db.url(), &["t"]).await;
    client
        .batch_execute("CREATE INDEX CONCURRENTLY t_a_concurrently ON t (a)")
        .await
        .unwrap();
    let concurrently = sampler.stop().await;
    assert_eq!(
        concurrently.longest_hold_at_least(PgLockMode::Share),
        Duration::ZERO,
        "{concurrently}"
    );
    assert!(
        concurrently
            .summaries()
            .iter()
            .any(|s| s.relation == "t" && s.mode == PgLockMode::ShareUpdateExclusive),
        "the build's own SHARE UPDATE EXCLUSIVE was not seen: {concurrently}"
    );

    let sampler = LockSampler::start(db.url(), &["t"]).await;
    client
        .batch_execute("CREATE INDEX t_a_plain ON t (a, b)")
        .await
        .unwrap();
    let plain = sampler.stop().await;
    let held = plain
        .longest_hold_interval_at_least(PgLockMode::Share, Some("t"))
        .unwrap_or_else(|| panic!("no SHARE hold seen during CREATE INDEX: {plain}"));
    assert_eq!(held.mode, PgLockMode::Share, "{plain}");
    eprintln!(
        "plain CREATE INDEX on 300k rows held SHARE for {:?}",
        held.observed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_feels_a_lock_and_its_rows_can_be_deleted_again() {
    let db = populated(1_000).await;
    let client = db.connect().await;
    let before = data_digest(&client, "t", "id").await;

    let spec = WriteSpec::new("t", "id")
        .inserting(
            "INSERT INTO t (id, a, b) VALUES ($1, 1, 'writer')",
            1_000_001,
        )
        .updating("UPDATE t SET a = a WHERE id = $1", 1..=1_000);
    let writer = WriteLoad::start(db.url(), spec).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN SHARE MODE; SELECT pg_sleep(1); COMMIT;")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = writer.stop().await;

    // A write scheduled just after the lock was taken waits for nearly all of its second.
    assert!(report.max() >= Duration::from_millis(900), "{report}");
    assert!(report.p99() <= report.max());
    assert_eq!(report.error_count(), 0, "{report}");
    assert!(!report.inserted_keys().is_empty(), "{report}");
    assert!(report.count() >= report.inserted_keys().len() as u64);
    assert!(report.inserted_keys().iter().all(|key| *key > 1_000_000));

    let deleted = report.delete_inserted(&client).await;
    assert_eq!(deleted, report.inserted_keys().len() as u64);
    assert_eq!(data_digest(&client, "t", "id").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_never_waits_longer_than_its_statement_timeout() {
    let db = populated(1_000).await;
    let spec = WriteSpec::new("t", "id")
        .updating("UPDATE t SET a = a WHERE id = $1", 1..=1_000)
        .statement_timeout(Duration::from_millis(200));
    let writer = WriteLoad::start(db.url(), spec).await;
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN EXCLUSIVE MODE; SELECT pg_sleep(1); COMMIT;")
        .await
        .unwrap();
    let report = writer.stop().await;
    assert!(
        report.errors().get("57014").copied().unwrap_or(0) > 0,
        "no statement_timeout (57014) while the table was locked for a second: {report}"
    );
    assert!(report.inserted_keys().is_empty());
}

#[tokio::test]
async fn schema_dumps_of_databases_built_by_the_same_sql_are_equal_until_one_is_altered() {
    let schema = "CREATE TYPE mood AS ENUM ('ok', 'sad');
                  CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, m mood);
                  CREATE INDEX users_lower_email ON users (lower(email));
                  CREATE VIEW happy AS SELECT id FROM users WHERE m = 'ok';";
    let left = TestDatabase::create().await;
    let right = TestDatabase::create().await;
    left.connect().await.batch_execute(schema).await.unwrap();
    right.connect().await.batch_execute(schema).await.unwrap();
    // tidegate's own schema exists only where tidegate ran; it is not part of the comparison.
    right
        .connect()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {TIDEGATE_SCHEMA}; CREATE TABLE {TIDEGATE_SCHEMA}.migrations (version text)"
        ))
        .await
        .unwrap();

    let left_dump = schema_dump(left.url()).await;
    let right_dump = schema_dump(right.url()).await;
    assert!(
        left_dump.contains("CREATE TABLE public.users"),
        "{left_dump}"
    );
    assert!(!right_dump.contains(TIDEGATE_SCHEMA), "{right_dump}");
    assert_eq!(
        dump_difference("left", &left_dump, "right", &right_dump),
        ""
    );

    right
        .connect()
        .await
        .batch_execute("ALTER TABLE users ALTER COLUMN email TYPE varchar(200)")
        .await
        .unwrap();
    let altered = schema_dump(right.url()).await;
    let difference = dump_difference("left", &left_dump, "right", &altered);
    assert!(
        difference.contains("only in right:") && difference.contains("character varying(200)"),
        "{difference}"
    );
}

#[tokio::test]
async fn a_copied_database_holds_the_same_rows_and_digests_tell_rows_apart() {
    let original = populated(10_000).await;
    let copy = original.copy().await;
    assert_ne!(copy.name(), original.name());
    let original_client = original.connect().await;
    let copy_client = copy.connect().await;
    assert_eq!(
        data_digest(&original_client, "t", "id").await,
        data_digest(&copy_client, "t", "id").await
    );
    assert_eq!(
        schema_dump(original.url()).await,
        schema_dump(copy.url()).await
    );

    copy_client
        .batch_execute("UPDATE t SET b = 'changed' WHERE id = 5000")
        .await
        .unwrap();
    assert_ne!(
        data_digest(&original_client, "t", "id").await,
        data_digest(&copy_client, "t", "id").await
    );
    assert_eq!(
        data_digest_columns(&original_client, "t", &["id", "a"], "id").await,
        data_digest_columns(&copy_client, "t", &["id", "a"], "id").await,
        "the changed column is not part of this digest"
    );
    assert!(data_digest(&copy_client, "t", "id")
        .await
        .starts_with("10000:"));
}

#[tokio::test]
async fn copying_a_database_someone_is_connected_to_says_so() {
    let original = TestDatabase::create().await;
    let _client = original.connect().await;
    let copying = tokio::spawn(async move { original.copy().await.name().to_string() });
    let error = copying.await.expect_err("a copy while connected must fail");
    let message = error
        .into_panic()
        .downcast::<String>()
        .map(|message| *message)
        .unwrap_or_default();
    assert!(
        message.contains("still connected") && message.contains("Drop every client"),
        "{message}"
    );
}

#[tokio::test]
async fn psql_stops_at_the_first_error_and_keeps_what_ran_before_it() {
    let db = TestDatabase::create().await;
    let output = psql_file(
        db.url(),
        PsqlInput::Sql(
            "CREATE TABLE kept (id int);\nSELECT * FROM no_such_table;\nCREATE TABLE never (id int);\n",
        ),
    )
    .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no_such_table"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client = db.connect().await;
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(tables, ["kept"]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0002.sql");
    std::fs::write(&file, "BEGIN;\nCREATE TABLE from_file (id int);\nCOMMIT;\n").unwrap();
    let output = psql_file(db.url(), PsqlInput::File(&file)).await;
    assert!(output.status.success());
    assert_eq!(
        client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE tablename = 'from_file'",
                &[]
            )
            .await
            .unwrap()
            .get::<_, i64>(0),
        1
    );
}

const SETUP: &str = "CREATE TABLE t (id bigint NOT NULL, a int NOT NULL, b int)";
const POPULATE: &str =
    "INSERT INTO t SELECT g, g % 1000 + 1, g % 7 FROM generate_series(1, 2000000) g;
                        ALTER TABLE t ADD PRIMARY KEY (id);";

/// The check the rewrite tests use, with the rewrite done by hand: `CREATE INDEX` on A, `CREATE INDEX
/// CONCURRENTLY` of the same index on B under a writer. It must report what the two really did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_check_tells_a_plain_index_build_from_a_concurrent_one() {
    let probe = TestDatabase::create().await;
    let major: i32 = probe
        .connect()
        .await
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let psql = client_tool("psql", major as u32);
    let report = RewriteCheck::new(SETUP, POPULATE, "CREATE INDEX t_a_b_idx ON t (a, b);\n")
        .table("t", "id")
        .writes(
            WriteSpec::new("t", "id")
                .inserting("INSERT INTO t (id, a, b) VALUES ($1, 1, 1)", 10_000_000)
                .updating("UPDATE t SET b = b WHERE id = $1", 1..=2_000_000),
        )
        .run(|url| {
            Command::new(&psql)
                .args(["-X", "-v", "ON_ERROR_STOP=1", "--dbname", url, "-c"])
                .arg("CREATE INDEX CONCURRENTLY t_a_b_idx ON t (a, b)")
                .output()
                .unwrap()
        })
        .await;
    eprintln!("{report}");

    assert!(
        report.apply_output.status.success(),
        "{}",
        String::from_utf8_lossy(&report.apply_output.stderr)
    );
    report.assert_same_end_state();
    let writes = report.writes.as_ref().unwrap();
    assert_eq!(writes.error_count(), 0, "{report}");
    assert!(report.writer_rows_deleted > 0, "{report}");
    assert_eq!(
        report.tidegate_longest_write_block(),
        Duration::ZERO,
        "{report}"
    );
    let plain = report
        .psql
        .locks
        .longest_hold_interval_at_least(PgLockMode::Share, Some("t"))
        .unwrap_or_else(|| panic!("psql's CREATE INDEX was not seen holding SHARE: {report}"));
    assert_eq!(plain.mode, PgLockMode::Share);
    assert!(report.psql_longest_write_block() > report.tidegate_longest_write_block());
}
