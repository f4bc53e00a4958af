//! `--workload auto` replays the source's pg_stat_statements, against real servers: a source started with
//! `shared_preload_libraries = pg_stat_statements` runs a few statements; the rehearsal replays those on the
//! copied tables on the copy (counted per statement by the workload; the source's own counters do not move), at
//! their measured rate, and lists the ones it cannot replay with why.

use tidegate_db::connect::ConnectionConfig;
use tidegate_rehearse::measurement::WorkloadChoice;
use tidegate_rehearse::rehearsal::{rehearse, RehearseOptions, Targets};
use tidegate_testkit::PrivateCluster;

const LOOKUP: &str = "SELECT * FROM orders WHERE id = $1";
const UPDATE: &str = "UPDATE orders SET status = $1 WHERE customer_id = $2";
const INSERT: &str = "INSERT INTO orders (customer_id, status, amount) VALUES ($1, $2, $3)";
const JOIN: &str =
    "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.country = $1 LIMIT $2";

/// The source's table counters (scans, tuples read and written), once every other session of the database has
/// exited and so flushed its statistics.
async fn table_counters(url: &str) -> Vec<String> {
    let client = tidegate_testkit::connect(url).await;
    for _ in 0..200 {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    client
        .query(
            "SELECT format('%s seq=%s/%s idx=%s/%s ins=%s upd=%s del=%s', relname, seq_scan, seq_tup_read,
                           coalesce(idx_scan, 0), coalesce(idx_tup_fetch, 0), n_tup_ins, n_tup_upd, n_tup_del)
               FROM pg_stat_user_tables ORDER BY relname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn calls_of(client: &tokio_postgres::Client, query: &str) -> i64 {
    client
        .query_opt(
            "SELECT calls FROM pg_stat_statements WHERE query = $1 AND dbid = \
             (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&query],
        )
        .await
        .unwrap()
        .map_or(0, |row| row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sources_statements_are_replayed_on_the_copy_and_the_others_listed_with_why() {
    // pg_stat_statements ships with the server package (postgresql-15 on Debian, which scripts/setup.sh
    // installs); a server without it would refuse to start below with a less helpful message.
    let shipped = std::fs::read_dir("/usr/lib/postgresql").map_or(true, |versions| {
        versions
            .flatten()
            .any(|version| version.path().join("lib/pg_stat_statements.so").exists())
    });
    assert!(
        shipped,
        "pg_stat_statements.so is not installed beside PostgreSQL's server"
    );
    let source =
        PrivateCluster::start_with_settings(&[("shared_preload_libraries", "pg_stat_statements")]);
    let url = source.create_database("shop").await;
    let client = tidegate_testkit::connect(&url).await;
    client
        .batch_execute(
            "CREATE EXTENSION pg_stat_statements;
             CREATE TABLE customers (id bigint PRIMARY KEY, country text NOT NULL);
             CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
                                  status text NOT NULL, amount numeric(10, 2) NOT NULL);
             CREATE TABLE audit (id bigint PRIMARY KEY, note text);
             INSERT INTO customers SELECT g, (ARRAY['US', 'DE', 'FR'])[1 + g % 3] FROM generate_series(1, 500) g;
             INSERT INTO orders (customer_id, status, amount)
                  SELECT 1 + g % 500, (ARRAY['paid', 'shipped', 'pending'])[1 + g % 3], g % 1000
                    FROM generate_series(1, 20000) g;
             INSERT INTO audit SELECT g, 'x' FROM generate_series(1, 100) g;
             ANALYZE customers; ANALYZE orders; ANALYZE audit;
             SELECT pg_stat_statements_reset()",
        )
        .await
        .unwrap();
    for id in 1..=40i64 {
        client.query(LOOKUP, &[&id]).await.unwrap();
    }
    for statement in [
        // Normalised by pg_stat_statements to the constants' $n.
        ("UPDATE orders SET status = 'paid' WHERE customer_id = 7", 20),
        (
            "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.country = 'DE' LIMIT 5",
            15,
        ),
        (
            "INSERT INTO orders (customer_id, status, amount) VALUES (3, 'paid', 10.5)",
            12,
        ),
        // Not replayed: a $n in arithmetic, a table not copied, a utility statement.
        ("SELECT count(*) FROM orders WHERE amount * 2 > 10", 10),
        (
            "SELECT * FROM orders JOIN audit ON audit.id = orders.id WHERE orders.id = 3",
            5,
        ),
        ("ANALYZE orders", 2),
        // Not on a copied table: not mentioned at all.
        ("SELECT * FROM audit WHERE id = 1", 3),
    ] {
        for _ in 0..statement.1 {
            client.batch_execute(statement.0).await.unwrap();
        }
    }
    assert_eq!(calls_of(&client, LOOKUP).await, 40);
    assert_eq!(calls_of(&client, UPDATE).await, 20);
    drop(client);
    let before = table_counters(&url).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("001_orders_amount_idx.sql"),
        "CREATE INDEX orders_amount_idx ON orders (amount);\n",
    )
    .unwrap();
    let targets = Targets::Migrations(
        tidegate_plan::pipeline::load(&[dir.path().to_path_buf()], None).unwrap(),
    );
    let scratch = tempfile::tempdir().unwrap();
    let mut options = RehearseOptions {
        scale: 0.5,
        scratch_dir: scratch.path().join("scratch"),
        ..RehearseOptions::default()
    };
    options.measure.workload = WorkloadChoice::Auto { rate: 1.0 };
    options.measure.after = std::time::Duration::from_secs(2);
    let config = ConnectionConfig::from_url(&url).unwrap();
    let report = rehearse(&config, &targets, &options).await.unwrap();

    let replay = report
        .replay
        .as_ref()
        .expect("the source has pg_stat_statements");
    let replayed: Vec<(&str, u64, Vec<&str>)> = replay
        .statements
        .iter()
        .map(|s| {
            (
                s.sql.as_str(),
                s.calls,
                s.params.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        replayed,
        vec![
            (LOOKUP, 40, vec!["public.orders.id"]),
            (
                UPDATE,
                20,
                vec!["public.orders.status", "public.orders.customer_id"]
            ),
            (JOIN, 15, vec!["public.customers.country", "LIMIT 10"]),
            (
                INSERT,
                12,
                vec![
                    "public.orders.customer_id",
                    "public.orders.status",
                    "public.orders.amount"
                ]
            ),
        ]
    );
    let skipped: Vec<(&str, &str)> = replay
        .skipped
        .iter()
        .map(|s| (s.sql.as_deref().unwrap(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].0.contains("amount * $1") && skipped[0].1.contains("$1 is not compared"));
    assert!(
        skipped[1].0.contains("JOIN audit") && skipped[1].1.contains("audit, which is not copied")
    );
    assert!(skipped[2].0.starts_with("ANALYZE") && skipped[2].1.contains("utility or DDL"));

    // At their measured rate × the scale: calls over the interval the counters cover.
    let run = report.migration.as_ref().unwrap();
    assert_eq!(run.apply_error, None);
    let expected = (replay.source_calls_per_second * 0.5).max(1.0);
    assert_eq!(run.workload, WorkloadChoice::Auto { rate: expected });
    assert!(
        (replay.source_calls_per_second - 87.0 / replay.interval_seconds.max(1.0)).abs() < 1e-9,
        "{replay:?}"
    );
    // Every replayed statement ran on the copy, none failed; the key lookups did not run.
    assert!(run.workload_tables.is_empty());
    let counts: Vec<(&str, u64, u64)> = run
        .replayed
        .iter()
        .map(|c| (c.sql.as_str(), c.ran, c.failed))
        .collect();
    assert_eq!(counts.len(), 4);
    for (sql, ran, failed) in &counts {
        assert!(
            *ran > 0 && *failed == 0,
            "{sql}: {counts:?} at {expected}/s"
        );
    }
    // ... on the copy, not on the source: its tables' counters and its pg_stat_statements did not move.
    assert_eq!(table_counters(&url).await, before);
    let client = tidegate_testkit::connect(&url).await;
    assert_eq!(calls_of(&client, LOOKUP).await, 40);
    assert_eq!(calls_of(&client, UPDATE).await, 20);

    let text = tidegate_rehearse::rehearsal_render::text(&report);
    eprintln!("{text}");
    assert!(
        text.contains("replaying 4 of the source's pg_stat_statements"),
        "{text}"
    );
    assert!(text.contains("skipped   ANALYZE orders"), "{text}");
    let markdown = tidegate_rehearse::rehearsal_render::markdown(&report);
    assert!(
        markdown.contains("### Workload replayed from pg_stat_statements"),
        "{markdown}"
    );
    assert!(
        markdown.contains("it reads audit, which is not copied"),
        "{markdown}"
    );
    let html = tidegate_rehearse::rehearsal_render::html(&report);
    assert!(
        html.contains("<table class=\"replay\">") && html.contains("<table class=\"skipped\">")
    );
    assert!(html.contains("public.customers.country, LIMIT 10"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["replay"]["statements"][0]["sql"], LOOKUP);
    assert!(json["migration"]["replayed"][0]["ran"].as_u64().unwrap() > 0);
    assert!(!options.scratch_dir.join("data").exists());
}

/// An extension installed but not preloaded cannot be read (SQLSTATE 55000): the rehearsal says so and runs the key
/// lookups instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stat_statements_installed_but_not_loaded_falls_back_to_key_lookups() {
    let source = PrivateCluster::start();
    let url = source.create_database("shop").await;
    let client = tidegate_testkit::connect(&url).await;
    client
        .batch_execute(
            "CREATE EXTENSION pg_stat_statements;
             CREATE TABLE orders (id bigint PRIMARY KEY, amount int NOT NULL);
             INSERT INTO orders SELECT g, g % 100 FROM generate_series(1, 2000) g;
             ANALYZE orders",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("001_orders_amount_idx.sql"),
        "CREATE INDEX orders_amount_idx ON orders (amount);\n",
    )
    .unwrap();
    let targets = Targets::Migrations(
        tidegate_plan::pipeline::load(&[dir.path().to_path_buf()], None).unwrap(),
    );
    let scratch = tempfile::tempdir().unwrap();
    let mut options = RehearseOptions {
        scratch_dir: scratch.path().join("scratch"),
        ..RehearseOptions::default()
    };
    options.measure.workload = WorkloadChoice::Auto { rate: 20.0 };
    let config = ConnectionConfig::from_url(&url).unwrap();
    let report = rehearse(&config, &targets, &options).await.unwrap();
    assert_eq!(report.replay, None);
    assert!(
        report.notes.iter().any(
            |note| note.starts_with("pg_stat_statements could not be read")
                && note.contains("55000")
        ),
        "{:?}",
        report.notes
    );
    let run = report.migration.unwrap();
    assert!(run.replayed.is_empty());
    assert_eq!(run.workload_tables[0].table, "public.orders");
}
