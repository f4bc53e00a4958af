//! Migration discovery: finds the migration files of a directory, recognises the framework layout, orders them,
//! tells up from down, and reads each one with its framework's transaction mode.
//!
//! **This is the only module of the crate that does I/O** (reading directories and files). Everything else in
//! `tidegate-sql` is pure.
//!
//! | layout | files | wrapped in a transaction |
//! |---|---|---|
//! | sqlx | `<version>_<name>.sql`, `<version>_<name>.up.sql` (a `Cargo.toml` mentioning sqlx above) | yes, unless the file starts with `-- no-transaction` |
//! | diesel | `<version>_<name>/up.sql` | yes, unless `metadata.toml` says `run_in_transaction = false` |
//! | golang-migrate | `<version>_<name>.up.sql` (no sqlx `Cargo.toml` above) | no |
//! | dbmate | `<version>_<name>.sql` with `-- migrate:up` / `-- migrate:down` sections | yes, unless `-- migrate:up transaction:false` |
//! | Flyway | `V<version>__<name>.sql` (then `R__<name>.sql`) | yes, unless `<script>.sql.conf` says `executeInTransaction=false` |
//! | Prisma | `<timestamp>_<name>/migration.sql` | no (Prisma does not wrap PostgreSQL migrations) |
//! | plain | any `*.sql`, in natural name order | no |

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A migration framework's file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    Plain,
    Sqlx,
    Diesel,
    GolangMigrate,
    Dbmate,
    Flyway,
    Prisma,
}

impl Layout {
    pub const ALL: [Layout; 7] = [
        Layout::Plain,
        Layout::Sqlx,
        Layout::Diesel,
        Layout::GolangMigrate,
        Layout::Dbmate,
        Layout::Flyway,
        Layout::Prisma,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::Sqlx => "sqlx",
            Layout::Diesel => "diesel",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Dbmate => "dbmate",
            Layout::Flyway => "flyway",
            Layout::Prisma => "prisma",
        }
    }

    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|layout| layout.name() == name)
    }

    /// Whether the framework runs each migration file inside one transaction by default.
    pub fn wraps_in_transaction(self) -> bool {
        matches!(
            self,
            Layout::Sqlx | Layout::Diesel | Layout::Dbmate | Layout::Flyway
        )
    }
}

/// One up-migration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationFile {
    pub path: PathBuf,
    /// The version the framework orders by (digits of the name, or the name itself for plain layouts).
    pub version: String,
}

/// The migrations of one directory, in the order the framework applies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationSet {
    pub root: PathBuf,
    pub layout: Layout,
    pub migrations: Vec<MigrationFile>,
}

/// A migration file read from disk: the SQL that runs "up", and whether the framework wraps it in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedMigration {
    pub sql: String,
    pub framework_transaction: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not valid UTF-8 (byte {valid_up_to} is the first invalid one); save it as UTF-8"
    )]
    NotUtf8 { path: PathBuf, valid_up_to: usize },
    #[error("{path}: metadata.toml does not parse: {message}")]
    Metadata { path: PathBuf, message: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DiscoveryError + '_ {
    move |source| DiscoveryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Finds the migrations under `dir`, recognising the layout unless `layout` forces one.
pub fn discover(dir: &Path, layout: Option<Layout>) -> Result<MigrationSet, DiscoveryError> {
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        // The entry's type comes with the directory listing on most filesystems: no stat per file. A
        // symbolic link is followed to see what it points at.
        let is_dir = match entry.file_type() {
            Ok(file_type) if file_type.is_symlink() => path.is_dir(),
            Ok(file_type) => file_type.is_dir(),
            Err(_) => path.is_dir(),
        };
        if is_dir {
            subdirs.push(path);
        } else if path.extension().is_some_and(|ext| ext == "sql") {
            files.push(path);
        }
    }
    let layout = match layout {
        Some(layout) => layout,
        None => detect_layout(dir, &files, &subdirs),
    };
    let mut migrations: Vec<MigrationFile> = match layout {
        Layout::Diesel | Layout::Prisma => {
            let file_name = if layout == Layout::Diesel {
                "up.sql"
            } else {
                "migration.sql"
            };
            subdirs
                .iter()
                .map(|subdir| subdir.join(file_name))
                .filter(|path| path.is_file())
                .map(|path| {
                    let version = path
                        .parent()
                        .and_then(Path::file_name)
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    MigrationFile { path, version }
                })
                .collect()
        }
        _ => files
            .iter()
            .filter(|path| is_up_file(layout, path))
            .map(|path| MigrationFile {
                path: path.clone(),
                version: file_name(path),
            })
            .collect(),
    };
    if layout == Layout::Flyway {
        migrations.sort_by(|a, b| compare_versions(layout, &a.version, &b.version));
    } else {
        // The same order as `compare_versions`, each name's key computed once.
        migrations.sort_by_cached_key(|migration| natural_key(&migration.version));
    }
    Ok(MigrationSet {
        root: dir.to_path_buf(),
        layout,
        migrations,
    })
}

/// Finds the migration set a single file belongs to (its directory, or for diesel and Prisma its parent's),
/// and the file's position in it. `None` when the file is not an up migration of a recognised set.
pub fn discover_for_file(
    file: &Path,
    layout: Option<Layout>,
) -> Result<Option<(MigrationSet, usize)>, DiscoveryError> {
    let Some(parent) = file.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    }) else {
        return Ok(None);
    };
    let name = file_name(file);
    let candidates: Vec<&Path> = if name == "up.sql" || name == "migration.sql" {
        parent.parent().into_iter().collect()
    } else {
        vec![parent]
    };
    for dir in candidates {
        let set = discover(dir, layout)?;
        let target = std::fs::canonicalize(file).ok();
        let position = set.migrations.iter().position(|migration| {
            migration.path == file || std::fs::canonicalize(&migration.path).ok() == target
        });
        if let Some(position) = position {
            return Ok(Some((set, position)));
        }
    }
    Ok(None)
}

/// Migration files named one by one (pre-commit, a CI diff step), grouped by the migration set each belongs to,
/// so that each set is discovered once and its earlier migrations replayed once however many of its files are
/// named. Groups come in the order their first file was named; `named` holds positions in `set.migrations`,
/// ascending and without repeats (a file named twice is linted once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileGroup {
    /// Files of one recognised set.
    Set {
        set: MigrationSet,
        named: Vec<usize>,
    },
    /// A file that is not an up migration of a recognised set (a down migration named explicitly): linted
    /// alone.
    Alone(PathBuf),
}

/// Groups `files` by migration set (see [`FileGroup`]): [`discover_for_file`] for many files at once, each
/// candidate directory read once. Errors are per file, in the order the files were given, beside the groups
/// of the files that could be placed.
pub fn group_files(
    files: &[PathBuf],
    layout: Option<Layout>,
) -> (Vec<FileGroup>, Vec<DiscoveryError>) {
    struct Candidate {
        set: MigrationSet,
        /// A migration's path as discovered → its position; canonical paths filled on first need.
        by_path: std::collections::HashMap<PathBuf, usize>,
        by_canonical: Option<std::collections::HashMap<PathBuf, usize>>,
        /// The index of this set's group in `groups`, once a file was placed in it.
        group: Option<usize>,
    }
    let mut candidates: std::collections::HashMap<PathBuf, Result<Candidate, ()>> =
        std::collections::HashMap::new();
    // A directory as spelled → its canonical path: one canonicalisation per spelling, not per file.
    let mut canonical_dirs: std::collections::HashMap<PathBuf, PathBuf> =
        std::collections::HashMap::new();
    let mut groups: Vec<FileGroup> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let mut placed = false;
        for dir in candidate_dirs(file) {
            let key = canonical_dirs
                .entry(dir.clone())
                .or_insert_with(|| std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone()))
                .clone();
            let candidate = match candidates.entry(key) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(match discover(&dir, layout) {
                        Ok(set) => {
                            let by_path = set
                                .migrations
                                .iter()
                                .enumerate()
                                .map(|(index, migration)| (migration.path.clone(), index))
                                .collect();
                            Ok(Candidate {
                                set,
                                by_path,
                                by_canonical: None,
                                group: None,
                            })
                        }
                        Err(error) => {
                            errors.push(error);
                            Err(())
                        }
                    })
                }
            };
            let Ok(candidate) = candidate else {
                // The directory could not be read: reported once, and the file is not linted alone either.
                placed = true;
                break;
            };
            let position = match candidate.by_path.get(file) {
                Some(position) => Some(*position),
                None => std::fs::canonicalize(file).ok().and_then(|target| {
                    let by_canonical = candidate.by_canonical.get_or_insert_with(|| {
                        candidate
                            .set
                            .migrations
                            .iter()
                            .enumerate()
                            .filter_map(|(index, migration)| {
                                std::fs::canonicalize(&migration.path)
                                    .ok()
                                    .map(|path| (path, index))
                            })
                            .collect()
                    });
                    by_canonical.get(&target).copied()
                }),
            };
            let Some(position) = position else {
                continue;
            };
            let group = *candidate.group.get_or_insert_with(|| {
                groups.push(FileGroup::Set {
                    set: candidate.set.clone(),
                    named: Vec::new(),
                });
                groups.len() - 1
            });
            if let FileGroup::Set { named, .. } = &mut groups[group] {
                named.push(position);
            }
            placed = true;
            break;
        }
        if !placed {
            groups.push(FileGroup::Alone(file.clone()));
        }
    }
    for group in &mut groups {
        if let FileGroup::Set { named, .. } = group {
            named.sort_unstable();
            named.dedup();
        }
    }
    (groups, errors)
}

/// The directories a file's migration set may be rooted at: its own, or for `up.sql` / `migration.sql`
/// (diesel, Prisma) its parent's.
fn candidate_dirs(file: &Path) -> Vec<PathBuf> {
    let Some(parent) = file.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    }) else {
        return Vec::new();
    };
    let name = file_name(file);
    if name == "up.sql" || name == "migration.sql" {
        parent.parent().into_iter().map(Path::to_path_buf).collect()
    } else {
        vec![parent.to_path_buf()]
    }
}

/// Reads one migration: checks it is UTF-8, keeps dbmate's up section only, and resolves the framework's
/// transaction mode from its directives and metadata.
pub fn load_migration(path: &Path, layout: Layout) -> Result<LoadedMigration, DiscoveryError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let text = String::from_utf8(bytes).map_err(|error| DiscoveryError::NotUtf8 {
        path: path.to_path_buf(),
        valid_up_to: error.utf8_error().valid_up_to(),
    })?;
    if layout == Layout::Flyway {
        // Flyway's per-script configuration: `V1__x.sql.conf` with `executeInTransaction=false`.
        let mut conf_name = path.as_os_str().to_owned();
        conf_name.push(".conf");
        let conf_path = PathBuf::from(conf_name);
        let in_transaction = match std::fs::read_to_string(&conf_path) {
            Ok(conf) => flyway_executes_in_transaction(&conf),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
            Err(source) => {
                return Err(DiscoveryError::Io {
                    path: conf_path,
                    source,
                })
            }
        };
        return Ok(LoadedMigration {
            sql: text,
            framework_transaction: in_transaction,
        });
    }
    let diesel_metadata = if layout == Layout::Diesel {
        let metadata_path = path.with_file_name("metadata.toml");
        match std::fs::read_to_string(&metadata_path) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(DiscoveryError::Io {
                    path: metadata_path,
                    source,
                })
            }
        }
    } else {
        None
    };
    prepare_migration(path, layout, text, diesel_metadata.as_deref())
}

/// The pure half of [`load_migration`]: given a file's text (and diesel's metadata.toml), the SQL to run and
/// the transaction mode.
pub fn prepare_migration(
    path: &Path,
    layout: Layout,
    text: String,
    diesel_metadata: Option<&str>,
) -> Result<LoadedMigration, DiscoveryError> {
    match layout {
        Layout::Sqlx => {
            // sqlx checks whether the file starts with this exact comment.
            let framework_transaction = !text.trim_start().starts_with("-- no-transaction");
            Ok(LoadedMigration {
                sql: text,
                framework_transaction,
            })
        }
        Layout::Diesel => {
            let framework_transaction = match diesel_metadata {
                None => true,
                Some(metadata) => {
                    let table: toml::Table =
                        metadata.parse().map_err(|error: toml::de::Error| {
                            DiscoveryError::Metadata {
                                path: path.with_file_name("metadata.toml"),
                                message: error.to_string(),
                            }
                        })?;
                    table
                        .get("run_in_transaction")
                        .and_then(toml::Value::as_bool)
                        .unwrap_or(true)
                }
            };
            Ok(LoadedMigration {
                sql: text,
                framework_transaction,
            })
        }
        Layout::Dbmate => Ok(dbmate_up_section(text)),
        _ => Ok(LoadedMigration {
            framework_transaction: layout.wraps_in_transaction(),
            sql: text,
        }),
    }
}

/// Reads `executeInTransaction` from a Flyway script configuration (`key=value` lines, `#` comments).
pub fn flyway_executes_in_transaction(conf: &str) -> bool {
    !conf.lines().any(|line| {
        line.split_once('=').is_some_and(|(key, value)| {
            key.trim() == "executeInTransaction" && value.trim().eq_ignore_ascii_case("false")
        })
    })
}

/// dbmate's file format: `-- migrate:up [transaction:false]` then the up SQL, then `-- migrate:down`. The down
/// section is blanked (not removed) so line numbers stay true.
fn dbmate_up_section(text: String) -> LoadedMigration {
    let mut framework_transaction = true;
    let mut in_down = false;
    let mut sql = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let directive = line.trim();
        if let Some(options) = directive.strip_prefix("-- migrate:up") {
            in_down = false;
            if options
                .split_whitespace()
                .any(|option| option == "transaction:false")
            {
                framework_transaction = false;
            }
        } else if directive.starts_with("-- migrate:down") {
            in_down = true;
        }
        if in_down {
            sql.push_str(if line.ends_with('\n') { "\n" } else { "" });
        } else {
            sql.push_str(line);
        }
    }
    LoadedMigration {
        sql,
        framework_transaction,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_up_file(layout: Layout, path: &Path) -> bool {
    let name = file_name(path);
    if name.ends_with(".down.sql") {
        return false;
    }
    match layout {
        Layout::Flyway => (name.starts_with('V') || name.starts_with("R__")) && name.contains("__"),
        Layout::GolangMigrate => name.ends_with(".up.sql"),
        _ => true,
    }
}

fn detect_layout(dir: &Path, files: &[PathBuf], subdirs: &[PathBuf]) -> Layout {
    if subdirs.iter().any(|subdir| subdir.join("up.sql").is_file()) {
        return Layout::Diesel;
    }
    if subdirs
        .iter()
        .any(|subdir| subdir.join("migration.sql").is_file())
        || dir.join("migration_lock.toml").is_file()
    {
        return Layout::Prisma;
    }
    let names: Vec<String> = files.iter().map(|path| file_name(path)).collect();
    if names
        .iter()
        .any(|name| name.starts_with('V') && name.contains("__"))
    {
        return Layout::Flyway;
    }
    let mut sorted: Vec<&PathBuf> = files.iter().collect();
    sorted.sort();
    if let Some(first) = sorted.first() {
        if let Ok(text) = std::fs::read_to_string(first) {
            if text
                .lines()
                .any(|line| line.trim().starts_with("-- migrate:up"))
            {
                return Layout::Dbmate;
            }
        }
    }
    let numbered = names
        .iter()
        .any(|name| name.chars().next().is_some_and(|c| c.is_ascii_digit()) && name.contains('_'));
    let has_up_files = names.iter().any(|name| name.ends_with(".up.sql"));
    // sqlx is a Rust library: its migrations sit under a crate whose Cargo.toml depends on sqlx.
    let rust_project = dir.ancestors().take(4).any(|ancestor| {
        std::fs::read_to_string(ancestor.join("Cargo.toml"))
            .is_ok_and(|manifest| manifest.contains("sqlx"))
    });
    match (numbered, has_up_files, rust_project) {
        (_, true, false) => Layout::GolangMigrate,
        (true, _, true) => Layout::Sqlx,
        _ => Layout::Plain,
    }
}

/// Orders migration names: numeric prefixes (and Flyway's dotted versions) compare as numbers, the rest as
/// text; Flyway's repeatable `R__` migrations run after all versioned ones.
fn compare_versions(layout: Layout, a: &str, b: &str) -> Ordering {
    if layout == Layout::Flyway {
        let repeatable = |name: &str| name.starts_with("R__");
        let by_kind = repeatable(a).cmp(&repeatable(b));
        if by_kind != Ordering::Equal {
            return by_kind;
        }
        let version = |name: &str| -> Vec<u64> {
            name.trim_start_matches('V')
                .split("__")
                .next()
                .unwrap_or_default()
                .split(['.', '_'])
                .filter_map(|part| part.parse().ok())
                .collect()
        };
        return version(a).cmp(&version(b)).then_with(|| a.cmp(b));
    }
    natural_key(a).cmp(&natural_key(b))
}

fn natural_key(name: &str) -> Vec<(u8, u128, String)> {
    let mut key = Vec::new();
    let mut chars = name.chars().peekable();
    while let Some(&c) = chars.peek() {
        let mut part = String::new();
        let digits = c.is_ascii_digit();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() != digits {
                break;
            }
            part.push(c);
            chars.next();
        }
        if digits {
            key.push((0, part.parse().unwrap_or(u128::MAX), part));
        } else {
            key.push((1, 0, part));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_2_before_10() {
        let mut names = vec!["10_b.sql", "2_a.sql", "1_c.sql"];
        names.sort_by(|a, b| compare_versions(Layout::Plain, a, b));
        assert_eq!(names, vec!["1_c.sql", "2_a.sql", "10_b.sql"]);
    }

    #[test]
    fn flyway_orders_dotted_versions_and_repeatables_last() {
        let mut names = vec!["R__views.sql", "V1.10__c.sql", "V1.2__b.sql", "V1__a.sql"];
        names.sort_by(|a, b| compare_versions(Layout::Flyway, a, b));
        assert_eq!(
            names,
            vec!["V1__a.sql", "V1.2__b.sql", "V1.10__c.sql", "R__views.sql"]
        );
    }

    #[test]
    fn dbmate_keeps_the_up_section_and_line_numbers() {
        let loaded = dbmate_up_section(
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\nDROP INDEX i;\n"
                .to_string(),
        );
        assert!(!loaded.framework_transaction);
        assert!(loaded.sql.contains("CREATE INDEX"));
        assert!(!loaded.sql.contains("DROP INDEX"));
        assert_eq!(loaded.sql.lines().count(), 4);
    }

    #[test]
    fn sqlx_no_transaction_directive() {
        let path = Path::new("1_x.sql");
        let wrapped = prepare_migration(path, Layout::Sqlx, "SELECT 1;".into(), None).unwrap();
        assert!(wrapped.framework_transaction);
        let bare = prepare_migration(
            path,
            Layout::Sqlx,
            "-- no-transaction\nSELECT 1;".into(),
            None,
        )
        .unwrap();
        assert!(!bare.framework_transaction);
    }

    #[test]
    fn flyway_script_configuration() {
        assert!(flyway_executes_in_transaction("# nothing\n"));
        assert!(!flyway_executes_in_transaction(
            "executeInTransaction = false\n"
        ));
    }

    #[test]
    fn diesel_metadata() {
        let path = Path::new("m/up.sql");
        let off = prepare_migration(
            path,
            Layout::Diesel,
            "SELECT 1;".into(),
            Some("run_in_transaction = false\n"),
        )
        .unwrap();
        assert!(!off.framework_transaction);
        assert!(prepare_migration(path, Layout::Diesel, "x".into(), Some("= broken")).is_err());
    }
}
