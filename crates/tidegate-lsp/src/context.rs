//! What a file is linted against, read from disk the way `tidegate lint FILE` reads it: the `tidegate.toml`
//! found upward from the file, the migration set the file belongs to, and the catalog replayed from the
//! migrations before it. Built when a document opens or is saved; every edit in between is linted against the
//! same context, so typing costs one parse of the buffer, not a replay of the directory.

use std::path::{Path, PathBuf};

use tidegate_lint::{Config, FileReport, Session};
use tidegate_sql::discovery::{
    discover_for_file, flyway_executes_in_transaction, load_migration, prepare_migration,
};
use tidegate_sql::{Catalog, Layout};

/// The configuration file every verb reads.
pub const CONFIG_FILE: &str = "tidegate.toml";

/// A framework's per-file setting stored beside the migration rather than in it.
#[derive(Debug, Clone)]
enum SideFile {
    None,
    /// diesel's `metadata.toml` (`run_in_transaction`).
    DieselMetadata(String),
    /// Flyway's `V1__x.sql.conf` (`executeInTransaction`).
    FlywayInTransaction(bool),
}

/// The context one open file is linted in.
#[derive(Debug, Clone)]
pub struct MigrationContext {
    config: Config,
    /// The catalog after replaying every migration before this one in its set.
    catalog: Catalog,
    layout: Layout,
    side_file: SideFile,
    /// What could not be read (a broken `tidegate.toml`, an unreadable earlier migration): shown to the user,
    /// since the findings are then judged without it.
    problems: Vec<String>,
    config_path: Option<PathBuf>,
}

impl MigrationContext {
    /// The context of the file at `path`; `None` (an unsaved buffer) lints with the default configuration and
    /// no earlier migrations.
    pub fn load(path: Option<&Path>) -> Self {
        let mut problems = Vec::new();
        let (config, config_path) = match path.and_then(find_config) {
            None => (Config::default(), None),
            Some(config_path) => {
                let config = std::fs::read_to_string(&config_path)
                    .map_err(|error| format!("cannot read {}: {error}", config_path.display()))
                    .and_then(|text| {
                        Config::from_toml(&text)
                            .map_err(|error| format!("{}: {error}", config_path.display()))
                    });
                match config {
                    Ok(config) => (config, Some(config_path)),
                    Err(problem) => {
                        problems.push(format!(
                            "{problem}; linting with the default configuration until it is fixed"
                        ));
                        (Config::default(), Some(config_path))
                    }
                }
            }
        };
        let mut context = Self {
            layout: config.layout.unwrap_or(Layout::Plain),
            config,
            catalog: Catalog::new(),
            side_file: SideFile::None,
            problems,
            config_path,
        };
        if let Some(path) = path.filter(|path| path.is_file()) {
            context.replay_earlier_migrations(path);
            context.side_file = context.read_side_file(path);
        }
        context
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `tidegate.toml` in force, if one was found.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Lints `text` as the file at `display`, against a copy of the replayed catalog.
    pub fn lint(&self, display: &str, text: &str) -> (FileReport, Option<String>) {
        let diesel_metadata = match &self.side_file {
            SideFile::DieselMetadata(metadata) => Some(metadata.as_str()),
            _ => None,
        };
        let (sql, framework_transaction, problem) = match prepare_migration(
            Path::new(display),
            self.layout,
            text.to_string(),
            diesel_metadata,
        ) {
            Ok(loaded) => (loaded.sql, loaded.framework_transaction, None),
            Err(error) => (
                text.to_string(),
                self.layout.wraps_in_transaction(),
                Some(error.to_string()),
            ),
        };
        let framework_transaction = match self.side_file {
            SideFile::FlywayInTransaction(in_transaction) => in_transaction,
            _ => framework_transaction,
        };
        let mut session = Session::with_catalog(&self.config, None, self.catalog.clone());
        (session.lint(display, &sql, framework_transaction), problem)
    }

    fn replay_earlier_migrations(&mut self, path: &Path) {
        match discover_for_file(path, self.config.layout) {
            Ok(Some((set, position))) => {
                self.layout = set.layout;
                let mut session = Session::new(&self.config, None);
                for migration in &set.migrations[..position] {
                    match load_migration(&migration.path, set.layout) {
                        Ok(loaded) => session.replay(&loaded.sql, loaded.framework_transaction),
                        Err(error) => self.problems.push(format!(
                            "{error}; the findings here are judged without what that migration does"
                        )),
                    }
                }
                self.catalog = session.catalog().clone();
            }
            // Not part of a recognised set (a down migration, a loose script): linted alone, as the CLI does.
            Ok(None) => {}
            Err(error) => self.problems.push(format!(
                "{error}; the findings here are judged without the earlier migrations"
            )),
        }
    }

    fn read_side_file(&mut self, path: &Path) -> SideFile {
        match self.layout {
            Layout::Diesel => {
                let metadata_path = path.with_file_name("metadata.toml");
                match std::fs::read_to_string(&metadata_path) {
                    Ok(metadata) => SideFile::DieselMetadata(metadata),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => SideFile::None,
                    Err(error) => {
                        self.problems.push(format!(
                            "cannot read {}: {error}; assuming the migration runs in a transaction",
                            metadata_path.display()
                        ));
                        SideFile::None
                    }
                }
            }
            Layout::Flyway => {
                let mut conf_name = path.as_os_str().to_owned();
                conf_name.push(".conf");
                let conf_path = PathBuf::from(conf_name);
                match std::fs::read_to_string(&conf_path) {
                    Ok(conf) => {
                        SideFile::FlywayInTransaction(flyway_executes_in_transaction(&conf))
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => SideFile::None,
                    Err(error) => {
                        self.problems.push(format!(
                            "cannot read {}: {error}; assuming the migration runs in a transaction",
                            conf_path.display()
                        ));
                        SideFile::None
                    }
                }
            }
            _ => SideFile::None,
        }
    }
}

/// The first `tidegate.toml` in the file's directory or above it.
fn find_config(path: &Path) -> Option<PathBuf> {
    path.parent()?
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|candidate| candidate.is_file())
}
