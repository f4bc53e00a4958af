//! The pre-commit hook (`.pre-commit-hooks.yaml` at the repository root) with the real `pre-commit` (PyPI;
//! scripts/setup.sh installs it) in a temporary git repository: pre-commit clones this repository at HEAD,
//! builds the hook with `cargo install --path .` and runs it on the staged migrations of each commit. So it
//! tests the hook as committed: uncommitted changes to the hook files are not in the clone.
//!
//! The build reuses this workspace's target directory (`CARGO_TARGET_DIR`): crates.io dependencies come from
//! the release build scripts/setup.sh made, and only the workspace's own crates compile again (the clone has
//! new files).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The target directory this test binary was built into (`…/target/debug/tidegate` → `…/target`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tidegate"))
        .ancestors()
        .nth(2)
        .expect("target dir")
        .to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    output
}

fn git(dir: &Path, args: &[&str]) -> Output {
    run(Command::new("git").args(args).current_dir(dir))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_hook_fails_a_commit_of_a_dangerous_migration_and_passes_a_safe_one() {
    let version = Command::new("pre-commit").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|output| output.status.success()),
        "pre-commit is not installed: `pip install pre-commit` (scripts/setup.sh does): {version:?}"
    );
    let root = repository_root();
    let head = git(&root, &["rev-parse", "HEAD"]);
    assert!(head.status.success(), "{}", text(&head));
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();

    let scratch = tempfile::tempdir().expect("temp dir");
    let project = scratch.path().join("project");
    std::fs::create_dir_all(project.join("migrations")).expect("mkdir");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["config", "user.email", "hook-test@example.invalid"],
        &["config", "user.name", "hook test"],
        &["config", "commit.gpgsign", "false"],
    ] {
        let output = git(&project, args);
        assert!(output.status.success(), "{}", text(&output));
    }
    std::fs::write(
        project.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {head}\n    hooks:\n      - id: tidegate-lint\n",
            root.display()
        ),
    )
    .expect("config");
    // pre-commit's own cache in the scratch directory: the hook is built from this HEAD, not a cached build.
    let pre_commit_home = scratch.path().join("pre-commit-home");
    let with_env = |command: &mut Command| -> Output {
        run(command
            .current_dir(&project)
            .env("PRE_COMMIT_HOME", &pre_commit_home)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE"))
    };
    let installed = with_env(Command::new("pre-commit").arg("install"));
    assert!(installed.status.success(), "{}", text(&installed));

    // The table exists from an earlier migration, so a plain CREATE INDEX blocks its writes: an error.
    std::fs::write(
        project.join("migrations/001_create_orders.sql"),
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text);\n",
    )
    .expect("001");
    let setup = with_env(Command::new("git").args(["add", "-A"]));
    assert!(setup.status.success(), "{}", text(&setup));
    let first = with_env(Command::new("git").args(["commit", "-q", "-m", "create orders"]));
    assert!(
        first.status.success(),
        "a safe migration commits: {}",
        text(&first)
    );

    std::fs::write(
        project.join("migrations/002_index_status.sql"),
        "CREATE INDEX orders_status ON orders (status);\n",
    )
    .expect("002");
    with_env(Command::new("git").args(["add", "-A"]));
    let refused = with_env(Command::new("git").args(["commit", "-q", "-m", "index status"]));
    let output = text(&refused);
    assert!(
        !refused.status.success(),
        "the commit went through: {output}"
    );
    assert!(output.contains("tidegate lint"), "{output}");
    assert!(output.contains("Failed"), "{output}");
    assert!(
        output.contains("error[create-index-non-concurrently]"),
        "{output}"
    );
    assert!(output.contains("002_index_status.sql"), "{output}");
    let log = git(&project, &["rev-list", "--count", "HEAD"]);
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "1");

    std::fs::write(
        project.join("migrations/002_index_status.sql"),
        "CREATE INDEX CONCURRENTLY orders_status ON orders (status);\n",
    )
    .expect("002");
    with_env(Command::new("git").args(["add", "-A"]));
    let accepted = with_env(Command::new("git").args(["commit", "-q", "-m", "index status"]));
    let output = text(&accepted);
    assert!(accepted.status.success(), "{output}");
    assert!(output.contains("tidegate lint"), "{output}");
    assert!(output.contains("Passed"), "{output}");
    let log = git(&project, &["rev-list", "--count", "HEAD"]);
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "2");
}
