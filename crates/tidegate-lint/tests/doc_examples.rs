//! Every rule's documentation tested as written: the SQL under `## Example` must fire the rule, the SQL under
//! `## Use instead` must not. The SQL is read from the rule's doc comment ([`tidegate_lint::RuleDoc::documentation`],
//! the text `tidegate explain` and docs/rules print), so changing a doc changes this test.
//!
//! Each section's ```` ```sql ```` blocks form one migration file, linted with no earlier migrations: the tables
//! it names are ones tidegate has never seen created, as after a squashed baseline. A fence may carry options
//! after the language, as the fixtures' cases do: `framework-transaction` (the framework wraps the file in a
//! transaction) and `pg=N` (the target PostgreSQL version; 17 otherwise).

use std::fmt::Write;

use tidegate_lint::{check_db_version, registry, Config, Dialect, RuleDoc, RuleSetting, Session};
use tidegate_sql::{parse_source, PgVersion};

mod common;
use common::{section, Section};

/// Lints a section and renders each statement with the rule's findings on it; returns the rendering and the
/// number of the rule's findings.
fn lint_section(doc: &RuleDoc, section: &Section) -> (String, usize) {
    let mut config = Config {
        pg_version: PgVersion(section.pg_version),
        dialect: section.dialect,
        db_version: section
            .db_version
            .as_deref()
            .map(|version| check_db_version(version).expect("a version")),
        ..Config::default()
    };
    // An opt-in rule's documentation shows it turned on.
    config.rules.insert(doc.id, RuleSetting::On);
    let mut session = Session::new(&config, None);
    let report = session.lint("doc.sql", &section.sql, section.framework_transaction);
    let findings: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.rule == doc.id)
        .collect();
    let mut out = String::new();
    if section.framework_transaction {
        out.push_str("(in the framework's transaction)\n");
    }
    if section.pg_version != 17 {
        let _ = writeln!(out, "(PostgreSQL {})", section.pg_version);
    }
    if section.dialect != Dialect::Postgres {
        let _ = writeln!(
            out,
            "({:?} {})",
            section.dialect,
            section.db_version.as_deref().unwrap_or("default version")
        );
    }
    let statements: Vec<(usize, usize, String)> = if section.dialect == Dialect::Postgres {
        parse_source(&section.sql)
            .statements
            .iter()
            .map(|statement| {
                (
                    statement.index,
                    statement.span.start.line,
                    statement.text.clone(),
                )
            })
            .collect()
    } else {
        tidegate_sql::mysql::parse_mysql(&section.sql)
            .statements
            .iter()
            .map(|statement| {
                (
                    statement.index,
                    statement.span.start.line,
                    statement.text.clone(),
                )
            })
            .collect()
    };
    for (index, line, text) in &statements {
        let first_line = text.lines().next().unwrap_or_default();
        let _ = writeln!(out, "  {line:>3} | {first_line}");
        for finding in findings
            .iter()
            .filter(|finding| finding.statement == Some(*index))
        {
            let _ = writeln!(
                out,
                "      > {} {}:{}: {}",
                finding.severity, finding.line, finding.column, finding.message
            );
        }
    }
    for finding in findings
        .iter()
        .filter(|finding| finding.statement.is_none())
    {
        let _ = writeln!(
            out,
            "      > {} {}:{}: {}",
            finding.severity, finding.line, finding.column, finding.message
        );
    }
    (out, findings.len())
}

#[test]
fn every_rule_example_fires_and_its_use_instead_is_quiet() {
    let mut failures = Vec::new();
    for rule in registry() {
        let doc = rule.doc();
        let id = doc.id.as_str();
        let mut rendered = String::from("## Example\n");
        match section(doc, "Example") {
            Some(example) => {
                let (text, count) = lint_section(doc, &example);
                rendered.push_str(&text);
                if count == 0 {
                    failures.push(format!("{id}: its `## Example` does not fire it"));
                }
            }
            None => failures.push(format!("{id}: its `## Example` has no ```sql block")),
        }
        rendered.push_str("\n## Use instead\n");
        match section(doc, "Use instead") {
            Some(instead) => {
                let (text, count) = lint_section(doc, &instead);
                rendered.push_str(&text);
                if count > 0 {
                    failures.push(format!(
                        "{id}: its `## Use instead` fires it {count} time(s)"
                    ));
                }
            }
            None => rendered.push_str("(no SQL: the advice is prose)\n"),
        }
        // A rule shared with MySQL/MariaDB documents those dialects in sections of their own.
        for (heading, must_fire) in [("MySQL example", true), ("MySQL use instead", false)] {
            if let Some(mysql) = section(doc, heading) {
                assert_ne!(
                    mysql.dialect,
                    Dialect::Postgres,
                    "{id}: `## {heading}` needs a mysql or mariadb fence"
                );
                let (text, count) = lint_section(doc, &mysql);
                let _ = write!(rendered, "\n## {heading}\n{text}");
                if must_fire && count == 0 {
                    failures.push(format!("{id}: its `## {heading}` does not fire it"));
                }
                if !must_fire && count > 0 {
                    failures.push(format!("{id}: its `## {heading}` fires it {count} time(s)"));
                }
            }
        }
        insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(format!("doc-example-{id}"), rendered);
        });
    }
    assert!(
        failures.is_empty(),
        "rule docs that do not behave:\n{}",
        failures.join("\n")
    );
}
