//! `tidegate lint --db`: table sizes read from a live database make hazards on small tables info.

use std::process::Command;

use tidegate_testkit::TestDatabase;

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

fn lint_json(dir: &std::path::Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let output = Command::new(TIDEGATE)
        .args(["lint", dir.to_str().unwrap(), "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (
        output.status.code().unwrap(),
        json,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn severity_of(json: &serde_json::Value, rule: &str) -> Option<String> {
    json["findings"]
        .as_array()?
        .iter()
        .find(|finding| finding["rule"] == rule)
        .map(|finding| finding["severity"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn sizes_from_the_database_soften_hazards_on_small_tables() {
    let db = TestDatabase::create().await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE feature_flags (id bigint PRIMARY KEY, name text); \
             INSERT INTO feature_flags SELECT g, 'flag' || g FROM generate_series(1, 12) g; \
             ANALYZE feature_flags",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_index.sql"),
        "CREATE INDEX feature_flags_name ON feature_flags (name);\n",
    )
    .unwrap();

    let (code, without, _) = lint_json(dir.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        severity_of(&without, "create-index-non-concurrently").as_deref(),
        Some("error")
    );

    let (code, with, stderr) = lint_json(dir.path(), &["--db", db.url()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        severity_of(&with, "create-index-non-concurrently").as_deref(),
        Some("info"),
        "a 12-row table is below the small-table threshold: {with}"
    );
}

#[test]
fn a_bad_database_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001.sql"), "SELECT 1;\n").unwrap();
    let (code, _, stderr) = lint_json(
        dir.path(),
        &["--db", "postgresql://nobody@127.0.0.1:1/nothing"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--db"), "{stderr}");
}
