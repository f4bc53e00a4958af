//! `tidegate scratch` as a user runs it: the real binary, real servers, as root and as a normal user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tidegate_db::scratch::process_alive;

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

fn tidegate(args: &[&str]) -> Output {
    Command::new(TIDEGATE)
        .args(args)
        .output()
        .expect("the tidegate binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn last_line(output: &Output) -> String {
    text(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

fn postmaster_pid(dir: &Path) -> i32 {
    let pidfile = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .expect("the server wrote its pid file");
    pidfile.lines().next().unwrap().trim().parse().unwrap()
}

/// A directory that does not exist yet, under a fresh temp dir (reachable by the server user when we are root).
fn scratch_dir(parent: &tempfile::TempDir) -> PathBuf {
    parent.path().join("cluster")
}

fn open_temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tidegate-cli-test-")
        .tempdir()
        .unwrap();
    // World-traversable, as /tmp itself is, so the unprivileged server user can enter it when we run as root.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

fn assert_answers_select_1(url: &str) {
    // The acceptance check is `psql URL -c 'select 1'`; use psql when the machine has it.
    if let Ok(output) = Command::new("psql")
        .args([url, "-XAtc", "select 1"])
        .output()
    {
        assert!(
            output.status.success(),
            "psql failed: {}",
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout).trim(), "1");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = tidegate_testkit::connect(url).await;
        let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
    });
}

#[test]
fn start_connect_stop_leaves_nothing_running() {
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    let dir_arg = dir.to_str().unwrap();

    let started = tidegate(&["scratch", "start", "--dir", dir_arg]);
    assert!(
        started.status.success(),
        "start failed: {}",
        text(&started.stderr)
    );
    let url = last_line(&started);
    assert!(
        url.starts_with("postgresql://postgres@127.0.0.1:"),
        "the last stdout line is the URL, got {url:?}"
    );
    assert!(!url.contains("localhost") && !url.contains("0.0.0.0"));
    let pid = postmaster_pid(&dir);
    assert!(dir.join("run").read_dir().unwrap().any(|entry| {
        entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".s.PGSQL.")
    }));

    assert_answers_select_1(&url);
    let status = tidegate(&["scratch", "status", "--dir", dir_arg]);
    assert!(status.status.success());
    assert_eq!(last_line(&status), url);

    let stopped = tidegate(&["scratch", "stop", "--dir", dir_arg]);
    assert!(
        stopped.status.success(),
        "stop failed: {}",
        text(&stopped.stderr)
    );
    assert!(!dir.exists(), "stop left {} behind", dir.display());
    assert!(
        !process_alive(pid),
        "the postmaster {pid} still runs after stop"
    );
}

#[test]
fn runs_as_a_normal_user_too() {
    if !nix::unistd::Uid::effective().is_root() {
        // We already are a normal user: the test above covered this path, and root's needs root.
        eprintln!("running as a normal user; start_connect_stop_leaves_nothing_running covers it");
        return;
    }
    // As root, run the binary as the unprivileged `postgres` user: the normal-user path, start to stop.
    let parent = open_temp_dir();
    let binary = parent.path().join("tidegate");
    std::fs::copy(TIDEGATE, &binary).unwrap();
    let dir = scratch_dir(&parent);
    let postgres_user = nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("the postgres user exists");
    std::os::unix::fs::chown(parent.path(), Some(postgres_user.uid.as_raw()), None).unwrap();
    let as_user = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&binary)
            .args(args)
            .env("HOME", parent.path())
            .output()
            .unwrap()
    };
    let started = as_user(&["scratch", "start", "--dir", dir.to_str().unwrap()]);
    assert!(
        started.status.success(),
        "start as postgres failed: {}",
        text(&started.stderr)
    );
    assert!(
        !text(&started.stderr).contains("running as root"),
        "a normal user does not switch users"
    );
    let url = last_line(&started);
    let pid = postmaster_pid(&dir);
    assert_answers_select_1(&url);
    let stopped = as_user(&["scratch", "stop", "--dir", dir.to_str().unwrap()]);
    assert!(
        stopped.status.success(),
        "stop as postgres failed: {}",
        text(&stopped.stderr)
    );
    assert!(!dir.exists());
    assert!(!process_alive(pid));
}

#[test]
fn root_says_which_user_runs_the_server() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: nothing to switch");
        return;
    }
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    let started = tidegate(&["scratch", "start", "--dir", dir.to_str().unwrap()]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let stderr = text(&started.stderr);
    assert!(
        stderr.contains("running as root") && stderr.contains("'postgres'"),
        "{stderr}"
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir.join("data")).unwrap());
    assert_ne!(
        owner, 0,
        "the data directory must belong to the server user, not root"
    );
    assert!(
        tidegate(&["scratch", "stop", "--dir", dir.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn a_second_start_in_the_same_directory_is_refused() {
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    let dir_arg = dir.to_str().unwrap();
    let first = tidegate(&["scratch", "start", "--dir", dir_arg]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let url = last_line(&first);

    let second = tidegate(&["scratch", "start", "--dir", dir_arg]);
    assert_eq!(second.status.code(), Some(2));
    let message = text(&second.stderr);
    assert!(
        message.contains("already runs") && message.contains(&url),
        "{message}"
    );
    assert!(
        message.contains("tidegate scratch stop --dir"),
        "the error says what to do: {message}"
    );
    assert!(second.stdout.is_empty(), "no URL is printed on failure");
    assert_answers_select_1(&url);

    assert!(tidegate(&["scratch", "stop", "--dir", dir_arg])
        .status
        .success());
}

#[test]
fn a_port_in_use_is_refused_and_leaves_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    let output = tidegate(&[
        "scratch",
        "start",
        "--dir",
        dir.to_str().unwrap(),
        "--port",
        &port,
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    assert!(
        message.contains(&format!("port {port}")) && message.contains("in use"),
        "{message}"
    );
    assert!(
        message.contains("--port"),
        "the error says what to do: {message}"
    );
    assert!(
        !dir.exists(),
        "a refused start left {} behind",
        dir.display()
    );
}

#[test]
fn a_chosen_free_port_is_used() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    let started = tidegate(&[
        "scratch",
        "start",
        "--dir",
        dir.to_str().unwrap(),
        "--port",
        &port.to_string(),
    ]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    assert_eq!(
        last_line(&started),
        format!("postgresql://postgres@127.0.0.1:{port}/postgres")
    );
    assert!(
        tidegate(&["scratch", "stop", "--dir", dir.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn stop_and_status_when_none_runs() {
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    let stopped = tidegate(&["scratch", "stop", "--dir", dir.to_str().unwrap()]);
    assert!(stopped.status.success(), "stopping nothing is not an error");
    assert!(
        text(&stopped.stderr).contains("no scratch server runs in"),
        "{}",
        text(&stopped.stderr)
    );

    let status = tidegate(&["scratch", "status", "--dir", dir.to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(1));
    assert!(status.stdout.is_empty());
    assert!(text(&status.stderr).contains("no scratch server runs in"));
}

#[test]
fn a_directory_with_foreign_files_is_left_alone() {
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let output = tidegate(&["scratch", "start", "--dir", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("not a tidegate scratch server"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn no_server_binaries_gives_a_message_that_says_what_to_do() {
    let empty = open_temp_dir();
    let parent = open_temp_dir();
    let dir = scratch_dir(&parent);
    let output = Command::new(TIDEGATE)
        .args(["scratch", "start", "--dir", dir.to_str().unwrap()])
        .env("TIDEGATE_PG_BIN", empty.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    assert!(
        message.contains("does not hold the PostgreSQL server binaries"),
        "{message}"
    );
    assert!(
        message.contains("missing: initdb, pg_ctl, postgres"),
        "{message}"
    );
    assert!(!dir.exists());
}

#[test]
fn a_server_that_fails_to_start_shows_its_log() {
    // A bin directory whose `postgres` reports a version but cannot run a server: initdb works, the server dies.
    let parent = open_temp_dir();
    let real =
        tidegate_db::scratch::PgBinaries::find().expect("the machine has PostgreSQL binaries");
    let fake_bin = parent.path().join("bin");
    std::fs::create_dir(&fake_bin).unwrap();
    // Copies, not symlinks: pg_ctl and initdb look for `postgres` beside their own resolved path.
    for tool in ["initdb", "pg_ctl"] {
        std::fs::copy(real.tool(tool), fake_bin.join(tool)).unwrap();
    }
    let postgres = fake_bin.join("postgres");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = --version ] || [ \"$1\" = -V ]; then exec {} \"$@\"; fi\n\
         case \" $* \" in *\" --single \"*|*\" --boot \"*|*\" -C \"*) exec {} \"$@\";; esac\n\
         echo 'FATAL:  tidegate test: this server refuses to start' >&2\nexit 1\n",
        real.tool("postgres").display(),
        real.tool("postgres").display()
    );
    std::fs::write(&postgres, script).unwrap();
    std::fs::set_permissions(
        &postgres,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let dir = scratch_dir(&parent);
    let output = Command::new(TIDEGATE)
        .args(["scratch", "start", "--dir", dir.to_str().unwrap()])
        .env("TIDEGATE_PG_BIN", &fake_bin)
        .output()
        .unwrap();
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("pg_ctl start"), "{message}");
    assert!(
        message.contains("this server refuses to start"),
        "the server's own log lines are shown: {message}"
    );
    assert!(!dir.exists(), "a failed start leaves nothing behind");
}
