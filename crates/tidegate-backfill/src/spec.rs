//! The backfill spec (table, operation, WHERE, key) and its validation with the parser of the target's
//! grammar: PostgreSQL's own (`pg_query`) for PostgreSQL, sqlparser's MySQL dialect
//! (`tidegate_sql::mysql::fragment`) for MySQL/MariaDB ([`validate_set_for`], [`validate_where_for`]).
//!
//! SET must parse as exactly an assignment list (`UPDATE x SET <set>` is one UpdateStmt with no WHERE, FROM,
//! RETURNING or WITH) and WHERE as exactly an expression (`SELECT 1 WHERE <pred>` is one plain SelectStmt), so
//! nothing can smuggle in a second statement or cut the key-range bound off the batch. Pure: no database.

use pg_query::NodeEnum;
use tidegate_db::driver::Family;

/// What the user asked for: change (or delete) the rows of one table that match a predicate, in key order.
///
/// Stored as JSON in `tidegate.runs.spec`, and that text is the run's identity. An update keeps the form it had
/// before deletes existed (`{"table", "set", "where", "key"}`), so runs recorded by older builds still resume; a
/// delete has `"operation": "delete"` and no `"set"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "StoredSpec", into = "StoredSpec")]
pub struct BackfillSpec {
    /// The table, as the user wrote it (`orders`, `shop.orders`, `"Odd Name"`).
    pub table: String,
    /// What each batch does to the rows it selects.
    pub operation: Operation,
    /// A predicate on the table's own columns, e.g. `order_status_v2 IS NULL`.
    pub predicate: Option<String>,
    /// Key columns naming a unique NOT NULL index (`--key a,b`); `None` uses the primary key.
    pub key: Option<Vec<String>>,
}

/// What a batch does to the rows of its key range that match the predicate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Operation {
    /// `UPDATE … SET <set>`: the assignment list, e.g. `order_status_v2 = order_status`.
    Update { set: String },
    /// `DELETE FROM …`.
    Delete,
}

impl Operation {
    /// The run's kind in `tidegate.runs` (and `tidegate runs`): `backfill` for updates, as recorded since the
    /// first schema version, `delete` for deletes.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Update { .. } => "backfill",
            Operation::Delete => "delete",
        }
    }

    /// The past participle progress lines use: `updated`, `deleted`.
    pub fn done_verb(&self) -> &'static str {
        match self {
            Operation::Update { .. } => "updated",
            Operation::Delete => "deleted",
        }
    }

    /// The assignment list of an update.
    pub fn set(&self) -> Option<&str> {
        match self {
            Operation::Update { set } => Some(set),
            Operation::Delete => None,
        }
    }
}

impl BackfillSpec {
    /// An update of `table` by `set`.
    pub fn update(table: impl Into<String>, set: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            operation: Operation::Update { set: set.into() },
            predicate: None,
            key: None,
        }
    }

    /// A delete of the rows of `table` matching `predicate` (every row when `None`).
    pub fn delete(table: impl Into<String>, predicate: Option<String>) -> Self {
        Self {
            table: table.into(),
            operation: Operation::Delete,
            predicate,
            key: None,
        }
    }

    /// The statement the run stands for, as one line (`UPDATE t SET … WHERE …`, `DELETE FROM t WHERE …`).
    pub fn describe(&self) -> String {
        let predicate = self
            .predicate
            .as_deref()
            .map(|p| format!(" WHERE {p}"))
            .unwrap_or_default();
        match &self.operation {
            Operation::Update { set } => format!("UPDATE {} SET {set}{predicate}", self.table),
            Operation::Delete => format!("DELETE FROM {}{predicate}", self.table),
        }
    }
}

/// The stored JSON form of a spec (see [`BackfillSpec`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSpec {
    table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation: Option<StoredOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set: Option<String>,
    #[serde(rename = "where")]
    predicate: Option<String>,
    key: Option<Vec<String>>,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum StoredOperation {
    Update,
    Delete,
}

impl TryFrom<StoredSpec> for BackfillSpec {
    type Error = String;

    fn try_from(stored: StoredSpec) -> Result<Self, String> {
        let operation = match (stored.operation, stored.set) {
            (None | Some(StoredOperation::Update), Some(set)) => Operation::Update { set },
            (None | Some(StoredOperation::Update), None) => {
                return Err("an update spec without \"set\"".into())
            }
            (Some(StoredOperation::Delete), None) => Operation::Delete,
            (Some(StoredOperation::Delete), Some(_)) => {
                return Err("a delete spec with \"set\"".into())
            }
        };
        Ok(Self {
            table: stored.table,
            operation,
            predicate: stored.predicate,
            key: stored.key,
        })
    }
}

impl From<BackfillSpec> for StoredSpec {
    fn from(spec: BackfillSpec) -> Self {
        let (operation, set) = match spec.operation {
            // No "operation" field: the form every update run has been stored in.
            Operation::Update { set } => (None, Some(set)),
            Operation::Delete => (Some(StoredOperation::Delete), None),
        };
        Self {
            table: spec.table,
            operation,
            set,
            predicate: spec.predicate,
            key: spec.key,
        }
    }
}

/// Bad input, found before any row changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("--set {set:?} does not parse as an assignment list: {reason}; write it like `col = expr, other = expr`")]
    BadSet { set: String, reason: String },
    #[error("--where {predicate:?} does not parse as one expression: {reason}; write a predicate like `col IS NULL`")]
    BadWhere { predicate: String, reason: String },
    #[error("--key {key:?} is not a comma-separated list of column names")]
    BadKey { key: String },
    #[error("--table must not be empty")]
    EmptyTable,
}

/// The columns a SET list assigns, in order, read with the grammar of `family`'s servers.
pub fn validate_set_for(family: Family, set: &str) -> Result<Vec<String>, SpecError> {
    match family {
        Family::Postgres => validate_set(set),
        Family::MySql => tidegate_sql::mysql::fragment::assignment_list(set).map_err(|reason| {
            SpecError::BadSet {
                set: set.to_string(),
                reason,
            }
        }),
    }
}

/// Checks that a WHERE text is exactly one expression in the grammar of `family`'s servers.
pub fn validate_where_for(family: Family, predicate: &str) -> Result<(), SpecError> {
    match family {
        Family::Postgres => validate_where(predicate),
        Family::MySql => tidegate_sql::mysql::fragment::predicate(predicate).map_err(|reason| {
            SpecError::BadWhere {
                predicate: predicate.to_string(),
                reason,
            }
        }),
    }
}

/// The columns a SET list assigns, in order (the first name of each target, e.g. `a` for `a[1] = x`), read
/// with PostgreSQL's grammar.
pub fn validate_set(set: &str) -> Result<Vec<String>, SpecError> {
    let bad = |reason: String| SpecError::BadSet {
        set: set.to_string(),
        reason,
    };
    if set.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    // The newlines end any trailing `--` comment inside the user's text, as in the batch statement itself.
    let parsed = pg_query::parse(&format!("UPDATE x SET\n{set}\n"), 0)
        .map_err(|e| bad(parse_message(&e)))?;
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err(bad(format!(
            "it makes {} statements, not one assignment list",
            stmts.len()
        )));
    }
    let node = stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref());
    let Some(NodeEnum::UpdateStmt(update)) = node else {
        return Err(bad("it is not an assignment list".into()));
    };
    if update.where_clause.is_some() {
        return Err(bad("it contains a WHERE clause; use --where".into()));
    }
    if !update.from_clause.is_empty() {
        return Err(bad(
            "it contains FROM; a backfill updates one table from its own columns".into(),
        ));
    }
    if update.returning_clause.is_some() {
        return Err(bad("it contains RETURNING".into()));
    }
    if update.with_clause.is_some() {
        return Err(bad("it contains WITH".into()));
    }
    let mut columns = Vec::new();
    for target in &update.target_list {
        match target.node.as_ref() {
            Some(NodeEnum::ResTarget(res)) if !res.name.is_empty() => {
                columns.push(res.name.clone())
            }
            _ => return Err(bad("an assignment has no target column".into())),
        }
    }
    if columns.is_empty() {
        return Err(bad("it assigns nothing".into()));
    }
    // Followed by a WHERE, as in the batch statement, it must still be one UPDATE: this rejects a `;` that
    // would end the statement before the key-range bound.
    let bounded =
        pg_query::parse(&format!("UPDATE x SET\n{set}\nWHERE false"), 0).map_err(|_| {
            bad(
                "it does not end where an assignment list ends (a ';' or an unclosed construct?)"
                    .into(),
            )
        })?;
    if bounded.protobuf.stmts.len() != 1 {
        return Err(bad("it does not end where an assignment list ends".into()));
    }
    Ok(columns)
}

/// Checks that a WHERE text is exactly one expression of PostgreSQL's grammar.
pub fn validate_where(predicate: &str) -> Result<(), SpecError> {
    let bad = |reason: String| SpecError::BadWhere {
        predicate: predicate.to_string(),
        reason,
    };
    if predicate.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    let parsed = pg_query::parse(&format!("SELECT 1 WHERE\n{predicate}\n"), 0)
        .map_err(|e| bad(parse_message(&e)))?;
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err(bad(format!(
            "it makes {} statements, not one expression",
            stmts.len()
        )));
    }
    let node = stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref());
    let Some(NodeEnum::SelectStmt(select)) = node else {
        return Err(bad("it is not an expression".into()));
    };
    let plain = select.where_clause.is_some()
        && select.from_clause.is_empty()
        && select.group_clause.is_empty()
        && select.having_clause.is_none()
        && select.sort_clause.is_empty()
        && select.limit_count.is_none()
        && select.limit_offset.is_none()
        && select.locking_clause.is_empty()
        && select.with_clause.is_none()
        && select.larg.is_none()
        && select.target_list.len() == 1;
    if !plain {
        return Err(bad("it carries clauses beyond one expression".into()));
    }
    Ok(())
}

/// Parses `--key a,b` into column names in the grammar of `family`'s servers: PostgreSQL's (see [`parse_key`]) or
/// MySQL's (plain or backtick-quoted names, kept as written; matched against the catalog without regard to case).
pub fn parse_key_for(family: Family, key: &str) -> Result<Vec<String>, SpecError> {
    match family {
        Family::Postgres => parse_key(key),
        Family::MySql => {
            tidegate_sql::mysql::fragment::column_list(key).map_err(|_| SpecError::BadKey {
                key: key.to_string(),
            })
        }
    }
}

/// Parses `--key a,b` into column names (quoted names keep their case; unquoted fold to lower case, as in SQL).
pub fn parse_key(key: &str) -> Result<Vec<String>, SpecError> {
    let bad = || SpecError::BadKey {
        key: key.to_string(),
    };
    let parsed = pg_query::parse(&format!("SELECT {key}"), 0).map_err(|_| bad())?;
    let stmts = &parsed.protobuf.stmts;
    let Some(NodeEnum::SelectStmt(select)) = stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|s| s.node.as_ref())
    else {
        return Err(bad());
    };
    if stmts.len() != 1 || !select.from_clause.is_empty() || select.where_clause.is_some() {
        return Err(bad());
    }
    let mut columns = Vec::new();
    for target in &select.target_list {
        let Some(NodeEnum::ResTarget(res)) = target.node.as_ref() else {
            return Err(bad());
        };
        let Some(NodeEnum::ColumnRef(col)) = res.val.as_ref().and_then(|v| v.node.as_ref()) else {
            return Err(bad());
        };
        let [field] = col.fields.as_slice() else {
            return Err(bad());
        };
        let Some(NodeEnum::String(name)) = field.node.as_ref() else {
            return Err(bad());
        };
        if !res.name.is_empty() {
            return Err(bad());
        }
        columns.push(name.sval.clone());
    }
    if columns.is_empty() {
        return Err(bad());
    }
    Ok(columns)
}

/// Checks that a generated batch statement is exactly one UPDATE with a WHERE clause: the last line of defence
/// against user text that closes or comments out the key-range bound.
pub fn check_generated_update(sql: &str) -> Result<(), String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| parse_message(&e))?;
    let stmts = &parsed.protobuf.stmts;
    match stmts.as_slice() {
        [one] => match one.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(NodeEnum::UpdateStmt(update))
                if update.where_clause.is_some() && update.from_clause.is_empty() =>
            {
                Ok(())
            }
            _ => Err("the generated batch is not a single bounded UPDATE".into()),
        },
        _ => Err(format!(
            "the generated batch makes {} statements",
            stmts.len()
        )),
    }
}

/// Checks that a generated batch statement is exactly one DELETE with a WHERE clause and nothing joined or
/// returned: the same last line of defence for deletes.
pub fn check_generated_delete(sql: &str) -> Result<(), String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| parse_message(&e))?;
    let stmts = &parsed.protobuf.stmts;
    match stmts.as_slice() {
        [one] => match one.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(NodeEnum::DeleteStmt(delete))
                if delete.where_clause.is_some()
                    && delete.using_clause.is_empty()
                    && delete.returning_clause.is_none() =>
            {
                Ok(())
            }
            _ => Err("the generated batch is not a single bounded DELETE".into()),
        },
        _ => Err(format!(
            "the generated batch makes {} statements",
            stmts.len()
        )),
    }
}

fn parse_message(error: &pg_query::Error) -> String {
    match error {
        pg_query::Error::Parse(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Checks that a user query (`--probe-sql`, `--throttle-query`) is exactly one SELECT.
pub fn validate_select(text: &str, flag: &'static str) -> Result<(), String> {
    let parsed = pg_query::parse(text, 0)
        .map_err(|e| format!("{flag} {text:?} does not parse: {}", parse_message(&e)))?;
    match parsed.protobuf.stmts.as_slice() {
        [one]
            if matches!(
                one.stmt.as_ref().and_then(|s| s.node.as_ref()),
                Some(NodeEnum::SelectStmt(_))
            ) =>
        {
            Ok(())
        }
        _ => Err(format!("{flag} {text:?} must be exactly one SELECT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_lists_parse_into_their_columns() {
        assert_eq!(validate_set("n = n + 1").unwrap(), vec!["n"]);
        assert_eq!(
            validate_set("order_status_v2 = order_status, \"Note\" = lower(note)").unwrap(),
            vec!["order_status_v2", "Note"]
        );
        assert_eq!(validate_set("(a, b) = (b, a)").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn set_cannot_smuggle_anything() {
        for bad in [
            "",
            "a = 1; DROP TABLE orders",
            "a = 1 WHERE true",
            "a = 1 FROM other",
            "a = 1 RETURNING *",
            "a = ",
            "a = 1 /* unterminated",
            "a = 'open",
            "a = 1; --",
        ] {
            assert!(validate_set(bad).is_err(), "{bad:?} was accepted");
        }
        let message = validate_set("a = ").unwrap_err().to_string();
        assert!(
            message.contains("does not parse as an assignment list"),
            "{message}"
        );
    }

    #[test]
    fn a_trailing_line_comment_is_harmless() {
        // Accepted, because the batch statement puts the user's text on lines of its own.
        assert_eq!(validate_set("a = 1 -- why").unwrap(), vec!["a"]);
        check_generated_update("UPDATE t SET\na = 1 -- why\nWHERE id > 1").unwrap();
    }

    #[test]
    fn where_must_be_one_expression() {
        validate_where("order_status_v2 IS NULL").unwrap();
        validate_where("a > 1 AND b IN (SELECT 1)").unwrap();
        for bad in [
            "",
            "true) OR (true",
            "true; DELETE FROM t",
            "a = 1 ORDER BY 1",
            "a = 1 LIMIT 1",
            "a = 1 GROUP BY a",
            "a =",
        ] {
            assert!(validate_where(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn mysql_targets_are_read_with_the_mysql_grammar() {
        // Backticks, `#` comments, MySQL's operators: good MySQL, refused by PostgreSQL's grammar.
        for set in ["`order_status_v2` = `order_status`", "n = n DIV 2 # halve"] {
            assert!(validate_set(set).is_err(), "{set:?}: PostgreSQL read it");
            validate_set_for(Family::MySql, set).unwrap();
        }
        validate_set_for(
            Family::MySql,
            "note = IF(n <=> NULL, 'none', CONCAT_WS('-', n, note))",
        )
        .unwrap();
        assert_eq!(
            validate_set_for(Family::MySql, "`Order Status` = 1, t.n = 2").unwrap(),
            vec!["Order Status", "n"]
        );
        assert_eq!(
            validate_set_for(Family::Postgres, "\"Note\" = 1").unwrap(),
            vec!["Note"]
        );
        validate_where_for(Family::MySql, "`n` > 0 && note REGEXP '^x'").unwrap();
        assert!(validate_where("`n` > 0").is_err());
        // PostgreSQL reads the backslash as a character and a `;` after it; MySQL reads one string.
        validate_set_for(Family::MySql, r"note = 'x\'; DROP TABLE t; -- '").unwrap();
        for bad in ["a = 1; DROP TABLE t", "a = 1 LIMIT 5", "\"a\" = 1", ""] {
            let error = validate_set_for(Family::MySql, bad).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("does not parse as an assignment list"),
                "{bad:?}: {error}"
            );
        }
        for bad in ["true) OR (true", "\"archived\" = 0", "a = 1 ORDER BY a"] {
            let error = validate_where_for(Family::MySql, bad).unwrap_err();
            assert!(matches!(error, SpecError::BadWhere { .. }), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_column_lists() {
        assert_eq!(parse_key("id").unwrap(), vec!["id"]);
        assert_eq!(
            parse_key("tenant_id, \"Id\"").unwrap(),
            vec!["tenant_id", "Id"]
        );
        for bad in ["", "id; drop", "lower(x)", "a.b", "1", "a AS b"] {
            assert!(parse_key(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn mysql_keys_take_backticks_and_postgres_keys_do_not() {
        assert_eq!(
            parse_key_for(Family::MySql, "`tenant_id`, ID").unwrap(),
            vec!["tenant_id", "ID"]
        );
        assert!(parse_key_for(Family::Postgres, "`id`").is_err());
        assert_eq!(
            parse_key_for(Family::Postgres, "tenant_id, \"Id\"").unwrap(),
            vec!["tenant_id", "Id"]
        );
        for bad in ["", "\"id\"", "id AS k", "t.id", "id; DROP TABLE t"] {
            assert!(
                parse_key_for(Family::MySql, bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn an_update_spec_is_stored_as_it_always_was() {
        // The exact text older builds wrote into tidegate.runs.spec: a changed form would orphan their runs.
        let stored = r#"{"table":"orders","set":"a = 1","where":"a IS NULL","key":null}"#;
        let spec: BackfillSpec = serde_json::from_str(stored).unwrap();
        assert_eq!(
            spec,
            BackfillSpec {
                predicate: Some("a IS NULL".into()),
                ..BackfillSpec::update("orders", "a = 1")
            }
        );
        assert_eq!(serde_json::to_string(&spec).unwrap(), stored);
        // jsonb reorders keys; the form read back from the database parses the same.
        let reordered = r#"{"key": ["id"], "set": "a = 1", "table": "orders", "where": null}"#;
        let spec: BackfillSpec = serde_json::from_str(reordered).unwrap();
        assert_eq!(spec.operation.set(), Some("a = 1"));
        assert_eq!(spec.key, Some(vec!["id".to_string()]));
    }

    #[test]
    fn a_delete_spec_round_trips_and_differs_from_every_update() {
        let spec = BackfillSpec::delete("orders", Some("created_at < '2020-01-01'".into()));
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"table":"orders","operation":"delete","where":"created_at < '2020-01-01'","key":null}"#
        );
        assert_eq!(serde_json::from_str::<BackfillSpec>(&json).unwrap(), spec);
        assert_eq!(spec.operation.kind(), "delete");
        assert_eq!(
            spec.describe(),
            "DELETE FROM orders WHERE created_at < '2020-01-01'"
        );
        for bad in [
            r#"{"table":"t","where":null,"key":null}"#,
            r#"{"table":"t","operation":"delete","set":"a = 1","where":null,"key":null}"#,
            r#"{"table":"t","operation":"truncate","where":null,"key":null}"#,
        ] {
            assert!(
                serde_json::from_str::<BackfillSpec>(bad).is_err(),
                "{bad} was read"
            );
        }
        let explicit: BackfillSpec = serde_json::from_str(
            r#"{"table":"t","operation":"update","set":"a = 1","where":null,"key":null}"#,
        )
        .unwrap();
        assert_eq!(explicit, BackfillSpec::update("t", "a = 1"));
    }

    #[test]
    fn generated_delete_check_catches_a_cut_bound_and_joins() {
        check_generated_delete("DELETE FROM t WHERE id > 1 AND (\na < 2 -- why\n)").unwrap();
        for bad in [
            "DELETE FROM t",
            "DELETE FROM t WHERE true; SELECT 1",
            "DELETE FROM t USING u WHERE t.a = u.a",
            "DELETE FROM t WHERE true RETURNING *",
            "UPDATE t SET a = 1 WHERE true",
        ] {
            assert!(check_generated_delete(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn generated_update_check_catches_a_cut_bound() {
        assert!(check_generated_update("UPDATE t SET a = 1").is_err());
        assert!(check_generated_update("UPDATE t SET a = 1 WHERE x; SELECT 1").is_err());
    }
}
