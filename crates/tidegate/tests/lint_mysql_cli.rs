//! `tidegate lint --dialect mysql|mariadb` as a user runs it: the real binary on a migration directory, with the
//! configuration file, an inline ignore, the JSON and SARIF formats, and the refusals of bad flags.

use std::path::Path;
use std::process::Command;

fn lint(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .arg("lint")
        .args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .output()
        .expect("the tidegate binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("001_orders.sql"),
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, order_status VARCHAR(20), quantity INT NOT NULL);\n",
    )
    .unwrap();
    // The postmortem's migration, as a MySQL team writes it.
    std::fs::write(
        migrations.join("002_status_v2.sql"),
        "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);\n\
         UPDATE orders SET order_status_v2 = order_status WHERE order_status_v2 IS NULL LIMIT 1000;\n\
         -- tidegate:ignore unbatched-delete there is no DELETE here\n\
         ALTER TABLE orders MODIFY quantity BIGINT NOT NULL;\n",
    )
    .unwrap();
    dir
}

fn rules_of(json: &str) -> Vec<(String, String, u64)> {
    let report: serde_json::Value = serde_json::from_str(json).expect("JSON output");
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap().to_string(),
                finding["severity"].as_str().unwrap().to_string(),
                finding["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_postmortem_migration_linted_as_mariadb_and_mysql() {
    let dir = project();
    let (code, stdout, stderr) = lint(
        dir.path(),
        &["migrations", "--dialect", "mariadb", "--format", "json"],
    );
    assert_eq!(code, 1, "an error finding fails the run: {stderr}");
    let findings = rules_of(&stdout);
    for expected in [
        ("missing-lock-timeout", "warning", 1),
        ("mysql-algorithm-unspecified", "warning", 1),
        ("unbatched-update", "warning", 2),
        ("schema-change-with-backfill", "warning", 2),
        ("mysql-alter-copy", "error", 4),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string(), expected.2);
        assert!(
            findings.contains(&expected),
            "{expected:?} missing from {findings:?}"
        );
    }
    // A COPY is mysql-alter-copy's alone: no ALGORITHM advice on it; an ignore that silences nothing is reported.
    assert!(!findings
        .iter()
        .any(|(rule, _, line)| rule == "mysql-algorithm-unspecified" && *line == 4));
    assert!(
        findings.contains(&("unused-suppression".into(), "warning".into(), 3)),
        "{findings:?}"
    );
    assert!(
        stdout.contains("tidegate backfill"),
        "the LIMIT form points to tidegate backfill"
    );

    // NOCOPY is MariaDB syntax: linted as MySQL (here 8.0.20) it is a syntax error, as MariaDB it is clean.
    std::fs::write(
        dir.path().join("migrations/003_index.sql"),
        "SET SESSION lock_wait_timeout = 5;\nALTER TABLE orders ADD INDEX orders_status (order_status), ALGORITHM=NOCOPY, LOCK=NONE;\n",
    )
    .unwrap();
    let (code, stdout, _) = lint(
        dir.path(),
        &[
            "migrations/003_index.sql",
            "--dialect",
            "mysql",
            "--db-version",
            "8.0.20",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(
        rules_of(&stdout),
        vec![("syntax-error".into(), "error".into(), 2)]
    );
    let (code, stdout, _) = lint(
        dir.path(),
        &[
            "migrations/003_index.sql",
            "--dialect",
            "mariadb",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        (code, rules_of(&stdout)),
        (0, vec![]),
        "the same file is clean MariaDB"
    );
}

#[test]
fn the_dialect_comes_from_tidegate_toml_and_sarif_names_the_rules() {
    let dir = project();
    std::fs::write(
        dir.path().join("tidegate.toml"),
        "dialect = \"mariadb\"\ndb_version = \"10.11\"\n[lint.rules]\nmysql-alter-copy = \"warning\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = lint(dir.path(), &["migrations", "--format", "sarif"]);
    assert_eq!(
        code, 0,
        "no error is left once mysql-alter-copy is a warning: {stderr}"
    );
    let sarif: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results
        .iter()
        .any(|result| result["ruleId"] == "mysql-alter-copy" && result["level"] == "warning"));

    // An inline ignore with a reason silences its rule on the next statement.
    let file = dir.path().join("migrations/002_status_v2.sql");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "ALTER TABLE orders MODIFY",
        "-- tidegate:ignore mysql-alter-copy orders has 40 rows\nALTER TABLE orders MODIFY",
    );
    std::fs::write(&file, text).unwrap();
    let (_, stdout, _) = lint(dir.path(), &["migrations", "--format", "json"]);
    let findings = rules_of(&stdout);
    assert!(
        !findings
            .iter()
            .any(|(rule, _, _)| rule == "mysql-alter-copy"),
        "{findings:?}"
    );
}

#[test]
fn bad_dialect_flags_are_usage_errors() {
    let dir = project();
    let (code, _, stderr) = lint(
        dir.path(),
        &["migrations", "--dialect", "mysql", "--db-version", "5.7"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("outside what tidegate's online-DDL facts cover"),
        "{stderr}"
    );
    let (code, _, stderr) = lint(
        dir.path(),
        &["migrations", "--dialect", "mysql", "--db-version", "eight"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("a server version such as 8.0.35"),
        "{stderr}"
    );
    let (code, _, stderr) = lint(dir.path(), &["migrations", "--dialect", "oracle"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = lint(
        dir.path(),
        &[
            "migrations",
            "--dialect",
            "mysql",
            "--db",
            "mysql://root@127.0.0.1:1/x",
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--db:"), "{stderr}");
    let (code, _, stderr) = lint(
        dir.path(),
        &[
            "migrations",
            "--dialect",
            "postgres",
            "--db",
            "mysql://root:pw@127.0.0.1:1/x",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("MySQL/MariaDB URL but --dialect is postgres") && !stderr.contains("pw@"),
        "{stderr}"
    );
}

/// `--db mysql://…`: the dialect and version come from the server, and its table sizes decide what is small
/// (counted when the estimate says small, as InnoDB's estimate lags behind fresh inserts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_gives_the_server_its_version_and_table_sizes() {
    use tidegate_db::driver::Driver;
    let server = tidegate_testkit::PrivateMariaDb::start();
    let url = server.url();
    let s = tidegate_db::mysql::MySqlConfig::from_url(&url)
        .unwrap()
        .open()
        .await
        .unwrap();
    s.batch_execute(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, order_status VARCHAR(20), quantity INT NOT NULL);
         INSERT INTO orders SELECT seq, 'new', 1 FROM seq_1_to_20",
    )
    .await
    .unwrap();
    let dir = project();
    let copy_finding = |stdout: &str| {
        rules_of(stdout)
            .into_iter()
            .find(|(rule, _, _)| rule == "mysql-alter-copy")
            .map(|(_, severity, _)| severity)
    };
    // No --dialect: MariaDB's own syntax (NOCOPY) is read as MariaDB's.
    std::fs::write(
        dir.path().join("migrations/003_index.sql"),
        "SET SESSION lock_wait_timeout = 5;\nALTER TABLE orders ADD INDEX orders_status (order_status), ALGORITHM=NOCOPY, LOCK=NONE;\n",
    )
    .unwrap();
    let (code, stdout, stderr) = lint(
        dir.path(),
        &["migrations/003_index.sql", "--db", &url, "--format", "json"],
    );
    assert_eq!((code, rules_of(&stdout)), (0, vec![]), "{stderr}");
    // 20 rows: the copy is a small table's, info.
    let (_, stdout, stderr) = lint(
        dir.path(),
        &["migrations", "--db", &url, "--format", "json"],
    );
    assert_eq!(
        copy_finding(&stdout).as_deref(),
        Some("info"),
        "{stdout}{stderr}"
    );
    // 50,000 rows: an error again.
    s.batch_execute(
        "INSERT INTO orders SELECT seq, 'new', 1 FROM seq_21_to_50000; ANALYZE TABLE orders",
    )
    .await
    .unwrap();
    let (code, stdout, stderr) = lint(
        dir.path(),
        &["migrations", "--db", &url, "--format", "json"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(copy_finding(&stdout).as_deref(), Some("error"), "{stdout}");
}
