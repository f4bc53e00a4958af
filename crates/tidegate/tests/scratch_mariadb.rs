//! `tidegate scratch start --engine mariadb` as a user runs it: the real binary, a real MariaDB from the machine's
//! binaries, checked with the `mariadb` client that ships with them.

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

fn open_temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tidegate-mariadb-test-")
        .tempdir()
        .unwrap();
    // World-traversable, as /tmp itself is, so the `mysql` user can enter it when we run as root.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

fn start(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["scratch", "start", "--engine", "mariadb", "--dir"];
    let dir = dir.to_str().unwrap();
    args.push(dir);
    args.extend_from_slice(extra);
    tidegate(&args)
}

fn port_of(url: &str) -> String {
    // mysql://root@127.0.0.1:PORT/scratch
    let after_host = url.rsplit_once(':').unwrap().1;
    after_host.split('/').next().unwrap().to_string()
}

/// `mariadb -h 127.0.0.1 -P PORT -u root scratch -e SQL`, as a user would check the URL.
fn mariadb(url: &str, sql: &str) -> String {
    let output = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port_of(url),
            "-u",
            "root",
            "-N",
            "-B",
            "scratch",
            "-e",
            sql,
        ])
        .output()
        .expect("the mariadb client is installed beside the server (scripts/setup.sh)");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_string()
}

fn server_pid(dir: &Path) -> i32 {
    std::fs::read_to_string(dir.join("mariadbd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn cluster(parent: &tempfile::TempDir) -> PathBuf {
    parent.path().join("mariadb")
}

#[test]
fn start_connect_stop_leaves_nothing_running() {
    let parent = open_temp_dir();
    let dir = cluster(&parent);
    let started = start(&dir, &[]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let url = text(&started.stdout).lines().last().unwrap().to_string();
    assert!(
        url.starts_with("mysql://root@127.0.0.1:") && url.ends_with("/scratch"),
        "{url}"
    );
    assert_eq!(mariadb(&url, "select 1"), "1");
    assert!(mariadb(&url, "select version()").contains("MariaDB"));
    // Loopback only.
    assert_eq!(mariadb(&url, "select @@bind_address"), "127.0.0.1");
    let status = tidegate(&["scratch", "status", "--dir", dir.to_str().unwrap()]);
    assert!(status.status.success());
    assert_eq!(text(&status.stdout).trim(), url);
    let pid = server_pid(&dir);
    let stopped = tidegate(&["scratch", "stop", "--dir", dir.to_str().unwrap()]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert!(!process_alive(pid), "mariadbd {pid} still runs");
    assert!(!dir.exists(), "the directory is removed");
}

#[test]
fn a_second_start_a_taken_port_and_foreign_files_are_refused() {
    let parent = open_temp_dir();
    let dir = cluster(&parent);
    let started = start(&dir, &[]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let url = text(&started.stdout).lines().last().unwrap().to_string();
    let again = start(&dir, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already runs"),
        "{}",
        text(&again.stderr)
    );
    // The port of the running server is taken for another directory; nothing is left behind there.
    let other = parent.path().join("other");
    let taken = start(&other, &["--port", &port_of(&url)]);
    assert_eq!(taken.status.code(), Some(2), "{}", text(&taken.stderr));
    assert!(text(&taken.stderr).contains("already in use"));
    assert!(!other.exists());
    // A directory holding someone else's files is not touched.
    let foreign = parent.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let refused = start(&foreign, &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("not a tidegate scratch server"));
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(
        tidegate(&["scratch", "stop", "--dir", dir.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn a_killed_server_is_reported_then_cleaned_up() {
    let parent = open_temp_dir();
    let dir = cluster(&parent);
    let started = start(&dir, &[]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let pid = server_pid(&dir);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while process_alive(pid) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = tidegate(&["scratch", "status", "--dir", dir.to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(1));
    assert!(
        text(&status.stderr).contains("not running"),
        "{}",
        text(&status.stderr)
    );
    // Starting again in the same directory starts afresh.
    let restarted = start(&dir, &[]);
    assert!(restarted.status.success(), "{}", text(&restarted.stderr));
    let url = text(&restarted.stdout).lines().last().unwrap().to_string();
    assert_eq!(mariadb(&url, "select 1"), "1");
    assert!(
        tidegate(&["scratch", "stop", "--dir", dir.to_str().unwrap()])
            .status
            .success()
    );
    assert!(!dir.exists());
}
