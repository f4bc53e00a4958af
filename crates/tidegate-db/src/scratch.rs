//! Throwaway PostgreSQL clusters started from the binaries installed on this machine: the embedded default that
//! `tidegate scratch`, `tidegate demo`, rehearsals and the integration tests run against.
//!
//! A scratch cluster lives entirely inside one directory:
//!
//! ```text
//! DIR/scratch.json   what tidegate needs to find it again (port, binaries, user, URL)
//! DIR/data/          the data directory (initdb)
//! DIR/run/           the unix socket
//! DIR/server.log     the server's log
//! ```
//!
//! It listens on 127.0.0.1 only, trusts local connections, and is tuned for speed over durability (no fsync):
//! everything in it is disposable. PostgreSQL refuses to run as root, so when tidegate runs as root it runs initdb
//! and the server as an unprivileged system user (`postgres`, or `TIDEGATE_SCRATCH_USER`).
//!
//! This module must not hide a failure: every error names the directory, the command and the server's own log lines.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, Uid, User};
use serde::{Deserialize, Serialize};

/// Environment variable naming a directory that holds `initdb`, `pg_ctl` and `postgres`.
pub const PG_BIN_ENV: &str = "TIDEGATE_PG_BIN";
/// Environment variable naming the system user that runs the server when tidegate runs as root.
pub const SCRATCH_USER_ENV: &str = "TIDEGATE_SCRATCH_USER";
/// Environment variable naming a directory that holds `mariadb-install-db` and `mariadbd`.
pub const MARIADB_BIN_ENV: &str = "TIDEGATE_MARIADB_BIN";
/// The database superuser initdb creates in every scratch cluster.
pub const SUPERUSER: &str = "postgres";

const STATE_FILE: &str = "scratch.json";
const DATA_DIR: &str = "data";
const SOCKET_DIR: &str = "run";
const SERVER_LOG: &str = "server.log";
const INITDB_LOG: &str = "initdb.log";
const START_TIMEOUT_SECS: u32 = 60;
/// How many server log lines an error shows.
const LOG_LINES_IN_ERRORS: usize = 15;

/// Why a scratch cluster could not be started, stopped or found.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error(
        "no PostgreSQL server binaries found (looked in: {tried}).\n\
         Install them (Debian/Ubuntu: `apt-get install postgresql`, or run scripts/setup.sh), \
         or point {PG_BIN_ENV} at the directory holding initdb, pg_ctl and postgres"
    )]
    NoBinaries { tried: String },

    #[error("`{name}` is not a PostgreSQL setting's name (letters, digits, `_` and `.`); the scratch server was not started")]
    BadSetting { name: String },

    #[error(
        "{PG_BIN_ENV}={dir} does not hold the PostgreSQL server binaries (missing: {missing}).\n\
         Point it at the directory holding initdb, pg_ctl and postgres, e.g. /usr/lib/postgresql/15/bin"
    )]
    BadBinDir { dir: PathBuf, missing: String },

    #[error(
        "a scratch server already runs in {dir} at {url}.\n\
         Use it, or stop it first with `tidegate scratch stop --dir {dir}`"
    )]
    AlreadyRunning { dir: PathBuf, url: String },

    #[error(
        "{dir} exists and holds files that are not a tidegate scratch server; refusing to touch them.\n\
         Choose another --dir, or remove that directory yourself"
    )]
    DirInUse { dir: PathBuf },

    #[error("no scratch server runs in {dir}")]
    NotRunning { dir: PathBuf },

    #[error(
        "port {port} on 127.0.0.1 is already in use.\n\
         Choose another --port, or leave --port out and tidegate picks a free one"
    )]
    PortInUse { port: u16 },

    #[error(
        "tidegate runs as root and PostgreSQL refuses to: it needs an unprivileged system user to run the server, \
         and the user '{user}' does not exist.\n\
         Create one (`useradd --system --no-create-home {user}`), or name another with {SCRATCH_USER_ENV}=USER"
    )]
    NoServerUser { user: String },

    #[error(
        "no MariaDB server binaries found (looked for mariadb-install-db and mariadbd in: {tried}).\n\
         Install them (Debian/Ubuntu: `apt-get install mariadb-server`, or run scripts/setup.sh), \
         or point {MARIADB_BIN_ENV} at the directory holding them"
    )]
    NoMariaDbBinaries { tried: String },

    #[error(
        "the user '{user}' that runs the server cannot reach {dir}: {blocking} does not let it in.\n\
         Choose a --dir it can reach, e.g. under /tmp or /var/tmp"
    )]
    DirUnreachable {
        user: String,
        dir: PathBuf,
        blocking: PathBuf,
    },

    #[error("{what} failed in {dir}:\n{log}\n{hint}")]
    CommandFailed {
        what: String,
        dir: PathBuf,
        log: String,
        hint: String,
    },

    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error(
        "{path} is not a tidegate scratch state file ({reason}), so tidegate leaves {dir} alone.\n\
         If a scratch server ran there, stop it (`pg_ctl stop -D {dir}/data`) and remove the directory yourself; \
         otherwise choose another --dir"
    )]
    BadState {
        path: PathBuf,
        dir: PathBuf,
        reason: String,
    },
}

pub(crate) fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ScratchError + 'a {
    move |source| ScratchError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The PostgreSQL server binaries tidegate found, and their major version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    pub major_version: u32,
}

impl PgBinaries {
    /// Finds the server binaries: `TIDEGATE_PG_BIN`, else `pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/*/bin`.
    pub fn find() -> Result<Self, ScratchError> {
        Self::find_with(
            std::env::var_os(PG_BIN_ENV).map(PathBuf::from),
            pg_config_bindir(),
            Path::new("/usr/lib/postgresql"),
        )
    }

    /// The binaries of major version `major` when they are installed (`/usr/lib/postgresql/MAJOR/bin`, or
    /// `pg_config --bindir` when it is that version), else what [`PgBinaries::find`] finds; `TIDEGATE_PG_BIN`,
    /// when set, always wins. The caller compares [`PgBinaries::major_version`] to say when they differ.
    pub fn find_for_major(major: u32) -> Result<Self, ScratchError> {
        if std::env::var_os(PG_BIN_ENV).is_none() {
            let versioned = Path::new("/usr/lib/postgresql")
                .join(major.to_string())
                .join("bin");
            if missing_binaries(&versioned).is_empty() {
                return Self::at(versioned);
            }
        }
        Self::find()
    }

    /// [`PgBinaries::find`] with its inputs given: the env override, what `pg_config --bindir` printed, and the
    /// root of versioned installs.
    pub fn find_with(
        env_dir: Option<PathBuf>,
        pg_config_dir: Option<PathBuf>,
        versioned_root: &Path,
    ) -> Result<Self, ScratchError> {
        if let Some(dir) = env_dir {
            let missing = missing_binaries(&dir);
            if !missing.is_empty() {
                return Err(ScratchError::BadBinDir {
                    dir,
                    missing: missing.join(", "),
                });
            }
            return Self::at(dir);
        }
        let mut tried = Vec::new();
        if let Some(dir) = pg_config_dir {
            if missing_binaries(&dir).is_empty() {
                return Self::at(dir);
            }
            tried.push(format!("pg_config --bindir ({})", dir.display()));
        } else {
            tried.push("pg_config (not on PATH)".to_string());
        }
        let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir(versioned_root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, dir)| missing_binaries(dir).is_empty())
            .collect();
        versioned.sort();
        if let Some((_, dir)) = versioned.pop() {
            return Self::at(dir);
        }
        tried.push(format!("{}/*/bin", versioned_root.display()));
        tried.push(format!("${PG_BIN_ENV} (not set)"));
        Err(ScratchError::NoBinaries {
            tried: tried.join(", "),
        })
    }

    fn at(bin_dir: PathBuf) -> Result<Self, ScratchError> {
        let output = Command::new(bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .map_err(io_error("run", &bin_dir.join("postgres")))?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
        let major_version = text
            .split_whitespace()
            .nth(2)
            .and_then(|version| version.split('.').next())
            .and_then(|major| major.parse().ok())
            .ok_or_else(|| ScratchError::BadBinDir {
                dir: bin_dir.clone(),
                missing: format!(
                    "a postgres that reports its version (it said {:?})",
                    text.trim()
                ),
            })?;
        Ok(Self {
            bin_dir,
            major_version,
        })
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

fn missing_binaries(dir: &Path) -> Vec<&'static str> {
    ["initdb", "pg_ctl", "postgres"]
        .into_iter()
        .filter(|tool| !dir.join(tool).is_file())
        .collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

/// The OS user that runs initdb and the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// True when tidegate runs as root and switched to this user for PostgreSQL's sake.
    pub switched_from_root: bool,
}

impl ServerUser {
    /// The current user, or — when that is root — `TIDEGATE_SCRATCH_USER` or `postgres`.
    pub fn for_current_process() -> Result<Self, ScratchError> {
        Self::for_current_process_or("postgres")
    }

    /// The current user, or — when that is root — `TIDEGATE_SCRATCH_USER` or `default_user`.
    pub fn for_current_process_or(default_user: &str) -> Result<Self, ScratchError> {
        let uid = Uid::effective();
        if !uid.is_root() {
            let name = User::from_uid(uid)
                .ok()
                .flatten()
                .map(|user| user.name)
                .unwrap_or_else(|| uid.to_string());
            return Ok(Self {
                name,
                uid: uid.as_raw(),
                gid: nix::unistd::Gid::effective().as_raw(),
                switched_from_root: false,
            });
        }
        let name = std::env::var(SCRATCH_USER_ENV).unwrap_or_else(|_| default_user.to_string());
        match User::from_name(&name) {
            Ok(Some(user)) if !user.uid.is_root() => Ok(Self {
                name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                switched_from_root: true,
            }),
            _ => Err(ScratchError::NoServerUser { user: name }),
        }
    }

    /// A command that runs as this user (and drops root's supplementary groups when switching).
    pub(crate) fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        if self.switched_from_root {
            command.uid(self.uid).gid(self.gid);
            // Tools that look at HOME or USER must not see root's.
            command
                .env("USER", &self.name)
                .env("LOGNAME", &self.name)
                .env_remove("HOME");
        }
        command
    }
}

/// Where a scratch cluster lives when no `--dir` is given: a per-user state directory.
///
/// For root this is `/var/lib/tidegate/scratch`, because root's home is not reachable by the unprivileged user
/// that runs the server.
pub fn default_dir() -> PathBuf {
    if Uid::effective().is_root() {
        return PathBuf::from("/var/lib/tidegate/scratch");
    }
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state_home.join("tidegate/scratch")
}

/// How to start a scratch cluster.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub dir: PathBuf,
    /// A fixed port; `None` picks a free one.
    pub port: Option<u16>,
    /// `shared_buffers`, e.g. "128MB".
    pub shared_buffers: String,
    pub max_connections: u32,
    /// More settings, `(name, value)`, written after the defaults so they win over them (a test's source server
    /// with `full_page_writes = off`, a rehearsal's scratch server with the source's `wal_level`). A name is
    /// letters, digits, `_` and `.`; a value is quoted here.
    pub settings: Vec<(String, String)>,
}

impl StartOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            port: None,
            shared_buffers: "128MB".into(),
            max_connections: 100,
            settings: Vec::new(),
        }
    }
}

/// The lines `settings` add to the configuration; a name that is not a setting's name is refused.
fn setting_lines(settings: &[(String, String)]) -> Result<String, ScratchError> {
    let mut lines = String::new();
    for (name, value) in settings {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(ScratchError::BadSetting { name: name.clone() });
        }
        lines.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    Ok(lines)
}

/// What `scratch.json` records about a running cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScratchServer {
    pub dir: PathBuf,
    pub port: u16,
    pub binaries: PgBinaries,
    pub user: ServerUser,
}

impl ScratchServer {
    /// `postgresql://postgres@127.0.0.1:PORT/postgres`: trust authentication, no password anywhere.
    pub fn url(&self) -> String {
        self.url_for_database("postgres")
    }

    pub fn url_for_database(&self, database: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join(SOCKET_DIR)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(SERVER_LOG)
    }

    /// The postmaster's pid while it runs.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        process_alive(pid).then_some(pid)
    }

    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some()
    }

    /// Starts the server of an existing cluster again (after [`ScratchServer::stop_server`] or a crash).
    pub fn start_server(&self) -> Result<(), ScratchError> {
        // After a kill -9 the old backends may hold the shared memory segment for a moment; PostgreSQL refuses to
        // start until they are gone, so retry briefly.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() < deadline && self.log_says_shared_memory_in_use() => {
                    tracing::debug!(%error, "retrying start while old backends exit");
                    thread::sleep(Duration::from_millis(200));
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn pg_ctl_start(&self) -> Result<(), ScratchError> {
        let output = self
            .user
            .command(self.binaries.tool("pg_ctl"))
            .arg("start")
            .arg("--silent")
            .arg("--wait")
            .arg(format!("--timeout={START_TIMEOUT_SECS}"))
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--log")
            .arg(self.log_path())
            .stdin(Stdio::null())
            // pg_ctl's own stdout is inherited by the server it forks: keep it off ours so a caller reading
            // our stdout to the end is not held open by the server.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(io_error("run pg_ctl from", &self.binaries.bin_dir))?;
        if output.status.success() {
            return Ok(());
        }
        let log = self.log_tail(LOG_LINES_IN_ERRORS);
        let hint = if log.contains("could not bind") || log.contains("Address already in use") {
            format!("port {} is in use: choose another --port", self.port)
        } else {
            format!("the whole server log is {}", self.log_path().display())
        };
        Err(ScratchError::CommandFailed {
            what: "starting the server (pg_ctl start)".into(),
            dir: self.dir.clone(),
            log: join_output(&output, &log),
            hint,
        })
    }

    fn log_says_shared_memory_in_use(&self) -> bool {
        self.log_tail(5)
            .contains("pre-existing shared memory block")
    }

    /// Stops the server (fast shutdown: open transactions roll back), keeping its directory.
    pub fn stop_server(&self) -> Result<(), ScratchError> {
        if !self.is_running() {
            return Ok(());
        }
        let output = self
            .user
            .command(self.binaries.tool("pg_ctl"))
            .args(["stop", "--silent", "--wait", "--mode=fast"])
            .arg(format!("--timeout={START_TIMEOUT_SECS}"))
            .arg("--pgdata")
            .arg(self.data_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(io_error("run pg_ctl from", &self.binaries.bin_dir))?;
        if output.status.success() || !self.is_running() {
            return Ok(());
        }
        Err(ScratchError::CommandFailed {
            what: "stopping the server (pg_ctl stop)".into(),
            dir: self.dir.clone(),
            log: join_output(&output, &self.log_tail(LOG_LINES_IN_ERRORS)),
            hint: "kill the postmaster whose pid is the first line of data/postmaster.pid".into(),
        })
    }

    /// Crashes the server the hard way: SIGKILL to the postmaster and every backend, as an OOM killer would.
    /// For fault-injection tests. The data directory survives; [`ScratchServer::start_server`] recovers it.
    pub fn kill_server(&self) {
        let Some(postmaster) = self.postmaster_pid() else {
            return;
        };
        let children = child_pids(postmaster);
        let _ = kill(Pid::from_raw(postmaster), Signal::SIGKILL);
        for child in children {
            let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(postmaster) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // The dead postmaster can linger as a zombie until init reaps it, and PostgreSQL takes a zombie's pid in
        // the lock file for a live server. The lock is provably stale: remove it so the next start can recover.
        if !process_alive(postmaster) {
            let _ = fs::remove_file(self.data_dir().join("postmaster.pid"));
            let socket = self.socket_dir().join(format!(".s.PGSQL.{}", self.port));
            let _ = fs::remove_file(socket.with_extension(format!("{}.lock", self.port)));
            let _ = fs::remove_file(socket);
        }
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }
}

/// Starts a scratch cluster in `options.dir`.
pub fn start(options: &StartOptions) -> Result<ScratchServer, ScratchError> {
    let binaries = PgBinaries::find()?;
    let user = ServerUser::for_current_process()?;
    start_with(options, binaries, user)
}

/// [`start`] with the binaries and the server user given.
pub fn start_with(
    options: &StartOptions,
    binaries: PgBinaries,
    user: ServerUser,
) -> Result<ScratchServer, ScratchError> {
    let dir = absolute(&options.dir)?;
    prepare_dir(&dir, &user)?;
    if let Some(port) = options.port {
        if !port_is_free(port) {
            // Leave nothing behind: the directory we may have just created is empty.
            let _ = fs::remove_dir(&dir);
            return Err(ScratchError::PortInUse { port });
        }
    }
    let result = init_and_start(&dir, options, binaries, user);
    if result.is_err() {
        // Keep the logs of a failed start for the user to read only if they are not already in the error.
        remove_cluster_files(&dir);
    }
    result
}

fn init_and_start(
    dir: &Path,
    options: &StartOptions,
    binaries: PgBinaries,
    user: ServerUser,
) -> Result<ScratchServer, ScratchError> {
    let socket_dir = dir.join(SOCKET_DIR);
    create_owned_dir(&socket_dir, &user)?;
    let data_dir = dir.join(DATA_DIR);
    initdb(dir, &data_dir, &binaries, &user)?;
    // A port picked as free can be taken by someone else before the server binds it: try a few.
    let attempts = if options.port.is_some() { 1 } else { 5 };
    let mut last_error = None;
    for _ in 0..attempts {
        let port = match options.port {
            Some(port) => port,
            None => free_port().map_err(io_error("find a free port on", Path::new("127.0.0.1")))?,
        };
        write_config(&data_dir, &socket_dir, port, options)?;
        let server = ScratchServer {
            dir: dir.to_path_buf(),
            port,
            binaries: binaries.clone(),
            user: user.clone(),
        };
        match server.pg_ctl_start() {
            Ok(()) => {
                write_state(&server)?;
                return Ok(server);
            }
            Err(error) => {
                let port_taken = server
                    .log_tail(LOG_LINES_IN_ERRORS)
                    .contains("could not bind");
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

fn initdb(
    dir: &Path,
    data_dir: &Path,
    binaries: &PgBinaries,
    user: &ServerUser,
) -> Result<(), ScratchError> {
    let output = user
        .command(binaries.tool("initdb"))
        .arg("--pgdata")
        .arg(data_dir)
        .args([
            "--username",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(io_error("run initdb from", &binaries.bin_dir))?;
    let _ = fs::write(
        dir.join(INITDB_LOG),
        [&output.stdout[..], &output.stderr[..]].concat(),
    );
    if output.status.success() {
        return Ok(());
    }
    Err(ScratchError::CommandFailed {
        what: "initdb".into(),
        dir: dir.to_path_buf(),
        log: join_output(&output, ""),
        hint: format!(
            "initdb ran as the user '{}' from {}",
            user.name,
            binaries.bin_dir.display()
        ),
    })
}

fn write_config(
    data_dir: &Path,
    socket_dir: &Path,
    port: u16,
    options: &StartOptions,
) -> Result<(), ScratchError> {
    // postgresql.auto.conf is read after postgresql.conf, so these win over initdb's defaults; rewriting the whole
    // file keeps a retry on another port from piling up settings. fsync is off (only an OS crash loses data) but
    // synchronous_commit stays on: fault tests kill the server and must find every acknowledged commit again.
    // wal_init_zero is off because a fresh server has no recycled WAL segments: every 16 MB of WAL a backfill
    // writes would be a new segment zero-filled under WALWriteLock, and every application commit in that moment
    // waits for it (sampled in the demo: 50–130 ms stalls, p99 10× the baseline). A server that has run a while
    // reuses segments its checkpoints recycle, so zero-filling is the fresh server's artefact, not production's.
    let extra = setting_lines(&options.settings)?;
    let config = format!(
        "# Written by tidegate scratch: a throwaway server, tuned for speed over durability.\n\
         listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         unix_socket_directories = '{socket}'\n\
         max_connections = {max_connections}\n\
         shared_buffers = '{shared_buffers}'\n\
         fsync = off\n\
         full_page_writes = off\n\
         max_wal_size = '2GB'\n\
         wal_init_zero = off\n\
         checkpoint_timeout = '30min'\n\
         logging_collector = off\n\
         log_min_messages = warning\n\
         log_line_prefix = '%m [%p] '\n\
         {extra}",
        socket = socket_dir.display().to_string().replace('\'', "''"),
        max_connections = options.max_connections,
        shared_buffers = options.shared_buffers.replace('\'', "''"),
    );
    let path = data_dir.join("postgresql.auto.conf");
    fs::write(&path, config).map_err(io_error("write", &path))
}

/// Stops the scratch server in `dir` and removes the directory. A directory left by a crashed server is cleaned
/// up too.
pub fn stop(dir: &Path) -> Result<(), ScratchError> {
    let dir = absolute(dir)?;
    let server = match read_state(&dir)? {
        Some(server) => server,
        None => return Err(ScratchError::NotRunning { dir }),
    };
    server.stop_server()?;
    remove_cluster_files(&dir);
    Ok(())
}

/// What `tidegate scratch status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScratchStatus {
    Running(ScratchServer),
    /// The directory holds a cluster whose server is not running (it crashed or was killed).
    Stopped(ScratchServer),
    None,
}

pub fn status(dir: &Path) -> Result<ScratchStatus, ScratchError> {
    let dir = absolute(dir)?;
    Ok(match read_state(&dir)? {
        Some(server) if server.is_running() => ScratchStatus::Running(server),
        Some(server) => ScratchStatus::Stopped(server),
        None => ScratchStatus::None,
    })
}

fn prepare_dir(dir: &Path, user: &ServerUser) -> Result<(), ScratchError> {
    match read_state(dir) {
        Ok(Some(server)) if server.is_running() => {
            return Err(ScratchError::AlreadyRunning {
                dir: dir.to_path_buf(),
                url: server.url(),
            })
        }
        // A cluster whose server died: it was throwaway, start afresh. A `scratch.json` that does not parse
        // may be anybody's file: the directory is not provably ours, so it is not touched (BadState).
        Ok(Some(_)) => remove_cluster_files(dir),
        Ok(None) => {}
        Err(error) => return Err(error),
    }
    claim_empty_dir(dir, user)
}

/// Takes `dir` for a new server: creates it (and its parents) when missing, refuses one that holds anything
/// (someone else's files are never touched), hands it to the server user and checks that user can reach it.
pub(crate) fn claim_empty_dir(dir: &Path, user: &ServerUser) -> Result<(), ScratchError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScratchError::DirInUse {
                    dir: dir.to_path_buf(),
                });
            }
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                create_parent_dirs(parent)?;
            }
            fs::create_dir(dir).map_err(io_error("create", dir))?;
        }
        Err(error) => {
            return Err(ScratchError::Io {
                action: "read",
                path: dir.to_path_buf(),
                source: error,
            })
        }
    }
    give_to(dir, user)?;
    check_reachable(dir, user)
}

pub(crate) fn create_parent_dirs(parent: &Path) -> Result<(), ScratchError> {
    fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    Ok(())
}

fn create_owned_dir(dir: &Path, user: &ServerUser) -> Result<(), ScratchError> {
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    give_to(dir, user)
}

pub(crate) fn give_to(dir: &Path, user: &ServerUser) -> Result<(), ScratchError> {
    if user.switched_from_root {
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
            .map_err(io_error("change the owner of", dir))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_error("set permissions on", dir))
}

/// When root hands the cluster to another user, every directory above it must let that user in.
pub(crate) fn check_reachable(dir: &Path, user: &ServerUser) -> Result<(), ScratchError> {
    if !user.switched_from_root {
        return Ok(());
    }
    for ancestor in dir.ancestors().skip(1) {
        let Ok(metadata) = fs::metadata(ancestor) else {
            continue;
        };
        let mode = metadata.mode();
        let can_enter = if metadata.uid() == user.uid {
            mode & 0o100 != 0
        } else if metadata.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !can_enter {
            let _ = fs::remove_dir(dir);
            return Err(ScratchError::DirUnreachable {
                user: user.name.clone(),
                dir: dir.to_path_buf(),
                blocking: ancestor.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Removes what a scratch cluster put in `dir`, and `dir` itself if nothing else is left in it: files someone else
/// put there are never deleted.
fn remove_cluster_files(dir: &Path) {
    for file in [STATE_FILE, SERVER_LOG, INITDB_LOG] {
        let _ = fs::remove_file(dir.join(file));
    }
    for subdir in [DATA_DIR, SOCKET_DIR] {
        let _ = fs::remove_dir_all(dir.join(subdir));
    }
    let _ = fs::remove_dir(dir);
}

fn write_state(server: &ScratchServer) -> Result<(), ScratchError> {
    let path = server.dir.join(STATE_FILE);
    let json = serde_json::to_string_pretty(server).expect("the scratch state serializes");
    fs::write(&path, json).map_err(io_error("write", &path))
}

fn read_state(dir: &Path) -> Result<Option<ScratchServer>, ScratchError> {
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

pub(crate) fn absolute(dir: &Path) -> Result<PathBuf, ScratchError> {
    std::path::absolute(dir).map_err(io_error("resolve", dir))
}

pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

pub(crate) fn free_port() -> io::Result<u16> {
    Ok(
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port(),
    )
}

/// Whether `pid` is a live process (a zombie is not: it has exited and waits to be reaped).
pub fn process_alive(pid: i32) -> bool {
    // Signal 0 checks existence; EPERM still means the process exists.
    match kill(Pid::from_raw(pid), None) {
        Ok(()) => !is_zombie(pid),
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The pids whose parent is `parent`, from /proc.
fn child_pids(parent: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                .is_some_and(|ppid| ppid == parent)
        })
        .collect()
}

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(crate) fn join_output(output: &Output, log: &str) -> String {
    let mut text = String::new();
    for stream in [&output.stdout, &output.stderr] {
        let part = String::from_utf8_lossy(stream);
        if !part.trim().is_empty() {
            text.push_str(part.trim_end());
            text.push('\n');
        }
    }
    if !log.trim().is_empty() {
        text.push_str("server log:\n");
        text.push_str(log.trim_end());
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_newest_versioned_install() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9", "15", "13"] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            for tool in ["initdb", "pg_ctl"] {
                fs::write(bin.join(tool), "").unwrap();
            }
            // A fake `postgres` that reports its version, as the real one does.
            let script = format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}.4'\n");
            let postgres = bin.join("postgres");
            fs::write(&postgres, script).unwrap();
            fs::set_permissions(&postgres, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let found = PgBinaries::find_with(None, None, root.path()).unwrap();
        assert_eq!(found.major_version, 15);
        assert_eq!(found.bin_dir, root.path().join("15/bin"));
    }

    #[test]
    fn a_bad_env_override_names_what_is_missing() {
        let empty = tempfile::tempdir().unwrap();
        let error = PgBinaries::find_with(
            Some(empty.path().to_path_buf()),
            None,
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains(PG_BIN_ENV), "{message}");
        assert!(message.contains("initdb, pg_ctl, postgres"), "{message}");
    }

    #[test]
    fn no_binaries_anywhere_says_where_it_looked_and_what_to_do() {
        let empty = tempfile::tempdir().unwrap();
        let bare_pg_config = tempfile::tempdir().unwrap();
        let error = PgBinaries::find_with(
            None,
            Some(bare_pg_config.path().to_path_buf()),
            empty.path(),
        )
        .unwrap_err();
        assert!(
            matches!(error, ScratchError::NoBinaries { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("no PostgreSQL server binaries found"),
            "{message}"
        );
        assert!(message.contains("pg_config --bindir"), "{message}");
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains(PG_BIN_ENV), "{message}");
    }

    #[test]
    fn a_directory_with_a_foreign_scratch_json_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), "{\"not\": \"ours\"}").unwrap();
        fs::create_dir(dir.path().join(DATA_DIR)).unwrap();
        fs::write(dir.path().join(DATA_DIR).join("precious.csv"), "1,2").unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let user = ServerUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            switched_from_root: false,
        };
        let error = prepare_dir(dir.path(), &user).unwrap_err();
        assert!(matches!(error, ScratchError::BadState { .. }), "{error:?}");
        assert!(error.to_string().contains("leaves"), "{error}");
        assert!(dir.path().join(DATA_DIR).join("precious.csv").exists());
        assert!(dir.path().join(STATE_FILE).exists());
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn removing_a_cluster_keeps_files_it_did_not_create() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("c");
        fs::create_dir_all(cluster.join(DATA_DIR)).unwrap();
        fs::create_dir_all(cluster.join(SOCKET_DIR)).unwrap();
        fs::write(cluster.join(STATE_FILE), "{}").unwrap();
        fs::write(cluster.join(SERVER_LOG), "log").unwrap();
        remove_cluster_files(&cluster);
        assert!(
            !cluster.exists(),
            "a directory holding only the cluster is removed"
        );

        fs::create_dir_all(cluster.join(DATA_DIR)).unwrap();
        fs::write(cluster.join("notes.txt"), "mine").unwrap();
        remove_cluster_files(&cluster);
        assert!(cluster.join("notes.txt").exists());
        assert!(!cluster.join(DATA_DIR).exists());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&path, 2), "c\nd");
        assert_eq!(tail(&dir.path().join("missing"), 2), "");
    }
}
