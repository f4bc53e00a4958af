//! ARCHITECTURE.md's cross-crate invariants, each checked so that breaking it fails a test:
//! - the layering (sql ← lint ← plan / apply ← rehearse ← cli; backfill ← apply ← metrics ← cli; db beside), and
//!   tidegate-lint and tidegate-sql reach no database driver; the engine and apply reach neither tidegate-metrics
//!   nor an HTTP server (metrics consume their events from outside);
//! - the SQL a library sends lives in its SQL module (`dialect.rs` for the engine, `sql.rs` for apply) or in the
//!   database layer (tidegate-db): a string literal anywhere else that PostgreSQL's parser reads as a statement is
//!   a violation.

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
    assert!(reaches(&graph, "tidegate-metrics").contains("tidegate-apply"));
    assert!(reaches(&graph, "tidegate").contains("tidegate-metrics"));
    // The layering exists at all (so the checks above are about real crates).
    assert!(reaches(&graph, "tidegate-apply").contains("tidegate-backfill"));
    assert!(reaches(&graph, "tidegate-plan").contains("tidegate-sql"));
    assert!(reaches(&graph, "tidegate-lint").contains("tidegate-sql"));
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
    // Where SQL text belongs: the engine's dialect, apply's sql module, and the database layer.
    let allowed = |path: &Path| {
        let path = path.to_string_lossy();
        path.ends_with("/dialect.rs")
            || path.ends_with("tidegate-apply/src/sql.rs")
            || path.contains("/tidegate-db/")
    };
    let mut violations = Vec::new();
    for package in [
        "tidegate-backfill",
        "tidegate-apply",
        "tidegate-plan",
        "tidegate-metrics",
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
