//! Lint configuration: the `[lint]` table of `tidegate.toml` (finding the file is the caller's job).
//!
//! ```toml
//! pg_version = 17                 # shared by every verb; `[lint] pg_version` overrides it for lint
//!
//! [lint]
//! fail_on = "error"               # error | warning | info
//! assume_in_transaction = false   # treat every file as wrapped in a transaction
//! small_table_rows = 10000        # with --stats: hazards on smaller tables are reported as info
//! layout = "sqlx"                 # force a layout instead of detecting it
//! dialect = "mariadb"             # postgres (default) | mysql | mariadb; also at the top level
//! db_version = "10.11"            # the MySQL/MariaDB server version the online-DDL facts are read for
//!
//! [lint.rules]
//! drop-column = "off"             # off | on | error | warning | info
//! add-column = "on"               # opt-in rules (off by default) run once turned on
//! prefer-text-over-varchar = "warning"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use tidegate_sql::mysql::{Flavour, MySqlTarget, ServerVersion};
use tidegate_sql::{Layout, PgVersion};

/// Which SQL the migrations are written in, and so which parser and rules judge them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Postgres,
    MySql,
    MariaDb,
}

impl Dialect {
    pub const NAMES: [&'static str; 3] = ["postgres", "mysql", "mariadb"];

    pub fn from_name(name: &str) -> Option<Dialect> {
        match name.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" => Some(Dialect::MySql),
            "mariadb" => Some(Dialect::MariaDb),
            _ => None,
        }
    }

    pub fn flavour(self) -> Option<Flavour> {
        match self {
            Dialect::Postgres => None,
            Dialect::MySql => Some(Flavour::MySql),
            Dialect::MariaDb => Some(Flavour::MariaDb),
        }
    }
}

use crate::registry::{suggest_rule, RuleDoc, RuleId};
use crate::Severity;

/// What the configuration says about one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSetting {
    Off,
    On,
    Severity(Severity),
}

/// The lint configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub pg_version: PgVersion,
    pub fail_on: Severity,
    /// `Some(true)` treats every file as running inside a transaction, `Some(false)` as running outside one;
    /// `None` follows each framework's own behaviour.
    pub assume_in_transaction: Option<bool>,
    pub small_table_rows: u64,
    pub layout: Option<Layout>,
    pub rules: BTreeMap<RuleId, RuleSetting>,
    /// `postgres` unless `--dialect` / `dialect` says otherwise.
    pub dialect: Dialect,
    /// The MySQL/MariaDB server version (`--db-version`, `db_version`); `None`: the flavour's default.
    pub db_version: Option<ServerVersion>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pg_version: PgVersion::DEFAULT,
            fail_on: Severity::Error,
            assume_in_transaction: None,
            small_table_rows: 10_000,
            layout: None,
            rules: BTreeMap::new(),
            dialect: Dialect::Postgres,
            db_version: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("does not parse: {0}")]
    Syntax(String),
    #[error("unknown rule `{id}` in [lint.rules]{suggestion}")]
    UnknownRule { id: String, suggestion: String },
    #[error("`{value}` is not a valid {key}; expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LintTable {
    pg_version: Option<u32>,
    fail_on: Option<String>,
    assume_in_transaction: Option<bool>,
    small_table_rows: Option<u64>,
    layout: Option<String>,
    dialect: Option<String>,
    db_version: Option<String>,
    #[serde(default)]
    rules: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    pg_version: Option<u32>,
    dialect: Option<String>,
    db_version: Option<String>,
    #[serde(default)]
    lint: LintTable,
}

impl Config {
    /// Reads the lint-relevant parts of a `tidegate.toml` text. Tables other verbs own are ignored; unknown keys
    /// inside `[lint]` and unknown rule ids are errors, so typos do not silently disable nothing.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
        let mut config = Config::default();
        if let Some(version) = file.lint.pg_version.or(file.pg_version) {
            config.pg_version = check_version(version)?;
        }
        if let Some(fail_on) = file.lint.fail_on {
            config.fail_on =
                Severity::from_name(&fail_on).ok_or_else(|| ConfigError::InvalidValue {
                    key: "lint.fail_on".into(),
                    value: fail_on.clone(),
                    expected: "error, warning or info".into(),
                })?;
        }
        config.assume_in_transaction = file.lint.assume_in_transaction;
        if let Some(rows) = file.lint.small_table_rows {
            config.small_table_rows = rows;
        }
        if let Some(layout) = file.lint.layout {
            config.layout =
                Some(
                    Layout::from_name(&layout).ok_or_else(|| ConfigError::InvalidValue {
                        key: "lint.layout".into(),
                        value: layout.clone(),
                        expected: Layout::ALL.map(Layout::name).join(", "),
                    })?,
                );
        }
        if let Some(dialect) = file.lint.dialect.or(file.dialect) {
            config.dialect =
                Dialect::from_name(&dialect).ok_or_else(|| ConfigError::InvalidValue {
                    key: "dialect".into(),
                    value: dialect.clone(),
                    expected: Dialect::NAMES.join(", "),
                })?;
        }
        if let Some(version) = file.lint.db_version.or(file.db_version) {
            config.db_version = Some(check_db_version(&version)?);
        }
        config.mysql_target()?;
        for (id, value) in file.lint.rules {
            let Some(rule) = RuleId::from_id(&id) else {
                let suggestions = suggest_rule(&id);
                return Err(ConfigError::UnknownRule {
                    suggestion: if suggestions.is_empty() {
                        "; `tidegate lint --rules` lists them".into()
                    } else {
                        format!("; did you mean `{}`?", suggestions.join("`, `"))
                    },
                    id,
                });
            };
            let setting = match value.to_ascii_lowercase().as_str() {
                "off" | "false" => RuleSetting::Off,
                "on" | "true" => RuleSetting::On,
                other => RuleSetting::Severity(Severity::from_name(other).ok_or_else(|| {
                    ConfigError::InvalidValue {
                        key: format!("lint.rules.{id}"),
                        value: value.clone(),
                        expected: "off, on, error, warning or info".into(),
                    }
                })?),
            };
            config.rules.insert(rule, setting);
        }
        Ok(config)
    }

    /// The severity a rule reports at, or `None` when it is turned off (by the configuration, or because it is
    /// opt-in and the configuration does not turn it on).
    pub fn severity_of(&self, rule: &RuleDoc) -> Option<Severity> {
        match self.rules.get(&rule.id) {
            Some(RuleSetting::Off) => None,
            Some(RuleSetting::Severity(severity)) => Some(*severity),
            Some(RuleSetting::On) => Some(rule.default_severity),
            None => rule.enabled_by_default.then_some(rule.default_severity),
        }
    }
}

/// Reads a `--db-version` / `db_version` value (`8.0.35`, `10.11`).
pub fn check_db_version(version: &str) -> Result<ServerVersion, ConfigError> {
    ServerVersion::parse(version).ok_or_else(|| ConfigError::InvalidValue {
        key: "db_version".into(),
        value: version.to_string(),
        expected: "a server version such as 8.0.35 or 10.11".into(),
    })
}

impl Config {
    /// The MySQL/MariaDB server the migrations are judged for; `None` for PostgreSQL. An error when the version is
    /// outside what the facts table covers.
    pub fn mysql_target(&self) -> Result<Option<MySqlTarget>, ConfigError> {
        let Some(flavour) = self.dialect.flavour() else {
            return Ok(None);
        };
        MySqlTarget::new(flavour, self.db_version)
            .map(Some)
            .map_err(|reason| ConfigError::InvalidValue {
                key: "db_version".into(),
                value: self
                    .db_version
                    .map(|version| version.to_string())
                    .unwrap_or_default(),
                expected: reason,
            })
    }
}

/// Validates a `--pg-version` / `pg_version` value.
pub fn check_version(version: u32) -> Result<PgVersion, ConfigError> {
    if (PgVersion::OLDEST.0..=PgVersion::NEWEST.0).contains(&version) {
        Ok(PgVersion(version))
    } else {
        Err(ConfigError::InvalidValue {
            key: "pg_version".into(),
            value: version.to_string(),
            expected: format!(
                "a PostgreSQL major version from {} to {}",
                PgVersion::OLDEST.0,
                PgVersion::NEWEST.0
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lint_table_and_rule_settings() {
        let config = Config::from_toml(
            "pg_version = 14\n[lint]\nfail_on = \"warning\"\nsmall_table_rows = 500\n[lint.rules]\ndrop-column = \"off\"\nprefer-text-over-varchar = \"warning\"\n[apply]\nwhatever = 1\n",
        )
        .unwrap();
        assert_eq!(config.pg_version, PgVersion(14));
        assert_eq!(config.fail_on, Severity::Warning);
        assert_eq!(config.small_table_rows, 500);
        assert_eq!(
            config.severity_of(crate::registry::rule(RuleId::DropColumn).doc()),
            None
        );
        assert_eq!(
            config.severity_of(crate::registry::rule(RuleId::PreferTextOverVarchar).doc()),
            Some(Severity::Warning)
        );
    }

    #[test]
    fn unknown_rule_suggests_a_close_one() {
        let error = Config::from_toml("[lint.rules]\ndrop-colum = \"off\"\n").unwrap_err();
        assert!(
            error.to_string().contains("did you mean `drop-column`"),
            "{error}"
        );
    }

    #[test]
    fn out_of_range_version_is_rejected() {
        assert!(Config::from_toml("pg_version = 9\n").is_err());
    }
}
