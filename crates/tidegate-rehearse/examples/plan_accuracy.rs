//! Benchmark: `tidegate plan`'s estimates against the real durations, for each kind of work it prices, with the
//! byte factors (no calibration) and with the rates `tidegate plan --calibrate` measures.
//!
//! ```text
//! cargo run --release -p tidegate-rehearse --example plan_accuracy -- [ROWS ...]   # default: 1000000 3000000
//! ```
//!
//! On a private scratch server: calibrate (tables of 100,000 and 400,000 rows), then for each size build the
//! issue's `orders` (bigint key, a secondary index on customer grown with the table, a numeric amount, two text
//! columns, a foreign key's column), read its size, index count and read rate the way plan's probe does, and for
//! each statement print plan's estimate both ways, the measured time, and the ratio. It asserts nothing.

use std::time::Instant;

use tidegate_db::connect::ConnectionConfig;
use tidegate_db::driver::Session;
use tidegate_db::table_stats;
use tidegate_plan::model::{estimate_seconds, EffectFacts, Policy, TableFacts};
use tidegate_plan::probe::ProbeOptions;
use tidegate_rehearse::calibrate;
use tidegate_sql::{lock_facts, AlterSubcommand, ConstraintKind, Operation, PgVersion, RowScope};

struct Case {
    label: &'static str,
    operation: Operation,
    rows: Option<RowScope>,
    /// Statements run before, untimed (e.g. the NOT VALID constraint a VALIDATE needs).
    setup: &'static str,
    sql: &'static str,
}

fn cases() -> Vec<Case> {
    let alter = Operation::AlterTable;
    vec![
        Case {
            label: "UPDATE every row (2 indexes)",
            operation: Operation::Update,
            rows: Some(RowScope::All),
            setup: "",
            sql: "UPDATE orders SET order_status_v2 = order_status",
        },
        Case {
            label: "DELETE every row",
            operation: Operation::Delete,
            rows: Some(RowScope::All),
            setup: "",
            sql: "DELETE FROM orders",
        },
        Case {
            label: "CREATE INDEX (numeric)",
            operation: Operation::CreateIndex {
                concurrently: false,
            },
            rows: None,
            setup: "",
            sql: "CREATE INDEX orders_amount ON orders (amount)",
        },
        Case {
            label: "ADD CHECK (validating scan)",
            operation: alter(AlterSubcommand::AddConstraint {
                kind: ConstraintKind::Check,
                not_valid: false,
                using_index: false,
            }),
            rows: None,
            setup: "",
            sql: "ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount >= 0)",
        },
        Case {
            label: "SET NOT NULL (scan)",
            operation: alter(AlterSubcommand::SetNotNull {
                proven_by_constraint: false,
            }),
            rows: None,
            setup: "",
            sql: "ALTER TABLE orders ALTER COLUMN note SET NOT NULL",
        },
        Case {
            label: "ADD FOREIGN KEY (validating)",
            operation: alter(AlterSubcommand::AddConstraint {
                kind: ConstraintKind::ForeignKey,
                not_valid: false,
                using_index: false,
            }),
            rows: None,
            setup: "",
            sql: "ALTER TABLE orders ADD CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers",
        },
        Case {
            label: "ALTER COLUMN TYPE (rewrite)",
            operation: alter(AlterSubcommand::AlterColumnType {
                binary_coercible: false,
            }),
            rows: None,
            setup: "",
            sql: "ALTER TABLE orders ALTER COLUMN n TYPE bigint",
        },
    ]
}

async fn fresh_orders(s: &dyn Session, rows: u64) {
    let customers = (rows / 100).max(1);
    s.batch_execute(&format!(
        "DROP TABLE IF EXISTS orders, customers;
         CREATE TABLE customers (id bigint PRIMARY KEY);
         INSERT INTO customers SELECT g FROM generate_series(0::int8, {customers}) g;
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(12,2) NOT NULL,
                              order_status text NOT NULL, order_status_v2 varchar(20), n int NOT NULL DEFAULT 0,
                              note text);
         CREATE INDEX orders_customer_id ON orders (customer_id);
         INSERT INTO orders (id, customer_id, amount, order_status, note)
           SELECT g, (g * 7919) % {customers}, (g % 100000) / 100.0,
                  (ARRAY['new','paid','shipped','delivered','returned'])[1 + g % 5], md5(g::text)
           FROM generate_series(1::int8, {rows}) g;"
    ))
    .await
    .expect("building orders");
    for sql in [
        "VACUUM ANALYZE orders",
        "VACUUM ANALYZE customers",
        "CHECKPOINT",
    ] {
        s.batch_execute(sql).await.expect(sql);
    }
}

/// What plan's probe would read of `orders`.
async fn facts(s: &dyn Session, major: u32) -> TableFacts {
    s.batch_execute("BEGIN").await.unwrap();
    let size = table_stats::table_size(s, "public", "orders")
        .await
        .unwrap()
        .expect("orders exists");
    let read = table_stats::timed_bounded_read(s, &size, ProbeOptions::default().read_pages, major)
        .await
        .unwrap()
        .ok();
    let indexes = table_stats::index_count(s, size.oid).await.unwrap();
    s.batch_execute("COMMIT").await.unwrap();
    TableFacts {
        exists: true,
        size: size.size,
        scan_bytes_per_second: read
            .filter(|r| r.pages > 0 && r.seconds > 0.0)
            .map(|r| (r.pages * size.block_size) as f64 / r.seconds),
        indexes: Some(indexes),
        ..TableFacts::missing()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ROWS"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000_000, 3_000_000]
    } else {
        sizes
    };
    let cluster = tidegate_testkit::PrivateCluster::start();
    let session = ConnectionConfig::from_url(&cluster.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let major = table_stats::server_major_version(&session).await.unwrap();
    let started = Instant::now();
    let calibration = calibrate::calibrate(&session, calibrate::DEFAULT_SIZES)
        .await
        .expect("calibrating");
    println!(
        "plan_accuracy: PostgreSQL {major}, calibrated in {:.1} s on {} and {} rows",
        started.elapsed().as_secs_f64(),
        calibrate::DEFAULT_SIZES[0],
        calibrate::DEFAULT_SIZES[1]
    );
    let plain = Policy::default();
    let calibrated = Policy {
        rates: Some(calibration.rates),
        ..Policy::default()
    };
    for rows in sizes {
        println!("\norders, {rows} rows:");
        println!(
            "  {:<30} {:>10} {:>12} {:>12} {:>14}",
            "statement", "actual", "bytes model", "calibrated", "calibrated/actual"
        );
        for case in cases() {
            fresh_orders(&session, rows).await;
            let table = facts(&session, major).await;
            if !case.setup.is_empty() {
                session.batch_execute(case.setup).await.unwrap();
            }
            let lock = lock_facts(case.operation, PgVersion(major));
            let effect = EffectFacts {
                operation: case.operation,
                lock: lock.lock,
                rewrite: lock.rewrite,
                scan: lock.scan,
                created_in_migration: false,
                rows: case.rows,
                held_through_seconds: 0.0,
            };
            let by_bytes = estimate_seconds(&effect, &table, &plain).0;
            let by_rates = estimate_seconds(&effect, &table, &calibrated).0;
            let began = Instant::now();
            session.batch_execute(case.sql).await.expect(case.sql);
            let actual = began.elapsed().as_secs_f64();
            println!(
                "  {:<30} {:>9.2}s {:>11.2}s {:>11.2}s {:>13.2}x",
                case.label,
                actual,
                by_bytes,
                by_rates,
                by_rates / actual.max(1e-6)
            );
        }
    }
}
