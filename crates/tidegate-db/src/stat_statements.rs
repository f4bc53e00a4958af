//! The source's `pg_stat_statements`, read for a rehearsal's replay: whether the extension is installed (and in
//! which schema), its most-called statements in the current database, and the interval their counters cover.
//! Reads only, inside the read-only transaction the caller opened.

use crate::connect::DbError;
use crate::driver::{Session, SessionExt};

/// The schema pg_stat_statements is installed in, if it is.
const EXTENSION_SCHEMA: &str = "\
SELECT n.nspname::text AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_stat_statements'";

/// One statement of `pg_stat_statements`, as normalised there (constants as `$n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatStatement {
    /// `None` when the reading role may not see its text (`<insufficient privilege>`).
    pub query: Option<String>,
    pub calls: u64,
}

/// What was read.
#[derive(Debug, Clone, PartialEq)]
pub struct StatStatements {
    /// By calls, most first.
    pub statements: Vec<StatStatement>,
    /// Seconds since the counters started: `pg_stat_statements_info.stats_reset`, else (before PostgreSQL 14) the
    /// server's start.
    pub interval_seconds: f64,
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The schema of the installed extension, `None` when it is not installed in this database.
pub async fn extension_schema(client: &dyn Session) -> Result<Option<String>, DbError> {
    match client.query_opt(EXTENSION_SCHEMA, &[]).await? {
        Some(row) => Ok(Some(row.get("schema")?)),
        None => Ok(None),
    }
}

/// The `limit` most-called statements of this database (top-level only, from PostgreSQL 14), and the interval
/// their counters cover. An extension installed but not in `shared_preload_libraries` is the server's error
/// (SQLSTATE 55000), and aborts the caller's transaction.
pub async fn top_statements(
    client: &dyn Session,
    schema: &str,
    server_major: u32,
    limit: i64,
) -> Result<StatStatements, DbError> {
    let schema = quote_ident(schema);
    let toplevel = if server_major >= 14 {
        "AND s.toplevel"
    } else {
        ""
    };
    let sql = format!(
        "SELECT s.query AS query, s.calls::int8 AS calls
           FROM {schema}.pg_stat_statements s
          WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) {toplevel}
          ORDER BY s.calls DESC, s.queryid LIMIT $1"
    );
    let rows = client.rows(sql.as_str(), &[limit.into()]).await?;
    let mut statements = Vec::with_capacity(rows.len());
    for row in rows {
        let query: Option<String> = row.get("query")?;
        let calls: i64 = row.get("calls")?;
        statements.push(StatStatement {
            query: query.filter(|q| q != "<insufficient privilege>"),
            calls: u64::try_from(calls).unwrap_or(0),
        });
    }
    let since = if server_major >= 14 {
        format!("(SELECT coalesce(i.stats_reset, pg_postmaster_start_time()) FROM {schema}.pg_stat_statements_info i)")
    } else {
        "pg_postmaster_start_time()".to_string()
    };
    let interval = format!("SELECT extract(epoch FROM now() - {since})::float8 AS seconds");
    let row = client.query_one(interval.as_str(), &[]).await?;
    let interval_seconds: f64 = row.get("seconds")?;
    Ok(StatStatements {
        statements,
        interval_seconds,
    })
}
