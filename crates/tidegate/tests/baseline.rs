//! `tidegate baseline` as a user adopting tidegate runs it: the real binary, each framework's history table created
//! exactly as that framework creates it, with the rows it writes, and a migration directory in its layout where two
//! migrations (or three, with diesel's setup) have run and one is pending.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tidegate_testkit::TestDatabase;
use tokio_postgres::Client;

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

const CREATE_USERS: &str =
    "CREATE TABLE users (\n    id bigint PRIMARY KEY,\n    name text NOT NULL\n);\n";
const ADD_EMAIL: &str = "ALTER TABLE users ADD COLUMN email text;\n";
const CREATE_NOTES: &str =
    "CREATE TABLE notes (\n    id bigint PRIMARY KEY,\n    user_id bigint NOT NULL,\n    body text NOT NULL\n);\n";

fn tidegate(args: &[&str]) -> Output {
    Command::new(TIDEGATE).args(args).output().unwrap()
}

fn run(verb: &str, dir: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec![verb, dir.to_str().unwrap(), "--db", url];
    args.extend_from_slice(extra);
    tidegate(&args)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `tidegate.migrations` as (version, status), or nothing when tidegate never wrote to this database.
async fn recorded(client: &Client) -> Vec<(String, String)> {
    let exists: bool = client
        .query_one("SELECT to_regclass('tidegate.migrations') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return Vec::new();
    }
    client
        .query(
            "SELECT version, status FROM tidegate.migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(version, status)| (version.to_string(), status.to_string()))
        .collect()
}

async fn table_exists(client: &Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

/// A project: its root (for sqlx's Cargo.toml) and its migration directory.
struct Project {
    _root: tempfile::TempDir,
    migrations: PathBuf,
}

impl Project {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let migrations = root.path().join("migrations");
        std::fs::create_dir_all(&migrations).unwrap();
        Self {
            _root: root,
            migrations,
        }
    }

    fn root(&self) -> &Path {
        self._root.path()
    }
}

/// The whole adoption: apply refuses (and its dry run too) before baseline, changing nothing; baseline records
/// exactly `baselined` (the files the framework ran) and leaves `pending`; apply then runs only `pending` — had it
/// run an applied file again, `CREATE TABLE users` would fail — and status is clean.
async fn adopt(db: &TestDatabase, dir: &Path, framework: &str, baselined: &[&str], pending: &str) {
    let client = db.connect().await;
    for extra in [&["--dry-run"][..], &[]] {
        let refused = run("apply", dir, db.url(), extra);
        let log = stderr(&refused);
        assert_eq!(refused.status.code(), Some(2), "apply {extra:?}: {log}");
        assert!(
            log.contains(framework) && log.contains("tidegate baseline"),
            "the refusal names the framework and the way out: {log}"
        );
        assert!(
            !table_exists(&client, "tidegate.migrations").await,
            "a refused apply changes nothing"
        );
    }
    assert!(!table_exists(&client, "notes").await);

    let output = run("baseline", dir, db.url(), &[]);
    let log = format!("{}{}", stdout(&output), stderr(&output));
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "recorded {} migration(s) as baselined",
            baselined.len()
        )),
        "{log}"
    );
    assert!(log.contains(pending), "the pending one is named: {log}");
    let expected: Vec<(&str, &str)> = baselined.iter().map(|v| (*v, "baselined")).collect();
    assert_eq!(recorded(&client).await, pairs(&expected));
    let checksum: String = client
        .query_one(
            "SELECT checksum FROM tidegate.migrations WHERE version = $1",
            &[&baselined[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        checksum.len(),
        64,
        "the checksum of today's file is recorded"
    );

    // plan assesses only what apply will run.
    let plan = tidegate(&[
        "plan",
        "--db",
        db.url(),
        "--sample",
        "0s",
        dir.to_str().unwrap(),
    ]);
    let out = stdout(&plan);
    assert!(
        out.contains(&format!(
            "{} migration(s) already recorded",
            baselined.len()
        )),
        "{out}{}",
        stderr(&plan)
    );

    let output = run("apply", dir, db.url(), &[]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("1 pending") && log.contains(&format!("{} already applied", baselined.len())),
        "{log}"
    );
    assert!(
        table_exists(&client, "notes").await,
        "the pending migration ran"
    );
    let mut expected = expected;
    expected.push((pending, "applied"));
    expected.sort();
    assert_eq!(recorded(&client).await, pairs(&expected));

    let status = run("status", dir, db.url(), &[]);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    assert!(stdout(&status).contains("baselined"), "{}", stdout(&status));
}

async fn golang_migrate_project(db: &TestDatabase, current: i64, dirty: bool) -> Project {
    let project = Project::new();
    let dir = &project.migrations;
    for (name, up, down) in [
        ("000001_create_users", CREATE_USERS, "DROP TABLE users;\n"),
        (
            "000002_add_email",
            ADD_EMAIL,
            "ALTER TABLE users DROP COLUMN email;\n",
        ),
        ("000003_create_notes", CREATE_NOTES, "DROP TABLE notes;\n"),
    ] {
        write(&dir.join(format!("{name}.up.sql")), up);
        write(&dir.join(format!("{name}.down.sql")), down);
    }
    let client = db.connect().await;
    client.batch_execute(CREATE_USERS).await.unwrap();
    client.batch_execute(ADD_EMAIL).await.unwrap();
    // golang-migrate's postgres driver: ensureVersionTable, then SetVersion (TRUNCATE + INSERT).
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS \"public\".\"schema_migrations\" (version bigint not null primary key, dirty boolean not null)",
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO \"public\".\"schema_migrations\" (version, dirty) VALUES ($1, $2)",
            &[&current, &dirty],
        )
        .await
        .unwrap();
    project
}

#[tokio::test]
async fn golang_migrate_history_is_adopted() {
    let db = TestDatabase::create().await;
    let project = golang_migrate_project(&db, 2, false).await;
    adopt(
        &db,
        &project.migrations,
        "golang-migrate",
        &["000001_create_users.up.sql", "000002_add_email.up.sql"],
        "000003_create_notes.up.sql",
    )
    .await;
}

#[tokio::test]
async fn sqlx_history_is_adopted() {
    let db = TestDatabase::create().await;
    let project = Project::new();
    // sqlx migrations live in a crate that depends on sqlx.
    write(
        &project.root().join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\nsqlx = { version = \"0.8\", features = [\"postgres\"] }\n",
    );
    let files = [
        ("20240101120000_create_users.sql", CREATE_USERS),
        ("20240102120000_add_email.sql", ADD_EMAIL),
        ("20240103120000_create_notes.sql", CREATE_NOTES),
    ];
    for (name, sql) in files {
        write(&project.migrations.join(name), sql);
    }
    let client = db.connect().await;
    // sqlx-core's postgres migrate: ensure_migrations_table, then apply() inserts each row (checksum: SHA-384
    // of the file) with execution_time -1 and updates it afterwards.
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
);",
        )
        .await
        .unwrap();
    for (version, description, sql) in [
        (20240101120000_i64, "create users", CREATE_USERS),
        (20240102120000, "add email", ADD_EMAIL),
    ] {
        client.batch_execute(sql).await.unwrap();
        client
            .execute(
                "INSERT INTO _sqlx_migrations ( version, description, success, checksum, execution_time ) \
                 VALUES ( $1, $2, TRUE, sha384(convert_to($3, 'UTF8')), -1 )",
                &[&version, &description, &sql],
            )
            .await
            .unwrap();
        client
            .execute(
                "UPDATE _sqlx_migrations SET execution_time = $1 WHERE version = $2",
                &[&4_118_250_i64, &version],
            )
            .await
            .unwrap();
    }
    adopt(
        &db,
        &project.migrations,
        "sqlx",
        &[
            "20240101120000_create_users.sql",
            "20240102120000_add_email.sql",
        ],
        "20240103120000_create_notes.sql",
    )
    .await;
}

const DIESEL_SETUP: &str =
    "-- This file was automatically created by Diesel to setup helper functions
-- and other internal bookkeeping.

CREATE OR REPLACE FUNCTION diesel_manage_updated_at(_tbl regclass) RETURNS VOID AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s
                    FOR EACH ROW EXECUTE PROCEDURE diesel_set_updated_at()', _tbl);
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION diesel_set_updated_at() RETURNS trigger AS $$
BEGIN
    IF (
        NEW IS DISTINCT FROM OLD AND
        NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at
    ) THEN
        NEW.updated_at := current_timestamp;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
";

#[tokio::test]
async fn diesel_history_is_adopted() {
    let db = TestDatabase::create().await;
    let project = Project::new();
    let dirs = [
        ("00000000000000_diesel_initial_setup", DIESEL_SETUP),
        ("2024-01-01-120000_create_users", CREATE_USERS),
        ("2024-01-02-120000_add_email", ADD_EMAIL),
        ("2024-01-03-120000_create_notes", CREATE_NOTES),
    ];
    for (name, up) in dirs {
        write(&project.migrations.join(name).join("up.sql"), up);
        write(
            &project.migrations.join(name).join("down.sql"),
            "-- This file should undo anything in `up.sql`\n",
        );
    }
    let client = db.connect().await;
    // diesel_migrations' setup_migration_table.sql, then one INSERT per migration run.
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);",
        )
        .await
        .unwrap();
    for (version, sql) in [
        ("00000000000000", DIESEL_SETUP),
        ("20240101120000", CREATE_USERS),
        ("20240102120000", ADD_EMAIL),
    ] {
        client.batch_execute(sql).await.unwrap();
        client
            .execute(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .unwrap();
    }
    adopt(
        &db,
        &project.migrations,
        "diesel",
        &[
            "00000000000000_diesel_initial_setup",
            "2024-01-01-120000_create_users",
            "2024-01-02-120000_add_email",
        ],
        "2024-01-03-120000_create_notes",
    )
    .await;
}

#[tokio::test]
async fn prisma_history_is_adopted() {
    let db = TestDatabase::create().await;
    let project = Project::new();
    write(
        &project.migrations.join("migration_lock.toml"),
        "# Please do not edit this file manually\nprovider = \"postgresql\"\n",
    );
    for (name, sql) in [
        ("20240101120000_init", CREATE_USERS),
        ("20240102120000_add_email", ADD_EMAIL),
        ("20240103120000_create_notes", CREATE_NOTES),
    ] {
        write(&project.migrations.join(name).join("migration.sql"), sql);
    }
    let client = db.connect().await;
    // The table as Prisma's schema engine creates it on PostgreSQL.
    client
        .batch_execute(
            "CREATE TABLE \"_prisma_migrations\" (
    \"id\" VARCHAR(36) NOT NULL,
    \"checksum\" VARCHAR(64) NOT NULL,
    \"finished_at\" TIMESTAMPTZ,
    \"migration_name\" VARCHAR(255) NOT NULL,
    \"logs\" TEXT,
    \"rolled_back_at\" TIMESTAMPTZ,
    \"started_at\" TIMESTAMPTZ NOT NULL DEFAULT now(),
    \"applied_steps_count\" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT \"_prisma_migrations_pkey\" PRIMARY KEY (\"id\")
);",
        )
        .await
        .unwrap();
    client.batch_execute(CREATE_USERS).await.unwrap();
    client.batch_execute(ADD_EMAIL).await.unwrap();
    // What `prisma migrate deploy` writes: a row when a migration starts, finished_at when it ends.
    let insert = "INSERT INTO \"_prisma_migrations\" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) \
                  VALUES (gen_random_uuid()::text, encode(sha256(convert_to($1, 'UTF8')), 'hex'), CASE WHEN $2 THEN now() END, \
                          $3, $4, CASE WHEN $5 THEN now() END, now() - $6::text::interval, $7)";
    for (sql, finished, name, logs, rolled_back, ago, steps) in [
        (
            CREATE_USERS,
            true,
            "20240101120000_init",
            None,
            false,
            "2 hours",
            1,
        ),
        // A first attempt that failed and was marked rolled back (`prisma migrate resolve --rolled-back`).
        (
            ADD_EMAIL,
            false,
            "20240102120000_add_email",
            Some("Database error code: 40P01"),
            true,
            "1 hour",
            0,
        ),
        (
            ADD_EMAIL,
            true,
            "20240102120000_add_email",
            None,
            false,
            "30 minutes",
            1,
        ),
    ] {
        client
            .execute(
                insert,
                &[&sql, &finished, &name, &logs, &rolled_back, &ago, &steps],
            )
            .await
            .unwrap();
    }
    adopt(
        &db,
        &project.migrations,
        "prisma",
        &["20240101120000_init", "20240102120000_add_email"],
        "20240103120000_create_notes",
    )
    .await;
}

/// Flyway's createMetaDataTable.sql for PostgreSQL, in the default schema.
const FLYWAY_TABLE: &str = "CREATE TABLE \"public\".\"flyway_schema_history\" (
    \"installed_rank\" INT NOT NULL,
    \"version\" VARCHAR(50),
    \"description\" VARCHAR(200) NOT NULL,
    \"type\" VARCHAR(20) NOT NULL,
    \"script\" VARCHAR(1000) NOT NULL,
    \"checksum\" INTEGER,
    \"installed_by\" VARCHAR(100) NOT NULL,
    \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
    \"execution_time\" INTEGER NOT NULL,
    \"success\" BOOLEAN NOT NULL
);
ALTER TABLE \"public\".\"flyway_schema_history\" ADD CONSTRAINT \"flyway_schema_history_pk\" PRIMARY KEY (\"installed_rank\");

CREATE INDEX \"flyway_schema_history_s_idx\" ON \"public\".\"flyway_schema_history\" (\"success\");
";

async fn flyway_project(db: &TestDatabase, email_succeeded: bool) -> Project {
    let project = Project::new();
    for (name, sql) in [
        ("V1__create_users.sql", CREATE_USERS),
        ("V1.1__add_email.sql", ADD_EMAIL),
        ("V2__create_notes.sql", CREATE_NOTES),
    ] {
        write(&project.migrations.join(name), sql);
    }
    let client = db.connect().await;
    client.batch_execute(FLYWAY_TABLE).await.unwrap();
    client.batch_execute(CREATE_USERS).await.unwrap();
    if email_succeeded {
        client.batch_execute(ADD_EMAIL).await.unwrap();
    }
    for (rank, version, description, script, checksum, success) in [
        (
            1,
            "1",
            "create users",
            "V1__create_users.sql",
            -1_298_745_345,
            true,
        ),
        (
            2,
            "1.1",
            "add email",
            "V1.1__add_email.sql",
            902_345_117,
            email_succeeded,
        ),
    ] {
        client
            .execute(
                "INSERT INTO \"public\".\"flyway_schema_history\" (\"installed_rank\", \"version\", \"description\", \"type\", \"script\", \"checksum\", \"installed_by\", \"execution_time\", \"success\") \
                 VALUES ($1, $2, $3, 'SQL', $4, $5, 'postgres', 14, $6)",
                &[&rank, &version, &description, &script, &checksum, &success],
            )
            .await
            .unwrap();
    }
    project
}

#[tokio::test]
async fn flyway_history_is_adopted() {
    let db = TestDatabase::create().await;
    let project = flyway_project(&db, true).await;
    adopt(
        &db,
        &project.migrations,
        "flyway",
        &["V1.1__add_email.sql", "V1__create_users.sql"],
        "V2__create_notes.sql",
    )
    .await;
}

#[tokio::test]
async fn dbmate_history_is_adopted() {
    let db = TestDatabase::create().await;
    let project = Project::new();
    for (name, up, down) in [
        (
            "20240101120000_create_users.sql",
            CREATE_USERS,
            "DROP TABLE users;",
        ),
        (
            "20240102120000_add_email.sql",
            ADD_EMAIL,
            "ALTER TABLE users DROP COLUMN email;",
        ),
        (
            "20240103120000_create_notes.sql",
            CREATE_NOTES,
            "DROP TABLE notes;",
        ),
    ] {
        write(
            &project.migrations.join(name),
            &format!("-- migrate:up\n{up}\n-- migrate:down\n{down}\n"),
        );
    }
    let client = db.connect().await;
    // dbmate's postgres driver: CreateMigrationsTable, then InsertMigration per file, in the migration's
    // transaction.
    client
        .batch_execute("create table if not exists public.schema_migrations (version varchar(255) primary key)")
        .await
        .unwrap();
    for (version, sql) in [
        ("20240101120000", CREATE_USERS),
        ("20240102120000", ADD_EMAIL),
    ] {
        client.batch_execute(sql).await.unwrap();
        client
            .execute(
                "insert into public.schema_migrations (version) values ($1)",
                &[&version],
            )
            .await
            .unwrap();
    }
    adopt(
        &db,
        &project.migrations,
        "dbmate",
        &[
            "20240101120000_create_users.sql",
            "20240102120000_add_email.sql",
        ],
        "20240103120000_create_notes.sql",
    )
    .await;
}

#[tokio::test]
async fn a_dirty_golang_migrate_history_is_refused_and_nothing_is_recorded() {
    let db = TestDatabase::create().await;
    let project = golang_migrate_project(&db, 2, true).await;
    let output = run("baseline", &project.migrations, db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("dirty")
            && log.contains("migrate force")
            && log.contains("nothing was recorded"),
        "{log}"
    );
    assert!(recorded(&db.connect().await).await.is_empty());
}

#[tokio::test]
async fn a_failed_flyway_row_is_refused_and_nothing_is_recorded() {
    let db = TestDatabase::create().await;
    let project = flyway_project(&db, false).await;
    let output = run("baseline", &project.migrations, db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("failed") && log.contains("1.1") && log.contains("flyway repair"),
        "{log}"
    );
    assert!(recorded(&db.connect().await).await.is_empty());
}

#[tokio::test]
async fn a_failed_sqlx_row_or_a_version_without_a_file_is_refused() {
    let db = TestDatabase::create().await;
    let project = Project::new();
    write(
        &project.root().join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\nsqlx = \"0.8\"\n",
    );
    write(&project.migrations.join("1_create_users.sql"), CREATE_USERS);
    write(&project.migrations.join("2_add_email.sql"), ADD_EMAIL);
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (1, 'create users', TRUE, sha384('x'), 1000), (2, 'add email', FALSE, sha384('y'), -1);",
        )
        .await
        .unwrap();
    let output = run("baseline", &project.migrations, db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("2 (add email)") && log.contains("failed"),
        "{log}"
    );
    assert!(recorded(&client).await.is_empty());

    // The history is ahead of the directory: version 3 has no file here.
    client
        .batch_execute(
            "UPDATE _sqlx_migrations SET success = TRUE; \
             INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (3, 'add phone', TRUE, sha384('z'), 1000)",
        )
        .await
        .unwrap();
    let output = run("baseline", &project.migrations, db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("version 3") && log.contains("no migration file"),
        "{log}"
    );
    assert!(recorded(&client).await.is_empty());
}

#[tokio::test]
async fn baseline_is_idempotent() {
    let db = TestDatabase::create().await;
    let project = golang_migrate_project(&db, 2, false).await;
    let first = run("baseline", &project.migrations, db.url(), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let client = db.connect().await;
    let snapshot = "SELECT version, status, checksum, started_at::text FROM tidegate.migrations ORDER BY version";
    let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, String, String, String)> {
        rows.iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect()
    };
    let before = rows(client.query(snapshot, &[]).await.unwrap());
    assert_eq!(before.len(), 2);

    let second = run("baseline", &project.migrations, db.url(), &[]);
    let out = stdout(&second);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(out.contains("nothing new to record"), "{out}");
    assert_eq!(rows(client.query(snapshot, &[]).await.unwrap()), before);
    let journal: i64 = client
        .query_one(
            "SELECT count(*) FROM tidegate.journal WHERE event = 'baselined'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(journal, 2, "each migration is journaled once");

    // After apply ran the pending one, baseline still records nothing and leaves apply's record alone.
    assert!(run("apply", &project.migrations, db.url(), &[])
        .status
        .success());
    let third = run(
        "baseline",
        &project.migrations,
        db.url(),
        &["--format", "json"],
    );
    assert!(third.status.success(), "{}", stderr(&third));
    let summary: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(summary["recorded"], serde_json::json!([]));
    assert_eq!(summary["pending"], serde_json::json!([]));
    assert_eq!(
        recorded(&client).await,
        pairs(&[
            ("000001_create_users.up.sql", "baselined"),
            ("000002_add_email.up.sql", "baselined"),
            ("000003_create_notes.up.sql", "applied"),
        ])
    );
}

#[tokio::test]
async fn to_baselines_up_to_a_version_without_any_framework_table() {
    let db = TestDatabase::create().await;
    let project = Project::new();
    for (name, sql) in [
        ("0001_create_users.sql", CREATE_USERS),
        ("0002_add_email.sql", ADD_EMAIL),
        ("0003_create_notes.sql", CREATE_NOTES),
    ] {
        write(&project.migrations.join(name), sql);
    }
    let client = db.connect().await;
    client.batch_execute(CREATE_USERS).await.unwrap();
    client.batch_execute(ADD_EMAIL).await.unwrap();

    // Without --to and without a framework table, baseline says what it looked for and records nothing.
    let output = run("baseline", &project.migrations, db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("schema_migrations") && log.contains("--to"),
        "{log}"
    );
    assert!(recorded(&client).await.is_empty());

    // An unknown version is an input error.
    let output = run("baseline", &project.migrations, db.url(), &["--to", "0009"]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        log.contains("no migration") && log.contains("0001_create_users.sql"),
        "{log}"
    );
    assert!(recorded(&client).await.is_empty());

    // A dry run says what it would record and records nothing.
    let output = run(
        "baseline",
        &project.migrations,
        db.url(),
        &["--to", "0002_add_email", "--dry-run"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("would record 2"),
        "{}",
        stdout(&output)
    );
    assert!(recorded(&client).await.is_empty());

    let output = run(
        "baseline",
        &project.migrations,
        db.url(),
        &["--to", "0002_add_email"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        recorded(&client).await,
        pairs(&[
            ("0001_create_users.sql", "baselined"),
            ("0002_add_email.sql", "baselined")
        ])
    );
    let output = run("apply", &project.migrations, db.url(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(table_exists(&client, "notes").await);
}

#[tokio::test]
async fn a_migration_tidegate_left_unfinished_cannot_be_baselined_and_nothing_is_recorded() {
    let db = TestDatabase::create().await;
    let project = Project::new();
    for (name, sql) in [
        ("0001_create_users.sql", CREATE_USERS),
        ("0002_add_email.sql", ADD_EMAIL),
        ("0003_create_notes.sql", CREATE_NOTES),
    ] {
        write(&project.migrations.join(name), sql);
    }
    let client = db.connect().await;
    let output = run("baseline", &project.migrations, db.url(), &["--to", "0001"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // What an apply interrupted in 0002 leaves behind.
    client
        .execute(
            "INSERT INTO tidegate.migrations (version, name, checksum, status, phases, last_error) \
             VALUES ('0002_add_email.sql', '0002_add_email.sql', 'x', 'failed', '[{\"kind\":\"schema\"}]', 'lock timeout')",
            &[],
        )
        .await
        .unwrap();
    let output = run("baseline", &project.migrations, db.url(), &["--to", "0003"]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("0002_add_email.sql") && log.contains("tidegate apply"),
        "{log}"
    );
    assert_eq!(
        recorded(&client).await,
        pairs(&[
            ("0001_create_users.sql", "baselined"),
            ("0002_add_email.sql", "failed")
        ]),
        "0003 was not recorded either"
    );
}

#[tokio::test]
async fn baseline_refuses_while_an_apply_holds_the_migration_lock() {
    let db = TestDatabase::create().await;
    let project = golang_migrate_project(&db, 2, false).await;
    let holder = db.connect().await;
    // The lock a running apply holds for its whole session.
    holder
        .query_one(
            "SELECT pg_advisory_lock(hashtextextended('tidegate:apply', 0))",
            &[],
        )
        .await
        .unwrap();
    let output = run("baseline", &project.migrations, db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("holds the migration lock") && log.contains("nothing was recorded"),
        "{log}"
    );
    assert!(recorded(&holder).await.is_empty());

    holder
        .query_one(
            "SELECT pg_advisory_unlock(hashtextextended('tidegate:apply', 0))",
            &[],
        )
        .await
        .unwrap();
    let output = run("baseline", &project.migrations, db.url(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(recorded(&holder).await.len(), 2);
}
