//! The end state of a database, in forms two databases can be compared by: the schema as `pg_dump --schema-only`
//! prints it, and a digest of a table's rows; and running a migration the plain way, through psql.
//!
//! The client tools are PostgreSQL's own, of the server's major version: from the directory the test cluster's
//! binaries come from (`TIDEGATE_PG_BIN`, `pg_config --bindir`, the newest `/usr/lib/postgresql/*/bin`), else
//! `/usr/lib/postgresql/<server major>/bin`, else `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tidegate_db::scratch::PgBinaries;
use tokio_postgres::Client;

/// tidegate's own bookkeeping schema: present where tidegate ran, absent where psql did.
pub const TIDEGATE_SCHEMA: &str = "tidegate";

/// Where a PostgreSQL client tool of `server_major` lives.
pub fn client_tool(name: &str, server_major: u32) -> PathBuf {
    if let Ok(binaries) = PgBinaries::find() {
        if binaries.major_version == server_major && binaries.tool(name).is_file() {
            return binaries.tool(name);
        }
    }
    let versioned = PathBuf::from(format!("/usr/lib/postgresql/{server_major}/bin/{name}"));
    if versioned.is_file() {
        return versioned;
    }
    PathBuf::from(name)
}

async fn server_major(url: &str) -> u32 {
    let client = crate::connect(url).await;
    let version: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .unwrap_or_else(|error| panic!("could not read the server version at {url}: {error}"))
        .get(0);
    version
        .parse::<u32>()
        .map(|num| num / 10_000)
        .unwrap_or_else(|_| {
            panic!("the server at {url} reports server_version_num {version:?}, not a number")
        })
}

fn run(mut command: Command, what: &str) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("could not run {what} ({command:?}): {error}"))
}

/// `pg_dump --schema-only --no-owner --no-privileges --exclude-schema=tidegate` of the database at `url`,
/// normalised only where two databases with the same schema legitimately differ. Panics when pg_dump fails.
///
/// What is normalised: the random token of the `\restrict` / `\unrestrict` lines that pg_dump 15.14+ and 17.6+
/// print, and the database's name where a comment line carries it. What is left out by pg_dump itself: sequence
/// positions, statistics, oids and file nodes, so a table rewritten or an index built concurrently dumps the same.
/// What is excluded on purpose: the `tidegate` schema (its history and journal exist only where tidegate ran).
/// Everything tidegate might leave elsewhere (a helper constraint, a trigger, a function) stays in the dump.
pub async fn schema_dump(url: &str) -> String {
    let major = server_major(url).await;
    let mut command = Command::new(client_tool("pg_dump", major));
    command
        .arg("--schema-only")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg(format!("--exclude-schema={TIDEGATE_SCHEMA}"))
        .arg("--dbname")
        .arg(url);
    let output = run(command, "pg_dump");
    assert!(
        output.status.success(),
        "pg_dump of {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let database = url::Url::parse(url)
        .ok()
        .map(|parsed| parsed.path().trim_start_matches('/').to_string())
        .filter(|name| !name.is_empty());
    normalise_dump(
        &String::from_utf8_lossy(&output.stdout),
        database.as_deref(),
    )
}

/// The normalisation of [`schema_dump`], pure.
pub fn normalise_dump(dump: &str, database: Option<&str>) -> String {
    let mut normalised = String::with_capacity(dump.len());
    for line in dump.lines() {
        if line.starts_with("\\restrict ") {
            normalised.push_str("\\restrict <token>");
        } else if line.starts_with("\\unrestrict ") {
            normalised.push_str("\\unrestrict <token>");
        } else if let (true, Some(database)) = (line.starts_with("--"), database) {
            normalised.push_str(&line.replace(database, "<database>"));
        } else {
            normalised.push_str(line);
        }
        normalised.push('\n');
    }
    normalised
}

/// The lines only one of two dumps holds, for an assertion message; empty when they are equal.
pub fn dump_difference(left_name: &str, left: &str, right_name: &str, right: &str) -> String {
    let left_lines: Vec<&str> = left.lines().collect();
    let right_lines: Vec<&str> = right.lines().collect();
    // A longest-common-subsequence walk: the dumps are a few hundred lines, quadratic is fine.
    let (n, m) = (left_lines.len(), right_lines.len());
    let mut common = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if left_lines[i] == right_lines[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && left_lines[i] == right_lines[j] {
            i += 1;
            j += 1;
        } else if j >= m || (i < n && common[i + 1][j] >= common[i][j + 1]) {
            out.push_str(&format!("only in {left_name}: {}\n", left_lines[i]));
            i += 1;
        } else {
            out.push_str(&format!("only in {right_name}: {}\n", right_lines[j]));
            j += 1;
        }
    }
    out
}

/// `count:md5` over every row of `table` (as `row::text`) in `order_by` order: equal for two tables with the same
/// rows. `order_by` must make the order total (the key).
pub async fn data_digest(client: &Client, table: &str, order_by: &str) -> String {
    digest_query(
        client,
        &format!(
            "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY {order_by})), '') FROM {table} t"
        ),
    )
    .await
}

/// [`data_digest`] over some columns only: for a column whose values differ by nature between two runs (a
/// volatile default such as `now()` or `gen_random_uuid()`).
pub async fn data_digest_columns(
    client: &Client,
    table: &str,
    columns: &[&str],
    order_by: &str,
) -> String {
    let row = format!("ROW({})::text", columns.join(", "));
    digest_query(
        client,
        &format!(
            "SELECT count(*), coalesce(md5(string_agg({row}, '|' ORDER BY {order_by})), '') FROM {table}"
        ),
    )
    .await
}

async fn digest_query(client: &Client, sql: &str) -> String {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("could not digest the data ({sql}): {error}"));
    let count: i64 = row.get(0);
    let md5: String = row.get(1);
    format!("{count}:{md5}")
}

/// What to feed psql.
#[derive(Debug, Clone, Copy)]
pub enum PsqlInput<'a> {
    File(&'a Path),
    Sql(&'a str),
}

/// Runs a migration the plain way: `psql -X -v ON_ERROR_STOP=1 -f FILE` against `url`, each statement in its own
/// implicit transaction unless the file says `BEGIN`, stopping at the first error. Returns psql's output; panics
/// only when psql cannot be started.
pub async fn psql_file(url: &str, input: PsqlInput<'_>) -> Output {
    let major = server_major(url).await;
    let written;
    let path = match input {
        PsqlInput::File(path) => path,
        PsqlInput::Sql(sql) => {
            written = tempfile::Builder::new()
                .prefix("tidegate-psql-")
                .suffix(".sql")
                .tempfile()
                .expect("a temporary file for psql's input");
            std::fs::write(written.path(), sql).expect("writing psql's input");
            written.path()
        }
    };
    let mut command = Command::new(client_tool("psql", major));
    command
        .arg("-X")
        .arg("--quiet")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("--dbname")
        .arg(url)
        .arg("-f")
        .arg(path);
    run(command, "psql")
}

/// [`psql_file`] that panics with psql's stderr unless it succeeded.
pub async fn psql_ok(url: &str, input: PsqlInput<'_>) -> Output {
    let output = psql_file(url, input).await;
    assert!(
        output.status.success(),
        "psql {input:?} failed against {url}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrict_tokens_and_the_database_name_in_comments_are_normalised() {
        let dump = "--\n-- PostgreSQL database dump\n--\n\\restrict AbC123\nSET x = 1;\n-- Name: db_a; Type: X\nCREATE TABLE db_a_things (id int);\n\\unrestrict AbC123\n";
        let normalised = normalise_dump(dump, Some("db_a"));
        assert_eq!(
            normalised,
            "--\n-- PostgreSQL database dump\n--\n\\restrict <token>\nSET x = 1;\n-- Name: <database>; Type: X\nCREATE TABLE db_a_things (id int);\n\\unrestrict <token>\n"
        );
    }

    #[test]
    fn the_difference_of_two_dumps_names_the_lines_only_one_holds() {
        assert_eq!(dump_difference("a", "x\ny\n", "b", "x\ny\n"), "");
        assert_eq!(
            dump_difference("a", "x\ny\nz\n", "b", "x\nY\nz\nw\n"),
            "only in a: y\nonly in b: Y\nonly in b: w\n"
        );
    }
}
