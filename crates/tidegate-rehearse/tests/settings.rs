//! The scratch server that measures takes the source's WAL- and cost-relevant settings, against real servers: a
//! source started with full_page_writes, wal_compression, wal_level (a start option), checkpoint_timeout and
//! autovacuum of its own, read back on the scratch server with SHOW; fsync, which a scratch server never takes,
//! listed as differing; shared_buffers scaled with the data.

use tidegate_db::connect::ConnectionConfig;
use tidegate_db::scratch::PgBinaries;
use tidegate_rehearse::rehearsal::{
    read_source, rehearse, start_measuring_server, RehearseOptions, Targets, NOT_YET,
};
use tidegate_rehearse::settings::SettingStatus;
use tidegate_testkit::PrivateCluster;

/// The settings whose value the scratch server must show as the source does.
const TAKEN: [&str; 5] = [
    "full_page_writes",
    "wal_compression",
    "wal_level",
    "checkpoint_timeout",
    "autovacuum",
];

async fn show(url: &str, name: &str) -> String {
    let client = tidegate_testkit::connect(url).await;
    let row = client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scratch_server_takes_the_sources_wal_settings_and_names_those_it_does_not() {
    // Everything here but full_page_writes differs from a scratch server's defaults (fsync and full_page_writes
    // off, checkpoint_timeout 30min, wal_level replica, wal_compression off, autovacuum on).
    let source = PrivateCluster::start_with_settings(&[
        ("full_page_writes", "off"),
        ("wal_compression", "on"),
        ("wal_level", "minimal"),
        ("max_wal_senders", "0"),
        ("checkpoint_timeout", "7min"),
        ("autovacuum", "off"),
        ("fsync", "on"),
        ("shared_buffers", "64MB"),
    ]);
    let url = source.create_database("shop").await;
    let client = tidegate_testkit::connect(&url).await;
    client
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL) WITH (fillfactor = 80);
             INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
             ANALYZE items",
        )
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(&url).unwrap();
    let options = RehearseOptions {
        scale: 0.5,
        ..RehearseOptions::default()
    };
    let session = config.connect().await.unwrap();
    let reading = read_source(&session, &Targets::AllTables, &options)
        .await
        .unwrap();
    drop(session);

    let scratch = tempfile::tempdir().unwrap();
    let binaries = PgBinaries::find_for_major(reading.server_major).unwrap();
    let (guard, report, notes) =
        start_measuring_server(&reading, 0.5, &scratch.path().join("scratch"), binaries)
            .await
            .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let scratch_url = guard.server().url();
    for name in TAKEN {
        let theirs = show(&url, name).await;
        assert_eq!(show(&scratch_url, name).await, theirs, "{name}");
        let row = report.settings.iter().find(|s| s.name == name).unwrap();
        assert_eq!(row.status, SettingStatus::Taken, "{row:?}");
        assert_eq!(row.source, theirs);
    }
    assert_eq!(show(&url, "wal_compression").await, "pglz");
    // shared_buffers follows the data: half the source's 64MB.
    assert_eq!(show(&scratch_url, "shared_buffers").await, "32MB");
    let buffers = report
        .settings
        .iter()
        .find(|s| s.name == "shared_buffers")
        .unwrap();
    assert_eq!(buffers.status, SettingStatus::Scaled);
    assert!(buffers.reason.as_deref().unwrap().contains("--scale 0.5"));
    // fsync is never taken: named, with why.
    assert_eq!(show(&url, "fsync").await, "on");
    assert_eq!(show(&scratch_url, "fsync").await, "off");
    let fsync = report.settings.iter().find(|s| s.name == "fsync").unwrap();
    assert_eq!(fsync.status, SettingStatus::Differs);
    assert!(fsync.reason.as_deref().unwrap().contains("without fsync"));
    let unexpected: Vec<&str> = report.unexpected().map(|s| s.name.as_str()).collect();
    assert_eq!(unexpected, ["fsync"]);
    assert_eq!(
        report.table_options,
        vec![("public.items".to_string(), "fillfactor=80".to_string())]
    );
    drop(guard);
    assert!(!scratch.path().join("scratch").join("data").exists());

    // full_page_writes on (the scratch server's default is off) is taken too, not a default that happens to
    // match: changed on the source, read again, and a new scratch server has it.
    let admin = tidegate_testkit::connect(&source.url()).await;
    // ALTER SYSTEM refuses a multi-statement string (an implicit transaction).
    for statement in [
        "ALTER SYSTEM SET full_page_writes = on",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    let mut seen = String::new();
    for _ in 0..100 {
        seen = show(&url, "full_page_writes").await;
        if seen == "on" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "on");

    // The whole rehearsal carries the section into every output.
    let mut options = options;
    options.scratch_dir = scratch.path().join("whole");
    let whole = rehearse(&config, &Targets::AllTables, &options)
        .await
        .unwrap();
    let full_page_writes = whole
        .settings
        .settings
        .iter()
        .find(|s| s.name == "full_page_writes")
        .unwrap();
    assert_eq!(
        (
            full_page_writes.source.as_str(),
            full_page_writes.scratch.as_deref(),
            full_page_writes.status
        ),
        ("on", Some("on"), SettingStatus::Taken)
    );
    let json = serde_json::to_value(&whole).unwrap();
    let fsync = json["settings"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "fsync")
        .unwrap()
        .clone();
    assert_eq!(fsync["source"], "on");
    assert_eq!(fsync["scratch"], "off");
    assert_eq!(fsync["status"], "differs");
    let text = tidegate_rehearse::rehearsal_render::text(&whole);
    assert!(text.contains("settings (source → rehearsal):"), "{text}");
    let markdown = tidegate_rehearse::rehearsal_render::markdown(&whole);
    assert!(
        markdown.contains("| wal_level | minimal | minimal | taken |"),
        "{markdown}"
    );
    let html = tidegate_rehearse::rehearsal_render::html(&whole);
    assert!(html
        .contains("<tr><td>checkpoint_timeout</td><td>7min</td><td>7min</td><td>taken</td></tr>"));
    assert_eq!(whole.not_yet.len(), NOT_YET.len());
    assert!(!options.scratch_dir.join("data").exists());
}

/// The backfill's WAL on the copy, measured with the source's full_page_writes.
async fn backfill_wal(url: &str, scratch: &std::path::Path) -> u64 {
    use tidegate_rehearse::measurement::WorkloadChoice;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("001_items_upper.sql"),
        "UPDATE items SET name = upper(name);\n",
    )
    .unwrap();
    let targets = Targets::Migrations(
        tidegate_plan::pipeline::load(&[dir.path().to_path_buf()], None).unwrap(),
    );
    let mut options = RehearseOptions {
        scale: 1.0,
        scratch_dir: scratch.to_path_buf(),
        ..RehearseOptions::default()
    };
    options.measure.workload = WorkloadChoice::None;
    let config = ConnectionConfig::from_url(url).unwrap();
    let report = rehearse(&config, &targets, &options).await.unwrap();
    let run = report.migration.unwrap();
    assert_eq!(run.apply_error, None);
    let backfill = run
        .statements
        .iter()
        .find(|phase| phase.class == Some("backfill"))
        .expect("the UPDATE runs as a backfill");
    backfill.measured_wal_bytes
}

/// What the settings are for: the same migration writes more WAL on a copy of a source with full_page_writes on
/// (the first change to each page after the checkpoint logs the whole page) than of one with it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sources_full_page_writes_decide_the_migrations_wal_on_the_copy() {
    let source = PrivateCluster::start_with_settings(&[("full_page_writes", "on")]);
    let url = source.create_database("shop").await;
    let client = tidegate_testkit::connect(&url).await;
    client
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
             INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
             ANALYZE items",
        )
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let with_fpw = backfill_wal(&url, &scratch.path().join("on")).await;
    let admin = tidegate_testkit::connect(&source.url()).await;
    for statement in [
        "ALTER SYSTEM SET full_page_writes = off",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    for _ in 0..100 {
        if show(&url, "full_page_writes").await == "off" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let without = backfill_wal(&url, &scratch.path().join("off")).await;
    eprintln!(
        "backfill of 50,000 rows: {with_fpw} bytes of WAL with full_page_writes on, {without} with it off ({:.0}% less)",
        100.0 * (1.0 - without as f64 / with_fpw as f64)
    );
    assert!(
        with_fpw as f64 > without as f64 * 1.1,
        "on {with_fpw}, off {without}"
    );
}
