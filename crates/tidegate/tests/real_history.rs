//! A real-world-shaped migration history (tests/fixtures/history/golang-migrate: 57 migrations of a team task
//! tracker, written the way product teams write them) applied to an empty database must end exactly where plain
//! psql ends: the same schema as `pg_dump --schema-only` prints it, and the same seeded rows.
//!
//! A fresh dev database, every CI run and every project adopting tidegate meet this first: CREATE INDEX, SET NOT
//! NULL, type changes and renames on tables that hold no rows yet.

use std::path::{Path, PathBuf};
use std::process::Command;

use tidegate_testkit::behaviour::dump_difference;
use tidegate_testkit::{data_digest_columns, psql_ok, schema_dump, PsqlInput, TestDatabase};

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

fn history() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history/golang-migrate")
}

fn up_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".up.sql"))
        .collect();
    // Zero-padded versions: name order is version order, as golang-migrate reads them.
    files.sort();
    files
}

/// The seeded rows, without the columns whose values differ by nature between two runs (now(), gen_random_uuid(),
/// serial ids drawn from a sequence are equal here because both databases start empty and insert in one order).
const SEEDED: &[(&str, &[&str], &str)] = &[
    (
        "plans",
        &["id", "code", "name", "price_cents", "max_projects"],
        "code",
    ),
    ("users", &["id", "email", "name", "is_admin"], "email"),
    (
        "user_identities",
        &["user_id", "provider", "subject"],
        "provider, subject",
    ),
];

#[tokio::test]
async fn a_golang_migrate_history_applied_to_an_empty_database_ends_in_psqls_schema_and_data() {
    let dir = history();
    let files = up_files(&dir);
    assert!(files.len() >= 40, "the fixture lost files: {files:?}");

    let plain = TestDatabase::create().await;
    for file in &files {
        psql_ok(plain.url(), PsqlInput::File(file)).await;
    }

    let applied = TestDatabase::create().await;
    let output = Command::new(TIDEGATE)
        .arg("apply")
        .arg(&dir)
        .arg("--db")
        .arg(applied.url())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tidegate apply of the history failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let plain_schema = schema_dump(plain.url()).await;
    let applied_schema = schema_dump(applied.url()).await;
    assert!(
        plain_schema.contains("CREATE TABLE public.user_identities"),
        "psql did not run the whole history:\n{plain_schema}"
    );
    let difference = dump_difference("psql", &plain_schema, "tidegate", &applied_schema);
    assert!(
        difference.is_empty(),
        "the schema after tidegate apply differs from psql's:\n{difference}"
    );

    let plain_client = plain.connect().await;
    let applied_client = applied.connect().await;
    let plans: i64 = plain_client
        .query_one("SELECT count(*) FROM plans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(plans, 3, "free, pro and enterprise: the data fixes ran");
    for (table, columns, order_by) in SEEDED {
        assert_eq!(
            data_digest_columns(&plain_client, table, columns, order_by).await,
            data_digest_columns(&applied_client, table, columns, order_by).await,
            "the rows of {table} differ"
        );
    }
}
