//! The database seam against a real PostgreSQL: parameters bind to the types the server inferred, rows are read by
//! column name, every error class the engine decides on is what the server's code means, and the catalog and health
//! queries of the dialect return typed rows.

use std::time::Duration;

use tidegate_backfill::dialect::{dialect_for, BatchShape, TableKind};
use tidegate_backfill::spec::Operation;
use tidegate_db::connect::ConnectionConfig;
use tidegate_db::driver::{Driver, ErrorClass, Family, Session, SessionExt, Value};
use tidegate_testkit::{PrivateCluster, TestDatabase};

async fn open(db: &TestDatabase) -> Box<dyn Session> {
    ConnectionConfig::from_url(db.url())
        .unwrap()
        .open()
        .await
        .unwrap()
}

#[tokio::test]
async fn values_bind_to_the_inferred_types_and_rows_read_by_name() {
    let db = TestDatabase::create().await;
    let session = open(&db).await;
    assert_eq!(session.family(), Family::Postgres);
    let row = session
        .query_one(
            "SELECT $1::int2 + 1 AS small, $2::int4 + 1 AS normal, $3::int8 + 1 AS big, $4::float8 AS ratio, \
             $5::text AS name, $6::text[] AS list, $7::bool AS flag, $8::text AS missing, $9::oid AS oid",
            &[
                Value::Int(1),
                Value::Int(2),
                Value::Int(i64::from(i32::MAX) + 1),
                Value::Float(0.5),
                "orders".into(),
                vec!["a".to_string(), "b".to_string()].into(),
                true.into(),
                Value::Null,
                Value::Int(16384),
            ],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<i64>("small").unwrap(), 2);
    assert_eq!(row.get::<i32>("normal").unwrap(), 3);
    assert_eq!(row.get::<i64>("big").unwrap(), i64::from(i32::MAX) + 2);
    assert_eq!(row.get::<f64>("ratio").unwrap(), 0.5);
    assert_eq!(row.get::<String>("name").unwrap(), "orders");
    assert_eq!(row.get::<Vec<String>>("list").unwrap(), vec!["a", "b"]);
    assert!(row.get::<bool>("flag").unwrap());
    assert_eq!(row.get::<Option<String>>("missing").unwrap(), None);
    assert_eq!(row.get::<u32>("oid").unwrap(), 16384);

    // A reader that disagrees with its query is an error naming the column, not a panic or a wrong value.
    let wrong = row.get::<bool>("name").unwrap_err();
    assert_eq!(wrong.column, "name");
    let absent = row.get::<i64>("nope").unwrap_err();
    assert!(absent.problem.contains("small, normal, big"), "{absent}");
    // An int that does not fit the placeholder's type is refused by the driver, before the server.
    let overflow = session
        .query_one("SELECT $1::int2 AS v", &[Value::Int(1 << 20)])
        .await
        .unwrap_err();
    assert_eq!(overflow.class, ErrorClass::Other, "{overflow}");

    // Prepared statements run on the session that prepared them.
    let prepared = session
        .prepare("SELECT $1::text || '!' AS shout")
        .await
        .unwrap();
    let row = session.query_one(&prepared, &["hi".into()]).await.unwrap();
    assert_eq!(row.get::<String>("shout").unwrap(), "hi!");
    // The user's own SQL comes back as text, whatever its types.
    let rows = session
        .query_text("SELECT 1::int, NULL::text, now() > '2000-01-01'")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![Some("1".to_string()), None, Some("t".to_string())]]
    );
}

#[tokio::test]
async fn error_classes_follow_the_server_codes() {
    let db = TestDatabase::create().await;
    let session = open(&db).await;
    let holder = db.connect().await;
    session
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();

    let duplicate = session
        .batch_execute("INSERT INTO t VALUES (1), (1)")
        .await
        .unwrap_err();
    assert_eq!(duplicate.class, ErrorClass::UniqueViolation);
    assert_eq!(duplicate.code(), Some("23505"));

    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let waited = session
        .batch_execute("SET lock_timeout = '50ms'; SELECT * FROM t")
        .await
        .unwrap_err();
    assert_eq!(waited.class, ErrorClass::LockTimeout, "{waited}");
    assert!(waited.class.is_lock_conflict());
    holder.batch_execute("ROLLBACK").await.unwrap();

    let slow = session
        .batch_execute("SET statement_timeout = '50ms'; SELECT pg_sleep(2)")
        .await
        .unwrap_err();
    assert_eq!(slow.class, ErrorClass::StatementTimeout, "{slow}");

    let typo = session.batch_execute("SELEC 1").await.unwrap_err();
    assert_eq!(typo.class, ErrorClass::Other);
    assert_eq!(typo.code(), Some("42601"));
}

#[tokio::test]
async fn a_killed_server_is_a_lost_connection() {
    let cluster = PrivateCluster::start();
    let session = ConnectionConfig::from_url(&cluster.url())
        .unwrap()
        .open()
        .await
        .unwrap();
    session.batch_execute("SELECT 1").await.unwrap();
    cluster.kill9();
    let lost = session.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(lost.class, ErrorClass::ConnectionLost, "{lost}");
    assert!(session.is_closed() || lost.is_connection_lost());
}

#[tokio::test]
async fn the_dialect_reads_the_catalog_and_health_into_typed_rows() {
    let db = TestDatabase::create().await;
    let session = open(&db).await;
    session
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, code text NOT NULL, note text); \
             CREATE UNIQUE INDEX orders_code ON orders (code); CREATE VIEW v AS SELECT 1 AS one; \
             INSERT INTO orders SELECT g, 'c' || g, NULL FROM generate_series(1, 10) g; ANALYZE orders",
        )
        .await
        .unwrap();
    let d = dialect_for(session.family()).unwrap();
    let table = d
        .resolve_table(session.as_ref(), "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (table.schema.as_str(), table.name.as_str()),
        ("public", "orders")
    );
    assert_eq!(table.kind, TableKind::Table);
    assert_eq!(table.estimated_rows, Some(10));
    assert!(table.may_update && table.may_delete);
    let view = d
        .resolve_table(session.as_ref(), "v")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.kind, TableKind::Other("v".into()));
    assert!(d
        .resolve_table(session.as_ref(), "nothing_here")
        .await
        .unwrap()
        .is_none());

    let columns = d.columns(session.as_ref(), &table).await.unwrap();
    let described: Vec<(&str, &str, bool)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str(), c.not_null))
        .collect();
    assert_eq!(
        described,
        vec![
            ("id", "bigint", true),
            ("code", "text", true),
            ("note", "text", false)
        ]
    );
    let indexes = d.unique_indexes(session.as_ref(), &table).await.unwrap();
    assert_eq!(indexes.len(), 2);
    assert!(indexes[0].primary && indexes[0].usable);
    assert_eq!(indexes[0].columns, vec!["id"]);
    assert_eq!(indexes[1].name, "orders_code");
    assert!(indexes[1].all_not_null && !indexes[1].primary);

    let writable = d.writable(session.as_ref()).await.unwrap();
    assert!(!writable.in_recovery && !writable.read_only);
    let pid = d.backend_pid(session.as_ref()).await.unwrap();
    assert!(pid > 0);

    // Another session holding a lock on the table is named, with its mode; our own pids are left out.
    let holder = db.connect().await;
    holder
        .batch_execute(
            "SET application_name = 'holder'; BEGIN; LOCK TABLE orders IN ROW EXCLUSIVE MODE",
        )
        .await
        .unwrap();
    let shape = BatchShape {
        schema: "public".into(),
        table: "orders".into(),
        key_columns: vec!["id".into()],
        key_types: vec!["bigint".into()],
        operation: Operation::Delete,
        predicate: None,
    };
    let holders = d
        .lock_holders(session.as_ref(), &shape, &[pid])
        .await
        .unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0].application_name, "holder");
    assert_eq!(holders[0].mode, Some(tidegate_sql::LockLevel::RowExclusive));
    assert!(holders[0].transaction_age_seconds.is_some());
    let oldest = d
        .oldest_transaction(session.as_ref(), &[pid])
        .await
        .unwrap()
        .expect("the holder's transaction is open");
    assert_eq!(oldest.pid, holders[0].pid);
    let excluded = d
        .oldest_transaction(session.as_ref(), &[pid, holders[0].pid])
        .await
        .unwrap();
    assert!(excluded.is_none(), "{excluded:?}");

    // Nobody is blocked by us; no replicas on a scratch server.
    assert_eq!(d.blocked_by_us(session.as_ref(), &[pid]).await.unwrap(), 0);
    let lag = d.replica_lag(session.as_ref()).await.unwrap();
    assert_eq!(
        (lag.replicas, lag.hidden, lag.max_lag),
        (0, 0, Duration::ZERO)
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
}
