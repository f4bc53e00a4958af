//! Throwaway MariaDB servers from the machine's own binaries (`mariadb-install-db`, `mariadbd`): what
//! `tidegate scratch start --engine mariadb` and the MariaDB tests run against.
//!
//! A scratch MariaDB lives entirely inside one directory, beside (never mixed with) a PostgreSQL one:
//!
//! ```text
//! DIR/mariadb.json    what tidegate needs to find it again (port, binaries, user)
//! DIR/data/           the data directory (mariadb-install-db)
//! DIR/mariadbd.sock   the unix socket
//! DIR/mariadbd.pid    the server's pid
//! DIR/server.log      the server's error log
//! DIR/init.sql        run by the server at start: the `scratch` database
//! ```
//!
//! It listens on 127.0.0.1 only, `root` without a password (the address-bound `root@127.0.0.1` account
//! mariadb-install-db creates), and is tuned for speed over durability: everything in it is disposable. When
//! tidegate runs as root, install and server run as the `mysql` system user (or `TIDEGATE_SCRATCH_USER`).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::scratch::{
    absolute, claim_empty_dir, free_port, io_error, join_output, port_is_free, process_alive, tail,
    ScratchError, ServerUser, MARIADB_BIN_ENV,
};

const STATE_FILE: &str = "mariadb.json";
const DATA_DIR: &str = "data";
const SOCKET: &str = "mariadbd.sock";
const PID_FILE: &str = "mariadbd.pid";
const SERVER_LOG: &str = "server.log";
const INSTALL_LOG: &str = "install.log";
const INIT_FILE: &str = "init.sql";
/// The database every scratch MariaDB has, named by its URL.
pub const DATABASE: &str = "scratch";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_LINES_IN_ERRORS: usize = 15;

/// Where the MariaDB binaries are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariaDbBinaries {
    pub install_db: PathBuf,
    pub server: PathBuf,
}

impl MariaDbBinaries {
    /// `TIDEGATE_MARIADB_BIN`, else the Debian locations and PATH.
    pub fn find() -> Result<Self, ScratchError> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os(MARIADB_BIN_ENV) {
            dirs.push(PathBuf::from(dir));
        } else {
            dirs.extend(
                ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"].map(PathBuf::from),
            );
            if let Some(path) = std::env::var_os("PATH") {
                dirs.extend(std::env::split_paths(&path));
            }
        }
        let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
        match (find("mariadb-install-db"), find("mariadbd")) {
            (Some(install_db), Some(server)) => Ok(Self { install_db, server }),
            _ => Err(ScratchError::NoMariaDbBinaries {
                tried: dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// How to start a scratch MariaDB.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub dir: PathBuf,
    /// A fixed port; `None` picks a free one.
    pub port: Option<u16>,
    /// `innodb_buffer_pool_size`, e.g. "128M".
    pub buffer_pool: String,
    /// Binary log and replication role; [`Replication::Off`] (no binary log) unless a test needs replicas.
    pub replication: Replication,
}

impl StartOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            port: None,
            buffer_pool: "128M".into(),
            replication: Replication::Off,
        }
    }
}

/// A scratch MariaDB's part in replication: none (the default), a primary writing a binary log, or a replica.
/// Replication itself (`CHANGE MASTER TO … ; START SLAVE`) is configured over SQL once both servers run (the
/// test kit's `PrivateMariaDb::start_replica_of`); a replica restarted afterwards resumes it by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Replication {
    /// `--skip-log-bin`: no binary log, the fastest, what every server is unless asked otherwise.
    #[default]
    Off,
    /// `--server-id`, `--log-bin` in the data directory, `--binlog-format=ROW`.
    Primary { server_id: u32 },
    /// `--server-id`, relay logs in the data directory, no binary log of its own, and `--read-only` (replication
    /// and accounts with READ ONLY ADMIN, root among them, still write).
    Replica { server_id: u32 },
}

impl Replication {
    /// The server options this role adds.
    fn server_args(self) -> Vec<String> {
        match self {
            Replication::Off => vec!["--skip-log-bin".into()],
            Replication::Primary { server_id } => vec![
                format!("--server-id={server_id}"),
                "--log-bin=mariadb-bin".into(),
                "--binlog-format=ROW".into(),
            ],
            Replication::Replica { server_id } => vec![
                format!("--server-id={server_id}"),
                "--skip-log-bin".into(),
                "--relay-log=mariadb-relay".into(),
                "--read-only".into(),
            ],
        }
    }
}

/// What `mariadb.json` records about a scratch MariaDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariaDbServer {
    pub dir: PathBuf,
    pub port: u16,
    pub binaries: MariaDbBinaries,
    pub user: ServerUser,
    /// Kept so a restart starts it the same way.
    pub buffer_pool: String,
    /// The same (absent from state files written before it existed: no binary log).
    #[serde(default)]
    pub replication: Replication,
}

impl MariaDbServer {
    /// `mysql://root@127.0.0.1:PORT/scratch`: no password anywhere.
    pub fn url(&self) -> String {
        self.url_for_database(DATABASE)
    }

    pub fn url_for_database(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(SERVER_LOG)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.dir.join(PID_FILE)).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        process_alive(pid).then_some(pid)
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Starts the server on its existing data directory (after [`MariaDbServer::stop_server`] or a kill) and
    /// waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), ScratchError> {
        let _ = fs::remove_file(self.dir.join(PID_FILE));
        let _ = fs::remove_file(self.socket());
        let log_start = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        let mut command = self.user.command(&self.binaries.server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join(DATA_DIR).display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.join(PID_FILE).display()))
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg(format!(
                "--init-file={}",
                self.dir.join(INIT_FILE).display()
            ))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                // Disposable: durability off, like the PostgreSQL scratch server's fsync = off.
                "--innodb-flush-log-at-trx-commit=2",
                "--innodb-doublewrite=0",
            ])
            .args(self.replication.server_args())
            .arg(format!("--innodb-buffer-pool-size={}", self.buffer_pool))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own session: a Ctrl-C meant for tidegate does not reach the server.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(io_error("run mariadbd from", &self.binaries.server))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(self.failed(&format!("mariadbd exited with {status}"), log_start));
            }
            if self.log_since(log_start).contains("ready for connections") && self.is_running() {
                // Reaped by a thread so a stopped server never lingers as a zombie of ours.
                thread::spawn(move || {
                    let _ = child.wait();
                });
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.failed("mariadbd did not become ready within 60 s", log_start));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let text = fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default()).into_owned()
    }

    fn failed(&self, what: &str, log_start: u64) -> ScratchError {
        let log = self.log_since(log_start);
        let lines: Vec<&str> = log.lines().collect();
        let port_taken =
            log.contains("Address already in use") || log.contains("Can't start server: Bind");
        ScratchError::CommandFailed {
            what: what.to_string(),
            dir: self.dir.clone(),
            log: lines[lines.len().saturating_sub(LOG_LINES_IN_ERRORS)..].join("\n"),
            hint: if port_taken {
                format!(
                    "port {} is taken; choose another --port or leave it out",
                    self.port
                )
            } else {
                format!(
                    "mariadbd ran as the user '{}' from {}",
                    self.user.name,
                    self.binaries.server.display()
                )
            },
        }
    }

    /// Stops the server cleanly (SIGTERM, as `mariadb-admin shutdown` does) and waits for it to exit.
    pub fn stop_server(&self) -> Result<(), ScratchError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while process_alive(pid) {
            if Instant::now() > deadline {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// kill -9: the fault the tests inject. InnoDB recovers at the next start.
    pub fn kill_server(&self) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            while process_alive(pid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Installs a fresh data directory in `options.dir` and starts a server on it.
pub fn start(options: &StartOptions) -> Result<MariaDbServer, ScratchError> {
    let binaries = MariaDbBinaries::find()?;
    let user = ServerUser::for_current_process_or("mysql")?;
    start_with(options, binaries, user)
}

/// [`start`] with the binaries and the server user given.
pub fn start_with(
    options: &StartOptions,
    binaries: MariaDbBinaries,
    user: ServerUser,
) -> Result<MariaDbServer, ScratchError> {
    let dir = absolute(&options.dir)?;
    prepare_dir(&dir, &user)?;
    if let Some(port) = options.port {
        if !port_is_free(port) {
            let _ = fs::remove_dir(&dir);
            return Err(ScratchError::PortInUse { port });
        }
    }
    let result = install_and_start(&dir, options, binaries, user);
    if result.is_err() {
        remove_server_files(&dir);
    }
    result
}

fn install_and_start(
    dir: &Path,
    options: &StartOptions,
    binaries: MariaDbBinaries,
    user: ServerUser,
) -> Result<MariaDbServer, ScratchError> {
    let data_dir = dir.join(DATA_DIR);
    let output = user
        .command(&binaries.install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data_dir.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(
            "run mariadb-install-db from",
            &binaries.install_db,
        ))?;
    let _ = fs::write(
        dir.join(INSTALL_LOG),
        [&output.stdout[..], &output.stderr[..]].concat(),
    );
    if !output.status.success() {
        return Err(ScratchError::CommandFailed {
            what: "mariadb-install-db".into(),
            dir: dir.to_path_buf(),
            log: join_output(&output, ""),
            hint: format!(
                "mariadb-install-db ran as the user '{}' from {}",
                user.name,
                binaries.install_db.display()
            ),
        });
    }
    let init = dir.join(INIT_FILE);
    fs::write(
        &init,
        format!("CREATE DATABASE IF NOT EXISTS `{DATABASE}`;\n"),
    )
    .map_err(io_error("write", &init))?;
    // A port picked as free can be taken by someone else before the server binds it: try a few.
    let attempts = if options.port.is_some() { 1 } else { 5 };
    let mut last_error = None;
    for _ in 0..attempts {
        let port = match options.port {
            Some(port) => port,
            None => free_port().map_err(io_error("find a free port on", Path::new("127.0.0.1")))?,
        };
        let server = MariaDbServer {
            dir: dir.to_path_buf(),
            port,
            binaries: binaries.clone(),
            user: user.clone(),
            buffer_pool: options.buffer_pool.clone(),
            replication: options.replication,
        };
        match server.start_server() {
            Ok(()) => {
                write_state(&server)?;
                return Ok(server);
            }
            Err(error) => {
                let port_taken = matches!(&error, ScratchError::CommandFailed { hint, .. } if hint.contains("is taken"));
                last_error = Some(if options.port.is_some() && port_taken {
                    ScratchError::PortInUse { port }
                } else {
                    error
                });
                if !port_taken {
                    break;
                }
            }
        }
    }
    Err(last_error.expect("at least one start attempt"))
}

/// Stops the scratch MariaDB in `dir` and removes what it put there.
pub fn stop(dir: &Path) -> Result<(), ScratchError> {
    let dir = absolute(dir)?;
    let server = match read_state(&dir)? {
        Some(server) => server,
        None => return Err(ScratchError::NotRunning { dir }),
    };
    server.stop_server()?;
    remove_server_files(&dir);
    Ok(())
}

/// The scratch MariaDB recorded in `dir`, if any, and whether it runs.
pub fn status(dir: &Path) -> Result<Option<(MariaDbServer, bool)>, ScratchError> {
    let dir = absolute(dir)?;
    Ok(read_state(&dir)?.map(|server| {
        let running = server.is_running();
        (server, running)
    }))
}

/// Whether `dir` records a scratch MariaDB (so `tidegate scratch stop`/`status` pick the engine themselves).
pub fn is_mariadb_dir(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file()
}

fn prepare_dir(dir: &Path, user: &ServerUser) -> Result<(), ScratchError> {
    match read_state(dir) {
        Ok(Some(server)) if server.is_running() => {
            return Err(ScratchError::AlreadyRunning {
                dir: dir.to_path_buf(),
                url: server.url(),
            })
        }
        // A server that died: it was throwaway, start afresh.
        Ok(Some(_)) => remove_server_files(dir),
        Ok(None) => {}
        Err(error) => return Err(error),
    }
    claim_empty_dir(dir, user)
}

/// Removes what a scratch MariaDB put in `dir`, and `dir` itself if nothing else is left.
fn remove_server_files(dir: &Path) {
    for file in [
        STATE_FILE,
        SERVER_LOG,
        INSTALL_LOG,
        INIT_FILE,
        PID_FILE,
        SOCKET,
    ] {
        let _ = fs::remove_file(dir.join(file));
    }
    let _ = fs::remove_file(dir.join(format!("{SOCKET}.lock")));
    let _ = fs::remove_dir_all(dir.join(DATA_DIR));
    let _ = fs::remove_dir(dir);
}

fn write_state(server: &MariaDbServer) -> Result<(), ScratchError> {
    let path = server.dir.join(STATE_FILE);
    let json = serde_json::to_string_pretty(server).expect("the scratch state serializes");
    fs::write(&path, json).map_err(io_error("write", &path))
}

fn read_state(dir: &Path) -> Result<Option<MariaDbServer>, ScratchError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(ScratchError::Io {
                action: "read",
                path,
                source: error,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| ScratchError::BadState {
            path,
            dir: dir.to_path_buf(),
            reason: error.to_string(),
        })
}
