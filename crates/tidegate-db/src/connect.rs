//! Connection configuration and connecting, the way psql does it: `--db URL`, else `DATABASE_URL`, else libpq's
//! variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGPASSFILE`/`~/.pgpass`, `PGSSLMODE`).
//!
//! Every session starts bounded: [`DEFAULT_LOCK_TIMEOUT`] and [`DEFAULT_STATEMENT_TIMEOUT`] go into the startup
//! `options` of every connection, ahead of the user's own `options` (URL or `PGOPTIONS`), so no statement tidegate
//! sends — its own bookkeeping on the `tidegate` schema included — can wait for a lock or run without a bound.
//!
//! Passwords never leave this module: [`ConnectionConfig`] has no `Display` of its own, only [`Redacted`], which
//! prints the target without the password. Errors keep the SQLSTATE ([`sqlstate`]) so callers match
//! `55P03`/`40P01` rather than message text.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::driver::ErrorClass;

/// The `lock_timeout` every session starts with. Work that waits for locks on purpose (schema phases, backfill
/// batches) sets its own bound per statement; this one bounds everything else — reads of the catalog, the
/// `tidegate` schema's own tables, advisory locks — and is long enough for a busy but healthy server to grant
/// those locks (they conflict only with DDL on the same table) while a stuck one fails within seconds instead of
/// queueing production behind tidegate.
pub const DEFAULT_LOCK_TIMEOUT: &str = "5s";

/// The `statement_timeout` every session starts with. Long work (a schema phase, a batch, a CONCURRENTLY build)
/// sets its own; what is left is bookkeeping and catalog reads that take milliseconds, so five minutes never cuts a
/// healthy one short and still ends one that would otherwise hang on a wedged server.
pub const DEFAULT_STATEMENT_TIMEOUT: &str = "5min";

/// What went wrong while building a connection configuration or connecting.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or key=value string did not parse. The message never contains the password.
    #[error("the connection string {source_name} does not parse ({reason}); expected postgresql://user@host:port/dbname")]
    BadUrl {
        source_name: &'static str,
        reason: String,
    },
    /// A `mysql://` or `mariadb://` URL that did not parse. The message never contains the password.
    #[error("the connection string {source_name} does not parse ({reason}); expected mysql://user:password@host:port/dbname")]
    BadMySqlUrl {
        source_name: &'static str,
        reason: String,
    },
    /// A MySQL or MariaDB URL given to a command that speaks only PostgreSQL so far.
    #[error("{source_name} names a MySQL/MariaDB server ({target}), and this command is PostgreSQL-only for now; `tidegate backfill` (with `runs`, `pause`, `resume`, `abort` and `report`) and `tidegate apply` speak MySQL and MariaDB")]
    PostgresOnly {
        source_name: &'static str,
        /// The URL without its password.
        target: String,
    },
    /// A setting this build cannot honour.
    #[error("{0}")]
    Unsupported(String),
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        target: String,
        reason: String,
        /// The server's SQLSTATE when it answered (a refusal), `None` when it could not be reached.
        sqlstate: Option<SqlState>,
    },
}

impl ConnectError {
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            ConnectError::Connect { sqlstate, .. } => sqlstate.as_ref(),
            _ => None,
        }
    }

    /// Whether retrying cannot help: the settings are wrong, or the server refused for a reason that does not pass
    /// (bad credentials, SQLSTATE class 28; no such database, 3D000; no privilege to connect, 42501). A worker
    /// stops at once on these instead of retrying them like a network blip.
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectError::Connect { sqlstate, .. } => sqlstate.as_ref().is_some_and(|state| {
                let code = state.code();
                code.starts_with("28") || code == "3D000" || code == "42501"
            }),
            ConnectError::BadUrl { .. }
            | ConnectError::BadMySqlUrl { .. }
            | ConnectError::PostgresOnly { .. }
            | ConnectError::Unsupported(_) => true,
        }
    }
}

/// A database error as libraries return it: what tidegate was doing, the server's message (never a password) and
/// its SQLSTATE, so callers match codes, not text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {message}")]
pub struct DbError {
    pub context: String,
    pub message: String,
    pub sqlstate: Option<SqlState>,
    /// What the error means for retrying, decided by the driver from its server's codes.
    pub class: ErrorClass,
    /// The server's own primary message, without code, detail or hint (`message` has them all); `None` for an
    /// error the server did not send.
    pub primary: Option<String>,
    /// The server's own error number where its protocol has one (MySQL/MariaDB: 1205, 1213, …); `None` for
    /// PostgreSQL, whose SQLSTATE is the code.
    pub server_code: Option<u16>,
}

impl DbError {
    pub fn new(context: impl Into<String>, error: &tokio_postgres::Error) -> Self {
        Self {
            context: context.into(),
            message: describe(error),
            sqlstate: error.code().cloned(),
            class: classify(error),
            primary: error.as_db_error().map(|db| db.message().to_string()),
            server_code: None,
        }
    }

    /// An error tidegate found itself (no server code).
    pub fn other(context: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            message: message.into(),
            sqlstate: None,
            class: ErrorClass::Other,
            primary: None,
            server_code: None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        self.sqlstate.as_ref().map(SqlState::code)
    }

    /// The same error, with what tidegate was doing when it happened.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    pub fn is_connection_lost(&self) -> bool {
        self.class == ErrorClass::ConnectionLost
    }
}

impl From<ConnectError> for DbError {
    fn from(error: ConnectError) -> Self {
        let class = match &error {
            ConnectError::Connect { .. } if !error.is_permanent() => ErrorClass::ConnectionLost,
            _ => ErrorClass::Other,
        };
        Self {
            class,
            sqlstate: error.sqlstate().cloned(),
            context: "connecting".into(),
            message: error.to_string(),
            primary: None,
            server_code: None,
        }
    }
}

/// Where the configuration came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--db URL`
    Flag,
    /// `DATABASE_URL`
    DatabaseUrl,
    /// libpq's `PG*` variables and their defaults
    LibpqEnv,
}

/// A resolved connection configuration. Cloneable, so engines can reconnect.
#[derive(Clone)]
pub struct ConnectionConfig {
    pg: Config,
    source: ConfigSource,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("target", &self.redacted().to_string())
            .field("source", &self.source)
            .finish()
    }
}

impl ConnectionConfig {
    /// Resolves the configuration from `--db` (when given), else the process environment.
    pub fn resolve(db_flag: Option<&str>) -> Result<Self, ConnectError> {
        Self::resolve_with(db_flag, &|name| std::env::var(name).ok())
    }

    /// As [`ConnectionConfig::resolve`], reading variables through `env` (tests inject their own).
    pub fn resolve_with(
        db_flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectError> {
        // The family is decided once, by the URL's scheme (`crate::target::Target`); this configuration is
        // PostgreSQL's, so a MySQL URL stops here with what to do instead of a puzzling parse error.
        for (url, source_name) in [
            (db_flag.map(str::to_string), "--db"),
            (env("DATABASE_URL"), "DATABASE_URL"),
        ] {
            match url.filter(|s| !s.trim().is_empty()) {
                Some(url) if crate::mysql::MySqlConfig::is_mysql_url(&url) => {
                    return Err(ConnectError::PostgresOnly {
                        source_name,
                        target: crate::mysql::MySqlConfig::from_url_in(&url, source_name)?
                            .redacted(),
                    })
                }
                Some(_) => break,
                None => {}
            }
        }
        let (mut pg, source) = if let Some(url) = db_flag.filter(|s| !s.trim().is_empty()) {
            (parse_conn_str(url, "given with --db")?, ConfigSource::Flag)
        } else if let Some(url) = env("DATABASE_URL").filter(|s| !s.trim().is_empty()) {
            (
                parse_conn_str(&url, "in DATABASE_URL")?,
                ConfigSource::DatabaseUrl,
            )
        } else {
            (Config::new(), ConfigSource::LibpqEnv)
        };
        fill_from_libpq_env(&mut pg, env)?;
        pg.options(bounded_startup_options(pg.get_options()));
        if pg.get_application_name().is_none() {
            pg.application_name("tidegate");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        // A dead peer must surface as an error, not as a hang: the engine reconnects on it.
        pg.keepalives(true).keepalives_idle(Duration::from_secs(10));
        if matches!(pg.get_ssl_mode(), SslMode::Require) {
            return Err(ConnectError::Unsupported(
                "sslmode=require is not supported by this build of tidegate (no TLS); use sslmode=disable or prefer, or connect through a local tunnel".into(),
            ));
        }
        Ok(Self { pg, source })
    }

    /// Parses one URL or key=value string, then fills the gaps from the process environment (like libpq).
    pub fn from_url(url: &str) -> Result<Self, ConnectError> {
        Self::resolve_with(Some(url), &|name| std::env::var(name).ok())
    }

    /// Where this configuration came from.
    pub fn source(&self) -> ConfigSource {
        self.source
    }

    /// The target without its password, for every message, log line and journal entry.
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(&self.pg)
    }

    /// The startup `options` every session of this configuration sends: tidegate's bounds, then the user's.
    pub fn startup_options(&self) -> &str {
        self.pg.get_options().unwrap_or_default()
    }

    /// The database name this configuration connects to.
    pub fn dbname(&self) -> Option<&str> {
        self.pg.get_dbname()
    }

    /// A copy connecting to another database on the same server (tests and benchmarks use it).
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut pg = self.pg.clone();
        pg.dbname(dbname);
        Self {
            pg,
            source: self.source,
        }
    }

    /// Sets the application_name the server shows in pg_stat_activity.
    pub fn with_application_name(&self, name: &str) -> Self {
        let mut pg = self.pg.clone();
        pg.application_name(name);
        Self {
            pg,
            source: self.source,
        }
    }

    /// Opens a connection; its driver task runs on the current tokio runtime.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        match self.pg.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection closed");
                    }
                });
                Ok(client)
            }
            Err(error) => Err(ConnectError::Connect {
                target: self.redacted().to_string(),
                reason: describe(&error),
                sqlstate: error.code().cloned(),
            }),
        }
    }
}

/// Displays a connection target as `postgresql://user@host:port/dbname`, never with the password.
pub struct Redacted<'a>(&'a Config);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pg = self.0;
        write!(f, "postgresql://")?;
        if let Some(user) = pg.get_user() {
            write!(f, "{user}")?;
            if pg.get_password().is_some() {
                write!(f, ":***")?;
            }
            write!(f, "@")?;
        }
        let hosts: Vec<String> = pg
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => format!("[{}]", path.display()),
            })
            .collect();
        write!(f, "{}", hosts.join(","))?;
        if let Some(port) = pg.get_ports().first() {
            write!(f, ":{port}")?;
        }
        if let Some(db) = pg.get_dbname() {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

/// tidegate's bounds first, then the user's own `options`: PostgreSQL applies startup options in order, so a
/// user's `-c lock_timeout=…` or `-c statement_timeout=…` (a deliberate choice, e.g. a stricter bound for this
/// database) wins over the default, and everything else the user passes (search_path, role settings) is kept.
fn bounded_startup_options(user: Option<&str>) -> String {
    let ours = format!(
        "-c lock_timeout={DEFAULT_LOCK_TIMEOUT} -c statement_timeout={DEFAULT_STATEMENT_TIMEOUT}"
    );
    match user.map(str::trim).filter(|user| !user.is_empty()) {
        Some(user) => format!("{ours} {user}"),
        None => ours,
    }
}

fn parse_conn_str(text: &str, source_name: &'static str) -> Result<Config, ConnectError> {
    text.parse::<Config>()
        .map_err(|error| ConnectError::BadUrl {
            source_name,
            // tokio-postgres' parse errors name the faulty key, never echo the value.
            reason: error.to_string(),
        })
}

fn fill_from_libpq_env(
    pg: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConnectError> {
    if pg.get_hosts().is_empty() {
        let host = env("PGHOST").filter(|h| !h.is_empty()).unwrap_or_else(|| {
            if std::path::Path::new("/var/run/postgresql").is_dir() {
                "/var/run/postgresql".into()
            } else {
                "localhost".into()
            }
        });
        for one in host.split(',') {
            if one.starts_with('/') {
                pg.host_path(one);
            } else {
                pg.host(one);
            }
        }
    }
    if pg.get_ports().is_empty() {
        let port = match env("PGPORT").filter(|p| !p.is_empty()) {
            Some(text) => text.parse::<u16>().map_err(|_| ConnectError::BadUrl {
                source_name: "in PGPORT",
                reason: format!("{text:?} is not a port number"),
            })?,
            None => 5432,
        };
        pg.port(port);
    }
    if pg.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".into());
        pg.user(user);
    }
    if pg.get_dbname().is_none() {
        let db =
            env("PGDATABASE").unwrap_or_else(|| pg.get_user().unwrap_or("postgres").to_string());
        pg.dbname(db);
    }
    if pg.get_options().is_none() {
        if let Some(options) = env("PGOPTIONS").filter(|options| !options.trim().is_empty()) {
            pg.options(&options);
        }
    }
    if let Some(mode) = env("PGSSLMODE") {
        let mode = match mode.as_str() {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" | "verify-ca" | "verify-full" => SslMode::Require,
            other => {
                return Err(ConnectError::BadUrl {
                    source_name: "in PGSSLMODE",
                    reason: format!("unknown sslmode {other:?}"),
                })
            }
        };
        pg.ssl_mode(mode);
    }
    if pg.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            pg.password(password);
        } else if let Some(password) = password_from_pgpass(pg, env) {
            pg.password(password);
        }
    }
    Ok(())
}

fn password_from_pgpass(pg: &Config, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let path = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let host = match pg.get_hosts().first()? {
        Host::Tcp(name) => name.clone(),
        Host::Unix(_) => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432).to_string();
    pgpass_lookup(
        &text,
        &host,
        &port,
        pg.get_dbname().unwrap_or(""),
        pg.get_user().unwrap_or(""),
    )
}

/// Finds the password for (host, port, db, user) in the text of a `.pgpass` file: the first matching line wins,
/// `*` matches anything, `\:` and `\\` are escapes.
pub fn pgpass_lookup(text: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() != 5 {
            continue;
        }
        let wanted = [host, port, db, user];
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(field, value)| field == "*" || field == value)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("fields is never empty").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().expect("fields is never empty").push(c),
        }
    }
    fields
}

/// The SQLSTATE of a database error, if the error came from the server.
pub fn sqlstate(error: &tokio_postgres::Error) -> Option<&str> {
    error.code().map(|code| code.code())
}

/// True when the error means the connection is gone (closed socket, server shutting down or restarting, cannot
/// connect now): the caller should reconnect and continue from its checkpoint.
pub fn is_connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match sqlstate(error) {
        // 08xxx connection exceptions; 57P01 admin_shutdown; 57P02 crash_shutdown; 57P03 cannot_connect_now.
        Some(code) => code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03"),
        // No SQLSTATE: an I/O failure on the socket is a loss; a parameter the client could not encode is not.
        None => {
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                if cause.is::<std::io::Error>() {
                    return true;
                }
                source = cause.source();
            }
            false
        }
    }
}

/// What a PostgreSQL error means for retrying.
pub fn classify(error: &tokio_postgres::Error) -> ErrorClass {
    if is_connection_lost(error) {
        return ErrorClass::ConnectionLost;
    }
    match sqlstate(error) {
        Some("55P03") => ErrorClass::LockTimeout,
        Some("40P01") => ErrorClass::Deadlock,
        Some("40001") => ErrorClass::SerializationFailure,
        Some("57014") => ErrorClass::StatementTimeout,
        Some("23505") => ErrorClass::UniqueViolation,
        _ => ErrorClass::Other,
    }
}

/// A one-line description of a database error: the server's message, SQLSTATE and detail, never a password.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn flag_wins_over_database_url_and_password_is_redacted() {
        let env = env_of(&[("DATABASE_URL", "postgresql://other@h2/db2")]);
        let config = ConnectionConfig::resolve_with(
            Some("postgresql://alice:s3cret@db.example:6543/shop"),
            &env,
        )
        .unwrap();
        let shown = config.redacted().to_string();
        assert_eq!(shown, "postgresql://alice:***@db.example:6543/shop");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(config.source(), ConfigSource::Flag);
    }

    #[test]
    fn database_url_then_libpq_env() {
        let env = env_of(&[("DATABASE_URL", "postgresql://bob@h2/db2")]);
        let config = ConnectionConfig::resolve_with(None, &env).unwrap();
        assert_eq!(
            config.redacted().to_string(),
            "postgresql://bob@h2:5432/db2"
        );
        let env = env_of(&[
            ("PGHOST", "pg.internal"),
            ("PGPORT", "6000"),
            ("PGUSER", "carol"),
            ("PGDATABASE", "app"),
            ("PGPASSWORD", "hunter2"),
        ]);
        let config = ConnectionConfig::resolve_with(None, &env).unwrap();
        assert_eq!(config.source(), ConfigSource::LibpqEnv);
        assert_eq!(
            config.redacted().to_string(),
            "postgresql://carol:***@pg.internal:6000/app"
        );
    }

    #[test]
    fn bad_url_is_a_clear_error_without_the_password() {
        let error = ConnectionConfig::resolve_with(
            Some("postgresql://u:pw@host:notaport/db"),
            &env_of(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("does not parse"), "{error}");
        assert!(!error.contains("pw@"), "{error}");
        let error = ConnectionConfig::resolve_with(None, &env_of(&[("PGPORT", "x")])).unwrap_err();
        assert!(error.to_string().contains("PGPORT"));
    }

    #[test]
    fn every_session_starts_bounded_and_keeps_the_users_options() {
        let config =
            ConnectionConfig::resolve_with(Some("postgresql://u@h/db"), &env_of(&[])).unwrap();
        assert_eq!(
            config.startup_options(),
            "-c lock_timeout=5s -c statement_timeout=5min"
        );
        let config = ConnectionConfig::resolve_with(
            Some("postgresql://u@h/db?options=-c%20search_path%3Dapp"),
            &env_of(&[("PGOPTIONS", "-c work_mem=64MB")]),
        )
        .unwrap();
        assert_eq!(
            config.startup_options(),
            "-c lock_timeout=5s -c statement_timeout=5min -c search_path=app"
        );
        // libpq's PGOPTIONS counts when the URL has none; copies keep the options.
        let config = ConnectionConfig::resolve_with(
            Some("postgresql://u@h/db"),
            &env_of(&[("PGOPTIONS", "-c lock_timeout=1s")]),
        )
        .unwrap()
        .with_dbname("other")
        .with_application_name("x");
        assert_eq!(
            config.startup_options(),
            "-c lock_timeout=5s -c statement_timeout=5min -c lock_timeout=1s"
        );
    }

    #[test]
    fn sslmode_require_is_refused_plainly() {
        let error = ConnectionConfig::resolve_with(
            None,
            &env_of(&[("PGHOST", "h"), ("PGSSLMODE", "require")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("sslmode=require"));
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text =
            "# comment\nother:5432:*:*:nope\ndb.example:*:shop:alice:pa\\:ss\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "db.example", "6543", "shop", "alice").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(text, "x", "1", "y", "z").as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("a:b:c", "a", "b", "c", "d"), None);
    }
}
