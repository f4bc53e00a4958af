//! A history of migrations written the safe way, end to end: not a single finding. This is the false-positive
//! guard: new tables, CONCURRENTLY outside transactions, NOT VALID then VALIDATE in separate transactions,
//! CHECK-assisted SET NOT NULL, expand/contract with a sync trigger, constant defaults, varchar widening,
//! bounded batches.

use tidegate_lint::{Config, Session};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_create.sql",
        "-- tidegate:ignore-file prefer-text-over-varchar order codes have a contractual maximum length
         CREATE TABLE customers (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             email text NOT NULL,
             profile jsonb,
             created_at timestamptz NOT NULL DEFAULT now()
         );
         CREATE TABLE orders (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             customer_id bigint NOT NULL REFERENCES customers (id),
             code varchar(20),
             total numeric(10,2),
             created_at timestamptz NOT NULL DEFAULT now()
         );
         CREATE INDEX orders_customer_id ON orders (customer_id);
         CREATE UNIQUE INDEX customers_email ON customers (email);",
    ),
    (
        "002_columns.sql",
        "-- tidegate:ignore-file prefer-text-over-varchar order codes have a contractual maximum length
         SET lock_timeout = '2s';
         ALTER TABLE orders ADD COLUMN note text;
         ALTER TABLE orders ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
         ALTER TABLE orders ADD COLUMN shipped_at timestamptz DEFAULT now();
         ALTER TABLE orders ALTER COLUMN code TYPE varchar(40);",
    ),
    (
        "003_index.sql",
        "CREATE INDEX CONCURRENTLY orders_created_at ON orders (created_at);
         DROP INDEX CONCURRENTLY orders_customer_id;",
    ),
    (
        "004_check_not_valid.sql",
        "SET lock_timeout = '2s';
         ALTER TABLE orders ADD CONSTRAINT orders_total_not_null CHECK (total IS NOT NULL) NOT VALID;
         ALTER TABLE orders ADD CONSTRAINT orders_customer_fk2 FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;",
    ),
    (
        "005_validate.sql",
        "ALTER TABLE orders VALIDATE CONSTRAINT orders_total_not_null;
         ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk2;",
    ),
    (
        "006_set_not_null.sql",
        "SET lock_timeout = '2s';
         ALTER TABLE orders ALTER COLUMN total SET NOT NULL;
         ALTER TABLE orders DROP CONSTRAINT orders_total_not_null;",
    ),
    (
        "007_expand.sql",
        "SET lock_timeout = '2s';
         ALTER TABLE orders ADD COLUMN status text;
         CREATE FUNCTION orders_sync_status() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.status := coalesce(NEW.status, NEW.note); RETURN NEW; END $$;
         CREATE TRIGGER orders_sync_status BEFORE INSERT OR UPDATE ON orders
             FOR EACH ROW EXECUTE FUNCTION orders_sync_status();",
    ),
    (
        "008_one_bounded_batch.sql",
        "UPDATE orders SET status = note WHERE id >= 1 AND id < 10001;",
    ),
    (
        "009_unique_via_index.sql",
        "CREATE UNIQUE INDEX CONCURRENTLY orders_code_key ON orders (code);",
    ),
    (
        "010_attach_constraint.sql",
        "SET lock_timeout = '2s';
         ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE USING INDEX orders_code_key;",
    ),
];

#[test]
fn safe_migrations_produce_no_findings() {
    let config = Config::default();
    let mut session = Session::new(&config, None);
    for (path, sql) in MIGRATIONS {
        let report = session.lint(path, sql, false);
        assert!(
            report.findings.is_empty(),
            "{path} should be quiet, got {:#?}",
            report.findings
        );
    }
}

/// The same safe patterns on tables created before the linted history (a squashed baseline, the common case):
/// the catalog learns their constraints, column types and NOT NULL from the statements that touch them.
const AFTER_A_SQUASHED_BASELINE: &[(&str, &str)] = &[
    (
        "101_check_not_valid.sql",
        "-- tidegate:ignore-file prefer-text-over-varchar invoice codes have a contractual maximum length
         SET lock_timeout = '2s';
         ALTER TABLE invoices ADD CONSTRAINT invoices_total_nn CHECK (total IS NOT NULL) NOT VALID;
         ALTER TABLE invoices ADD COLUMN code varchar(20);",
    ),
    (
        "102_validate_then_set_not_null.sql",
        "BEGIN;
         ALTER TABLE invoices VALIDATE CONSTRAINT invoices_total_nn;
         COMMIT;
         SET lock_timeout = '2s';
         BEGIN;
         ALTER TABLE invoices ALTER COLUMN total SET NOT NULL;
         ALTER TABLE invoices DROP CONSTRAINT invoices_total_nn;
         COMMIT;",
    ),
    (
        "103_widen.sql",
        "-- tidegate:ignore-file prefer-text-over-varchar invoice codes have a contractual maximum length
         SET lock_timeout = '2s';
         ALTER TABLE invoices ALTER COLUMN code TYPE varchar(40);",
    ),
    (
        "104_attach.sql",
        "SET lock_timeout = '2s';
         ALTER TABLE invoices_2026 ADD CONSTRAINT invoices_2026_bound
             CHECK (issued_at >= '2026-01-01' AND issued_at < '2027-01-01') NOT VALID;
         ALTER TABLE invoices_2026 VALIDATE CONSTRAINT invoices_2026_bound;
         ALTER TABLE invoices_by_year ATTACH PARTITION invoices_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         ALTER TABLE invoices_2026 DROP CONSTRAINT invoices_2026_bound;",
    ),
];

#[test]
fn safe_migrations_after_a_squashed_baseline_produce_no_findings() {
    let config = Config::default();
    let mut session = Session::new(&config, None);
    for (path, sql) in AFTER_A_SQUASHED_BASELINE {
        let report = session.lint(path, sql, false);
        assert!(
            report.findings.is_empty(),
            "{path} should be quiet, got {:#?}",
            report.findings
        );
    }
}
