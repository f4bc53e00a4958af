//! Huge files are linted window by window (`Session::lint_windowed`, what `tidegate lint` does above
//! `STREAMING_THRESHOLD_BYTES`); every other file all at once (`Session::lint_parsed`). The two must give the
//! same findings, field for field and in the same order. Checked here on every rule's documentation examples,
//! on every rule's fixture cases (with their replayed history, target version and framework transaction), and
//! on files that span many windows: all of those examples in one file, and files built to cross windows with
//! settings, transactions, suppressions and facts a rule needs from elsewhere in the file. Windows of one
//! statement (cut wherever the file allows) and of the size the binary uses are both tried.

use tidegate_lint::{registry, Config, Finding, RuleId, RuleSetting, Session, WINDOW_STATEMENTS};
use tidegate_sql::{parse_source, Catalog, PgVersion, Table, TableOrigin};

/// Every rule turned on (opt-in ones included), for `pg_version`.
fn config(pg_version: u32) -> Config {
    let mut config = Config {
        pg_version: PgVersion(pg_version),
        ..Config::default()
    };
    for rule in registry() {
        config.rules.insert(rule.doc().id, RuleSetting::On);
    }
    config
}

/// The catalog's tables in name order, with their origin.
fn tables(catalog: &Catalog) -> Vec<(Table, TableOrigin)> {
    let mut tables: Vec<_> = catalog
        .tables()
        .map(|table| (table.clone(), catalog.origin(&table.name)))
        .collect();
    tables.sort_by_key(|(table, _)| table.name.key());
    tables
}

/// Lints `sql` after `history` both ways and asserts they agree; returns the findings.
fn assert_same(
    what: &str,
    config: &Config,
    history: &[(&str, bool)],
    sql: &str,
    framework_transaction: bool,
) -> Vec<Finding> {
    let session = || {
        let mut session = Session::new(config, None);
        for (earlier, framework_transaction) in history {
            session.replay(earlier, *framework_transaction);
        }
        session
    };
    let mut whole_session = session();
    let whole = whole_session
        .lint_parsed("m.sql", sql, parse_source(sql), framework_transaction)
        .findings;
    for window in [1, 3, WINDOW_STATEMENTS] {
        let mut windowed_session = session();
        let windowed = windowed_session.lint_windowed("m.sql", sql, framework_transaction, window);
        assert_eq!(
            windowed.findings, whole,
            "{what}: windows of {window} statements disagree with the whole file"
        );
        assert_eq!(
            tables(windowed_session.catalog()),
            tables(whole_session.catalog()),
            "{what}: the catalog after the file differs"
        );
    }
    whole
}

mod common;
use common::{section, Section};

fn doc_sections() -> Vec<(String, Section)> {
    let mut sections = Vec::new();
    for rule in registry() {
        let doc = rule.doc();
        for heading in ["Example", "Use instead"] {
            // The window-by-window path is PostgreSQL's; MySQL-family files are linted whole.
            if let Some(section) = section(doc, heading)
                .filter(|section| section.dialect == tidegate_lint::Dialect::Postgres)
            {
                sections.push((format!("{} ## {heading}", doc.id), section));
            }
        }
    }
    sections
}

#[test]
fn every_rule_example_gives_the_same_findings_in_windows() {
    let sections = doc_sections();
    assert!(
        sections.len() >= registry().len() - 3,
        "every rule has an example"
    );
    let mut fired = 0;
    for (what, section) in &sections {
        let findings = assert_same(
            what,
            &config(section.pg_version),
            &[],
            &section.sql,
            section.framework_transaction,
        );
        fired += usize::from(!findings.is_empty());
    }
    assert!(
        fired >= registry().len() - 3,
        "the examples find something (the three MySQL-only rules have no PostgreSQL example)"
    );
}

#[test]
fn every_fixture_case_gives_the_same_findings_in_windows() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let fixture = std::fs::read_to_string(&path).expect("fixture");
        files += 1;
        // `-- case: NAME KIND [framework-transaction] [pg=N]` starts a case; history cases are replayed.
        let mut cases: Vec<(String, String, bool, u32, String)> = Vec::new();
        for line in fixture.lines() {
            if let Some(header) = line.strip_prefix("-- case:") {
                let mut words = header.split_whitespace();
                let name = words.next().expect("name").to_string();
                let kind = words.next().expect("kind").to_string();
                let (mut framework, mut version) = (false, 17);
                for option in words {
                    match option.strip_prefix("pg=") {
                        Some(v) => version = v.parse().expect("version"),
                        None => framework = option == "framework-transaction",
                    }
                }
                cases.push((name, kind, framework, version, String::new()));
            } else if let Some(case) = cases.last_mut() {
                case.4.push_str(line);
                case.4.push('\n');
            }
        }
        for (index, (name, kind, framework, version, sql)) in cases.iter().enumerate() {
            if kind == "history" {
                continue;
            }
            let history: Vec<(&str, bool)> = cases[..index]
                .iter()
                .filter(|case| case.1 == "history")
                .map(|case| (case.4.as_str(), case.2))
                .collect();
            assert_same(
                &format!("{} case {name}", path.display()),
                &config(*version),
                &history,
                sql,
                *framework,
            );
        }
    }
    assert!(files >= registry().len() - 2, "a fixture per rule");
}

#[test]
fn all_examples_in_one_file_give_the_same_findings_in_windows() {
    let mut sql = String::new();
    for (what, section) in doc_sections() {
        if section.framework_transaction {
            continue;
        }
        sql.push_str(&format!("-- {what}\n{}\n", section.sql));
    }
    let findings = assert_same("all examples", &config(17), &[], &sql, false);
    assert!(
        findings.len() > 100,
        "the file is noisy: {}",
        findings.len()
    );
    // And again, the whole file inside the framework's transaction (one window).
    assert_same(
        "all examples, one transaction",
        &config(17),
        &[],
        &sql,
        true,
    );
}

/// Facts a rule reads from other windows: a setting made many statements earlier, a table created far earlier
/// and dropped far later, a schema change many windows after the data change, a constraint added long before
/// it is dropped, objects created long before they are dropped, a file-wide suppression at the end that
/// silences findings at the start, an unused one at the start, and a BEGIN never committed.
#[test]
fn facts_from_far_away_windows_give_the_same_findings() {
    let filler = |n: usize| -> String {
        (0..n)
            .map(|i| format!("SELECT {i} FROM orders WHERE id = {i};\n"))
            .collect()
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "setting far before",
            format!(
                "ALTER TABLE a ADD COLUMN x int;\n{}SET lock_timeout = '2s';\n{}ALTER TABLE b ADD COLUMN y int;\nRESET lock_timeout;\n{}ALTER TABLE c ALTER COLUMN z TYPE bigint;\n",
                filler(20), filler(20), filler(20)
            ),
        ),
        (
            "lock_timeout first, statement_timeout never",
            format!(
                "SET lock_timeout = '1s';\n{}ALTER TABLE c ALTER COLUMN z TYPE bigint;\n{}ALTER TABLE d ALTER COLUMN z TYPE bigint;\n",
                filler(10), filler(10)
            ),
        ),
        (
            "SET LOCAL outside a transaction",
            format!("SET LOCAL lock_timeout = '1s';\n{}ALTER TABLE c ADD COLUMN q int;\n", filler(10)),
        ),
        (
            "schema change far after the backfill",
            format!(
                "UPDATE orders SET status = 'x';\n{}ALTER TABLE orders ADD COLUMN note text;\n{}UPDATE orders SET note = 'y';\nBEGIN;\nUPDATE orders SET note = 'z';\nALTER TABLE orders DROP COLUMN note;\nCOMMIT;\n",
                filler(15), filler(15)
            ),
        ),
        (
            "created far before, dropped far after",
            format!(
                "CREATE TABLE t (id bigint PRIMARY KEY);\nCREATE VIEW v AS SELECT 1;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\nCREATE TRIGGER trg AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f();\nALTER TABLE orders ADD CONSTRAINT c CHECK (id > 0) NOT VALID;\n{}ALTER TABLE t ADD COLUMN x int;\nUPDATE t SET x = 1;\nDROP VIEW v;\nDROP FUNCTION f();\nDROP TRIGGER trg ON orders;\nALTER TABLE orders DROP CONSTRAINT c;\nDROP VIEW other;\n{}DROP TABLE t;\nALTER TABLE t ADD COLUMN y int;\n",
                filler(12), filler(12)
            ),
        ),
        (
            "file-wide suppressions far away",
            format!(
                "-- tidegate:ignore-file unbatched-update rewritten nightly\n-- tidegate:ignore-file drop-table nothing here drops a table\nUPDATE orders SET status = 'x';\n{}-- tidegate:ignore create-index-non-concurrently small table\nCREATE INDEX i ON orders (status);\n-- tidegate:ignore lock-table\nSELECT 1;\n-- tidegate:ignore-fil typo\n{}UPDATE orders SET status = 'y';\n-- tidegate:ignore-file missing-lock-timeout set by the runner\n-- tidegate:ignore-file nonsense-rule reason\n",
                filler(10), filler(10)
            ),
        ),
        (
            "transactions and an unclosed BEGIN",
            format!(
                "BEGIN;\nALTER TABLE a ADD COLUMN x int;\n{}ALTER TABLE b ADD COLUMN y int;\nALTER TYPE mood ADD VALUE 'ok';\nSELECT 'ok'::mood;\nALTER TABLE a RENAME TO a2;\nCREATE VIEW a AS SELECT * FROM a2;\nCOMMIT;\n{}COMMIT;\nCREATE INDEX j ON orders (id);\nBEGIN;\nALTER TABLE orders ADD CONSTRAINT k CHECK (id > 0) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT k;\n",
                filler(8), filler(8)
            ),
        ),
        (
            "statements sharing lines",
            format!(
                "ALTER TABLE a ADD COLUMN x int; -- tidegate:ignore robust-statements ok\nCREATE INDEX i ON a (x); UPDATE a SET x = 1;\n{}SELECT 1; /* tidegate:ignore */ ALTER TABLE a DROP COLUMN x;\n",
                filler(5)
            ),
        ),
    ];
    for (what, sql) in &cases {
        let findings = assert_same(what, &config(17), &[], sql, false);
        assert!(!findings.is_empty(), "{what}: finds something");
        assert_same(
            what,
            &config(11),
            &[(
                "CREATE TABLE orders (id bigint PRIMARY KEY, status text);",
                false,
            )],
            sql,
            false,
        );
    }
}

/// The binary's path: a file above the threshold through `lint_each` with the default window size, against
/// the whole file parsed at once.
#[test]
fn a_file_above_the_threshold_gives_the_same_findings_as_parsed_whole() {
    let mut sql = String::new();
    let mut index = 0;
    while sql.len() <= tidegate_lint::STREAMING_THRESHOLD_BYTES {
        let table = format!("t{}", index / 5);
        sql.push_str(&match index % 7 {
            0 => format!("CREATE TABLE new_{table} (id bigint PRIMARY KEY, name text);\n"),
            1 => format!("ALTER TABLE {table} ADD COLUMN c{index} int;\n"),
            2 => format!("CREATE INDEX {table}_name ON {table} (name);\n"),
            3 => format!("UPDATE {table} SET name = 'x' WHERE id > 10;\n"),
            4 => format!("BEGIN;\nALTER TABLE {table} ALTER COLUMN c{} TYPE bigint;\nUPDATE {table} SET name = 'y';\nCOMMIT;\n", index - 3),
            5 => format!("-- tidegate:ignore unbatched-update reason\nUPDATE new_{table} SET name = 'z';\n"),
            _ => format!("DROP TABLE new_{table};\n"),
        });
        index += 1;
    }
    sql.push_str("-- tidegate:ignore-file prefer-text-over-varchar reason\n");
    let config = Config::default();
    let whole = Session::new(&config, None).lint_parsed("big.sql", &sql, parse_source(&sql), false);
    let mut streamed = Vec::new();
    let statements =
        Session::new(&config, None).lint_each("big.sql", &sql, None, false, &mut |finding| {
            streamed.push(finding)
        });
    assert_eq!(statements, whole.statements);
    assert!(whole.findings.len() > 10_000, "{}", whole.findings.len());
    assert_eq!(streamed, whole.findings);
    assert!(streamed
        .iter()
        .any(|finding| finding.rule == RuleId::UnusedSuppression));
}

/// A huge earlier migration is replayed window by window too: the catalog after it is the one replaying it
/// parsed whole gives, and so are the findings of the migration linted after it.
#[test]
fn a_huge_replayed_migration_gives_the_same_catalog_and_findings() {
    let mut history = String::new();
    let mut index = 0;
    while history.len() <= tidegate_lint::STREAMING_THRESHOLD_BYTES {
        history.push_str(&format!(
            "CREATE TABLE t{index} (id bigint PRIMARY KEY, name varchar(20));\nALTER TABLE t{} ADD COLUMN c int NOT NULL DEFAULT 0;\nCREATE INDEX i{index} ON t{index} (name);\n",
            index / 2
        ));
        index += 1;
    }
    let next = "ALTER TABLE t3 ALTER COLUMN name TYPE varchar(50);\nALTER TABLE t4 ALTER COLUMN c TYPE bigint;\nDROP INDEX i5;\nUPDATE t6 SET c = 1;\n";
    let config = config(17);
    let mut windowed = Session::new(&config, None);
    windowed.replay(&history, false);
    let mut whole = Session::new(&config, None);
    whole.replay_parsed(parse_source(&history), false);
    assert_eq!(tables(windowed.catalog()), tables(whole.catalog()));
    assert_eq!(
        windowed.lint("next.sql", next, false).findings,
        whole.lint("next.sql", next, false).findings
    );
}
