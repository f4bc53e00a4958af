//! `tidegate apply` on MySQL/MariaDB from the command line, against a private throwaway MariaDB (the test kit's):
//! the dry-run plan shows the statement as it will run, apply applies and a second run is a no-op, a bad URL and a
//! sub-second `--lock-timeout` are usage errors that never print the password.

use std::process::{Command, Output};

use tidegate_db::driver::Driver;
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

fn tidegate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    command.env_remove("DATABASE_URL").env("NO_COLOR", "1");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn apply(args: &[&str]) -> Output {
    tidegate().arg("apply").args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_plans_applies_and_reruns_as_a_no_op() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = MySqlConfig::from_url(&url).unwrap().open().await.unwrap();
    s.batch_execute(
        "create table items (id bigint primary key, n int not null default 0) engine=innodb;
         insert into items (id) select seq from seq_1_to_1000",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_add.sql"),
        "ALTER TABLE items ADD COLUMN m INT;\nUPDATE items SET m = n + 1 WHERE m IS NULL;\n",
    )
    .unwrap();
    let migrations = dir.path().to_str().unwrap();

    let plan = apply(&["--db", &url, migrations, "--dry-run"]);
    let stdout = text(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    assert!(stdout.contains("on MariaDB 10."), "{stdout}");
    assert!(
        stdout.contains("ddl: ALTER TABLE items ADD COLUMN m INT, ALGORITHM=INSTANT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backfill: backfill of items: SET m = n + 1 WHERE m IS NULL"),
        "{stdout}"
    );

    let run = apply(&["--db", &url, migrations, "--lock-timeout", "1s"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ALGORITHM=INSTANT added from the online-DDL facts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("applied 1 migration(s): 0001_add.sql"),
        "{stderr}"
    );
    let again = apply(&["--db", &url, migrations]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("nothing to apply"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn bad_urls_and_sub_second_lock_timeouts_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1.sql"),
        "ALTER TABLE t ADD COLUMN x INT;\n",
    )
    .unwrap();
    let migrations = dir.path().to_str().unwrap();
    let bad = apply(&[
        "--db",
        "mysql://app:s3cret@127.0.0.1:notaport/shop",
        migrations,
    ]);
    let stderr = text(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not parse") && !stderr.contains("s3cret"),
        "{stderr}"
    );
    // Refused before connecting: the port is never tried.
    let sub_second = apply(&[
        "--db",
        "mariadb://app:s3cret@127.0.0.1:1/shop",
        migrations,
        "--lock-timeout",
        "500ms",
    ]);
    let stderr = text(&sub_second.stderr);
    assert_eq!(sub_second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("whole seconds") && !stderr.contains("s3cret"),
        "{stderr}"
    );
}
