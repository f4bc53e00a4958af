//! tidegate-testkit: real, throwaway PostgreSQL for tidegate's integration tests.
//!
//! Every claim tidegate makes about PostgreSQL's behaviour is tested against a real server. This crate gives each
//! test one without depending on anything someone left running:
//!
//! - [`TestDatabase::create`]: a fresh database on a cluster shared by the whole test process (started on first use
//!   with the same code as `tidegate scratch`), or on the server named by `TIDEGATE_TEST_DATABASE_URL` when set.
//! - [`PrivateCluster::start`]: a cluster of the test's own, for fault injection: stop it, `kill -9` it, restart it.
//! - [`chromium_dom`]: an HTML page rendered in headless Chromium with the network unreachable.
//!
//! Clean-up does not depend on the test ending well: a private cluster is removed when its handle drops (panics
//! unwind through it), and every cluster is watched by a small watchdog process that stops the server and removes
//! its directory once the test process is gone, however it died.
//!
//! ```no_run
//! # async fn example() {
//! let db = tidegate_testkit::TestDatabase::create().await;
//! let client = db.connect().await;
//! client.batch_execute("create table t (id bigint primary key)").await.unwrap();
//! # }
//! ```

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use tidegate_db::scratch::{self, ScratchServer, StartOptions};
use tokio_postgres::{Client, NoTls};

pub mod behaviour;
pub mod browser;
pub use behaviour::{
    data_digest, data_digest_columns, psql_file, psql_ok, schema_dump, LockReport, LockSampler,
    PgLockMode, PsqlInput, RewriteCheck, RewriteReport, WriteLoad, WriteReport, WriteSpec,
};
pub use browser::chromium_dom;

/// Points the tests at an existing server instead of starting one.
pub const TEST_DATABASE_URL_ENV: &str = "TIDEGATE_TEST_DATABASE_URL";

static SHARED_CLUSTER: OnceLock<Result<ScratchServer, String>> = OnceLock::new();
static DATABASE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Where the databases of this test process come from.
enum Server {
    Shared(&'static ScratchServer),
    External(String),
}

fn server() -> Server {
    if let Ok(url) = std::env::var(TEST_DATABASE_URL_ENV) {
        return Server::External(url);
    }
    let cluster = SHARED_CLUSTER
        .get_or_init(|| start_watched_cluster("shared", &[]).map(|(server, _)| server));
    match cluster {
        Ok(server) => Server::Shared(server),
        Err(message) => panic!("{message}"),
    }
}

/// Starts a cluster in a new temporary directory, watched by a watchdog that cleans up after this process.
fn start_watched_cluster(
    label: &str,
    settings: &[(&str, &str)],
) -> Result<(ScratchServer, PathBuf), String> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("tidegate-test-{label}-"))
        .tempdir()
        .map_err(|error| {
            format!("could not create a temporary directory for a test cluster: {error}")
        })?
        .keep();
    let mut options = StartOptions::new(&dir);
    options.shared_buffers = "64MB".into();
    options.settings = settings
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let server = scratch::start(&options)
        .map_err(|error| format!("could not start a test cluster: {error}"))?;
    spawn_watchdog(&server.dir);
    Ok((server, dir))
}

/// A detached shell that waits for this process to end, then shuts the cluster down and removes its directory.
/// It is what cleans up when a test binary panics, aborts or is killed.
fn spawn_watchdog(dir: &Path) {
    spawn_watchdog_for(&dir.join("data/postmaster.pid"), "INT", dir);
}

/// The watchdog: once this process is gone, `stop_signal` to the pid on the first line of `pidfile` (then
/// SIGKILL after 10 s), then `remove` goes.
fn spawn_watchdog_for(pidfile: &Path, stop_signal: &str, remove: &Path) {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
        if [ -f "$2" ]; then
            pid=$(head -n 1 "$2")
            kill -"$3" "$pid" 2>/dev/null
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -rf "$4"
    "#;
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("tidegate-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(pidfile)
        .arg(stop_signal)
        .arg(remove)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C aimed at the test run must not kill the one process that cleans up.
        .process_group(0)
        .spawn();
    if let Err(error) = spawned {
        eprintln!(
            "warning: no watchdog for the test server in {}: {error}",
            remove.display()
        );
    }
}

/// Connects to `url` and drives the connection on the current tokio runtime.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("could not connect to the test server at {url}: {error}"));
    tokio::spawn(async move {
        // The connection ends when the client drops or the server goes away (fault tests do that on purpose).
        let _ = connection.await;
    });
    client
}

/// `url` with its database name replaced by `database`.
pub fn url_with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url)
        .unwrap_or_else(|error| panic!("{TEST_DATABASE_URL_ENV} is not a URL: {error}"));
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

fn next_database_name() -> String {
    format!(
        "tidegate_test_{}_{}",
        std::process::id(),
        DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty database for one test.
pub struct TestDatabase {
    name: String,
    url: String,
    /// The `postgres` database of the same server, for CREATE DATABASE.
    admin_url: String,
    /// Set when the database lives on a server the tests do not own: drop it afterwards.
    drop_when_done: bool,
}

impl TestDatabase {
    /// Creates a fresh database on this process's shared test cluster (or on `TIDEGATE_TEST_DATABASE_URL`).
    pub async fn create() -> Self {
        let name = next_database_name();
        match server() {
            Server::Shared(server) => {
                create_database(&server.url(), &name).await;
                Self {
                    url: server.url_for_database(&name),
                    name,
                    admin_url: server.url(),
                    drop_when_done: false,
                }
            }
            Server::External(admin_url) => {
                create_database(&admin_url, &name).await;
                Self {
                    url: url_with_database(&admin_url, &name),
                    name,
                    admin_url,
                    drop_when_done: true,
                }
            }
        }
    }

    /// A new database on the same server with the same contents: `CREATE DATABASE … TEMPLATE` this one (a file
    /// copy, so a few hundred megabytes take well under a second). PostgreSQL refuses while anyone is connected to
    /// the template, so drop every client of this database first; this waits a few seconds for their backends to
    /// go, then panics saying who is still connected.
    pub async fn copy(&self) -> TestDatabase {
        let name = next_database_name();
        let admin = connect(&self.admin_url).await;
        let version: i32 = admin
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .expect("the server's version")
            .get(0);
        // FILE_COPY (15+) copies the files instead of writing every block to WAL: the fast path on a test server.
        let strategy = if version >= 150_000 {
            " STRATEGY = FILE_COPY"
        } else {
            ""
        };
        let sql = format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"{strategy}",
            self.name
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match admin.batch_execute(&sql).await {
                Ok(()) => break,
                Err(error)
                    if error.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(error) => {
                    let holders: Vec<String> = admin
                        .query(
                            "SELECT pid::text || ' ' || coalesce(application_name, '') || ': ' || coalesce(query, '') \
                               FROM pg_stat_activity WHERE datname = $1",
                            &[&self.name],
                        )
                        .await
                        .map(|rows| rows.iter().map(|row| row.get(0)).collect())
                        .unwrap_or_default();
                    panic!(
                        "could not copy the test database {}: {error}; still connected: {holders:?}. \
                         Drop every client of it before copy()",
                        self.name
                    );
                }
            }
        }
        Self {
            url: url_with_database(&self.url, &name),
            name,
            admin_url: self.admin_url.clone(),
            drop_when_done: self.drop_when_done,
        }
    }

    /// A `postgresql://` URL for this database (no password: the test servers trust loopback).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn connect(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Databases on a test cluster vanish with it; on someone else's server, clean up after ourselves.
        if !self.drop_when_done {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("drop database if exists \"{name}\" with (force)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn create_database(admin_url: &str, name: &str) {
    let client = connect(admin_url).await;
    client
        .batch_execute(&format!("create database \"{name}\""))
        .await
        .unwrap_or_else(|error| panic!("could not create the test database {name}: {error}"));
}

/// A cluster owned by one test, for fault injection. Dropping it stops the server and removes its directory.
pub struct PrivateCluster {
    server: ScratchServer,
}

impl PrivateCluster {
    /// Starts a new cluster. Panics with the server's own explanation when it cannot.
    pub fn start() -> Self {
        Self::start_with_settings(&[])
    }

    /// Starts a new cluster with more settings, `(name, value)`, over the test defaults: a source with
    /// `full_page_writes = off`, or with `shared_preload_libraries = 'pg_stat_statements'`.
    pub fn start_with_settings(settings: &[(&str, &str)]) -> Self {
        let (server, _) = start_watched_cluster("private", settings)
            .unwrap_or_else(|message| panic!("{message}"));
        Self { server }
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn url_for(&self, database: &str) -> String {
        self.server.url_for_database(database)
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        create_database(&self.server.url(), name).await;
        self.url_for(name)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn dir(&self) -> &Path {
        &self.server.dir
    }

    pub fn scratch(&self) -> &ScratchServer {
        &self.server
    }

    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// Clean shutdown (fast mode: open transactions roll back, clients are disconnected).
    pub fn stop(&self) {
        self.server
            .stop_server()
            .unwrap_or_else(|error| panic!("could not stop the test cluster: {error}"));
    }

    /// SIGKILL to the postmaster and all its backends: a crash. The next start runs crash recovery.
    pub fn kill9(&self) {
        self.server.kill_server();
    }

    /// Starts the server again after [`PrivateCluster::stop`] or [`PrivateCluster::kill9`], on the same port.
    pub fn start_again(&self) {
        self.server
            .start_server()
            .unwrap_or_else(|error| panic!("could not restart the test cluster: {error}"));
    }

    /// Stop then start.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// The last lines of the server log, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.server.log_tail(lines)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.server.is_running() {
            if let Err(error) = self.server.stop_server() {
                eprintln!("warning: {error}");
                self.server.kill_server();
            }
        }
        let _ = std::fs::remove_dir_all(&self.server.dir);
    }
}

/// A throwaway MariaDB owned by one test (the MySQL-family counterpart of [`PrivateCluster`]): started from the
/// machine's binaries in a temporary directory, watched by a watchdog that cleans up however the test process
/// ends, with the same fault injection. Dropping it stops the server and removes its directory.
pub struct PrivateMariaDb {
    server: tidegate_db::scratch_mariadb::MariaDbServer,
}

impl PrivateMariaDb {
    /// Starts a new server (no binary log). Panics with the server's own explanation when it cannot.
    pub fn start() -> Self {
        Self::start_as(tidegate_db::scratch_mariadb::Replication::Off)
    }

    /// Starts a primary: server id 1, a row-format binary log. [`PrivateMariaDb::start_replica_of`] gives it a
    /// replica.
    pub fn start_primary() -> Self {
        Self::start_as(tidegate_db::scratch_mariadb::Replication::Primary { server_id: 1 })
    }

    /// Starts a replica of `primary` on loopback (server id 2, read-only): `CHANGE MASTER TO` the primary's port
    /// as root with `MASTER_USE_GTID=slave_pos`, `START SLAVE`, and waits until both replication threads run and
    /// the replica has caught up. Panics with the replica's status when replication does not start.
    pub fn start_replica_of(primary: &PrivateMariaDb) -> Self {
        assert!(
            matches!(
                primary.server.replication,
                tidegate_db::scratch_mariadb::Replication::Primary { .. }
            ),
            "start_replica_of needs a primary started with PrivateMariaDb::start_primary"
        );
        let replica =
            Self::start_as(tidegate_db::scratch_mariadb::Replication::Replica { server_id: 2 });
        let (primary_url, replica_url, primary_port) =
            (primary.url(), replica.url(), primary.port());
        on_own_runtime(async move {
            use tidegate_db::driver::Session;
            let session = tidegate_db::mysql::MySqlConfig::from_url(&replica_url)
                .expect("the replica's URL parses")
                .connect()
                .await
                .unwrap_or_else(|error| panic!("could not connect to the test replica: {error}"));
            session
                .batch_execute(&format!(
                    "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {primary_port}, \
                     MASTER_USER = 'root', MASTER_PASSWORD = '', MASTER_CONNECT_RETRY = 1, \
                     MASTER_USE_GTID = slave_pos; START SLAVE"
                ))
                .await
                .unwrap_or_else(|error| {
                    panic!("could not start replication on the test replica: {error}")
                });
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let status = replica_threads(&session).await;
                if status == ("Yes".to_string(), "Yes".to_string()) {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    panic!("the test replica's threads did not start within 30 s (io, sql): {status:?}");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            wait_caught_up(&primary_url, &session).await;
        });
        replica
    }

    /// Waits until this replica has applied everything `primary` had written when called (its GTID position),
    /// at most 60 s. Needs both replication threads running.
    pub fn wait_caught_up(&self, primary: &PrivateMariaDb) {
        let (primary_url, replica_url) = (primary.url(), self.url());
        on_own_runtime(async move {
            let session = tidegate_db::mysql::MySqlConfig::from_url(&replica_url)
                .expect("the replica's URL parses")
                .connect()
                .await
                .unwrap_or_else(|error| panic!("could not connect to the test replica: {error}"));
            wait_caught_up(&primary_url, &session).await;
        });
    }

    fn start_as(replication: tidegate_db::scratch_mariadb::Replication) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tidegate-test-mariadb-")
            .tempdir()
            .unwrap_or_else(|error| {
                panic!("could not create a directory for a test MariaDB: {error}")
            })
            .keep();
        // World-traversable, so the `mysql` user reaches it when the tests run as root.
        let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        // mariadb-install-db's bootstrap now and then fails when several test servers are installed at once
        // (seen with six at a time on two cores; never alone): a fresh directory and a second try, with the
        // first failure printed so it is not hidden.
        let mut attempt = 0;
        let server = loop {
            attempt += 1;
            let mut options = tidegate_db::scratch_mariadb::StartOptions::new(
                dir.join(format!("server{attempt}")),
            );
            options.buffer_pool = "64M".into();
            options.replication = replication;
            match tidegate_db::scratch_mariadb::start(&options) {
                Ok(server) => break server,
                Err(error) if attempt < 3 => {
                    eprintln!("test MariaDB, attempt {attempt} failed (trying again): {error}");
                    std::thread::sleep(std::time::Duration::from_millis(500 * attempt));
                }
                Err(error) => panic!("could not start a test MariaDB: {error}"),
            }
        };
        // SIGTERM is MariaDB's clean shutdown.
        spawn_watchdog_for(&server.dir.join("mariadbd.pid"), "TERM", &dir);
        Self { server }
    }

    /// `mysql://root@127.0.0.1:PORT/scratch`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn server(&self) -> &tidegate_db::scratch_mariadb::MariaDbServer {
        &self.server
    }

    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// Clean shutdown.
    pub fn stop(&self) {
        self.server
            .stop_server()
            .unwrap_or_else(|error| panic!("could not stop the test MariaDB: {error}"));
    }

    /// SIGKILL: a crash. InnoDB recovers at the next start.
    pub fn kill9(&self) {
        self.server.kill_server();
    }

    /// Starts the server again after [`PrivateMariaDb::stop`] or [`PrivateMariaDb::kill9`], on the same port.
    pub fn start_again(&self) {
        self.server
            .start_server()
            .unwrap_or_else(|error| panic!("could not restart the test MariaDB: {error}"));
    }

    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.server.log_tail(lines)
    }
}

/// Runs `work` to its end on a runtime of its own, on a thread of its own: callable from plain tests and from
/// inside a tokio test alike (a runtime cannot be started on a runtime's thread).
fn on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let joined = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test kit")
            .block_on(work)
    })
    .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

/// (Slave_IO_Running, Slave_SQL_Running) of the replica's default connection.
async fn replica_threads(session: &tidegate_db::mysql::MySqlSession) -> (String, String) {
    use tidegate_db::driver::SessionExt;
    let rows = session
        .rows("SHOW SLAVE STATUS", &[])
        .await
        .unwrap_or_else(|error| panic!("could not read the test replica's status: {error}"));
    match rows.first() {
        Some(row) => (
            row.get::<String>("Slave_IO_Running").unwrap_or_default(),
            row.get::<String>("Slave_SQL_Running").unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    }
}

async fn wait_caught_up(primary_url: &str, replica: &tidegate_db::mysql::MySqlSession) {
    use tidegate_db::driver::SessionExt;
    let primary = tidegate_db::mysql::MySqlConfig::from_url(primary_url)
        .expect("the primary's URL parses")
        .connect()
        .await
        .unwrap_or_else(|error| panic!("could not connect to the test primary: {error}"));
    let position: String = primary
        .query_one("SELECT @@GLOBAL.gtid_binlog_pos AS pos", &[])
        .await
        .and_then(|row| Ok(row.get("pos")?))
        .unwrap_or_else(|error| panic!("could not read the primary's GTID position: {error}"));
    let waited: i64 = replica
        .query_one(
            "SELECT MASTER_GTID_WAIT(?, 60) AS waited",
            &[position.clone().into()],
        )
        .await
        .and_then(|row| Ok(row.get("waited")?))
        .unwrap_or_else(|error| panic!("could not wait for the test replica: {error}"));
    assert_eq!(
        waited, 0,
        "the test replica did not reach the primary's GTID position {position} within 60 s"
    );
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.server.stop_server();
        if self.server.is_running() {
            self.server.kill_server();
        }
        if let Some(parent) = self.server.dir.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}
