//! The GitHub Action (`action.yml` at the repository root). GitHub is not reachable from here, so: its shape
//! is checked as GitHub reads it (a composite action: inputs, outputs, steps with a shell), and its lint step's
//! script is run with bash the way the runner runs it (inputs through the step's `env`, `GITHUB_OUTPUT`, the
//! real `tidegate` on PATH) against a migration directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn action() -> Yaml {
    let text = std::fs::read_to_string(repository_root().join("action.yml")).expect("action.yml");
    YamlLoader::load_from_str(&text)
        .expect("action.yml is YAML")
        .into_iter()
        .next()
        .expect("one document")
}

fn string<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {yaml:?}"))
}

fn steps(action: &Yaml) -> &[Yaml] {
    action["runs"]["steps"].as_vec().expect("runs.steps")
}

fn step<'a>(action: &'a Yaml, id: &str) -> &'a Yaml {
    steps(action)
        .iter()
        .find(|step| step["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("no step with id {id}"))
}

/// The names inside every `${{ inputs.NAME }}` of a text.
fn input_references(text: &str) -> Vec<String> {
    text.match_indices("${{")
        .filter_map(|(start, _)| {
            let inner = &text[start + 3..start + text[start..].find("}}")?];
            inner
                .trim()
                .strip_prefix("inputs.")
                .map(|name| name.trim().to_string())
        })
        .collect()
}

#[test]
fn the_action_has_the_shape_github_reads() {
    let action = action();
    assert!(!string(&action["name"], "name").is_empty());
    assert!(!string(&action["description"], "description").is_empty());
    assert_eq!(string(&action["runs"]["using"], "runs.using"), "composite");

    let inputs = action["inputs"].as_hash().expect("inputs");
    let names: Vec<&str> = inputs.keys().map(|key| string(key, "input name")).collect();
    for expected in ["paths", "fail-on", "pg-version", "config", "sarif-file"] {
        assert!(
            names.contains(&expected),
            "input {expected} missing: {names:?}"
        );
    }
    for (name, input) in inputs {
        assert!(
            !string(&input["description"], "description").is_empty(),
            "{name:?}"
        );
        assert_eq!(
            input["required"].as_bool(),
            Some(false),
            "every input has a default: {name:?}"
        );
        assert!(input["default"].as_str().is_some(), "{name:?}");
    }
    assert_eq!(
        string(&action["outputs"]["sarif-file"]["value"], "output"),
        "${{ steps.lint.outputs.sarif-file }}"
    );

    for step in steps(&action) {
        // A composite action's `run` step must name its shell.
        assert_eq!(string(&step["shell"], "shell"), "bash", "{step:?}");
        let run = string(&step["run"], "run");
        // Inputs reach scripts through `env`, never pasted into the script (where they could inject shell).
        assert!(
            input_references(run).is_empty() && !run.contains("${{"),
            "expression inside a script: {run}"
        );
        if let Some(env) = step["env"].as_hash() {
            for value in env.values() {
                for name in input_references(string(value, "env value")) {
                    assert!(names.contains(&name.as_str()), "undeclared input {name}");
                }
            }
        }
    }

    let install = &steps(&action)[0];
    let script = string(&install["run"], "run");
    assert!(
        script.contains("cargo install --locked --path \"$TIDEGATE_SOURCE/crates/tidegate\""),
        "{script}"
    );
    assert_eq!(
        string(&install["env"]["TIDEGATE_SOURCE"], "env"),
        "${{ github.action_path }}"
    );
    assert!(
        repository_root()
            .join("crates/tidegate/Cargo.toml")
            .is_file(),
        "the path the action installs from"
    );
    assert!(script.contains(">> \"$GITHUB_PATH\""), "{script}");
}

struct StepRun {
    code: i32,
    stdout: String,
    sarif: serde_json::Value,
    outputs: String,
}

/// Runs the lint step's script as the runner does: its `env` with the inputs' values (or defaults) in place of
/// `${{ inputs.NAME }}`, bash, `GITHUB_OUTPUT` a file, the tidegate under test first on PATH.
fn run_lint_step(project: &Path, given: &[(&str, &str)]) -> StepRun {
    let action = action();
    let given: BTreeMap<&str, &str> = given.iter().copied().collect();
    let value_of = |name: &str| -> String {
        given.get(name).map_or_else(
            || string(&action["inputs"][name]["default"], "default").to_string(),
            |value| value.to_string(),
        )
    };
    let lint = step(&action, "lint");
    let outputs = project.join("github-output");
    std::fs::write(&outputs, "").expect("GITHUB_OUTPUT");
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_tidegate"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // GitHub's runner writes a `shell: bash` step to a file and runs `bash --noprofile --norc -eo pipefail FILE`.
    let script = project.join("lint-step.sh");
    std::fs::write(&script, string(&lint["run"], "run")).expect("script");
    let mut command = Command::new("bash");
    command
        .args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script)
        .current_dir(project)
        .env("PATH", path)
        .env("GITHUB_OUTPUT", &outputs);
    for (key, value) in lint["env"].as_hash().expect("env") {
        let value = string(value, "env value");
        let references = input_references(value);
        assert_eq!(references.len(), 1, "one input per variable: {value}");
        assert_eq!(value, format!("${{{{ inputs.{} }}}}", references[0]));
        command.env(string(key, "env name"), value_of(&references[0]));
    }
    let output = command.output().expect("bash");
    let sarif_path = project.join(value_of("sarif-file"));
    let sarif = std::fs::read_to_string(&sarif_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null);
    StepRun {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        sarif,
        outputs: std::fs::read_to_string(&outputs).expect("outputs"),
    }
}

fn project_with(migrations: &[(&str, &str)]) -> tempfile::TempDir {
    let project = tempfile::tempdir().expect("temp dir");
    let dir = project.path().join("db/migrations");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, sql) in migrations {
        std::fs::write(dir.join(name), sql).expect("write migration");
    }
    project
}

const CREATE: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, status text);\n";

#[test]
fn the_lint_step_annotates_fails_and_still_writes_the_sarif_report() {
    let project = project_with(&[
        ("001_create.sql", CREATE),
        (
            "002_index.sql",
            "CREATE INDEX orders_status ON orders (status);\n",
        ),
    ]);
    let run = run_lint_step(project.path(), &[("paths", "db/migrations")]);
    assert_eq!(
        run.code, 1,
        "an error finding fails the step: {}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|line| line.starts_with("::error ")
            && line.contains("file=db/migrations/002_index.sql")),
        "{}",
        run.stdout
    );
    assert_eq!(run.sarif["version"], "2.1.0");
    let results = run.sarif["runs"][0]["results"].as_array().expect("results");
    assert!(
        results
            .iter()
            .any(|result| result["ruleId"] == "create-index-non-concurrently"),
        "{:#}",
        run.sarif
    );
    assert_eq!(run.outputs.trim(), "sarif-file=tidegate.sarif");
}

#[test]
fn the_lint_step_passes_a_safe_migration_and_honours_its_inputs() {
    let project = project_with(&[
        ("001_create.sql", CREATE),
        (
            "002_index.sql",
            "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY orders_status ON orders (status);\n\
             ALTER TABLE orders ADD COLUMN shipped_at timestamp;\n",
        ),
    ]);
    let run = run_lint_step(
        project.path(),
        &[
            ("paths", "db/migrations\n"),
            ("sarif-file", "out.sarif"),
            ("pg-version", "16"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(!run.stdout.contains("::error"), "{}", run.stdout);
    assert!(run.stdout.contains("prefer-timestamptz"), "{}", run.stdout);
    assert_eq!(run.sarif["version"], "2.1.0");
    assert_eq!(run.outputs.trim(), "sarif-file=out.sarif");

    // The same migration fails once info fails the step (`timestamp` is a prefer-timestamptz info).
    let strict = run_lint_step(
        project.path(),
        &[("paths", "db/migrations"), ("fail-on", "info")],
    );
    assert_eq!(strict.code, 1, "{}", strict.stdout);

    // A usage error is the step's failure, and no report is announced.
    let broken = run_lint_step(
        project.path(),
        &[("paths", "db/migrations"), ("pg-version", "9")],
    );
    assert_eq!(broken.code, 2);
    assert!(broken.outputs.is_empty(), "{}", broken.outputs);
}
