//! The binary's sessions start bounded: a statement on tidegate's own tables behind a held lock fails with
//! SQLSTATE 55P03 within the session's lock_timeout instead of hanging; `--concurrent-wait` is validated.

use std::process::Command;

use tidegate_testkit::TestDatabase;

fn tidegate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("the tidegate binary runs")
}

#[tokio::test]
async fn runs_behind_a_locked_runs_table_fails_with_lock_not_available() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let applied = tidegate(&["apply", dir_arg, "--db", db.url()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE tidegate.runs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let url = db.url().to_string();
    let runs = tokio::task::spawn_blocking(move || tidegate(&["runs", "--db", &url]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&runs.stderr);
    assert_eq!(runs.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SQLSTATE 55P03"), "{stderr}");
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[test]
fn concurrent_wait_must_be_a_bound() {
    for value in ["0s", "900h"] {
        let output = tidegate(&[
            "apply",
            "migrations",
            "--db",
            "postgresql://nobody@127.0.0.1:1/none",
            "--concurrent-wait",
            value,
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("--concurrent-wait"), "{value}: {stderr}");
    }
}
