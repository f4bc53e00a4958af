//! Property tests: linting never panics, whatever the input: random bytes, and real migrations mutated by
//! deleting, duplicating, truncating and splicing in SQL fragments. Positions stay inside the file.

use proptest::prelude::*;
use tidegate_lint::{Config, Session};
use tidegate_sql::PgVersion;

const CORPUS: &[&str] = &[
    include_str!("fixtures/schema-change-with-backfill.sql"),
    include_str!("fixtures/unbatched-update.sql"),
    include_str!("fixtures/set-not-null-scan.sql"),
    include_str!("fixtures/alter-column-type-rewrite.sql"),
    include_str!("fixtures/concurrently-in-transaction.sql"),
    include_str!("fixtures/invalid-suppression.sql"),
    include_str!("fixtures/attach-partition-without-check.sql"),
    include_str!("fixtures/enum-add-value-in-transaction.sql"),
];

const FRAGMENTS: &[&str] = &[
    ";",
    "'",
    "\"",
    "$$",
    "/*",
    "*/",
    "--",
    "\n",
    "(",
    ")",
    "BEGIN;",
    "COMMIT;",
    " NOT VALID",
    " CONCURRENTLY",
    "ALTER TABLE orders ",
    "ADD COLUMN x int",
    " DEFAULT random()",
    " WHERE id = 1",
    "-- tidegate:ignore ",
    "-- tidegate:ignore-file drop-column",
    "\u{0}",
    "é",
    "\u{feff}",
    "E'\\",
    "$tag$",
    "::",
    "[]",
    "SET lock_timeout = 0;",
];

fn lint(sql: &str, framework_transaction: bool, version: u32) {
    let config = Config {
        pg_version: PgVersion(version),
        ..Config::default()
    };
    let mut session = Session::new(&config, None);
    let report = session.lint("fuzz.sql", sql, framework_transaction);
    let lines = sql.lines().count().max(1) + 1;
    for finding in report.findings {
        assert!(finding.line >= 1 && finding.column >= 1, "{finding:?}");
        assert!(finding.line <= finding.end_line, "{finding:?}");
        assert!(
            finding.end_line <= lines,
            "{finding:?} beyond {lines} lines"
        );
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), 0..FRAGMENTS.len())
            .prop_map(|(at, fragment)| Mutation::Insert(at, fragment)),
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut text: String, mutations: &[Mutation]) -> String {
    for mutation in mutations {
        match *mutation {
            Mutation::Delete(at, len) => {
                let start = boundary(&text, at);
                let end = boundary(&text, (start + len).min(text.len()));
                text.replace_range(start..end.max(start), "");
            }
            Mutation::Insert(at, fragment) => {
                let at = boundary(&text, at);
                text.insert_str(at, FRAGMENTS[fragment]);
            }
            Mutation::Duplicate(at, len) => {
                let start = boundary(&text, at);
                let end = boundary(&text, (start + len).min(text.len())).max(start);
                let copy = text[start..end].to_string();
                text.insert_str(end, &copy);
            }
            Mutation::Truncate(at) => {
                let at = boundary(&text, at);
                text.truncate(at);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), wrapped: bool, version in 10u32..=18) {
        lint(&String::from_utf8_lossy(&bytes), wrapped, version);
    }

    #[test]
    fn mutated_migrations_never_panic(
        source in 0..CORPUS.len(),
        mutations in proptest::collection::vec(mutation(), 1..8),
        wrapped: bool,
        version in 10u32..=18,
    ) {
        lint(&apply(CORPUS[source].to_string(), &mutations), wrapped, version);
    }
}

fn findings(sql: &str, streaming: bool) -> Vec<String> {
    let config = Config::default();
    let mut session = Session::new(&config, None);
    let report = if streaming {
        // Windows of one statement wherever the file allows a cut: the most windows a file can have.
        session.lint_windowed("same.sql", sql, false, 1)
    } else {
        session.lint_parsed("same.sql", sql, tidegate_sql::parse_source(sql), false)
    };
    report
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {}:{}-{}:{} {}",
                f.rule, f.severity, f.line, f.column, f.end_line, f.end_column, f.message
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, failure_persistence: None, ..ProptestConfig::default() })]

    /// Linting window by window (each window's parse trees dropped before the next) must not change any finding.
    #[test]
    fn streaming_and_whole_file_agree(
        source in 0..CORPUS.len(),
        mutations in proptest::collection::vec(mutation(), 0..3),
    ) {
        let sql = apply(CORPUS[source].to_string(), &mutations);
        prop_assert_eq!(findings(&sql, true), findings(&sql, false));
    }
}

#[test]
fn streaming_and_whole_file_agree_on_every_fixture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let sql = std::fs::read_to_string(entry.expect("entry").path()).expect("fixture");
        assert_eq!(findings(&sql, true), findings(&sql, false));
    }
}

#[test]
fn a_large_file_is_linted_statement_by_statement() {
    let statement =
        "UPDATE orders SET status = 'x' WHERE id = 1;\nALTER TABLE orders ADD COLUMN c int;\n";
    let mut sql = statement.repeat(7_000);
    sql.push_str("ALTER TABLE orders ADD COLUMN;\n");
    assert!(
        sql.len() > tidegate_lint::STREAMING_THRESHOLD_BYTES,
        "exercises the streaming path"
    );
    let config = Config::default();
    let mut session = Session::new(&config, None);
    let report = session.lint("big.sql", &sql, false);
    assert_eq!(report.statements, 14_001);
    let syntax_errors: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.rule == tidegate_lint::RuleId::SyntaxError)
        .collect();
    assert_eq!(syntax_errors.len(), 1);
    assert_eq!(syntax_errors[0].line, 14_001);
}

/// A file argument of the grouped-files path: a migration of the directory (by several spellings of its
/// path), a down migration, or a file that does not exist.
#[derive(Debug, Clone)]
enum Argument {
    Migration(usize),
    DotSlash(usize),
    Absolute(usize),
    Down(usize),
    Missing,
}

fn argument(files: usize) -> impl Strategy<Value = Argument> {
    prop_oneof![
        (0..files).prop_map(Argument::Migration),
        (0..files).prop_map(Argument::DotSlash),
        (0..files).prop_map(Argument::Absolute),
        (0..files).prop_map(Argument::Down),
        Just(Argument::Missing),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    /// The grouped-files path of `tidegate lint FILE…`: mutated migrations written to a directory, named in any
    /// order, repeated and spelled differently, grouped by set and linted in one pass (the others replayed).
    /// Never panics; every named up migration is in exactly one group and linted once, with the findings it
    /// has when linted alone after replaying the migrations before it.
    #[test]
    fn grouped_file_arguments_never_panic_and_match_one_by_one(
        sources in proptest::collection::vec((0..CORPUS.len(), proptest::collection::vec(mutation(), 0..3)), 1..6),
        arguments in proptest::collection::vec(argument(6), 1..10),
        golang: bool,
    ) {
        use std::path::PathBuf;
        use tidegate_sql::discovery::{discover_for_file, group_files, load_migration, FileGroup};

        let dir = tempfile::tempdir().expect("temp dir");
        let name = |index: usize, down: bool| {
            if golang {
                format!("{:03}_m.{}.sql", index + 1, if down { "down" } else { "up" })
            } else if down {
                format!("{:03}_m.down.sql", index + 1)
            } else {
                format!("{:03}_m.sql", index + 1)
            }
        };
        for (index, (source, mutations)) in sources.iter().enumerate() {
            let sql = apply(CORPUS[*source].to_string(), mutations);
            std::fs::write(dir.path().join(name(index, false)), &sql).expect("write");
            std::fs::write(dir.path().join(name(index, true)), "DROP TABLE orders;\n").expect("write");
        }
        let count = sources.len();
        let files: Vec<PathBuf> = arguments
            .iter()
            .map(|argument| match *argument {
                Argument::Migration(index) => dir.path().join(name(index % count, false)),
                Argument::DotSlash(index) => dir.path().join(".").join(name(index % count, false)),
                Argument::Absolute(index) => std::fs::canonicalize(dir.path())
                    .expect("canonical")
                    .join(name(index % count, false)),
                Argument::Down(index) => dir.path().join(name(index % count, true)),
                Argument::Missing => dir.path().join("999_missing.sql"),
            })
            .filter(|path| path.is_file())
            .collect();
        let (groups, errors) = group_files(&files, None);
        prop_assert!(errors.is_empty(), "{:?}", errors);
        let config = Config::default();
        let mut linted = Vec::new();
        for group in &groups {
            match group {
                FileGroup::Set { set, named } => {
                    prop_assert!(named.windows(2).all(|pair| pair[0] < pair[1]));
                    let mut session = Session::new(&config, None);
                    for (index, migration) in set.migrations.iter().enumerate().take(named.last().map_or(0, |last| last + 1)) {
                        let loaded = load_migration(&migration.path, set.layout).expect("load");
                        if named.contains(&index) {
                            let report = session.lint("f.sql", &loaded.sql, loaded.framework_transaction);
                            linted.push((std::fs::canonicalize(&migration.path).expect("canonical"), report.findings));
                        } else {
                            session.replay(&loaded.sql, loaded.framework_transaction);
                        }
                    }
                }
                FileGroup::Alone(path) => {
                    prop_assert!(discover_for_file(path, None).expect("discover").is_none());
                    let sql = std::fs::read_to_string(path).expect("read");
                    let mut session = Session::new(&config, None);
                    session.lint("f.sql", &sql, false);
                }
            }
        }
        // Each named up migration once, with its one-by-one findings.
        let mut expected: Vec<PathBuf> = files
            .iter()
            .filter(|path| discover_for_file(path, None).expect("discover").is_some())
            .map(|path| std::fs::canonicalize(path).expect("canonical"))
            .collect();
        expected.sort();
        expected.dedup();
        let mut names: Vec<PathBuf> = linted.iter().map(|(path, _)| path.clone()).collect();
        names.sort();
        prop_assert_eq!(&names, &expected);
        for (path, findings) in &linted {
            let (set, position) = discover_for_file(path, None).expect("discover").expect("in a set");
            let mut session = Session::new(&config, None);
            for migration in &set.migrations[..position] {
                let loaded = load_migration(&migration.path, set.layout).expect("load");
                session.replay(&loaded.sql, loaded.framework_transaction);
            }
            let loaded = load_migration(path, set.layout).expect("load");
            let alone = session.lint("f.sql", &loaded.sql, loaded.framework_transaction);
            prop_assert_eq!(&alone.findings, findings);
        }
    }
}
