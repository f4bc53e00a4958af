//! Which database a command talks to: the family is decided here, once, from the URL's scheme (`--db`, else
//! `DATABASE_URL`, else libpq's variables), and everything downstream holds a typed [`Target`] instead of looking
//! at the text again.
//!
//! `mysql://` and `mariadb://` are MySQL/MariaDB ([`MySqlConfig`]); anything else is PostgreSQL's
//! [`ConnectionConfig`] (a URL, a key=value string, or nothing and the `PG*` variables). Commands that speak only
//! PostgreSQL keep calling [`ConnectionConfig::resolve`], which refuses a MySQL URL with
//! [`ConnectError::PostgresOnly`].

use std::fmt;

use async_trait::async_trait;

use crate::connect::{ConnectError, ConnectionConfig, DbError};
use crate::driver::{Driver, Family, Session};
use crate::mysql::MySqlConfig;

/// A resolved connection target of either family. Cloneable, so engines can reconnect.
// One per command, cloned only when an engine opens its sessions: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Target {
    Postgres(ConnectionConfig),
    MySql(MySqlConfig),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Postgres(config) => config.fmt(f),
            Target::MySql(config) => config.fmt(f),
        }
    }
}

impl Target {
    /// Resolves `--db` (when given), else `DATABASE_URL`, else libpq's variables.
    pub fn resolve(db_flag: Option<&str>) -> Result<Self, ConnectError> {
        Self::resolve_with(db_flag, &|name| std::env::var(name).ok())
    }

    /// As [`Target::resolve`], reading variables through `env` (tests inject their own).
    pub fn resolve_with(
        db_flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectError> {
        let flag = db_flag.filter(|s| !s.trim().is_empty());
        let chosen = match flag {
            Some(url) => Some((url.to_string(), "--db")),
            None => env("DATABASE_URL")
                .filter(|s| !s.trim().is_empty())
                .map(|url| (url, "DATABASE_URL")),
        };
        match chosen {
            Some((url, source_name)) if MySqlConfig::is_mysql_url(&url) => {
                Ok(Target::MySql(MySqlConfig::from_url_in(&url, source_name)?))
            }
            _ => Ok(Target::Postgres(ConnectionConfig::resolve_with(
                db_flag, env,
            )?)),
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Target::Postgres(_) => Family::Postgres,
            Target::MySql(_) => Family::MySql,
        }
    }

    /// The target without its password, for every message.
    pub fn redacted(&self) -> String {
        match self {
            Target::Postgres(config) => config.redacted().to_string(),
            Target::MySql(config) => config.redacted(),
        }
    }

    /// Opens a session, with a connection failure as a [`ConnectError`] (what the CLI prints).
    pub async fn connect(&self) -> Result<Box<dyn Session>, ConnectError> {
        match self {
            Target::Postgres(config) => Ok(Box::new(config.connect().await?)),
            Target::MySql(config) => config
                .connect()
                .await
                .map(|s| Box::new(s) as Box<dyn Session>)
                .map_err(|e| ConnectError::Connect {
                    target: config.redacted(),
                    reason: e.message,
                    sqlstate: e.sqlstate,
                }),
        }
    }
}

#[async_trait]
impl Driver for Target {
    fn family(&self) -> Family {
        Target::family(self)
    }

    async fn open(&self) -> Result<Box<dyn Session>, DbError> {
        match self {
            Target::Postgres(config) => config.open().await,
            Target::MySql(config) => config.open().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_scheme_picks_the_family_from_the_flag_or_database_url() {
        let none = env_of(&[]);
        for url in [
            "mysql://app:s3cret@db:3306/shop",
            "mariadb://app:s3cret@db:3306/shop",
            "MySQL://app:s3cret@db/shop",
        ] {
            let target = Target::resolve_with(Some(url), &none).unwrap();
            assert_eq!(target.family(), Family::MySql);
            assert!(
                !target.redacted().contains("s3cret"),
                "{}",
                target.redacted()
            );
            assert!(!format!("{target:?}").contains("s3cret"));
        }
        let from_env = env_of(&[("DATABASE_URL", "mariadb://app:pw@db/shop")]);
        assert_eq!(
            Target::resolve_with(None, &from_env).unwrap().family(),
            Family::MySql
        );
        // The flag wins over DATABASE_URL, in both directions.
        assert_eq!(
            Target::resolve_with(Some("postgresql://app@db/shop"), &from_env)
                .unwrap()
                .family(),
            Family::Postgres
        );
        let pg_env = env_of(&[("DATABASE_URL", "postgresql://app:pw@db/shop")]);
        assert_eq!(
            Target::resolve_with(Some("mysql://app@db/shop"), &pg_env)
                .unwrap()
                .family(),
            Family::MySql
        );
        assert_eq!(
            Target::resolve_with(None, &pg_env).unwrap().family(),
            Family::Postgres
        );
    }

    #[test]
    fn a_bad_mysql_url_is_refused_without_its_password() {
        let none = env_of(&[]);
        let error =
            Target::resolve_with(Some("mysql://app:s3cret@db:notaport/shop"), &none).unwrap_err();
        let message = error.to_string();
        assert!(matches!(
            error,
            ConnectError::BadMySqlUrl {
                source_name: "--db",
                ..
            }
        ));
        assert!(
            message.contains("mysql://user:password@host:port/dbname"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
        let from_env = env_of(&[("DATABASE_URL", "mysql://app:s3cret@db:notaport/shop")]);
        let error = Target::resolve_with(None, &from_env).unwrap_err();
        assert!(
            matches!(
                error,
                ConnectError::BadMySqlUrl {
                    source_name: "DATABASE_URL",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn postgres_only_commands_refuse_a_mysql_url_and_say_why() {
        let none = env_of(&[]);
        for (flag, env) in [
            (Some("mysql://app:s3cret@db:3306/shop"), env_of(&[])),
            (
                None,
                env_of(&[("DATABASE_URL", "mariadb://app:s3cret@db/shop")]),
            ),
        ] {
            let error = ConnectionConfig::resolve_with(flag, &env).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, ConnectError::PostgresOnly { .. }),
                "{message}"
            );
            assert!(message.contains("PostgreSQL-only for now"), "{message}");
            assert!(message.contains("mysql://app@db:3306/shop"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
            assert!(error.is_permanent());
        }
        // A PostgreSQL flag is not refused because DATABASE_URL names MySQL.
        let mysql_env = env_of(&[("DATABASE_URL", "mysql://app@db/shop")]);
        ConnectionConfig::resolve_with(Some("postgresql://app@db/shop"), &mysql_env).unwrap();
        ConnectionConfig::resolve_with(Some("postgresql://app@db/shop"), &none).unwrap();
    }
}
