//! The plan report from injected table facts: statements joined with facts, lock hold through a transaction,
//! and the markdown a release manager pastes, asserted line by line (deterministic: no database, no clock).

use std::collections::BTreeMap;

use tidegate_plan::model::{LockHolder, Policy, TableFacts, Verdict};
use tidegate_plan::report::{
    build_report, render_json, render_markdown, render_text, tables_to_probe, PendingMigration,
    ReportHeader, TableKey,
};
use tidegate_sql::{analyze_sql, Catalog, LockLevel, MigrationSettings, PgVersion, TableSize};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

fn header() -> ReportHeader {
    ReportHeader {
        target: "postgresql://app@db.internal:5432/shop".into(),
        server_version: 16,
        pg_version: 16,
        sample_seconds: 3.0,
        history_table: true,
        applied: 1,
    }
}

fn key(name: &str) -> TableKey {
    ("public".into(), name.into())
}

fn orders() -> TableFacts {
    TableFacts {
        exists: true,
        size: TableSize::estimated(48_000_000)
            .with_heap_bytes(20 * GIB)
            .with_total_bytes(30 * GIB),
        scan_bytes_per_second: Some(200.0 * MIB as f64),
        writes_per_second: Some(350.0),
        indexes: Some(3),
        lock_holders: Vec::new(),
        long_transactions: Vec::new(),
    }
}

fn flags() -> TableFacts {
    TableFacts {
        exists: true,
        size: TableSize::exact(12)
            .with_heap_bytes(8192)
            .with_total_bytes(24576),
        scan_bytes_per_second: Some(50.0 * MIB as f64),
        writes_per_second: Some(0.0),
        indexes: Some(1),
        lock_holders: Vec::new(),
        long_transactions: Vec::new(),
    }
}

/// Analyses `migrations` in order after replaying `history`, the way `tidegate plan` does.
fn pending(history: &str, migrations: &[(&str, &str, bool)]) -> Vec<PendingMigration> {
    let mut catalog = Catalog::new();
    let settings = MigrationSettings {
        pg_version: PgVersion(16),
        framework_transaction: false,
    };
    analyze_sql(history, settings, &mut catalog);
    migrations
        .iter()
        .map(|(version, sql, framework_transaction)| PendingMigration {
            version: version.to_string(),
            path: format!("migrations/{version}.sql"),
            analyzed: analyze_sql(
                sql,
                MigrationSettings {
                    framework_transaction: *framework_transaction,
                    ..settings
                },
                &mut catalog,
            ),
        })
        .collect()
}

const HISTORY: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, status text, amount int);\n\
                       CREATE TABLE feature_flags (name text PRIMARY KEY, enabled boolean);";

#[test]
fn the_incident_migration_in_one_transaction_holds_access_exclusive_through_the_update() {
    let migrations = pending(
        HISTORY,
        &[(
            "002_status_v2",
            "ALTER TABLE orders ADD COLUMN order_status_v2 varchar(20);\n\
             UPDATE orders SET order_status_v2 = status;",
            true,
        )],
    );
    let tables = BTreeMap::from([(key("orders"), orders())]);
    let report = build_report(header(), &migrations, &tables, &Policy::default());
    let [alter, update] = report.migrations[0].statements.as_slice() else {
        panic!("two statements: {report:#?}")
    };
    // The UPDATE's own estimate: 30 GiB × 3 ÷ 200 MiB/s = 460.8 s; the ALTER's lock is held through it.
    assert!((update.estimate_seconds - 460.8).abs() < 1e-6);
    assert_eq!(update.verdict, Verdict::NeedsBatching);
    assert_eq!(alter.verdict, Verdict::Dangerous, "{:?}", alter.reasons);
    assert!((alter.effects[0].assessment.lock_hold_seconds - 460.8).abs() < 1e-6);
    assert!(alter.reasons[0].contains("held until the transaction commits"));
    assert!((alter.lock_hold_seconds - 460.8).abs() < 1e-6);
    assert!(render_text(&report).contains("<1 ms (lock held 7 min 41 s)"));

    // The same file run outside a transaction: the ALTER is a brief catalog change.
    let migrations = pending(
        HISTORY,
        &[(
            "002_status_v2",
            "ALTER TABLE orders ADD COLUMN order_status_v2 varchar(20);\n\
             UPDATE orders SET order_status_v2 = status;",
            false,
        )],
    );
    let report = build_report(header(), &migrations, &tables, &Policy::default());
    assert_eq!(report.migrations[0].statements[0].verdict, Verdict::Safe);
    assert_eq!(report.summary.verdict, Verdict::NeedsBatching);
}

#[test]
fn one_key_batch_is_safe_where_a_filtered_update_needs_batching() {
    // The same statements as lint's unbatched-update judges them: bounded is decided once, in tidegate-sql.
    let migrations = pending(
        HISTORY,
        &[(
            "003_batches",
            "UPDATE orders SET amount = 0 WHERE id IN (SELECT id FROM orders WHERE amount IS NULL ORDER BY id LIMIT 5000);\n\
             UPDATE orders SET amount = 0 WHERE id BETWEEN $1 AND $2;\n\
             UPDATE orders SET amount = 0 WHERE amount IS NULL;\n\
             DELETE FROM orders WHERE id > 100;",
            false,
        )],
    );
    let tables = BTreeMap::from([(key("orders"), orders())]);
    let report = build_report(header(), &migrations, &tables, &Policy::default());
    let verdicts: Vec<Verdict> = report.migrations[0]
        .statements
        .iter()
        .map(|statement| statement.verdict)
        .collect();
    assert_eq!(
        verdicts,
        vec![
            Verdict::Safe,
            Verdict::Safe,
            Verdict::NeedsBatching,
            Verdict::NeedsBatching
        ]
    );
    let batch = &report.migrations[0].statements[0];
    assert!(
        batch.reasons[0].contains("changes one batch of the key"),
        "{:?}",
        batch.reasons
    );
    // One batch is counted as `small_table_rows` (10,000) of 48,000,000 rows: a fraction of the whole update.
    let whole = &report.migrations[0].statements[2];
    assert!(batch.estimate_seconds > 0.0);
    assert!(batch.estimate_seconds * 1000.0 < whole.estimate_seconds);
    assert!(whole.reasons[0].contains("a WHERE clause limits it"));
}

#[test]
fn only_tables_that_exist_before_the_migration_are_probed() {
    let migrations = pending(
        HISTORY,
        &[
            (
                "002_items",
                "CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint);\n\
                 CREATE INDEX items_order ON items (order_id);\n\
                 ALTER TABLE orders ADD COLUMN note text;",
                false,
            ),
            (
                "003_items_more",
                "ALTER TABLE items ADD COLUMN qty int;",
                false,
            ),
        ],
    );
    // items is created by 002; 003 touches it as an existing table, so it is probed (and will not be found).
    assert_eq!(
        tables_to_probe(&migrations),
        vec![key("items"), key("orders")]
    );
    let tables = BTreeMap::from([(key("orders"), orders())]);
    let report = build_report(header(), &migrations, &tables, &Policy::default());
    assert_eq!(report.summary.verdict, Verdict::Safe);
    assert_eq!(report.summary.statements, 4);
    let created = &report.migrations[0].statements[1];
    assert!(created.effects[0].created_in_migration);
    let later = &report.migrations[1].statements[0];
    assert!(
        later.reasons[0].contains("not in the database yet"),
        "{later:?}"
    );
}

fn mixed_report() -> tidegate_plan::report::PlanReport {
    let migrations = pending(
        HISTORY,
        &[
            (
                "002_orders",
                "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n\
                 CREATE INDEX orders_status ON orders (status);\n\
                 UPDATE orders SET status = 'done' WHERE status = 'closed';",
                false,
            ),
            (
                "003_flags",
                "ALTER TABLE feature_flags ADD COLUMN note text;\n\
                 CREATE TABLE audit (id bigint, entry text);",
                false,
            ),
        ],
    );
    let mut busy_orders = orders();
    busy_orders.lock_holders = vec![LockHolder {
        pid: 4242,
        application_name: "billing-worker".into(),
        user: "billing".into(),
        state: "idle in transaction".into(),
        transaction_age_seconds: Some(754.0),
        query: "SELECT * FROM orders WHERE id = $1".into(),
        mode: Some(LockLevel::AccessShare),
        granted: true,
    }];
    let tables = BTreeMap::from([
        (key("orders"), busy_orders),
        (key("feature_flags"), flags()),
    ]);
    build_report(header(), &migrations, &tables, &Policy::default())
}

#[test]
fn markdown_is_a_checklist_section() {
    let markdown = render_markdown(&mixed_report());
    let lines: Vec<&str> = markdown.lines().collect();
    assert_eq!(lines[0], "### Migration risk (tidegate plan)");
    assert_eq!(
        lines[2],
        "Assessed against `postgresql://app@db.internal:5432/shop` (PostgreSQL 16), write rates sampled over 3.0 s."
    );
    assert_eq!(
        lines[4],
        "| Migration | Line | Statement | Table | Lock | Work | Estimate | Verdict |"
    );
    assert_eq!(
        lines[6],
        "| `migrations/002_orders.sql` | 1 | `ALTER TABLE orders ALTER COLUMN amount TYPE bigint` | public.orders (~48,000,000 rows, 30.0 GiB, 350 writes/s) | ACCESS EXCLUSIVE | rewrite | 7 min 41 s | **dangerous** |"
    );
    assert_eq!(
        lines[7],
        "| `migrations/002_orders.sql` | 2 | `CREATE INDEX orders_status ON orders (status)` | public.orders (~48,000,000 rows, 30.0 GiB, 350 writes/s) | SHARE | index build | 3 min 25 s | **needs a window** |"
    );
    assert_eq!(
        lines[8],
        "| `migrations/002_orders.sql` | 3 | `UPDATE orders SET status = 'done' WHERE status = 'closed'` | public.orders (~48,000,000 rows, 30.0 GiB, 350 writes/s) | ROW EXCLUSIVE | row changes | 7 min 41 s | **needs batching** |"
    );
    assert_eq!(
        lines[9],
        "| `migrations/003_flags.sql` | 1 | `ALTER TABLE feature_flags ADD COLUMN note text` | public.feature_flags (12 rows, 24.0 KiB, 0 writes/s) | ACCESS EXCLUSIVE | catalog | <1 ms | safe |"
    );
    assert_eq!(
        lines[10],
        "| `migrations/003_flags.sql` | 2 | `CREATE TABLE audit (id bigint, entry text)` | public.audit (new) | ACCESS EXCLUSIVE | new table | <1 ms | safe |"
    );
    assert_eq!(
        lines[12],
        "**Summary:** 5 statements in 2 migrations: 2 safe, 1 needs batching, 1 needs a window, 1 dangerous. Verdict: **dangerous**."
    );
    assert!(markdown.contains(
        "- `migrations/002_orders.sql` line 1: public.orders: would queue behind pid 4242 (billing-worker, idle in transaction, transaction open 12 min 34 s, holds ACCESS SHARE): SELECT * FROM orders WHERE id = $1; while it waits, every query on the table queues behind it\n"
    ), "{markdown}");
    let actions: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| line.starts_with("- [ ]"))
        .collect();
    assert_eq!(
        actions,
        [
            "- [ ] `migrations/002_orders.sql` line 1: add a new column and backfill it instead of rewriting the table",
            "- [ ] `migrations/002_orders.sql` line 1: end or wait out the transactions holding conflicting locks",
            "- [ ] `migrations/002_orders.sql` line 1: run in a maintenance window",
            "- [ ] `migrations/002_orders.sql` line 2: use CREATE INDEX CONCURRENTLY (outside a transaction)",
            "- [ ] `migrations/002_orders.sql` line 2: run in a maintenance window",
            "- [ ] `migrations/002_orders.sql` line 3: convert to a batched backfill (tidegate apply / tidegate backfill)",
        ]
    );
}

#[test]
fn text_and_json_carry_the_same_verdicts() {
    let report = mixed_report();
    let text = render_text(&report);
    assert!(text.starts_with("tidegate plan: postgresql://app@db.internal:5432/shop (PostgreSQL 16; lock facts of 16), write rates sampled over 3.0 s\n"));
    assert!(text.contains("\nmigrations/002_orders.sql\n"));
    assert!(text.contains("        do:  use CREATE INDEX CONCURRENTLY (outside a transaction)\n"));
    assert!(text.contains("    lock: pid 4242 (billing-worker, idle in transaction"));
    assert!(text.ends_with(
        "\ndangerous: 5 statements in 2 migrations: 2 safe, 1 needs batching, 1 needs a window, 1 dangerous\n"
    ));

    let json: serde_json::Value = serde_json::from_str(&render_json(&report)).unwrap();
    assert_eq!(json["summary"]["verdict"], "dangerous");
    assert_eq!(json["server_version"], 16);
    let verdicts: Vec<&str> = json["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["statements"].as_array().unwrap())
        .map(|s| s["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        [
            "dangerous",
            "needs_window",
            "needs_batching",
            "safe",
            "safe"
        ]
    );
    let first = &json["migrations"][0]["statements"][0]["effects"][0];
    assert_eq!(first["lock"], "ACCESS_EXCLUSIVE");
    assert_eq!(first["rewrite"], true);
    assert_eq!(first["blockers"][0]["pid"], 4242);
    assert_eq!(json["tables"][1]["table"], "public.orders");
    assert_eq!(json["tables"][1]["rows"], 48_000_000);
}

#[test]
fn nothing_pending_is_safe() {
    let report = build_report(header(), &[], &BTreeMap::new(), &Policy::default());
    assert_eq!(report.summary.verdict, Verdict::Safe);
    assert!(render_text(&report).contains("nothing pending"));
    assert!(render_markdown(&report).ends_with("Nothing pending.\n"));
}

#[test]
fn a_statement_on_two_tables_gets_a_row_per_table() {
    let migrations = pending(
        "CREATE TABLE customers (id bigint PRIMARY KEY);\n\
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint);",
        &[(
            "002_fk",
            "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk \
             FOREIGN KEY (customer_id) REFERENCES customers (id);\n\
             SELECT 1;",
            false,
        )],
    );
    let tables = BTreeMap::from([(key("orders"), orders()), (key("customers"), flags())]);
    let report = build_report(header(), &migrations, &tables, &Policy::default());
    let fk = &report.migrations[0].statements[0];
    let touched: Vec<&str> = fk.effects.iter().map(|e| e.table.as_str()).collect();
    assert_eq!(touched, ["public.orders", "public.customers"]);
    assert_eq!(fk.verdict, Verdict::NeedsWindow, "{:?}", fk.reasons);
    assert!(fk
        .actions
        .contains(&tidegate_plan::model::Action::AddNotValidThenValidate));
    let text = render_text(&report);
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|line| line.contains("ALTER TABLE orders ADD CONSTRAINT"))
        .expect("statement row");
    assert!(lines[first].contains("public.orders"), "{text}");
    assert!(
        lines[first + 1]
            .trim_start()
            .starts_with("public.customers"),
        "{text}"
    );
    let select = lines
        .iter()
        .find(|line| line.contains("SELECT 1"))
        .expect("a statement on no table still has a row");
    assert!(select.ends_with("safe"), "{select}");
}
