//! The application-compatibility rules on MySQL/MariaDB: each fires on a pre-existing table, in every spelling
//! MySQL has for the change, and is quiet on a table the same migration created and on a CHANGE that keeps the
//! column's name.

use tidegate_lint::{Config, Dialect, Session};

fn rules_fired(sql: &str) -> Vec<(String, usize)> {
    let config = Config {
        dialect: Dialect::MariaDb,
        ..Config::default()
    };
    let mut session = Session::new(&config, None);
    let report = session.lint("m.sql", sql, false);
    report
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f.rule.as_str(),
                "drop-column"
                    | "rename-column"
                    | "rename-table"
                    | "drop-table"
                    | "add-required-column"
            )
        })
        .map(|f| (f.rule.as_str().to_string(), f.line))
        .collect()
}

fn pairs(expected: &[(&str, usize)]) -> Vec<(String, usize)> {
    expected.iter().map(|(r, l)| (r.to_string(), *l)).collect()
}

#[test]
fn every_spelling_fires_on_a_pre_existing_table() {
    assert_eq!(
        rules_fired(
            "ALTER TABLE orders DROP COLUMN note;\n\
             ALTER TABLE orders RENAME COLUMN status TO state;\n\
             ALTER TABLE orders CHANGE total amount DECIMAL(10,2);\n\
             ALTER TABLE orders RENAME TO purchases;\n\
             RENAME TABLE customers TO clients;\n\
             DROP TABLE legacy;\n\
             ALTER TABLE orders ADD COLUMN currency VARCHAR(3) NOT NULL;\n\
             ALTER TABLE orders ADD COLUMN a INT NULL, ADD COLUMN b INT NOT NULL DEFAULT 0, ADD COLUMN c INT NOT NULL AFTER id;\n"
        ),
        pairs(&[
            ("drop-column", 1),
            ("rename-column", 2),
            ("rename-column", 3),
            ("rename-table", 4),
            ("rename-table", 5),
            ("drop-table", 6),
            ("add-required-column", 7),
            ("add-required-column", 8),
        ])
    );
}

#[test]
fn quiet_on_tables_the_migration_created_and_on_a_change_that_keeps_the_name() {
    assert_eq!(
        rules_fired(
            "CREATE TABLE scratch (id BIGINT PRIMARY KEY, a INT, b INT);\n\
             ALTER TABLE scratch DROP COLUMN a;\n\
             ALTER TABLE scratch RENAME COLUMN b TO c;\n\
             RENAME TABLE scratch TO scratch2;\n\
             ALTER TABLE orders CHANGE total total DECIMAL(12,2);\n\
             ALTER TABLE orders CHANGE Total total DECIMAL(12,2);\n\
             ALTER TABLE scratch2 ADD COLUMN d INT NOT NULL;\n\
             ALTER TABLE orders ADD COLUMN e INT NOT NULL DEFAULT 0, ADD COLUMN f INT NULL;\n\
             ALTER TABLE orders ADD COLUMN seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE;\n\
             ALTER TABLE orders ADD COLUMN total_cents BIGINT AS (total * 100) VIRTUAL NOT NULL;\n"
        ),
        vec![]
    );
}
