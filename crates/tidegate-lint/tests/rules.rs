//! Fixture + snapshot tests, one fixture per rule: `tests/fixtures/<rule-id>.sql`.
//!
//! A fixture is a sequence of cases, each starting with a line
//! `-- case: <name> <kind> [framework-transaction] [pg=N]` where kind is
//! - `history`: an earlier migration, replayed into the catalog and not linted,
//! - `flagged`: must produce at least one finding of the fixture's rule,
//! - `quiet`: must produce none (the correct patterns that must stay quiet).
//!
//! The snapshot lists, for every linted case, each statement and the rule's findings on it, so flagged and
//! safe cases sit side by side.

use std::fmt::Write;
use std::path::Path;

use tidegate_lint::{check_db_version, registry, Config, Dialect, RuleId, RuleSetting, Session};
use tidegate_sql::{parse_source, PgVersion};

struct Case {
    name: String,
    kind: String,
    framework_transaction: bool,
    pg_version: Option<u32>,
    /// `mysql` / `mariadb` (optionally `=VERSION`) in the case header; PostgreSQL otherwise.
    dialect: Dialect,
    db_version: Option<String>,
    sql: String,
    first_line: usize,
}

fn cases(fixture: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (number, line) in fixture.lines().enumerate() {
        if let Some(header) = line.strip_prefix("-- case:") {
            let mut words = header.split_whitespace();
            let name = words.next().expect("case name").to_string();
            let kind = words.next().expect("case kind").to_string();
            assert!(
                ["history", "flagged", "quiet"].contains(&kind.as_str()),
                "case {name}: kind must be history, flagged or quiet"
            );
            let mut case = Case {
                name,
                kind,
                framework_transaction: false,
                pg_version: None,
                dialect: Dialect::Postgres,
                db_version: None,
                sql: String::new(),
                first_line: number + 2,
            };
            for option in words {
                match option {
                    "framework-transaction" => case.framework_transaction = true,
                    other if other.starts_with("mysql") || other.starts_with("mariadb") => {
                        let (name, version) = other
                            .split_once('=')
                            .map_or((other, None), |(name, version)| (name, Some(version)));
                        case.dialect = Dialect::from_name(name).expect("mysql or mariadb");
                        case.db_version = version.map(str::to_string);
                    }
                    other => {
                        let version = other
                            .strip_prefix("pg=")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("unknown case option {other}"));
                        case.pg_version = Some(version);
                    }
                }
            }
            cases.push(case);
        } else if let Some(case) = cases.last_mut() {
            case.sql.push_str(line);
            case.sql.push('\n');
        }
    }
    cases
}

fn run_fixture(rule: &str, fixture: &str) -> String {
    let cases = cases(fixture);
    assert!(
        cases.iter().any(|c| c.kind == "flagged"),
        "{rule}: fixture has no flagged case"
    );
    let mut out = String::new();
    for (index, case) in cases.iter().enumerate() {
        if case.kind == "history" {
            continue;
        }
        let mut config = Config {
            pg_version: PgVersion(case.pg_version.unwrap_or(17)),
            dialect: case.dialect,
            db_version: case
                .db_version
                .as_deref()
                .map(|version| check_db_version(version).expect("a version")),
            ..Config::default()
        };
        // An opt-in rule's fixture is run with the rule turned on.
        config.rules.insert(
            RuleId::from_id(rule).expect("a fixture's rule id"),
            RuleSetting::On,
        );
        let mut session = Session::new(&config, None);
        for earlier in cases[..index].iter().filter(|c| c.kind == "history") {
            session.replay(&earlier.sql, earlier.framework_transaction);
        }
        let report = session.lint(&case.name, &case.sql, case.framework_transaction);
        let findings: Vec<_> = report
            .findings
            .iter()
            .filter(|finding| finding.rule.as_str() == rule)
            .collect();
        match case.kind.as_str() {
            "flagged" => assert!(
                !findings.is_empty(),
                "{rule}: case `{}` (fixture line {}) should be flagged but is not; all findings: {:#?}",
                case.name,
                case.first_line,
                report.findings
            ),
            _ => assert!(
                findings.is_empty(),
                "{rule}: case `{}` (fixture line {}) should be quiet but got {findings:#?}",
                case.name,
                case.first_line
            ),
        }
        let _ = writeln!(
            out,
            "== {} ({}{}{})",
            case.name,
            case.kind,
            if case.framework_transaction {
                ", framework transaction"
            } else {
                ""
            },
            case.pg_version
                .map(|v| format!(", PostgreSQL {v}"))
                .or_else(|| (case.dialect != Dialect::Postgres).then(|| format!(
                    ", {:?} {}",
                    case.dialect,
                    case.db_version.as_deref().unwrap_or("default version")
                )))
                .unwrap_or_default()
        );
        let spans: Vec<(usize, usize, String)> = if case.dialect == Dialect::Postgres {
            parse_source(&case.sql)
                .statements
                .iter()
                .map(|s| (s.span.start.line, s.span.end.line, s.text.clone()))
                .collect()
        } else {
            tidegate_sql::mysql::parse_mysql(&case.sql)
                .statements
                .iter()
                .map(|s| (s.span.start.line, s.span.end.line, s.text.clone()))
                .collect()
        };
        for (start, end, text) in &spans {
            let first_line = text.lines().next().unwrap_or_default();
            let _ = writeln!(out, "  {start:>3} | {first_line}");
            for finding in findings
                .iter()
                .filter(|f| f.line >= *start && f.line <= *end)
            {
                let _ = writeln!(
                    out,
                    "      > {} {}:{}-{}:{}: {}",
                    finding.severity,
                    finding.line,
                    finding.column,
                    finding.end_line,
                    finding.end_column,
                    finding.message
                );
                if let Some(lock) = &finding.lock {
                    let _ = writeln!(out, "        lock: {lock}");
                }
                if let Some(help) = &finding.help {
                    let _ = writeln!(out, "        help: {help}");
                }
            }
        }
        // Findings outside any statement (suppression comments).
        for finding in findings.iter().filter(|f| {
            !spans
                .iter()
                .any(|(start, end, _)| f.line >= *start && f.line <= *end)
        }) {
            let _ = writeln!(
                out,
                "      > {} {}:{}: {}",
                finding.severity, finding.line, finding.column, finding.message
            );
        }
        out.push('\n');
    }
    out
}

#[test]
fn every_rule_has_a_fixture_and_a_snapshot() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut missing = Vec::new();
    for rule in registry() {
        let id = rule.doc().id.as_str();
        let path = fixtures.join(format!("{id}.sql"));
        let Ok(fixture) = std::fs::read_to_string(&path) else {
            missing.push(id);
            continue;
        };
        let rendered = run_fixture(id, &fixture);
        insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(id, rendered);
        });
    }
    assert!(missing.is_empty(), "rules without a fixture: {missing:?}");
}

#[test]
fn every_rule_doc_has_the_fixed_shape() {
    const HEADINGS: [&str; 6] = [
        "## What it does",
        "## Why is this bad?",
        "## Lock taken",
        "## PostgreSQL versions",
        "## Example",
        "## Use instead",
    ];
    for rule in registry() {
        let doc = rule.doc().documentation();
        let mut last = 0;
        for heading in HEADINGS {
            let position = doc
                .find(heading)
                .unwrap_or_else(|| panic!("{}: missing `{heading}`", rule.doc().id));
            assert!(
                position >= last,
                "{}: `{heading}` out of order",
                rule.doc().id
            );
            last = position;
        }
    }
}

#[test]
fn rule_ids_are_unique_and_kebab_case() {
    let mut seen = std::collections::HashSet::new();
    for rule in registry() {
        let id = rule.doc().id.as_str();
        assert!(seen.insert(id), "duplicate rule id {id}");
        assert!(
            id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{id}"
        );
    }
}

#[test]
fn every_rule_id_has_exactly_one_rule_and_round_trips() {
    use tidegate_lint::RuleId;
    for &id in RuleId::ALL {
        let rules: Vec<_> = registry()
            .iter()
            .filter(|rule| rule.doc().id == id)
            .collect();
        assert_eq!(
            rules.len(),
            1,
            "{id}: {} rules in the registry",
            rules.len()
        );
        assert_eq!(RuleId::from_id(id.as_str()), Some(id));
        assert_eq!(tidegate_lint::rule(id).doc().id, id);
    }
    assert_eq!(registry().len(), RuleId::ALL.len());
}
