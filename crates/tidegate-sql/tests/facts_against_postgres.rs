//! The lock facts checked against a real PostgreSQL: for each statement, the lock the analysis predicts on each
//! table must be the strongest lock the server's backend holds on it (`pg_locks`) right after running the
//! statement inside a transaction, and the predicted rewrite must match a change of the table's relfilenode.
//!
//! Runs in a fresh database of the test harness's throwaway cluster (or of `TIDEGATE_TEST_DATABASE_URL`); the facts
//! are checked for that server's major version. Statements that cannot run in a
//! transaction block (`CONCURRENTLY`, `VACUUM FULL`) cannot be observed this way and are not listed.

use tidegate_sql::{analyze_sql, Catalog, LockLevel, MigrationSettings, PgVersion, TableName};

/// (setup, statement, tables whose lock and rewrite are checked)
const CASES: &[(&str, &str, &[&str])] = &[
    ("", "ALTER TABLE t ADD COLUMN c text", &["t"]),
    ("", "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0", &["t"]),
    ("", "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()", &["t"]),
    ("", "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now()", &["t"]),
    ("", "ALTER TABLE t ADD COLUMN c bigserial", &["t"]),
    ("", "ALTER TABLE t ADD COLUMN c bigint GENERATED ALWAYS AS (id * 2) STORED", &["t"]),
    ("", "ALTER TABLE t ADD COLUMN c bigint GENERATED ALWAYS AS IDENTITY", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN n TYPE bigint", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN v TYPE varchar(50)", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN v TYPE text", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN v TYPE varchar(5)", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN amount TYPE numeric(14,2)", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN n SET NOT NULL", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN n DROP NOT NULL", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN n SET DEFAULT 1", &["t"]),
    ("", "ALTER TABLE t DROP COLUMN n", &["t"]),
    ("", "ALTER TABLE t RENAME COLUMN n TO m", &["t"]),
    ("", "ALTER TABLE t ADD CONSTRAINT n_positive CHECK (n > 0)", &["t"]),
    ("", "ALTER TABLE t ADD CONSTRAINT n_positive CHECK (n > 0) NOT VALID", &["t"]),
    (
        "ALTER TABLE t ADD CONSTRAINT n_positive CHECK (n > 0) NOT VALID",
        "ALTER TABLE t VALIDATE CONSTRAINT n_positive",
        &["t"],
    ),
    (
        "",
        "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID",
        &["t", "parent"],
    ),
    (
        "",
        "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id)",
        &["t", "parent"],
    ),
    ("", "ALTER TABLE t ADD CONSTRAINT t_v_key UNIQUE (v)", &["t"]),
    (
        "CREATE UNIQUE INDEX t_v_idx ON t (v)",
        "ALTER TABLE t ADD CONSTRAINT t_v_key UNIQUE USING INDEX t_v_idx",
        &["t"],
    ),
    ("", "ALTER TABLE t DROP CONSTRAINT t_pkey", &["t"]),
    ("", "ALTER TABLE t SET UNLOGGED", &["t"]),
    ("", "ALTER TABLE t DISABLE TRIGGER ALL", &["t"]),
    ("", "ALTER TABLE t SET (fillfactor = 70)", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN n SET STATISTICS 500", &["t"]),
    ("", "ALTER TABLE t ADD COLUMN c bigint REFERENCES parent (id)", &["t", "parent"]),
    ("", "ALTER TABLE t ADD COLUMN c text UNIQUE", &["t"]),
    ("", "ALTER TABLE t ALTER COLUMN v TYPE varchar", &["t"]),
    ("", "ALTER TABLE t REPLICA IDENTITY FULL", &["t"]),
    ("", "ALTER TABLE t ENABLE ROW LEVEL SECURITY", &["t"]),
    ("", "ALTER TABLE t OWNER TO CURRENT_USER", &["t"]),
    ("", "ANALYZE t", &["t"]),
    ("", "COMMENT ON TABLE t IS 'orders'", &["t"]),
    ("", "COMMENT ON COLUMN t.n IS 'count'", &["t"]),
    ("", "CREATE VIEW tv AS SELECT * FROM t", &["t"]),
    ("", "CREATE TABLE t_copy AS SELECT * FROM t", &["t"]),
    ("", "CREATE INDEX t_n ON t (n)", &["t"]),
    ("CREATE INDEX t_n ON t (n)", "DROP INDEX t_n", &["t"]),
    ("", "REINDEX TABLE t", &["t"]),
    ("", "CLUSTER t USING t_pkey", &["t"]),
    ("", "TRUNCATE t", &["t"]),
    ("", "UPDATE t SET n = n + 1", &["t"]),
    ("", "DELETE FROM t WHERE id = 1", &["t"]),
    ("", "INSERT INTO t (id, n) VALUES (10, 1)", &["t"]),
    ("", "INSERT INTO parent SELECT id + 100 FROM t", &["parent", "t"]),
    ("", "SELECT * FROM t", &["t"]),
    ("", "LOCK TABLE t IN SHARE MODE", &["t"]),
    (
        "",
        "CREATE TRIGGER t_noop BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
        &["t"],
    ),
    (
        "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t",
        "REFRESH MATERIALIZED VIEW mv",
        &["mv"],
    ),
    (
        "CREATE TABLE p (id bigint, at date) PARTITION BY RANGE (at); CREATE TABLE p2026 (id bigint, at date)",
        "ALTER TABLE p ATTACH PARTITION p2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        &["p", "p2026"],
    ),
    (
        "CREATE TABLE p (id bigint, at date) PARTITION BY RANGE (at); CREATE TABLE p2026 PARTITION OF p FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        "ALTER TABLE p DETACH PARTITION p2026",
        &["p"],
    ),
];

const BASE_SCHEMA: &str = "
    CREATE TABLE parent (id bigint PRIMARY KEY);
    INSERT INTO parent VALUES (1), (2);
    CREATE TABLE t (id bigint PRIMARY KEY, n int, v varchar(20), amount numeric(10,2), parent_id bigint);
    INSERT INTO t VALUES (1, 1, 'a', 1.5, 1), (2, 2, 'b', 2.5, 2);
";

/// `AccessExclusiveLock` (pg_locks) → [`LockLevel::AccessExclusive`].
fn level_from_pg_locks(mode: &str) -> Option<LockLevel> {
    let words = mode.strip_suffix("Lock")?;
    let mut name = String::new();
    for (index, c) in words.char_indices() {
        if c.is_uppercase() && index > 0 {
            name.push(' ');
        }
        name.push(c.to_ascii_uppercase());
    }
    LockLevel::from_sql_name(&name)
}

#[tokio::test]
async fn lock_and_rewrite_facts_match_a_real_server() {
    let db = tidegate_testkit::TestDatabase::create().await;
    let client = db.connect().await;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .expect("server version")
        .get(0);
    let pg_version = PgVersion(u32::try_from(version / 10_000).expect("version"));
    let settings = MigrationSettings {
        pg_version,
        framework_transaction: false,
    };
    let mut mismatches = Vec::new();
    for (setup, statement, tables) in CASES {
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS tidegate_facts CASCADE; CREATE SCHEMA tidegate_facts; \
                 SET search_path = tidegate_facts, public; {BASE_SCHEMA} {setup};"
            ))
            .await
            .unwrap_or_else(|error| panic!("setup for `{statement}`: {error}"));
        let mut catalog = Catalog::new();
        analyze_sql(BASE_SCHEMA, settings, &mut catalog);
        analyze_sql(setup, settings, &mut catalog);
        let migration = analyze_sql(statement, settings, &mut catalog);
        let analysed = &migration.statements()[0];

        let mut before = Vec::new();
        for table in *tables {
            let filenode: Option<u32> = client
                .query_one(
                    "SELECT pg_relation_filenode($1::text::regclass)::oid",
                    &[&table.to_string()],
                )
                .await
                .expect("filenode")
                .get(0);
            before.push(filenode);
        }
        client.batch_execute("BEGIN").await.expect("begin");
        client
            .batch_execute(statement)
            .await
            .unwrap_or_else(|error| panic!("`{statement}`: {error}"));
        for (table, filenode_before) in tables.iter().zip(before) {
            let rows = client
                .query(
                    "SELECT l.mode, pg_relation_filenode(c.oid)::oid FROM pg_locks l \
                     JOIN pg_class c ON c.oid = l.relation \
                     WHERE l.locktype = 'relation' AND l.pid = pg_backend_pid() \
                       AND c.oid = $1::text::regclass",
                    &[&table.to_string()],
                )
                .await
                .expect("pg_locks");
            let held = rows
                .iter()
                .filter_map(|row| level_from_pg_locks(row.get::<_, &str>(0)))
                .max();
            let filenode_after: Option<u32> = rows.first().and_then(|row| row.get(1));
            // TRUNCATE swaps in a new, empty file: a new relfilenode, but no copy of the rows, which is what
            // tidegate's `rewrite` means (a duration proportional to the table's size).
            let rewritten = !rows.is_empty()
                && filenode_before != filenode_after
                && !statement.starts_with("TRUNCATE");
            let name = TableName::new(None, table);
            let predicted = analysed.lock_on(&name);
            let predicted_rewrite = analysed
                .effects
                .iter()
                .any(|effect| effect.table.key() == name.key() && effect.rewrite);
            if held != predicted || rewritten != predicted_rewrite {
                mismatches.push(format!(
                    "`{statement}` on {table}: server holds {held:?} (rewrite: {rewritten}), \
                     tidegate predicts {predicted:?} (rewrite: {predicted_rewrite})"
                ));
            }
        }
        client.batch_execute("ROLLBACK").await.expect("rollback");
    }
    client
        .batch_execute("DROP SCHEMA IF EXISTS tidegate_facts CASCADE")
        .await
        .expect("cleanup");
    println!(
        "checked {} statements against {pg_version} ({version})",
        CASES.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} disagreement(s) with {pg_version}:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
