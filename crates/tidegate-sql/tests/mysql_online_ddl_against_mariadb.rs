//! The ALGORITHM ladder: the MariaDB rows of the online-DDL facts table (`tidegate_sql::mysql::facts`) checked
//! against a real MariaDB, started by the test harness.
//!
//! Each case is an ALTER on a probe table. tidegate parses and analyses it (after the probe schema, so the
//! catalog knows the columns) and must classify it as the intended operation; then the server is asked to run it
//! with `ALGORITHM=INSTANT`, then NOCOPY, INPLACE and COPY, each on a fresh probe table, and the first algorithm
//! it accepts must be the facts table's cheapest. MariaDB refuses an algorithm it cannot use with error 1845 or
//! 1846 without touching the table; any other error fails the test. Then the accepted algorithm is asked again
//! with `LOCK=NONE`, which the server must accept exactly when the facts say concurrent DML goes on. (On MariaDB
//! the algorithm also settles "rebuilds": NOCOPY and INSTANT never rebuild, INPLACE refused as NOCOPY does.)

use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;
use tidegate_sql::mysql::{
    analyze_mysql, parse_mysql, Algorithm, DdlOperation, Flavour, MyCatalog, MyKind, MySqlTarget,
    ServerVersion, Source,
};
use tidegate_testkit::PrivateMariaDb;

/// The probe schema, recreated before every attempt.
const SCHEMA: &str = "\
CREATE TABLE parent (id BIGINT NOT NULL PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE probe (
  id BIGINT NOT NULL PRIMARY KEY,
  a INT NULL,
  b INT NOT NULL DEFAULT 0,
  s VARCHAR(20) NULL,
  t VARCHAR(40) NOT NULL DEFAULT '',
  parent_id BIGINT NULL,
  parent2 BIGINT NULL,
  body TEXT NULL,
  g POINT NOT NULL,
  KEY idx_a (a),
  CONSTRAINT ck_b CHECK (b >= 0),
  CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE nokey (id BIGINT NOT NULL, x INT NULL) ENGINE=InnoDB;
CREATE TABLE parts (id BIGINT NOT NULL PRIMARY KEY, x INT NULL) ENGINE=InnoDB
  PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20));
";

const ROWS: &str = "\
INSERT INTO parent VALUES (1);
INSERT INTO probe (id, a, b, s, parent_id, g) VALUES (1, 1, 1, 'x', 1, POINT(0, 0)), (2, 2, 2, 'y', NULL, POINT(1, 1));
INSERT INTO nokey VALUES (1, 1), (2, 2);
INSERT INTO parts VALUES (1, 1), (15, 2);
";

const DROP: &str =
    "SET foreign_key_checks = 1; DROP TABLE IF EXISTS probe, probe_renamed, nokey, parts, parent;";

/// (session settings before it, the ALTER without ALGORITHM, the operation tidegate must see)
const CASES: &[(&str, &str, DdlOperation)] = &[
    (
        "",
        "ALTER TABLE probe ADD COLUMN c INT",
        DdlOperation::AddColumnLast,
    ),
    (
        "",
        "ALTER TABLE probe ADD COLUMN c INT NOT NULL DEFAULT 5 AFTER id",
        DdlOperation::AddColumnNotLast,
    ),
    (
        "",
        "ALTER TABLE probe ADD COLUMN c INT AS (b + 1) STORED",
        DdlOperation::AddStoredGeneratedColumn,
    ),
    (
        "",
        "ALTER TABLE probe ADD COLUMN c INT AS (b + 1) VIRTUAL",
        DdlOperation::AddVirtualGeneratedColumn,
    ),
    (
        "",
        "ALTER TABLE probe DROP COLUMN body",
        DdlOperation::DropColumn,
    ),
    (
        "",
        "ALTER TABLE probe RENAME COLUMN s TO s2",
        DdlOperation::RenameColumn,
    ),
    (
        "",
        "ALTER TABLE probe MODIFY s VARCHAR(20) NULL AFTER id",
        DdlOperation::ReorderColumn,
    ),
    (
        "",
        "ALTER TABLE probe ALTER COLUMN b SET DEFAULT 7",
        DdlOperation::SetColumnDefault,
    ),
    (
        "",
        "ALTER TABLE probe ALTER COLUMN b DROP DEFAULT",
        DdlOperation::DropColumnDefault,
    ),
    (
        "",
        "ALTER TABLE probe MODIFY a BIGINT NULL",
        DdlOperation::ChangeColumnType,
    ),
    (
        "",
        "ALTER TABLE probe MODIFY s VARCHAR(40) NULL",
        DdlOperation::WidenVarchar,
    ),
    (
        "",
        "ALTER TABLE probe MODIFY s VARCHAR(100) NULL",
        DdlOperation::WidenVarcharAcross255Bytes,
    ),
    (
        "",
        "ALTER TABLE probe MODIFY t VARCHAR(10) NOT NULL DEFAULT ''",
        DdlOperation::ShrinkVarchar,
    ),
    (
        "",
        "ALTER TABLE probe MODIFY b INT NULL DEFAULT 0",
        DdlOperation::MakeColumnNullable,
    ),
    (
        "",
        "ALTER TABLE probe MODIFY a INT NOT NULL",
        DdlOperation::MakeColumnNotNull,
    ),
    (
        "",
        "ALTER TABLE probe ADD INDEX idx_b (b)",
        DdlOperation::AddIndex,
    ),
    (
        "",
        "ALTER TABLE probe ADD UNIQUE KEY u_b (b)",
        DdlOperation::AddUniqueIndex,
    ),
    (
        "",
        "ALTER TABLE probe ADD FULLTEXT INDEX ft_body (body)",
        DdlOperation::AddFulltextIndex,
    ),
    (
        "",
        "ALTER TABLE probe ADD SPATIAL INDEX sp_g (g)",
        DdlOperation::AddSpatialIndex,
    ),
    (
        "",
        "ALTER TABLE probe DROP INDEX idx_a",
        DdlOperation::DropIndex,
    ),
    (
        "",
        "ALTER TABLE probe RENAME INDEX idx_a TO idx_a2",
        DdlOperation::RenameIndex,
    ),
    (
        "",
        "ALTER TABLE nokey ADD PRIMARY KEY (id)",
        DdlOperation::AddPrimaryKey,
    ),
    (
        "",
        "ALTER TABLE probe DROP PRIMARY KEY",
        DdlOperation::DropPrimaryKey,
    ),
    (
        "",
        "ALTER TABLE probe DROP PRIMARY KEY, ADD PRIMARY KEY (id, b)",
        DdlOperation::ReplacePrimaryKey,
    ),
    (
        "",
        "ALTER TABLE probe ADD CONSTRAINT fk_parent2 FOREIGN KEY (parent2) REFERENCES parent (id)",
        DdlOperation::AddForeignKey,
    ),
    (
        "SET foreign_key_checks = 0",
        "ALTER TABLE probe ADD CONSTRAINT fk_parent2 FOREIGN KEY (parent2) REFERENCES parent (id)",
        DdlOperation::AddForeignKeyWithoutChecks,
    ),
    (
        "",
        "ALTER TABLE probe DROP FOREIGN KEY fk_parent",
        DdlOperation::DropForeignKey,
    ),
    (
        "",
        "ALTER TABLE probe ADD CONSTRAINT ck_a CHECK (a > 0)",
        DdlOperation::AddCheck,
    ),
    (
        "",
        "ALTER TABLE probe DROP CONSTRAINT ck_b",
        DdlOperation::DropCheck,
    ),
    (
        "",
        "ALTER TABLE probe AUTO_INCREMENT = 100",
        DdlOperation::SetAutoIncrement,
    ),
    (
        "",
        "ALTER TABLE probe ROW_FORMAT = COMPACT",
        DdlOperation::ChangeRowFormat,
    ),
    ("", "ALTER TABLE probe FORCE", DdlOperation::Rebuild),
    (
        "",
        "ALTER TABLE probe CONVERT TO CHARACTER SET latin1",
        DdlOperation::ConvertCharset,
    ),
    (
        "",
        "ALTER TABLE probe DEFAULT CHARACTER SET latin1",
        DdlOperation::ChangeDefaultCharset,
    ),
    (
        "",
        "ALTER TABLE probe COMMENT = 'probe'",
        DdlOperation::ChangeTableComment,
    ),
    (
        "",
        "ALTER TABLE probe RENAME TO probe_renamed",
        DdlOperation::RenameTable,
    ),
];

/// Partition maintenance MariaDB 10.11 does not let `ALGORITHM=` be written with (error 1064 wherever it
/// stands): their rows are the Knowledge Base's, and no rule may suggest the clause for them. (`PARTITION BY`
/// is not on the ladder either: 10.11 accepts even `ALGORITHM=INSTANT` before it, so the ladder cannot tell what
/// it does; its row is the Knowledge Base's COPY.)
const PARTITION_MAINTENANCE: &[(&str, DdlOperation)] = &[
    (
        "ALTER TABLE parts ADD PARTITION (PARTITION p2 VALUES LESS THAN (30))",
        DdlOperation::AddPartition,
    ),
    (
        "ALTER TABLE parts DROP PARTITION p1",
        DdlOperation::DropPartition,
    ),
    (
        "ALTER TABLE parts TRUNCATE PARTITION p1",
        DdlOperation::TruncatePartition,
    ),
];

/// What the server did with one attempt.
enum Outcome {
    Accepted,
    /// Errors 1845/1846: this algorithm or lock level cannot do it.
    Refused,
}

/// The case with `options` (`ALGORITHM=X[, LOCK=NONE]`) after its clauses.
fn with_options(sql: &str, options: &str) -> String {
    format!("{sql}, {options}")
}

async fn fresh_schema(session: &dyn Session) {
    session.batch_execute(DROP).await.unwrap();
    session.batch_execute(SCHEMA).await.unwrap();
    session.batch_execute(ROWS).await.unwrap();
}

async fn attempt(session: &dyn Session, settings: &str, sql: &str) -> Outcome {
    fresh_schema(session).await;
    if !settings.is_empty() {
        session.batch_execute(settings).await.unwrap();
    }
    let outcome = match session.batch_execute(sql).await {
        Ok(()) => Outcome::Accepted,
        Err(error) if matches!(error.server_code, Some(1845 | 1846)) => Outcome::Refused,
        Err(error) => {
            panic!("{sql}: the server failed otherwise than by refusing the algorithm: {error}")
        }
    };
    session
        .batch_execute("SET foreign_key_checks = 1")
        .await
        .unwrap();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_algorithm_mariadb_accepts_is_the_facts_tables_cheapest() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let session = config.open().await.unwrap();
    let version: String = session
        .query_one("SELECT VERSION() AS version", &[])
        .await
        .unwrap()
        .get("version")
        .unwrap();
    let target = MySqlTarget::new(
        Flavour::MariaDb,
        Some(ServerVersion::parse(&version).expect("the server's version parses")),
    )
    .unwrap();
    let mut mismatches = Vec::new();
    for &(settings, sql, expected) in CASES {
        // tidegate's view: the probe schema, then the case.
        let mut catalog = MyCatalog::new();
        analyze_mysql(parse_mysql(SCHEMA), target, &mut catalog);
        let migration = analyze_mysql(
            parse_mysql(&format!("{settings};\n{sql};")),
            target,
            &mut catalog,
        );
        let (statement, analysis) = migration
            .parsed
            .statements
            .iter()
            .zip(&migration.analysis)
            .find(|(statement, _)| matches!(statement.kind, MyKind::Alter(_)))
            .unwrap_or_else(|| {
                panic!(
                    "{sql}: not analysed as an ALTER: {:?}",
                    migration.parsed.statements
                )
            });
        let operations: Vec<DdlOperation> = analysis
            .operations
            .iter()
            .map(|planned| planned.operation)
            .collect();
        assert_eq!(operations, vec![expected], "{sql}: {statement:?}");
        let facts = analysis.operations[0].facts;
        assert_eq!(
            facts.source,
            Source::MariaDbChecked,
            "{sql}: the row for {version} is a checked one"
        );

        // The server's: the ladder.
        let mut accepted = None;
        for algorithm in Algorithm::LADDER {
            if let Outcome::Accepted = attempt(
                session.as_ref(),
                settings,
                &with_options(sql, &format!("ALGORITHM={}", algorithm.name())),
            )
            .await
            {
                accepted = Some(algorithm);
                break;
            }
        }
        let accepted =
            accepted.unwrap_or_else(|| panic!("{sql}: the server refused even ALGORITHM=COPY"));
        let lock_none = matches!(
            attempt(
                session.as_ref(),
                settings,
                &with_options(sql, &format!("ALGORITHM={}, LOCK=NONE", accepted.name()))
            )
            .await,
            Outcome::Accepted
        );
        eprintln!(
            "{sql}: server {} (LOCK=NONE {lock_none}); facts {} (concurrent DML {})",
            accepted.name(),
            facts.cheapest.name(),
            facts.concurrent_dml
        );
        if accepted != facts.cheapest || lock_none != facts.concurrent_dml {
            mismatches.push(format!(
                "{expected:?} ({sql}): the server's cheapest is {} with LOCK=NONE {}, the facts say {} with concurrent DML {}",
                accepted.name(),
                if lock_none { "accepted" } else { "refused" },
                facts.cheapest.name(),
                facts.concurrent_dml
            ));
        }
    }
    for &(sql, expected) in PARTITION_MAINTENANCE {
        let migration = analyze_mysql(parse_mysql(sql), target, &mut MyCatalog::new());
        let planned = &migration.analysis[0].operations;
        assert_eq!(planned.len(), 1, "{sql}");
        assert_eq!(planned[0].operation, expected, "{sql}");
        assert!(
            !tidegate_sql::mysql::algorithm_clause_allowed(Flavour::MariaDb, expected),
            "{sql}"
        );
        assert_eq!(
            planned[0].facts.source,
            Source::MariaDbKnowledgeBase,
            "{sql}"
        );
        for written in [
            format!("{sql} ALGORITHM=COPY"),
            format!("{sql}, ALGORITHM=COPY"),
            sql.replace("parts ", "parts ALGORITHM=COPY, "),
        ] {
            fresh_schema(session.as_ref()).await;
            let error = session.batch_execute(&written).await.expect_err(&written);
            assert_eq!(error.server_code, Some(1064), "{written}: {error}");
        }
        assert!(
            matches!(attempt(session.as_ref(), "", sql).await, Outcome::Accepted),
            "{sql}"
        );
    }
    session.batch_execute(DROP).await.unwrap();
    assert!(
        mismatches.is_empty(),
        "facts that MariaDB {version} contradicts:\n{}",
        mismatches.join("\n")
    );
}

/// What `add-required-column` says on MySQL/MariaDB, on the real server: an ADD COLUMN … NOT NULL without a
/// DEFAULT succeeds on a table with rows and gives them the type's implicit value, and then an INSERT that omits
/// the column (the previous release's) fails with error 1364 under the server's default, strict, sql_mode; with a
/// DEFAULT, or AUTO_INCREMENT, the same INSERT goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_null_column_without_a_default_breaks_inserts_that_omit_it() {
    let server = PrivateMariaDb::start();
    let session = MySqlConfig::from_url(&server.url())
        .unwrap()
        .open()
        .await
        .unwrap();
    session
        .batch_execute(
            "CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, total INT NOT NULL) ENGINE=InnoDB;
             INSERT INTO orders VALUES (1, 10), (2, 20);",
        )
        .await
        .unwrap();
    session
        .batch_execute(
            "ALTER TABLE orders ADD COLUMN currency VARCHAR(3) NOT NULL, ALGORITHM=INSTANT",
        )
        .await
        .expect("the ALTER itself succeeds, instantly");
    let filled: String = session
        .query_one("SELECT currency FROM orders WHERE id = 1", &[])
        .await
        .unwrap()
        .get("currency")
        .unwrap();
    assert_eq!(filled, "", "existing rows take the implicit value");
    let error = session
        .batch_execute("INSERT INTO orders (id, total) VALUES (3, 30)")
        .await
        .expect_err("the previous release's INSERT fails");
    assert_eq!(error.server_code, Some(1364), "{error}");
    session
        .batch_execute(
            "ALTER TABLE orders ADD COLUMN region VARCHAR(8) NOT NULL DEFAULT 'eu', \
             ADD COLUMN seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE, MODIFY currency VARCHAR(3) NOT NULL DEFAULT 'EUR'",
        )
        .await
        .unwrap();
    session
        .batch_execute("INSERT INTO orders (id, total) VALUES (3, 30)")
        .await
        .expect("with defaults the same INSERT goes through");
    // What the rule reads from the parser, for the three columns the server judged above: (NOT NULL, DEFAULT,
    // AUTO_INCREMENT).
    let target = MySqlTarget::new(Flavour::MariaDb, None).unwrap();
    let mut catalog = MyCatalog::new();
    let parsed = parse_mysql(
        "ALTER TABLE orders ADD COLUMN currency VARCHAR(3) NOT NULL, \
         ADD COLUMN region VARCHAR(8) NOT NULL DEFAULT 'eu', ADD COLUMN seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE;",
    );
    let columns: Vec<(String, bool, bool, bool)> = analyze_mysql(parsed, target, &mut catalog)
        .parsed
        .statements
        .iter()
        .flat_map(|statement| match &statement.kind {
            MyKind::Alter(alter) => alter.changes.clone(),
            _ => Vec::new(),
        })
        .filter_map(|change| match change {
            tidegate_sql::mysql::Change::AddColumn { column, .. } => Some((
                column.name.clone(),
                !column.nullable,
                column.has_default,
                column.auto_increment,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("currency".to_string(), true, false, false),
            ("region".to_string(), true, true, false),
            ("seq".to_string(), true, false, true),
        ]
    );
}
