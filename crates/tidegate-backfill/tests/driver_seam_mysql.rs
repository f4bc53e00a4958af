//! The database seam's MySQL-family driver against a real MariaDB (from the machine's binaries, through the test
//! kit): values both ways, rows by column name, prepared statements, the server's error numbers and their
//! classes, a lost server, and `dialect_for` choosing the MySQL dialect for the family (tests/backfill_mysql.rs
//! runs the engine on it).

use std::time::Duration;

use tidegate_backfill::dialect::dialect_for;
use tidegate_db::driver::{Driver, ErrorClass, Family, SessionExt, Value};
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_rows_and_prepared_statements_cross_the_seam() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    assert_eq!(config.family(), Family::MySql);
    let session = config.open().await.unwrap();
    assert_eq!(session.family(), Family::MySql);
    session
        .batch_execute(
            "create table items (id bigint primary key, note varchar(20), amount decimal(8,2), n int not null default 0) engine=innodb; \
             insert into items (id, note, amount) values (1, 'one', 1.50), (2, NULL, 2.25), (3, 'three', NULL)",
        )
        .await
        .unwrap();
    // Keys cross the seam as text; the server converts them to the column's type.
    let changed = session
        .run(
            "update items set n = n + 1 where id > ? and id <= ?",
            &[Value::Text("1".into()), Value::Text("3".into())],
        )
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let rows = session
        .rows("select id, note, amount, n from items order by id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get::<i64>("id").unwrap(), 1);
    assert_eq!(rows[0].get::<String>("note").unwrap(), "one");
    assert_eq!(rows[1].get::<Option<String>>("note").unwrap(), None);
    assert_eq!(rows[1].get::<String>("amount").unwrap(), "2.25");
    assert_eq!(rows[2].get::<i64>("n").unwrap(), 1);
    let prepared = session
        .prepare("select count(*) as matching from items where n = ?")
        .await
        .unwrap();
    let row = session
        .query_one(&prepared, &[Value::Int(1)])
        .await
        .unwrap();
    assert_eq!(row.get::<i64>("matching").unwrap(), 2);
    let text = session.query_text("select 'x', NULL, 7").await.unwrap();
    assert_eq!(text, vec![vec![Some("x".into()), None, Some("7".into())]]);
    // The password never shows.
    let with_password =
        MySqlConfig::from_url(&server.url().replace("root@", "root:hunter2@")).unwrap();
    assert!(!with_password.redacted().contains("hunter2"));
    assert!(!format!("{with_password:?}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_the_server_number_and_are_classed_for_retries() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let a = config.open().await.unwrap();
    let b = config.open().await.unwrap();
    a.batch_execute("create table t (id int primary key) engine=innodb; insert into t values (1)")
        .await
        .unwrap();
    let duplicate = a.run("insert into t values (1)", &[]).await.unwrap_err();
    assert_eq!(duplicate.server_code, Some(1062));
    assert_eq!(duplicate.class, ErrorClass::UniqueViolation);
    assert_eq!(duplicate.code(), Some("23000"));
    let missing = a
        .rows("select * from no_such_table", &[])
        .await
        .unwrap_err();
    assert_eq!(missing.server_code, Some(1146));
    assert_eq!(missing.class, ErrorClass::Other);
    assert_eq!(missing.code(), Some("42S02"));
    // A row lock held by another transaction: 1205 after innodb_lock_wait_timeout, a lock timeout to retry.
    a.batch_execute("start transaction; select * from t where id = 1 for update")
        .await
        .unwrap();
    b.batch_execute("set session innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let waited = b
        .run("update t set id = 2 where id = 1", &[])
        .await
        .unwrap_err();
    assert_eq!(waited.server_code, Some(1205), "{waited}");
    assert_eq!(waited.class, ErrorClass::LockTimeout);
    a.batch_execute("rollback").await.unwrap();
    // A killed server: the connection is lost (reconnect and resume), and the session says it is closed.
    server.kill9();
    let lost = a.rows("select 1", &[]).await.unwrap_err();
    assert_eq!(lost.class, ErrorClass::ConnectionLost, "{lost}");
    assert!(a.is_closed());
    server.start_again();
    let again = tokio::time::timeout(Duration::from_secs(30), config.open())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again
            .query_one("select count(*) as n from t", &[])
            .await
            .unwrap()
            .get::<i64>("n")
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_permanent_and_the_family_has_its_dialect() {
    let server = PrivateMariaDb::start();
    let refused = MySqlConfig::from_url(&server.url().replace("root@", "nobody:wrong@"))
        .unwrap()
        .open()
        .await
        .err()
        .expect("an unknown user is refused");
    assert_eq!(refused.server_code, Some(1045));
    assert_eq!(
        refused.class,
        ErrorClass::Other,
        "retrying cannot fix a refusal"
    );
    let dialect = dialect_for(Family::MySql).expect("the MySQL dialect");
    assert_eq!(dialect.family(), Family::MySql);
    assert_eq!(dialect.quote_ident("items"), "`items`");
}
