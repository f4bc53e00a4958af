//! ARCHITECTURE.md's cross-crate invariants, each checked so that breaking it fails a test:
//! - the layering (sql ← lint ← plan / apply ← rehearse ← cli; backfill ← apply ← metrics / report ← cli; db
//!   beside), and
//!   tidegate-lint and tidegate-sql reach no database driver; the engine and apply reach neither tidegate-metrics
//!   nor an HTTP server (metrics consume their events from outside);
//! - the SQL a library sends lives in its SQL module (`dialect.rs` for the engine, `sql.rs` for apply) or in the
//!   database layer (tidegate-db): a string literal anywhere else that PostgreSQL's parser reads as a statement is
//!   a violation (the demo's application SQL in tidegate-rehearse excepted);
//! - `tidegate plan` and `tidegate rehearse` send nothing to their target outside READ ONLY transactions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use syn::visit::Visit;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Package name → its normal (non-dev, non-build) dependencies' names, from `cargo metadata`.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    // Only this platform's dependencies: the others need not even be downloaded.
    let host = String::from_utf8(
        Command::new("rustc")
            .arg("-vV")
            .output()
            .expect("rustc runs")
            .stdout,
    )
    .unwrap()
    .lines()
    .find_map(|line| line.strip_prefix("host: ").map(str::to_string))
    .expect("rustc -vV names the host");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host,
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: BTreeMap<String, String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            (
                package["id"].as_str().unwrap().to_string(),
                package["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut graph = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().unwrap() {
        let name = names[node["id"].as_str().unwrap()].clone();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dep| {
                dep["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|kind| kind["kind"].is_null())
            })
            .map(|dep| names[dep["pkg"].as_str().unwrap()].clone())
            .collect();
        graph.insert(name, deps);
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(package) = stack.pop() {
        for dep in graph.get(&package).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn crates_are_layered_and_lint_reaches_no_database_driver() {
    let graph = dependency_graph();
    let drivers = [
        "tokio-postgres",
        "postgres-protocol",
        "mysql_async",
        "tidegate-db",
    ];
    for package in ["tidegate-sql", "tidegate-lint"] {
        let reached = reaches(&graph, package);
        for driver in drivers {
            assert!(!reached.contains(driver), "{package} depends on {driver}");
        }
    }
    let forbidden: &[(&str, &[&str])] = &[
        (
            "tidegate-sql",
            &[
                "tidegate-lint",
                "tidegate-plan",
                "tidegate-apply",
                "tidegate-backfill",
            ],
        ),
        (
            "tidegate-lint",
            &[
                "tidegate-plan",
                "tidegate-apply",
                "tidegate-backfill",
                "tidegate-rehearse",
            ],
        ),
        (
            "tidegate-backfill",
            &[
                "tidegate-lint",
                "tidegate-plan",
                "tidegate-apply",
                "tidegate-rehearse",
            ],
        ),
        (
            "tidegate-plan",
            &["tidegate-apply", "tidegate-backfill", "tidegate-rehearse"],
        ),
        ("tidegate-apply", &["tidegate-plan", "tidegate-rehearse"]),
        (
            "tidegate-db",
            &[
                "tidegate-lint",
                "tidegate-plan",
                "tidegate-apply",
                "tidegate-backfill",
            ],
        ),
    ];
    for (package, must_not) in forbidden {
        let reached = reaches(&graph, package);
        for other in *must_not {
            assert!(!reached.contains(*other), "{package} depends on {other}");
        }
    }
    // Metrics sit on top of the engine and apply: nothing below them serves HTTP or knows of them.
    for package in [
        "tidegate-sql",
        "tidegate-lint",
        "tidegate-db",
        "tidegate-backfill",
        "tidegate-apply",
        "tidegate-plan",
    ] {
        let reached = reaches(&graph, package);
        for other in ["tidegate-metrics", "hyper", "prometheus-client"] {
            assert!(!reached.contains(other), "{package} depends on {other}");
        }
    }
    // The report sits beside the metrics: it reads the journal the engine and apply write, and nothing below
    // it knows of it; it serves nothing.
    for package in [
        "tidegate-sql",
        "tidegate-lint",
        "tidegate-db",
        "tidegate-backfill",
        "tidegate-apply",
        "tidegate-plan",
        "tidegate-metrics",
    ] {
        assert!(
            !reaches(&graph, package).contains("tidegate-report"),
            "{package} depends on tidegate-report"
        );
    }
    for other in ["tidegate-metrics", "hyper"] {
        assert!(
            !reaches(&graph, "tidegate-report").contains(other),
            "tidegate-report depends on {other}"
        );
    }
    assert!(reaches(&graph, "tidegate").contains("tidegate-report"));
    assert!(reaches(&graph, "tidegate-metrics").contains("tidegate-apply"));
    assert!(reaches(&graph, "tidegate").contains("tidegate-metrics"));
    // The layering exists at all (so the checks above are about real crates).
    assert!(reaches(&graph, "tidegate-apply").contains("tidegate-backfill"));
    assert!(reaches(&graph, "tidegate-plan").contains("tidegate-sql"));
    assert!(reaches(&graph, "tidegate-lint").contains("tidegate-sql"));
}

/// The driver sits behind the database seam: only tidegate-db (the PostgreSQL implementation of
/// `tidegate_db::driver::Session`, and of its MySQL one, on mysql_async) depends on tokio-postgres, besides rehearse's workload (it plays the
/// application, whose sessions are not tidegate's) and the test kit. The engine, apply, plan and the CLI talk
/// to a `&dyn Session`, so a second family plugs in below them.
#[test]
fn only_the_database_layer_depends_on_the_driver() {
    let graph = dependency_graph();
    let allowed = ["tidegate-db", "tidegate-rehearse", "tidegate-testkit"];
    // MySQL's driver is tidegate-db's alone: not even the workload or the test kit reach around the seam.
    for package in graph.keys().filter(|name| name.starts_with("tidegate")) {
        assert!(
            !graph[package].contains("mysql_async") || package == "tidegate-db",
            "{package} depends on mysql_async directly: go through tidegate_db::driver::Session"
        );
    }
    let ours: Vec<&String> = graph
        .keys()
        .filter(|name| name.starts_with("tidegate"))
        .collect();
    assert!(
        ours.len() >= 10,
        "the workspace's crates were found: {ours:?}"
    );
    for package in ours {
        let direct = &graph[package];
        for driver in ["tokio-postgres", "postgres-types", "postgres-protocol"] {
            assert!(
                !direct.contains(driver) || allowed.contains(&package.as_str()),
                "{package} depends on {driver} directly: go through tidegate_db::driver::Session"
            );
        }
    }
    assert!(graph["tidegate-db"].contains("tokio-postgres"));
    assert!(graph["tidegate-db"].contains("mysql_async"));
}

/// String literals outside attributes (doc comments are attributes), with their line.
struct Literals {
    found: Vec<(usize, String)>,
}

impl<'ast> Visit<'ast> for Literals {
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        // Unit tests may hold SQL of their own.
        let is_test = module.attrs.iter().any(|attribute| {
            attribute.path().is_ident("cfg")
                && attribute
                    .parse_args::<syn::Ident>()
                    .is_ok_and(|ident| ident == "test")
        });
        if !is_test {
            syn::visit::visit_item_mod(self, module);
        }
    }

    fn visit_lit_str(&mut self, literal: &'ast syn::LitStr) {
        self.found
            .push((literal.span().start().line, literal.value()));
    }
}

/// Whether PostgreSQL's parser reads `text` as SQL statements (a `format!` template's `{}` made harmless first).
fn is_sql(text: &str) -> bool {
    let trimmed = text.trim();
    if trimmed.len() < 8 || !trimmed.contains(' ') {
        return false;
    }
    let sample = trimmed.replace("{}", "x");
    pg_query::parse(&sample, 0).is_ok_and(|parsed| !parsed.protobuf.stmts.is_empty())
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn sql_lives_in_the_sql_modules() {
    let root = workspace_root().join("crates");
    // Where SQL text belongs: the engine's dialects (PostgreSQL's, MySQL's), apply's sql module, and the
    // database layer.
    let allowed = |path: &Path| {
        let path = path.to_string_lossy();
        path.ends_with("/dialect.rs")
            || path.ends_with("tidegate-backfill/src/dialect_mysql.rs")
            || path.ends_with("tidegate-apply/src/sql.rs")
            || path.ends_with("tidegate-apply/src/mysql/sql.rs")
            || path.contains("/tidegate-db/")
            // The demo's application: its table and requests are the application's SQL, not tidegate's.
            || path.ends_with("tidegate-rehearse/src/orders.rs")
            || path.ends_with("tidegate-rehearse/src/demo.rs")
    };
    let mut violations = Vec::new();
    for package in [
        "tidegate-backfill",
        "tidegate-apply",
        "tidegate-plan",
        "tidegate-metrics",
        "tidegate-report",
        "tidegate-rehearse",
        "tidegate",
    ] {
        let mut files = Vec::new();
        rust_files(&root.join(package).join("src"), &mut files);
        for file in files {
            if allowed(&file) {
                continue;
            }
            let source = std::fs::read_to_string(&file).unwrap();
            let syntax = syn::parse_file(&source).unwrap();
            let mut literals = Literals { found: Vec::new() };
            literals.visit_file(&syntax);
            for (line, text) in literals.found {
                if is_sql(&text) {
                    violations.push(format!(
                        "{}:{line}: {}",
                        file.strip_prefix(&root).unwrap_or(&file).display(),
                        text.lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "SQL outside the SQL modules:\n{}",
        violations.join("\n")
    );
}

/// Every connection tidegate opens goes through `tidegate_db::connect::ConnectionConfig::connect`, which starts
/// each session with a `lock_timeout` and a `statement_timeout` (checked against a real server in
/// `sessions_start_bounded_whatever_the_role_says`). A library opening its own tokio-postgres connection would
/// bypass that bound: any call of tokio-postgres's connect outside connect.rs fails this test.
#[test]
fn connections_are_opened_only_by_the_bounded_connect() {
    let root = workspace_root().join("crates");
    // The demo's application workload simulates the application, whose sessions are not tidegate's.
    let allowed = |path: &Path| {
        let path = path.to_string_lossy();
        path.ends_with("tidegate-db/src/connect.rs")
            || path.ends_with("tidegate-rehearse/src/workload.rs")
    };
    struct Connects {
        found: Vec<usize>,
    }
    impl<'ast> Visit<'ast> for Connects {
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let syn::Expr::Path(path) = call.func.as_ref() {
                let segments: Vec<String> = path
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                if segments.ends_with(&["tokio_postgres".into(), "connect".into()]) {
                    self.found.push(call.paren_token.span.open().start().line);
                }
            }
            syn::visit::visit_expr_call(self, call);
        }
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            // `Config::connect(NoTls)`: tokio-postgres's own connect on a configuration.
            let tls = call.args.iter().any(|arg| {
                matches!(arg, syn::Expr::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "NoTls"))
            });
            if call.method == "connect" && tls {
                self.found.push(call.method.span().start().line);
            }
            syn::visit::visit_expr_method_call(self, call);
        }
    }
    let mut violations = Vec::new();
    let mut dirs = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| !dir.ends_with("tidegate-testkit"))
        .collect::<Vec<_>>();
    dirs.sort();
    assert!(dirs.len() >= 8, "the crates were found: {dirs:?}");
    for dir in dirs {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            if allowed(&file) {
                continue;
            }
            let source = std::fs::read_to_string(&file).unwrap();
            let syntax = syn::parse_file(&source).unwrap();
            let mut connects = Connects { found: Vec::new() };
            connects.visit_file(&syntax);
            for line in connects.found {
                violations.push(format!("{}:{line}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "connections opened around ConnectionConfig::connect (unbounded sessions): {violations:#?}"
    );
}

/// A role configured with no lock_timeout and no statement_timeout still gets tidegate's bounds: the startup
/// options come after the role's settings. The user's own `options` in the URL still win.
#[tokio::test]
async fn sessions_start_bounded_whatever_the_role_says() {
    use tidegate_db::connect::ConnectionConfig;
    let db = tidegate_testkit::TestDatabase::create().await;
    let admin = db.connect().await;
    let role = format!("unbounded_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
             ALTER ROLE {role} SET lock_timeout = 0; ALTER ROLE {role} SET statement_timeout = 0"
        ))
        .await
        .unwrap();
    let as_role = tidegate_testkit::url_with_database(db.url(), db.name()).replacen(
        "postgres@",
        &format!("{role}@"),
        1,
    );
    let client = ConnectionConfig::from_url(&as_role)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bounds = client
        .query_one(
            "SELECT current_user::text, current_setting('lock_timeout'), current_setting('statement_timeout')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(bounds.get::<_, String>(0), role);
    assert_eq!(bounds.get::<_, String>(1), "5s");
    assert_eq!(bounds.get::<_, String>(2), "5min");
    // RESET goes back to the bound, not to the role's "no limit".
    client.batch_execute("RESET lock_timeout").await.unwrap();
    let reset: String = client
        .query_one("SELECT current_setting('lock_timeout')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reset, "5s");
    drop(client);
    let own = format!("{as_role}?options=-c%20lock_timeout%3D2s");
    let client = ConnectionConfig::from_url(&own)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mine: String = client
        .query_one("SELECT current_setting('lock_timeout')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mine, "2s");
    drop(client);
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}

/// `tidegate plan` sends nothing outside a READ ONLY transaction: the server logs every statement of plan's
/// session (log_statement = all), and each one is a BEGIN … READ ONLY, a statement inside such a transaction,
/// or its end.
#[tokio::test]
async fn plan_runs_only_read_only_transactions() {
    let cluster = tidegate_testkit::PrivateCluster::start();
    let url = cluster.create_database("planned").await;
    let admin = tidegate_testkit::connect(&url).await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL); \
             INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 5000) g; ANALYZE orders",
        )
        .await
        .unwrap();
    // ALTER SYSTEM refuses to run in a transaction block, which a multi-statement string is.
    for setting in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "ALTER SYSTEM SET log_line_prefix = '%m [%p] <%a> '",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(setting).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/001_index.sql"),
        "CREATE INDEX orders_status ON orders (status);\nUPDATE orders SET status = 'old';\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("migrations/002_column.sql"),
        "ALTER TABLE orders ADD COLUMN note text;\n",
    )
    .unwrap();
    let plan_url = format!("{url}?application_name=plan-under-test");
    let stats = dir.path().join("stats.json");
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args([
            "plan",
            "--db",
            &plan_url,
            "--sample",
            "200ms",
            "--write-stats",
        ])
        .arg(&stats)
        .arg(dir.path().join("migrations"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    // 0 or 1 (findings): it ran to the end; 2 would be a usage or input error.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    admin
        .batch_execute("ALTER SYSTEM RESET log_statement")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    assert_only_read_only_transactions(&cluster, "plan-under-test");
}

/// Every statement the session named `application` sent (the server's log, `log_statement = all`) is a BEGIN …
/// READ ONLY, a statement inside such a transaction, or its end.
fn assert_only_read_only_transactions(
    cluster: &tidegate_testkit::PrivateCluster,
    application: &str,
) {
    let log = std::fs::read_to_string(cluster.dir().join("server.log")).unwrap();
    let tag = format!("<{application}>");
    let statements: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&tag))
        .filter_map(|line| {
            line.split_once("LOG:  statement: ")
                .or_else(|| line.split_once("LOG:  execute "))
                .map(|(_, statement)| statement)
        })
        .collect();
    assert!(
        statements.len() >= 6,
        "{application}'s statements were logged: {statements:#?}"
    );
    let mut in_read_only = false;
    for statement in &statements {
        let upper = statement.to_ascii_uppercase();
        if upper.starts_with("BEGIN") || upper.starts_with("START TRANSACTION") {
            assert!(
                upper.contains("READ ONLY"),
                "a transaction that is not read-only: {statement}"
            );
            in_read_only = true;
            continue;
        }
        assert!(
            in_read_only,
            "sent outside a READ ONLY transaction: {statement}\n{statements:#?}"
        );
        if upper.starts_with("COMMIT") || upper.starts_with("ROLLBACK") || upper.starts_with("END")
        {
            in_read_only = false;
        }
    }
    assert!(!in_read_only, "{application} left a transaction open");
}

/// `tidegate rehearse` reads its source only inside READ ONLY transactions: the source's own statement log says so.
/// (Its writes — DDL, COPY, ANALYZE — go to its scratch server, another cluster.)
#[tokio::test]
async fn rehearse_reads_its_source_only_in_read_only_transactions() {
    let cluster = tidegate_testkit::PrivateCluster::start();
    let url = cluster.create_database("rehearsed").await;
    let admin = tidegate_testkit::connect(&url).await;
    admin
        .batch_execute(
            "CREATE TABLE customers (id bigint PRIMARY KEY);              CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers, status text);              INSERT INTO customers SELECT g FROM generate_series(1, 500) g;              INSERT INTO orders SELECT g, 1 + g % 500, 'new' FROM generate_series(1, 5000) g;              ANALYZE customers; ANALYZE orders",
        )
        .await
        .unwrap();
    for setting in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "ALTER SYSTEM SET log_line_prefix = '%m [%p] <%a> '",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(setting).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/001_status.sql"),
        "UPDATE orders SET status = 'old';\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args([
            "rehearse",
            "--db",
            &format!("{url}?application_name=rehearse-under-test"),
        ])
        .arg(dir.path().join("migrations"))
        .env_remove("DATABASE_URL")
        .env("TMPDIR", dir.path())
        // The default run measures plan's rates too (on the scratch server only); they land in the test's dir.
        .env("TIDEGATE_CALIBRATION", dir.path().join("calibration.json"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dir.path().join("calibration.json").is_file(),
        "the default rehearsal writes plan's rates"
    );
    admin
        .batch_execute("ALTER SYSTEM RESET log_statement")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    assert_only_read_only_transactions(&cluster, "rehearse-under-test");
}
