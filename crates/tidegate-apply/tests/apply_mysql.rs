//! `tidegate apply` on a real throwaway MariaDB (the test kit's, never the machine's service): a multi-migration
//! directory end to end, the metadata-lock queue an idle transaction makes, the algorithm the facts add, a COPY
//! refused, a resume after a crash between a DDL and its record, and bad input refused before any change.
//! Behaviour is asserted; the one bound on latency is the contract (`--lock-timeout` plus a margin).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_apply::executor::{ApplyEvent, ApplySink};
use tidegate_apply::mysql::apply_mysql;
use tidegate_apply::{ApplyError, ApplyOptions};
use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

fn options(lock_timeout_s: u64) -> ApplyOptions {
    ApplyOptions {
        lock_timeout: Duration::from_secs(lock_timeout_s),
        retries: 30,
        lock_wait: Duration::from_secs(5),
        ..ApplyOptions::default()
    }
}

fn collect() -> (ApplySink, Arc<Mutex<Vec<ApplyEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let kept = events.clone();
    (
        Arc::new(move |event: &ApplyEvent| kept.lock().unwrap().push(event.clone())),
        events,
    )
}

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

async fn session(config: &MySqlConfig) -> Box<dyn Session> {
    config.open().await.unwrap()
}

async fn make_items(s: &dyn Session, rows: i64) {
    s.batch_execute(&format!(
        "create table items (id bigint primary key, n int not null default 0) engine=innodb;
         insert into items (id, n) select seq, seq from seq_1_to_{rows};
         analyze table items"
    ))
    .await
    .unwrap();
}

async fn columns(s: &dyn Session, table: &str) -> Vec<String> {
    s.rows(
        &format!(
            "select column_name as c from information_schema.columns where table_schema = database() \
             and table_name = '{table}' order by ordinal_position"
        ),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| row.get("c").unwrap())
    .collect()
}

async fn history(s: &dyn Session) -> Vec<(String, String, i64)> {
    s.rows(
        "select version, status, cast(phases_done as signed) as done from tidegate.migrations order by version",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get("version").unwrap(), row.get("status").unwrap(), row.get("done").unwrap()))
    .collect()
}

/// Whether apply left no trace: no `tidegate.migrations` (a refused apply creates nothing).
async fn no_history(s: &dyn Session) -> bool {
    let present: i64 = s
        .query_one(
            "select cast(count(*) as signed) as c from information_schema.tables \
             where table_schema = 'tidegate' and table_name = 'migrations'",
            &[],
        )
        .await
        .unwrap()
        .get("c")
        .unwrap();
    present == 0
}

/// The statements apply journalled as run (`ddl_started`), in order.
async fn ddl_run(s: &dyn Session) -> Vec<String> {
    s.rows(
        "select detail from tidegate.journal where event = 'ddl_started' order by id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| {
        let detail: serde_json::Value =
            serde_json::from_str(&row.get::<String>("detail").unwrap()).unwrap();
        detail["statement"].as_str().unwrap().to_string()
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_applies_end_to_end_reruns_as_a_no_op_and_refuses_a_changed_file() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 30_000).await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "0001_add_m.sql",
        "ALTER TABLE items ADD COLUMN m INT;\nCREATE INDEX items_n ON items (n);\n",
    );
    write(
        dir.path(),
        "0002_fill_m.sql",
        "UPDATE items SET m = n * 2 WHERE m IS NULL;\nINSERT INTO items (id, n) VALUES (0, 0);\n",
    );
    write(dir.path(), "0003_notes.sql", "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT);\nALTER TABLE notes ADD COLUMN at DATETIME NOT NULL;\n");

    let (sink, events) = collect();
    let summary = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap();
    assert_eq!(
        summary.applied_now,
        vec!["0001_add_m.sql", "0002_fill_m.sql", "0003_notes.sql"]
    );
    assert_eq!(
        history(s.as_ref()).await,
        vec![
            ("0001_add_m.sql".into(), "applied".into(), 2),
            ("0002_fill_m.sql".into(), "applied".into(), 2),
            ("0003_notes.sql".into(), "applied".into(), 2),
        ]
    );
    // The backfill changed every existing row exactly once; the seed row came after it.
    let wrong: i64 = s
        .query_one("select cast(count(*) as signed) as c from items where id > 0 and (m is null or m <> n * 2)", &[])
        .await
        .unwrap()
        .get("c")
        .unwrap();
    assert_eq!(wrong, 0);
    assert!(columns(s.as_ref(), "notes")
        .await
        .contains(&"at".to_string()));
    // What ran is what the facts say: INSTANT for ADD COLUMN, NOCOPY without blocking writes for the index.
    let run = ddl_run(s.as_ref()).await;
    assert_eq!(
        run[0],
        "ALTER TABLE items ADD COLUMN m INT, ALGORITHM=INSTANT"
    );
    assert_eq!(
        run[1],
        "CREATE INDEX items_n ON items (n) ALGORITHM=NOCOPY LOCK=NONE"
    );
    assert!(events.lock().unwrap().iter().any(|event| matches!(
        event,
        ApplyEvent::DdlRunning { added_clause: Some(clause), .. } if clause == "ALGORITHM=INSTANT"
    )));
    // The recorded checksums are the files'.
    let recorded: String = s
        .query_one(
            "select checksum from tidegate.migrations where version = '0001_add_m.sql'",
            &[],
        )
        .await
        .unwrap()
        .get("checksum")
        .unwrap();
    let bytes = std::fs::read(dir.path().join("0001_add_m.sql")).unwrap();
    assert_eq!(recorded, tidegate_apply::checksum(&bytes));

    // Again: nothing pending, nothing run.
    let (sink, _) = collect();
    let again = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap();
    assert!(again.applied_now.is_empty());
    assert_eq!(again.plan.applied.len(), 3);
    assert_eq!(ddl_run(s.as_ref()).await.len(), run.len());

    // An applied file that changed is refused, before anything runs.
    write(
        dir.path(),
        "0001_add_m.sql",
        "ALTER TABLE items ADD COLUMN m BIGINT;\n",
    );
    write(
        dir.path(),
        "0004_more.sql",
        "ALTER TABLE items ADD COLUMN k INT;\n",
    );
    let (sink, _) = collect();
    let error = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApplyError::ChecksumChanged { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("0001_add_m.sql"), "{error}");
    assert!(!columns(s.as_ref(), "items")
        .await
        .contains(&"k".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_transaction_never_queues_reads_longer_than_the_lock_timeout_and_is_named() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "0001_add_flag.sql",
        "ALTER TABLE items ADD COLUMN flag TINYINT NOT NULL DEFAULT 0;\n",
    );

    // The postmortem's blocker: a transaction that read the table and went idle, holding its metadata lock.
    let holder = session(&config).await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .query_one("SELECT count(*) AS c FROM items", &[])
        .await
        .unwrap();
    let holder_id: i64 = holder
        .query_one("SELECT CAST(CONNECTION_ID() AS SIGNED) AS id", &[])
        .await
        .unwrap()
        .get("id")
        .unwrap();

    // The application: reads in a loop on its own connection, each timed.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let config = config.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let app = config.open().await.unwrap();
            let (mut worst, mut count) = (Duration::ZERO, 0u64);
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                app.query_one("SELECT n FROM items WHERE id = 7", &[])
                    .await
                    .unwrap();
                worst = worst.max(started.elapsed());
                count += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (worst, count)
        })
    };

    let lock_timeout_s = 1;
    let (sink, events) = collect();
    let started = Instant::now();
    let apply = {
        let config = config.clone();
        let dir = dir.path().to_path_buf();
        tokio::spawn(async move { apply_mysql(&config, &dir, options(lock_timeout_s), sink).await })
    };
    // Apply names the idle transaction after each timeout; let it time out a few times, then end the transaction.
    let named_after_timeouts = |events: &[ApplyEvent]| {
        events
            .iter()
            .filter(|event| {
                matches!(
                    event,
                    ApplyEvent::TransactionsOpen { after_lock_timeout: true, transactions, .. }
                        if transactions.iter().any(|t| t.id == holder_id)
                )
            })
            .count()
    };
    let until = Instant::now() + Duration::from_secs(60);
    while named_after_timeouts(&events.lock().unwrap()) < 3 {
        assert!(
            Instant::now() < until,
            "apply never named the idle transaction: {:#?}",
            events.lock().unwrap()
        );
        assert!(
            !apply.is_finished(),
            "apply ended while the transaction was open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!columns(s.as_ref(), "items")
        .await
        .contains(&"flag".to_string()));
    holder.batch_execute("COMMIT").await.unwrap();
    let summary = apply.await.unwrap().unwrap();
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (worst, reads) = reader.await.unwrap();
    assert_eq!(summary.applied_now, vec!["0001_add_flag.sql"]);
    assert!(columns(s.as_ref(), "items")
        .await
        .contains(&"flag".to_string()));

    let events = events.lock().unwrap().clone();
    let timeouts = named_after_timeouts(&events);
    let named = events.iter().find_map(|event| match event {
        ApplyEvent::TransactionsOpen { transactions, .. } => {
            transactions.iter().find(|t| t.id == holder_id).cloned()
        }
        _ => None,
    });
    let named = named.unwrap();
    assert_eq!(named.user, "root");
    assert!(named.state.starts_with("Sleep"), "{named:?}");
    println!(
        "MDL queue: lock_wait_timeout {lock_timeout_s} s; apply took {:.1} s with {timeouts} timed-out attempt(s); \
         {reads} reads, worst {:.0} ms; the blocker named as: {named}",
        elapsed.as_secs_f64(),
        worst.as_secs_f64() * 1000.0,
    );
    // The contract: no read waits behind the ALTER longer than its lock_wait_timeout (plus a margin for the
    // server and this 2-core machine).
    let bound = Duration::from_secs(lock_timeout_s) + Duration::from_millis(1500);
    assert!(
        worst <= bound,
        "a read waited {worst:?}, more than the bound {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_bad_input_and_a_crash_between_ddl_and_record() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 20_000).await;
    // A type change can only COPY: refused on a table this size, naming it, before anything changes.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "0001_widen.sql",
        "ALTER TABLE items ADD COLUMN m INT;\nALTER TABLE items MODIFY n BIGINT NOT NULL;\n",
    );
    let (sink, _) = collect();
    let error = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ALGORITHM=COPY") && error.contains("items has") && error.contains("gh-ost"),
        "{error}"
    );
    assert!(!columns(s.as_ref(), "items")
        .await
        .contains(&"m".to_string()));
    assert!(no_history(s.as_ref()).await);

    // An unknown table, and a statement that does not parse: refused before any change.
    write(
        dir.path(),
        "0001_widen.sql",
        "ALTER TABLE items ADD COLUMN m INT;\nALTER TABLE nowhere ADD COLUMN x INT;\n",
    );
    let (sink, _) = collect();
    let error = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("table nowhere does not exist"), "{error}");
    write(
        dir.path(),
        "0001_widen.sql",
        "ALTER TABLE items ADD COLUMN m INT;\nALTER TABLE items ADD COLUM x INT;\n",
    );
    let (sink, _) = collect();
    let error = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("syntax-error"), "{error}");
    assert!(!columns(s.as_ref(), "items")
        .await
        .contains(&"m".to_string()));
    assert!(no_history(s.as_ref()).await);
    // A bad URL: refused at parsing, no password shown.
    let error = MySqlConfig::from_url("mysql://root:hunter2@127.0.0.1:notaport/x")
        .unwrap_err()
        .to_string();
    assert!(!error.contains("hunter2"), "{error}");

    // A crash between a DDL and the record of its phase: the DDL committed (MySQL commits it on its own), the
    // phase is not recorded. The next apply must find it done, not run it again (ADD COLUMN would fail: 1060).
    write(
        dir.path(),
        "0001_widen.sql",
        "ALTER TABLE items ADD COLUMN m INT;\nALTER TABLE items ADD COLUMN k INT;\nCREATE INDEX items_k ON items (k);\n",
    );
    let (sink, _) = collect();
    apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap();
    let statements_before = ddl_run(s.as_ref()).await.len();
    // Rewind to what a kill right after ADD COLUMN k leaves: phase 2 committed but not recorded, phase 3 not
    // started (its index not there).
    s.batch_execute(
        "drop index items_k on items; \
         update tidegate.migrations set status = 'running', phases_done = 1 where version = '0001_widen.sql'",
    )
    .await
    .unwrap();
    let (sink, events) = collect();
    let resumed = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap();
    assert_eq!(resumed.applied_now, vec!["0001_widen.sql"]);
    let events = events.lock().unwrap().clone();
    assert!(events
        .iter()
        .any(|e| matches!(e, ApplyEvent::PhaseSkipped { phase: 1, .. })));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ApplyEvent::StatementAlreadyDone { phase: 2, .. })),
        "{events:#?}"
    );
    let ran: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::DdlRunning { phase, .. } => Some(*phase),
            _ => None,
        })
        .collect();
    assert_eq!(ran, vec![3], "only the phase the crash never reached runs");
    assert_eq!(
        history(s.as_ref()).await,
        vec![("0001_widen.sql".into(), "applied".into(), 3)]
    );
    assert_eq!(ddl_run(s.as_ref()).await.len(), statements_before + 1);

    // A crash while the DDL waited (the connection died, the server rolled the ALTER back): it runs on resume.
    write(
        dir.path(),
        "0002_more.sql",
        "ALTER TABLE items ADD COLUMN j INT;\nALTER TABLE items ADD COLUMN h INT;\n",
    );
    let holder = session(&config).await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .query_one("SELECT count(*) AS c FROM items", &[])
        .await
        .unwrap();
    let (sink, events) = collect();
    let apply = {
        let config = config.clone();
        let dir = dir.path().to_path_buf();
        tokio::spawn(async move { apply_mysql(&config, &dir, options(1), sink).await })
    };
    let until = Instant::now() + Duration::from_secs(60);
    while !events.lock().unwrap().iter().any(|e| {
        matches!(
            e,
            ApplyEvent::TransactionsOpen {
                after_lock_timeout: true,
                ..
            }
        )
    }) {
        assert!(Instant::now() < until, "apply never waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kill apply: its task (and its connections) end mid-wait.
    apply.abort();
    let _ = apply.await;
    // Past the killed ALTER's own lock_wait_timeout (1 s): the server has given it up whether or not it noticed
    // the connection go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let cols = columns(s.as_ref(), "items").await;
    let (sink, events) = collect();
    let resumed = apply_mysql(&config, dir.path(), options(2), sink)
        .await
        .unwrap();
    assert_eq!(resumed.applied_now, vec!["0002_more.sql"]);
    let events = events.lock().unwrap().clone();
    let ran: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::DdlRunning { phase, .. } => Some(*phase),
            _ => None,
        })
        .collect();
    // Whatever the kill left (phase 1 done or not), each DDL ran exactly once overall.
    if cols.contains(&"j".to_string()) {
        assert!(
            !ran.contains(&1)
                || events
                    .iter()
                    .any(|e| matches!(e, ApplyEvent::StatementAlreadyDone { phase: 1, .. }))
        );
    } else {
        assert!(ran.contains(&1), "{events:#?}");
    }
    assert!(ran.contains(&2));
    let cols = columns(s.as_ref(), "items").await;
    assert!(
        cols.contains(&"j".to_string()) && cols.contains(&"h".to_string()),
        "{cols:?}"
    );
}
