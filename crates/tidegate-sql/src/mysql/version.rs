//! Which server a MySQL-family migration is judged for: the flavour (MySQL or MariaDB) and its version.

use std::fmt;

/// MySQL or MariaDB: they share a protocol and most syntax, not their online-DDL abilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavour {
    MySql,
    MariaDb,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::MySql => "MySQL",
            Flavour::MariaDb => "MariaDB",
        }
    }
}

/// A server version, `major.minor.patch` (a missing part is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerVersion(pub u16, pub u16, pub u16);

impl ServerVersion {
    /// Reads `8.0.35`, `10.11` or `10.11.6-MariaDB-0+deb12u1` (what `SELECT VERSION()` prints).
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let numeric = text
            .trim()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut parts = numeric.split('.').filter(|part| !part.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |part| part.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |part| part.parse().ok())?;
        Some(ServerVersion(major, minor, patch))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The server a migration is linted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MySqlTarget {
    pub flavour: Flavour,
    pub version: ServerVersion,
}

impl MySqlTarget {
    /// MySQL 8.0's latest long-lived line when no `--db-version` is given.
    pub const MYSQL_DEFAULT: ServerVersion = ServerVersion(8, 0, 35);
    /// MariaDB 10.11, the long-term release Debian 12 ships (the one tests run against).
    pub const MARIADB_DEFAULT: ServerVersion = ServerVersion(10, 11, 0);
    /// The oldest versions the facts table covers.
    pub const MYSQL_OLDEST: ServerVersion = ServerVersion(8, 0, 0);
    pub const MARIADB_OLDEST: ServerVersion = ServerVersion(10, 3, 0);

    pub fn new(flavour: Flavour, version: Option<ServerVersion>) -> Result<Self, String> {
        let (default, oldest, newest_major) = match flavour {
            Flavour::MySql => (Self::MYSQL_DEFAULT, Self::MYSQL_OLDEST, 9),
            Flavour::MariaDb => (Self::MARIADB_DEFAULT, Self::MARIADB_OLDEST, 11),
        };
        let version = version.unwrap_or(default);
        if version < oldest || version.0 > newest_major {
            return Err(format!(
                "{} {version} is outside what tidegate's online-DDL facts cover ({} {oldest} to {newest_major}.x)",
                flavour.name(),
                flavour.name()
            ));
        }
        Ok(Self { flavour, version })
    }

    /// The server's flavour and version from what `SELECT VERSION()` prints (`10.11.19-MariaDB-0+deb12u1`,
    /// `8.0.36`).
    pub fn from_server_version(version: &str) -> Result<Self, String> {
        let flavour = if version.to_ascii_lowercase().contains("mariadb") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        };
        let parsed = ServerVersion::parse(version).ok_or_else(|| {
            format!("the server's version `{version}` does not read as a version")
        })?;
        Self::new(flavour, Some(parsed))
    }

    pub fn is_mariadb(&self) -> bool {
        self.flavour == Flavour::MariaDb
    }
}

impl fmt::Display for MySqlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.flavour.name(), self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_as_servers_print_them() {
        assert_eq!(
            ServerVersion::parse("8.0.35"),
            Some(ServerVersion(8, 0, 35))
        );
        assert_eq!(
            ServerVersion::parse("10.11"),
            Some(ServerVersion(10, 11, 0))
        );
        assert_eq!(
            ServerVersion::parse("10.11.6-MariaDB-0+deb12u1"),
            Some(ServerVersion(10, 11, 6))
        );
        assert_eq!(ServerVersion::parse("eight"), None);
        assert!(MySqlTarget::new(Flavour::MySql, ServerVersion::parse("5.7")).is_err());
        assert!(MySqlTarget::new(Flavour::MariaDb, None)
            .unwrap()
            .is_mariadb());
    }
}
