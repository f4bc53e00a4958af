//! The contract of apply's lint gate, for every error-level rule: one statement of that kind on a populated table
//! (above small_table_rows) is either run in its safe form, or refused before anything changes. Never as written.
//! The list is checked against the registry, so a new error rule without a case here fails this test.

use std::path::Path;
use std::process::{Command, Output};

use tidegate_lint::{registry, RuleId, Severity};
use tidegate_testkit::behaviour::schema_dump;
use tidegate_testkit::TestDatabase;

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

/// 20,000 rows: twice the default small_table_rows.
const SETUP: &str = "
CREATE TYPE mood AS ENUM ('sad');
CREATE TABLE customers (id bigint PRIMARY KEY, tier text);
CREATE TABLE orders (id bigint PRIMARY KEY, order_status text, customer_id bigint, total numeric, m mood);
CREATE TABLE events (id bigint, payload text);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE DOMAIN amount AS numeric;
CREATE TABLE payments (id bigint PRIMARY KEY, paid amount);
INSERT INTO payments SELECT g, g FROM generate_series(1, 20000) g;
INSERT INTO customers SELECT g, 'gold' FROM generate_series(1, 20000) g;
INSERT INTO orders SELECT g, 'new', g % 1000 + 1, g % 50 + 1, 'sad' FROM generate_series(1, 20000) g;
INSERT INTO events SELECT g, 'p' FROM generate_series(1, 20000) g;
ANALYZE;
";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Refused: exit 2, the rule named, nothing changed.
    Refused,
    /// Runs, in the safe form apply writes.
    Rewritten,
    /// Runs as a batched backfill (UPDATE) or batched delete.
    Backfill,
    /// Runs as written, because the way apply runs every migration removes the hazard (its own transaction,
    /// outside a transaction, lock_timeout).
    HandledByPhases,
}

fn cases() -> Vec<(RuleId, &'static str, Expect)> {
    use Expect::*;
    use RuleId::*;
    vec![
        (AddColumnDefaultRewrite, "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();", Rewritten),
        (AddColumnSerial, "ALTER TABLE orders ADD COLUMN seq serial;", Refused),
        (AddColumnStoredGenerated, "ALTER TABLE orders ADD COLUMN doubled numeric GENERATED ALWAYS AS (total * 2) STORED;", Refused),
        (AlterDomainAddConstraint, "ALTER DOMAIN amount ADD CONSTRAINT amount_positive CHECK (VALUE > 0);", Refused),
        (DropDatabase, "DROP DATABASE archive;", Refused),
        (AddRequiredColumn, "ALTER TABLE orders ADD COLUMN region text NOT NULL;", Refused),
        (AlterColumnTypeRewrite, "ALTER TABLE orders ALTER COLUMN customer_id TYPE int;", Refused),
        (CheckConstraintWithoutNotValid, "ALTER TABLE orders ADD CONSTRAINT a_pos CHECK (total > 0);", Rewritten),
        (ConcurrentlyInTransaction, "BEGIN;\nCREATE INDEX CONCURRENTLY orders_c ON orders (order_status);\nCOMMIT;", HandledByPhases),
        (CreateIndexNonConcurrently, "CREATE INDEX orders_s ON orders (order_status);", Rewritten),
        (DropPrimaryKey, "ALTER TABLE orders DROP CONSTRAINT orders_pkey;", Refused),
        (EnumAddValueInTransaction, "BEGIN;\nALTER TYPE mood ADD VALUE 'happy';\nUPDATE orders SET m = 'happy' WHERE id = 1;\nCOMMIT;", HandledByPhases),
        (ExclusionConstraint, "ALTER TABLE orders ADD CONSTRAINT no_overlap EXCLUDE USING btree (customer_id WITH =);", Refused),
        (ForeignKeyWithoutNotValid, "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers (id);", Rewritten),
        (PrimaryKeyWithoutIndex, "ALTER TABLE events ADD PRIMARY KEY (id);", Rewritten),
        (ReindexNonConcurrently, "REINDEX TABLE orders;", Rewritten),
        (RenameColumn, "ALTER TABLE orders RENAME COLUMN total TO amount;", Refused),
        (RenameTable, "ALTER TABLE orders RENAME TO purchases;", Refused),
        (SchemaChangeWithBackfill, "ALTER TABLE orders ADD COLUMN s2 text;\nUPDATE orders SET s2 = order_status;", Backfill),
        (SetNotNullScan, "ALTER TABLE orders ALTER COLUMN order_status SET NOT NULL;", Rewritten),
        (SyntaxError, "ALTER TABLE orders ADD COLUMNN x int;", Refused),
        (TableRewriteCommand, "VACUUM FULL orders;", Refused),
        (TruncateCascade, "TRUNCATE orders CASCADE;", Refused),
        (UnbatchedDelete, "DELETE FROM orders WHERE order_status = 'cancelled';", Backfill),
        (UnbatchedInsertSelect, "INSERT INTO events SELECT id, order_status FROM orders;", Refused),
        (UnbatchedUpdate, "UPDATE orders SET order_status = lower(order_status);", Backfill),
        (UniqueConstraintWithoutIndex, "ALTER TABLE orders ADD CONSTRAINT u UNIQUE (customer_id, id);", Rewritten),
        (ValidateInSameTransaction, "BEGIN;\nALTER TABLE orders ADD CONSTRAINT p CHECK (total > 0) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT p;\nCOMMIT;", HandledByPhases),
    ]
}

fn apply(dir: &Path, url: &str, extra: &[&str]) -> Output {
    Command::new(TIDEGATE)
        .args(["apply", dir.to_str().unwrap(), "--db", url])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn every_error_rule_has_a_case() {
    let covered: Vec<RuleId> = cases().iter().map(|(rule, _, _)| *rule).collect();
    // apply runs PostgreSQL migrations only (MySQL/MariaDB apply is issue 15's item 5): the MySQL-only error
    // rule has no PostgreSQL statement to refuse.
    let mysql_only = [RuleId::MysqlAlterCopy];
    for rule in registry() {
        let doc = rule.doc();
        if doc.default_severity == Severity::Error && !mysql_only.contains(&doc.id) {
            assert!(covered.contains(&doc.id), "{} has no case here", doc.id);
        }
    }
    for rule in &covered {
        assert_eq!(
            tidegate_lint::rule(*rule).doc().default_severity,
            Severity::Error,
            "{rule}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_error_level_statement_runs_as_written_on_a_populated_table() {
    let template = TestDatabase::create().await;
    template.connect().await.batch_execute(SETUP).await.unwrap();
    let mut failures = Vec::new();
    for (rule, sql, expect) in cases() {
        let db = template.copy().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0001_case.sql"), format!("{sql}\n")).unwrap();
        let before = schema_dump(db.url()).await;

        let plan = apply(dir.path(), db.url(), &["--dry-run", "--format", "json"]);
        let output = apply(dir.path(), db.url(), &[]);
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        let after = schema_dump(db.url()).await;
        let outcome = match expect {
            Expect::Refused => {
                if output.status.code() != Some(2) {
                    Err(format!(
                        "expected a refusal (exit 2), got {:?}",
                        output.status.code()
                    ))
                } else if !log.contains(rule.as_str()) && rule != RuleId::UnbatchedInsertSelect {
                    Err("the refusal does not name the rule".to_string())
                } else if before != after {
                    Err("the refusal changed the schema".to_string())
                } else {
                    Ok(())
                }
            }
            _ => {
                let plan: serde_json::Value =
                    serde_json::from_slice(&plan.stdout).unwrap_or_default();
                let runs: Vec<String> = plan["pending"][0]["statements"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|statement| statement["runs"].as_str().map(str::to_string))
                    .collect();
                let wanted = match expect {
                    Expect::Rewritten => Some("rewritten"),
                    Expect::Backfill => Some("backfill"),
                    _ => None,
                };
                if !output.status.success() {
                    Err(format!("apply failed: {log}"))
                } else if runs.iter().any(|runs| runs == "as_written_small_table") {
                    Err(format!(
                        "a statement ran as written for a small table: {runs:?}"
                    ))
                } else if wanted.is_some_and(|wanted| !runs.iter().any(|runs| runs == wanted)) {
                    Err(format!("planned as {runs:?}, not {wanted:?}"))
                } else {
                    Ok(())
                }
            }
        };
        if let Err(why) = outcome {
            failures.push(format!("{rule} ({expect:?}) `{sql}`: {why}\n{log}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
