//! Findings point at the column or constraint they are about, whether the file parsed in one piece or had to
//! be split around a syntax error (node locations are then relative to each statement).

use tidegate_lint::{Config, Session};

fn position(sql: &str, rule: &str) -> (usize, usize, usize, usize) {
    let config = Config::default();
    let report = Session::new(&config, None).lint("positions.sql", sql, false);
    let finding = report
        .findings
        .iter()
        .find(|finding| finding.rule.as_str() == rule)
        .unwrap_or_else(|| panic!("no {rule} finding in {:#?}", report.findings));
    (
        finding.line,
        finding.column,
        finding.end_line,
        finding.end_column,
    )
}

const TABLE: &str =
    "CREATE TABLE events (\n    id bigint PRIMARY KEY,\n    created_at timestamp NOT NULL\n);\n";

#[test]
fn column_position_in_a_file_that_parses() {
    assert_eq!(position(TABLE, "prefer-timestamptz"), (3, 5, 3, 33));
}

#[test]
fn column_position_after_a_syntax_error() {
    let sql = format!("ALTER TABLE x ADD COLUMN;\n{TABLE}");
    assert_eq!(position(&sql, "prefer-timestamptz"), (4, 5, 4, 33));
    assert_eq!(position(&sql, "syntax-error"), (1, 1, 1, 24));
}

#[test]
fn constraint_position_within_a_multi_line_alter() {
    let sql = "-- c\nALTER TABLE orders\n    ADD CONSTRAINT orders_total CHECK (total > 0);\n";
    assert_eq!(
        position(sql, "check-constraint-without-not-valid"),
        (3, 9, 3, 49)
    );
}
