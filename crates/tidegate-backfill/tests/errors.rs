//! Public errors keep the server's SQLSTATE, so callers (and the engine's own retry decisions) match codes, not
//! text: a refusal that retrying cannot fix is not retried like a network blip.

use std::sync::Arc;

use tidegate_backfill::engine::{self, BackfillError, BackfillOptions, RunTarget, StopHandle};
use tidegate_backfill::spec::BackfillSpec;
use tidegate_db::connect::ConnectionConfig;
use tidegate_testkit::{url_with_database, TestDatabase};

#[tokio::test]
async fn a_refused_connection_keeps_its_sqlstate_and_is_permanent() {
    let db = TestDatabase::create().await;
    let missing = url_with_database(db.url(), "tidegate_no_such_database");
    let config = ConnectionConfig::from_url(&missing).unwrap();
    let error = config.connect().await.unwrap_err();
    assert_eq!(error.sqlstate().map(|state| state.code()), Some("3D000"));
    assert!(error.is_permanent(), "{error}");

    // The engine reports the same code, as a database error, without retrying.
    let error = engine::run(
        &config,
        RunTarget::Spec(BackfillSpec::update("orders", "a = 1")),
        BackfillOptions::default(),
        Arc::new(|_| {}),
        StopHandle::default(),
    )
    .await
    .unwrap_err();
    match error {
        BackfillError::Database(error) => assert_eq!(error.code(), Some("3D000"), "{error}"),
        other => panic!("expected a database error, got {other}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_not_permanent() {
    // Nothing listens on port 1 of loopback: the server cannot answer, so there is no SQLSTATE and a retry may help.
    let config = ConnectionConfig::from_url("postgresql://postgres@127.0.0.1:1/postgres").unwrap();
    let error = config.connect().await.unwrap_err();
    assert!(error.sqlstate().is_none(), "{error}");
    assert!(!error.is_permanent(), "{error}");
}
