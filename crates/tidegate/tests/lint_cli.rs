//! `tidegate lint` and `tidegate explain` end to end: the real binary on temporary directories laid out like
//! each migration framework, every output format, exit codes, and unreadable or non-UTF-8 files.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Project {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}\n{}", self.stdout, self.stderr))
    }

    /// The rule ids of a `--format json` run, in output order.
    fn rules(&self) -> Vec<String> {
        self.json()["findings"]
            .as_array()
            .expect("findings array")
            .iter()
            .map(|finding| finding["rule"].as_str().expect("rule").to_string())
            .collect()
    }
}

impl Project {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn file(&self, relative: &str, content: impl AsRef<[u8]>) -> &Self {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
        self
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            .output()
            .expect("run tidegate");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

const CREATE_ORDERS: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, status text);\n";
const CONCURRENT_INDEX: &str = "CREATE INDEX CONCURRENTLY orders_status ON orders (status);\n";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bundled_incident_example_is_flagged() {
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["lint", "examples/migrations", "--format", "json"])
        .current_dir(workspace_root())
        .output()
        .expect("run tidegate");
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"schema-change-with-backfill"), "{rules:?}");
    assert!(rules.contains(&"unbatched-update"), "{rules:?}");
    assert_eq!(report["files"], 2);
    assert_eq!(report["statements"], 4);
}

#[test]
fn plain_directory_runs_statements_outside_a_transaction() {
    let project = Project::new();
    project
        .file("migrations/001_orders.sql", CREATE_ORDERS)
        .file("migrations/002_index.sql", CONCURRENT_INDEX);
    let run = project.run(&["lint", "--format", "json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.rules().is_empty(), "{:?}", run.rules());
    assert_eq!(run.json()["files"], 2);
}

#[test]
fn sqlx_wraps_files_in_a_transaction_unless_no_transaction() {
    let project = Project::new();
    project
        .file("Cargo.toml", "[dependencies]\nsqlx = \"0.8\"\n")
        .file("migrations/20240101000000_orders.sql", CREATE_ORDERS)
        .file("migrations/20240102000000_index.sql", CONCURRENT_INDEX);
    let run = project.run(&["lint", "migrations", "--format", "json"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.rules(), vec!["concurrently-in-transaction"]);

    project.file(
        "migrations/20240102000000_index.sql",
        format!("-- no-transaction\n{CONCURRENT_INDEX}"),
    );
    let run = project.run(&["lint", "migrations", "--format", "json"]);
    assert_eq!(run.code, 0, "{:?}", run.rules());
}

#[test]
fn diesel_reads_up_sql_and_metadata_and_skips_down_sql() {
    let project = Project::new();
    project
        .file("migrations/2024-01-01-000000_orders/up.sql", CREATE_ORDERS)
        .file(
            "migrations/2024-01-01-000000_orders/down.sql",
            "DROP TABLE orders;\n",
        )
        .file(
            "migrations/2024-01-02-000000_index/up.sql",
            CONCURRENT_INDEX,
        )
        .file(
            "migrations/2024-01-02-000000_index/down.sql",
            "DROP INDEX orders_status;\n",
        );
    let run = project.run(&["lint", "migrations", "--format", "json"]);
    assert_eq!(
        run.rules(),
        vec!["concurrently-in-transaction"],
        "{}",
        run.stderr
    );
    assert_eq!(run.json()["files"], 2);

    project.file(
        "migrations/2024-01-02-000000_index/metadata.toml",
        "run_in_transaction = false\n",
    );
    let run = project.run(&["lint", "migrations", "--format", "json"]);
    assert!(run.rules().is_empty(), "{:?}", run.rules());
}

#[test]
fn golang_migrate_lints_up_files_outside_transactions() {
    let project = Project::new();
    project
        .file("db/1_orders.up.sql", CREATE_ORDERS)
        .file("db/1_orders.down.sql", "DROP TABLE orders;\n")
        .file("db/2_index.up.sql", CONCURRENT_INDEX)
        .file("db/2_index.down.sql", "DROP INDEX orders_status;\n");
    let run = project.run(&["lint", "db", "--format", "json"]);
    assert_eq!(run.code, 0, "{:?} {}", run.rules(), run.stderr);
    assert_eq!(run.json()["files"], 2);
}

#[test]
fn dbmate_lints_the_up_section_with_its_transaction_option() {
    let project = Project::new();
    project
        .file(
            "db/migrations/20240101000000_orders.sql",
            format!("-- migrate:up\n{CREATE_ORDERS}\n-- migrate:down\nDROP TABLE orders;\n"),
        )
        .file(
            "db/migrations/20240102000000_index.sql",
            format!(
                "-- migrate:up\n{CONCURRENT_INDEX}\n-- migrate:down\nDROP INDEX orders_status;\n"
            ),
        );
    let run = project.run(&["lint", "db/migrations", "--format", "json"]);
    assert_eq!(run.rules(), vec!["concurrently-in-transaction"]);
    let finding = &run.json()["findings"][0];
    assert_eq!(finding["line"], 2, "line numbers refer to the real file");

    project.file(
        "db/migrations/20240102000000_index.sql",
        format!("-- migrate:up transaction:false\n{CONCURRENT_INDEX}\n-- migrate:down\nDROP INDEX orders_status;\n"),
    );
    let run = project.run(&["lint", "db/migrations", "--format", "json"]);
    assert!(run.rules().is_empty(), "{:?}", run.rules());
}

#[test]
fn flyway_orders_versions_numerically_and_wraps_in_transactions() {
    let project = Project::new();
    project
        // V10 must come after V2: the index is on a table V2 creates.
        .file(
            "sql/V10__index.sql",
            "CREATE INDEX orders_status ON orders (status);\n",
        )
        .file("sql/V2__orders.sql", CREATE_ORDERS)
        .file("sql/U2__undo.sql", "DROP TABLE orders;\n");
    let run = project.run(&["lint", "sql", "--format", "json"]);
    let rules = run.rules();
    assert!(
        rules.contains(&"create-index-non-concurrently".to_string()),
        "{rules:?}"
    );
    assert!(
        !rules.contains(&"drop-table".to_string()),
        "undo files are not linted: {rules:?}"
    );
    assert_eq!(run.json()["files"], 2);
}

#[test]
fn prisma_directories_are_linted_in_order() {
    let project = Project::new();
    project
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            CREATE_ORDERS,
        )
        .file(
            "prisma/migrations/20240102000000_status/migration.sql",
            "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;\n",
        );
    let run = project.run(&["lint", "prisma/migrations", "--format", "json"]);
    assert!(
        run.rules().contains(&"set-not-null-scan".to_string()),
        "{:?}",
        run.rules()
    );
}

#[test]
fn a_single_file_is_linted_with_the_earlier_migrations_as_context() {
    let project = Project::new();
    project
        .file("migrations/001_orders.sql", CREATE_ORDERS)
        .file(
            "migrations/002_widen.sql",
            "ALTER TABLE orders ALTER COLUMN status TYPE varchar(10);\n",
        );
    let run = project.run(&["lint", "migrations/002_widen.sql", "--format", "json"]);
    assert_eq!(run.json()["files"], 1);
    let findings = run.json()["findings"].clone();
    let message = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "alter-column-type-rewrite")
        .expect("flagged")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("not binary-coercible"),
        "the catalog knew the old type: {message}"
    );
}

#[test]
fn every_format_renders_the_example() {
    let root = workspace_root();
    let run = |format: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .args(["lint", "examples/migrations", "--format", format])
            .current_dir(&root)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1), "{format}");
        String::from_utf8(output.stdout).expect("utf-8")
    };

    let text = run("text");
    assert!(
        text.contains("error[unbatched-update]: UPDATE without WHERE"),
        "{text}"
    );
    assert!(
        text.contains("--> examples/migrations/0002_order_status_v2.sql:3:1"),
        "{text}"
    );
    assert!(
        text.contains("= lock: ") && text.contains("= help: "),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let json: serde_json::Value = serde_json::from_str(&run("json")).expect("json");
    let finding = &json["findings"][0];
    for key in [
        "rule",
        "severity",
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "message",
        "help",
        "lock",
    ] {
        assert!(finding.get(key).is_some(), "json finding lacks {key}");
    }

    let sarif: serde_json::Value = serde_json::from_str(&run("sarif")).expect("sarif");
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    assert!(results
        .iter()
        .any(|r| r["ruleId"] == "schema-change-with-backfill"));
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );

    let github = run("github");
    assert!(
        github.lines().any(|line| line.starts_with(
            "::error file=examples/migrations/0002_order_status_v2.sql,line=3,col=1,"
        )),
        "{github}"
    );

    let gitlab: serde_json::Value = serde_json::from_str(&run("gitlab")).expect("gitlab json");
    let issue = &gitlab.as_array().expect("array")[0];
    assert!(issue["fingerprint"].as_str().is_some_and(|f| f.len() == 16));
    assert_eq!(
        issue["location"]["path"],
        "examples/migrations/0002_order_status_v2.sql"
    );

    let markdown = run("markdown");
    assert!(
        markdown.contains("| error | `unbatched-update` |"),
        "{markdown}"
    );
}

#[test]
fn exit_codes_follow_fail_on() {
    let project = Project::new();
    project
        .file("migrations/001_orders.sql", CREATE_ORDERS)
        .file(
            "migrations/002_drop.sql",
            "ALTER TABLE orders DROP COLUMN status;\n",
        );
    // drop-column and missing-lock-timeout are warnings: clean at the default --fail-on error.
    assert_eq!(project.run(&["lint"]).code, 0);
    assert_eq!(project.run(&["lint", "--fail-on", "warning"]).code, 1);
    assert_eq!(project.run(&["lint", "--fail-on", "bogus"]).code, 2);
    let empty = Project::new();
    let run = empty.run(&["lint"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no migrations/ directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn unreadable_and_non_utf8_files_are_named_and_the_rest_still_linted() {
    let project = Project::new();
    project
        .file("migrations/001_orders.sql", CREATE_ORDERS)
        .file("migrations/002_latin1.sql", b"-- caf\xe9\nSELECT 1;\n")
        .file(
            "migrations/003_index.sql",
            "CREATE INDEX orders_status ON orders (status);\n",
        );
    std::os::unix::fs::symlink(
        project.path("nowhere.sql"),
        project.path("migrations/004_dangling.sql"),
    )
    .expect("symlink");
    let run = project.run(&["lint", "--format", "json"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("002_latin1.sql is not valid UTF-8"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cannot read") && run.stderr.contains("004_dangling.sql"),
        "{}",
        run.stderr
    );
    assert!(run
        .rules()
        .contains(&"create-index-non-concurrently".to_string()));
    let missing = project.run(&["lint", "migrations/999_missing.sql"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("999_missing.sql does not exist"),
        "{}",
        missing.stderr
    );
}

#[test]
fn tidegate_toml_is_found_upward_and_applied() {
    let project = Project::new();
    project
        .file(
            "tidegate.toml",
            "pg_version = 10\n[lint]\nfail_on = \"warning\"\n[lint.rules]\nmissing-lock-timeout = \"off\"\nprefer-text-over-varchar = \"error\"\n",
        )
        .file("app/migrations/001_orders.sql", CREATE_ORDERS)
        .file(
            "app/migrations/002_add.sql",
            "ALTER TABLE orders ADD COLUMN currency varchar(3) DEFAULT 'EUR';\n",
        );
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["lint", "migrations", "--format", "json"])
        .current_dir(project.path("app"))
        .output()
        .expect("run");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let findings = report["findings"].as_array().unwrap();
    let rules: Vec<&str> = findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"add-column-default-rewrite"),
        "pg_version = 10 applies: {rules:?}"
    );
    assert!(!rules.contains(&"missing-lock-timeout"), "{rules:?}");
    let varchar = findings
        .iter()
        .find(|f| f["rule"] == "prefer-text-over-varchar")
        .unwrap();
    assert_eq!(varchar["severity"], "error");

    project.file("tidegate.toml", "[lint.rules]\nno-such-rule = \"off\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["lint", "migrations"])
        .current_dir(project.path("app"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown rule `no-such-rule`"));
}

#[test]
fn inline_suppressions_and_their_problems() {
    let project = Project::new();
    project.file("migrations/001_orders.sql", CREATE_ORDERS).file(
        "migrations/002_index.sql",
        "SET lock_timeout = '1s';\n-- tidegate:ignore create-index-non-concurrently orders is tiny in every environment\nCREATE INDEX orders_status ON orders (status);\n-- tidegate:ignore missing-statement-timeout\nCREATE INDEX orders_id ON orders (id);\n",
    );
    let run = project.run(&["lint", "--format", "json"]);
    let findings = run.json()["findings"].as_array().unwrap().clone();
    let rule_lines: Vec<(String, u64)> = findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        rule_lines.contains(&("create-index-non-concurrently".into(), 5)),
        "{rule_lines:?}"
    );
    assert!(
        !rule_lines.contains(&("create-index-non-concurrently".into(), 3)),
        "{rule_lines:?}"
    );
    assert!(
        rule_lines.contains(&("invalid-suppression".into(), 4)),
        "{rule_lines:?}"
    );
}

#[test]
fn stats_make_hazards_on_small_tables_info() {
    let project = Project::new();
    project
        .file("migrations/001_tables.sql", "CREATE TABLE flags (id bigint PRIMARY KEY, name text);\nCREATE TABLE orders (id bigint PRIMARY KEY, status text);\n")
        .file(
            "migrations/002_index.sql",
            "SET lock_timeout = '1s';\nSET statement_timeout = '1min';\nCREATE INDEX flags_name ON flags (name);\nCREATE INDEX orders_status ON orders (status);\n",
        )
        .file(
            "stats.json",
            r#"{"version": 1, "tables": {"public.flags": {"rows": 12}, "public.orders": {"rows": 48000000}}}"#,
        );
    let run = project.run(&["lint", "--stats", "stats.json", "--format", "json"]);
    let findings = run.json()["findings"].as_array().unwrap().clone();
    let severity_on = |line: u64| {
        findings
            .iter()
            .find(|f| f["rule"] == "create-index-non-concurrently" && f["line"] == line)
            .map(|f| f["severity"].as_str().unwrap().to_string())
    };
    assert_eq!(severity_on(3).as_deref(), Some("info"));
    assert_eq!(severity_on(4).as_deref(), Some("error"));
    assert_eq!(run.code, 1);

    project.file("bad.json", "{\"tables\": []}");
    let bad = project.run(&["lint", "--stats", "bad.json"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("bad.json"), "{}", bad.stderr);
}

#[test]
fn rules_list_and_explain() {
    let project = Project::new();
    let list = project.run(&["lint", "--rules"]);
    assert_eq!(list.code, 0);
    assert!(list.stdout.lines().count() >= 80);
    assert!(list.stdout.contains("schema-change-with-backfill"));
    // Opt-in rules say so, and the configuration turns them on.
    let add_column = |stdout: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with("add-column "))
            .map(|line| {
                line.split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string()
            })
    };
    assert_eq!(
        add_column(&list.stdout).as_deref(),
        Some("opt-in"),
        "{}",
        list.stdout
    );
    project.file(
        "opt_in/001_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let quiet = project.run(&["lint", "opt_in", "--format", "json"]);
    assert!(!quiet.stdout.contains("\"add-column\""), "{}", quiet.stdout);
    project.file("tidegate.toml", "[lint.rules]\nadd-column = \"on\"\n");
    let configured = project.run(&["lint", "--rules"]);
    assert_eq!(add_column(&configured.stdout).as_deref(), Some("warning"));
    let flagged = project.run(&["lint", "opt_in", "--format", "json"]);
    assert!(
        flagged.stdout.contains("\"add-column\""),
        "{}",
        flagged.stdout
    );
    std::fs::remove_file(project.path("tidegate.toml")).expect("remove tidegate.toml");

    let explain = project.run(&["explain", "set-not-null-scan"]);
    assert_eq!(explain.code, 0);
    for heading in [
        "## What it does",
        "## Why is this bad?",
        "## Lock taken",
        "## Use instead",
    ] {
        assert!(explain.stdout.contains(heading), "{}", explain.stdout);
    }

    let unknown = project.run(&["explain", "set-not-nul-scan"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("did you mean `set-not-null-scan`"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn colour_only_on_a_terminal_and_no_color_honoured() {
    // `script` runs the binary under a pseudo-terminal.
    let root = workspace_root();
    let binary = env!("CARGO_BIN_EXE_tidegate");
    let on_terminal = |no_color: bool| {
        let mut command = Command::new("script");
        command
            .args([
                "-qec",
                &format!("{binary} lint examples/migrations"),
                "/dev/null",
            ])
            .current_dir(&root)
            .env("TERM", "xterm");
        if no_color {
            command.env("NO_COLOR", "1");
        } else {
            command.env_remove("NO_COLOR");
        }
        match command.output() {
            Ok(output) => Some(String::from_utf8_lossy(&output.stdout).into_owned()),
            Err(_) => None,
        }
    };
    let Some(coloured) = on_terminal(false) else {
        eprintln!("`script` (util-linux) is not installed; skipping the terminal check");
        return;
    };
    assert!(
        coloured.contains("\x1b[1;31merror[unbatched-update]"),
        "{coloured}"
    );
    let plain = on_terminal(true).expect("script ran once already");
    assert!(plain.contains("error[unbatched-update]"), "{plain}");
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR must disable colour: {plain}"
    );
}

#[test]
fn flyway_script_configuration_turns_the_transaction_off() {
    let project = Project::new();
    project
        .file("sql/V1__orders.sql", CREATE_ORDERS)
        .file("sql/V2__index.sql", CONCURRENT_INDEX);
    let run = project.run(&["lint", "sql", "--format", "json"]);
    assert_eq!(run.rules(), vec!["concurrently-in-transaction"]);
    project.file("sql/V2__index.sql.conf", "executeInTransaction=false\n");
    let run = project.run(&["lint", "sql", "--format", "json"]);
    assert!(run.rules().is_empty(), "{:?}", run.rules());
}
