//! The formats other tools read, checked by those tools' rules: SARIF passed through Microsoft's SARIF
//! validator (what GitHub code scanning's ingestion is built on) with relative and absolute paths, and GitLab
//! Code Quality with repository-relative paths whose fingerprints do not depend on how a file was named.
//! Also: file arguments are linted in one pass per migration set with the same findings as one by one.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIRST: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, status text);\n";
const SECOND: &str = "ALTER TABLE orders ADD COLUMN note text;\nUPDATE orders SET note = status;\n";
const THIRD: &str = "CREATE INDEX orders_status ON orders (status);\nALTER TABLE orders ALTER COLUMN status TYPE varchar(20);\n";

/// A git repository (a `.git` directory is what marks its root) with one migration directory.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".git")).expect(".git");
    let migrations = dir.path().join("db/migrations");
    std::fs::create_dir_all(&migrations).expect("mkdir");
    std::fs::write(migrations.join("001_orders.sql"), FIRST).expect("write");
    std::fs::write(migrations.join("002 note.sql"), SECOND).expect("write");
    std::fs::write(migrations.join("003_status.sql"), THIRD).expect("write");
    dir
}

fn lint(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .arg("lint")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run tidegate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).expect("UTF-8"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Microsoft's validator, installed by scripts/setup.sh (or named by TIDEGATE_SARIF_MULTITOOL).
fn sarif_multitool() -> PathBuf {
    if let Some(path) = std::env::var_os("TIDEGATE_SARIF_MULTITOOL") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let path = cache.join(
        "tidegate/sarif-multitool/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool",
    );
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (it installs Microsoft's SARIF validator)",
        path.display()
    );
    path
}

/// Runs `Sarif.Multitool validate` on `sarif` and returns its JSON log's results (errors and warnings).
fn validate(sarif: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("lint.sarif");
    let output = dir.path().join("validation.sarif");
    std::fs::write(&input, sarif).expect("write sarif");
    let run = Command::new(sarif_multitool())
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .arg("validate")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        // Errors and warnings (the SARIF2xxx rules GitHub's ingestion is stricter about); notes are advice.
        .args(["--level", "Error;Warning"])
        .output()
        .expect("run the SARIF validator");
    let log = std::fs::read_to_string(&output).unwrap_or_else(|error| {
        panic!(
            "the validator wrote no log ({error}): {}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        )
    });
    let log: serde_json::Value = serde_json::from_str(&log).expect("validator log is JSON");
    log["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn assert_valid_sarif(sarif: &str) {
    let problems: Vec<String> = validate(sarif)
        .iter()
        .filter(|result| {
            // Errors and warnings; notes are style suggestions.
            matches!(result["level"].as_str(), Some("error" | "warning") | None)
        })
        .map(|result| {
            format!(
                "{} {}: {}",
                result["level"].as_str().unwrap_or("warning"),
                result["ruleId"].as_str().unwrap_or("?"),
                result["message"]
            )
        })
        .collect();
    assert!(problems.is_empty(), "{problems:#?}\n{sarif}");
}

fn uris(sarif: &serde_json::Value) -> Vec<(String, Option<String>)> {
    sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| {
            let location = &result["locations"][0]["physicalLocation"]["artifactLocation"];
            (
                location["uri"].as_str().expect("uri").to_string(),
                location["uriBaseId"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn sarif_with_relative_paths_passes_the_validator() {
    let repo = repository();
    let (code, sarif, stderr) = lint(
        repo.path(),
        &[
            "--format=sarif",
            "db/migrations/002 note.sql",
            "db/migrations/003_status.sql",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_valid_sarif(&sarif);
    let document: serde_json::Value = serde_json::from_str(&sarif).expect("json");
    let uris = uris(&document);
    assert!(!uris.is_empty());
    for (uri, base) in &uris {
        assert!(uri.starts_with("db/migrations/"), "{uri}");
        assert_eq!(base.as_deref(), Some("%SRCROOT%"));
    }
    // A space in a file name is percent-encoded: a URI has none.
    assert!(uris
        .iter()
        .any(|(uri, _)| uri == "db/migrations/002%20note.sql"));
    let root = document["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"]
        .as_str()
        .expect("originalUriBaseIds");
    assert!(
        root.starts_with("file:///") && root.ends_with('/'),
        "{root}"
    );
}

#[test]
fn sarif_with_absolute_paths_passes_the_validator() {
    let repo = repository();
    let dir = repo.path().join("db/migrations");
    let third = dir.join("003_status.sql");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let (code, sarif, stderr) = lint(
        elsewhere.path(),
        &["--format=sarif", third.to_str().expect("UTF-8 path")],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_valid_sarif(&sarif);
    let document: serde_json::Value = serde_json::from_str(&sarif).expect("json");
    let uris = uris(&document);
    assert!(!uris.is_empty());
    for (uri, base) in &uris {
        assert!(
            uri.starts_with("file:///") && uri.ends_with("/db/migrations/003_status.sql"),
            "{uri}"
        );
        assert_eq!(base, &None);
    }
}

#[test]
fn sarif_rules_carry_descriptions_and_help_uris() {
    let repo = repository();
    let (_, sarif, _) = lint(repo.path(), &["--format=sarif", "db/migrations"]);
    let document: serde_json::Value = serde_json::from_str(&sarif).expect("json");
    let rules = document["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    assert_eq!(rules.len(), tidegate_lint::registry().len());
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules");
    for rule in rules {
        let id = rule["id"].as_str().expect("id");
        let short = rule["shortDescription"]["text"].as_str().expect("short");
        let full = rule["fullDescription"]["text"].as_str().expect("full");
        assert!(
            !short.is_empty() && full.len() > short.len(),
            "{id}: {full}"
        );
        assert!(
            !full.starts_with(short),
            "{id}: the full description repeats the short one"
        );
        let uri = rule["helpUri"].as_str().expect("helpUri");
        assert!(uri.ends_with(&format!("/docs/rules/{id}.md")), "{uri}");
        assert!(
            docs.join(format!("{id}.md")).is_file(),
            "{id} has no page under docs/rules"
        );
    }
    // Results point at their rule.
    for result in document["runs"][0]["results"].as_array().expect("results") {
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }
}

fn gitlab_issues(stdout: &str) -> Vec<(String, String, String)> {
    let issues: serde_json::Value = serde_json::from_str(stdout).expect("gitlab json");
    let mut issues: Vec<(String, String, String)> = issues
        .as_array()
        .expect("array")
        .iter()
        .map(|issue| {
            (
                issue["location"]["path"]
                    .as_str()
                    .expect("path")
                    .to_string(),
                issue["check_name"]
                    .as_str()
                    .expect("check_name")
                    .to_string(),
                issue["fingerprint"]
                    .as_str()
                    .expect("fingerprint")
                    .to_string(),
            )
        })
        .collect();
    issues.sort();
    issues
}

#[test]
fn gitlab_paths_are_repository_relative_and_fingerprints_do_not_depend_on_how_files_were_named() {
    let repo = repository();
    let dir = repo.path().join("db/migrations");
    let (_, relative, stderr) = lint(
        repo.path(),
        &["--format=gitlab", "db/migrations/003_status.sql"],
    );
    let relative = gitlab_issues(&relative);
    assert!(!relative.is_empty(), "{stderr}");
    // From a subdirectory of the repository, by a relative path with `..`.
    let (_, from_subdir, _) = lint(&dir, &["--format=gitlab", "../migrations/003_status.sql"]);
    // By an absolute path, from outside the repository's subdirectories.
    let absolute_path = dir.join("003_status.sql");
    let (_, absolute, _) = lint(
        repo.path(),
        &[
            "--format=gitlab",
            absolute_path.to_str().expect("UTF-8 path"),
        ],
    );
    for (path, _, fingerprint) in &relative {
        assert_eq!(path, "db/migrations/003_status.sql");
        assert_eq!(fingerprint.len(), 16);
    }
    assert_eq!(gitlab_issues(&from_subdir), relative);
    assert_eq!(gitlab_issues(&absolute), relative);
    // Two findings never share a fingerprint (GitLab would merge them).
    let mut fingerprints: Vec<&String> = relative.iter().map(|(_, _, f)| f).collect();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), relative.len());
}

/// The findings of a JSON run as (path, rule, line), sorted.
fn findings(stdout: &str) -> Vec<(String, String, u64)> {
    let report: serde_json::Value = serde_json::from_str(stdout).expect("json");
    let mut findings: Vec<(String, String, u64)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["path"].as_str().expect("path").to_string(),
                finding["rule"].as_str().expect("rule").to_string(),
                finding["line"].as_u64().expect("line"),
            )
        })
        .collect();
    findings.sort();
    findings
}

#[test]
fn file_arguments_are_linted_in_one_pass_with_the_findings_of_one_by_one() {
    let repo = repository();
    let names = [
        "db/migrations/003_status.sql",
        "db/migrations/002 note.sql",
        "./db/migrations/003_status.sql",
    ];
    let mut one_by_one = Vec::new();
    for name in &names[..2] {
        let (_, stdout, stderr) = lint(repo.path(), &["--format=json", name]);
        assert!(stderr.is_empty(), "{stderr}");
        one_by_one.extend(findings(&stdout));
    }
    one_by_one.sort();
    let mut args = vec!["--format=json"];
    args.extend(names);
    let (_, together, stderr) = lint(repo.path(), &args);
    assert!(stderr.is_empty(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&together).expect("json");
    // The file named twice is linted once; the earlier migration is context, not reported.
    assert_eq!(report["files"], 2);
    assert_eq!(findings(&together), one_by_one);
    assert!(one_by_one
        .iter()
        .any(|(_, rule, _)| rule == "schema-change-with-backfill"));
    assert!(one_by_one
        .iter()
        .all(|(path, _, _)| !path.ends_with("001_orders.sql")));
}

#[test]
fn every_format_streams_the_same_findings_as_json() {
    let repo = repository();
    let (_, json, _) = lint(repo.path(), &["--format=json", "db/migrations"]);
    let count = findings(&json).len();
    assert!(count >= 3);
    let (_, sarif, _) = lint(repo.path(), &["--format=sarif", "db/migrations"]);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).expect("sarif");
    assert_eq!(
        sarif["runs"][0]["results"].as_array().map(Vec::len),
        Some(count)
    );
    let (_, gitlab, _) = lint(repo.path(), &["--format=gitlab", "db/migrations"]);
    assert_eq!(gitlab_issues(&gitlab).len(), count);
    let (_, github, _) = lint(repo.path(), &["--format=github", "db/migrations"]);
    assert_eq!(
        github.lines().filter(|line| line.starts_with("::")).count(),
        count
    );
    let (_, markdown, _) = lint(repo.path(), &["--format=markdown", "db/migrations"]);
    assert_eq!(
        markdown
            .lines()
            .filter(|line| line.starts_with("| ") && !line.starts_with("| Severity"))
            .count(),
        count
    );
    // Nothing to report is still a whole document.
    std::fs::write(
        repo.path().join("db/migrations/004_more.sql"),
        "SELECT 1;\n",
    )
    .expect("write");
    for format in ["json", "sarif", "gitlab"] {
        let (code, stdout, stderr) = lint(
            repo.path(),
            &[&format!("--format={format}"), "db/migrations/004_more.sql"],
        );
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout)
            .unwrap_or_else(|error| panic!("{format}: {error}\n{stdout}"));
    }
    let (_, sarif, _) = lint(
        repo.path(),
        &["--format=sarif", "db/migrations/004_more.sql"],
    );
    assert_valid_sarif(&sarif);
}

/// The check above means something: the validator rejects what GitHub rejected before (an absolute path as a
/// relative reference, "a relative reference must not begin with a slash").
#[test]
fn the_validator_rejects_an_absolute_path_as_a_relative_reference() {
    let repo = repository();
    let third = repo.path().join("db/migrations/003_status.sql");
    let (_, sarif, _) = lint(
        repo.path(),
        &["--format=sarif", third.to_str().expect("UTF-8 path")],
    );
    let mut document: serde_json::Value = serde_json::from_str(&sarif).expect("json");
    for result in document["runs"][0]["results"]
        .as_array_mut()
        .expect("results")
    {
        result["locations"][0]["physicalLocation"]["artifactLocation"] =
            serde_json::json!({ "uri": third.to_str().expect("UTF-8 path") });
    }
    let problems = validate(&document.to_string());
    assert!(
        problems
            .iter()
            .any(|result| result["ruleId"] == "SARIF1004" && result["level"] == "error"),
        "{problems:#?}"
    );
}
