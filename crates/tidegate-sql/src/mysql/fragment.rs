//! The pieces of SQL a user hands a MySQL/MariaDB backfill (`--set`, `--where`) and the batch statement built
//! from them, checked with sqlparser's MySQL dialect: the grammar the server reads them with (backtick
//! identifiers, backslash escapes in strings, `#` and `-- ` comments, MySQL's functions and operators), where
//! PostgreSQL's parser would refuse good text and misread some bad text.
//!
//! A SET must be exactly an assignment list (`UPDATE x SET <set>` is one UPDATE with nothing else) and a WHERE
//! exactly one expression (`SELECT 1 WHERE <pred>` is one plain SELECT), and each must still end where it should
//! once the batch's own clause follows it, so nothing can end the statement early or cut off the key-range bound.
//! "Nothing else" is checked on the tree: the statement sqlparser parsed, printed, must be the bare form rebuilt
//! from its assignments or expression, so a clause this code does not name (a hint, a join, `INTO`, …) is refused
//! too. Pure: no database.

use sqlparser::ast;
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

fn parse(sql: &str) -> Result<Vec<ast::Statement>, String> {
    Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| {
        let message = e.to_string();
        message
            .strip_prefix("sql parser error: ")
            .unwrap_or(&message)
            .to_string()
    })
}

/// `"…"` is a string to MySQL by default and a name under `ANSI_QUOTES` (and to a PostgreSQL user): a
/// `--where '"archived" = 0'` would compare the string to 0, true on every row. Refused, with the two spellings
/// that mean one thing.
fn refuse_double_quotes(text: &str) -> Result<(), String> {
    let tokens = Tokenizer::new(&MySqlDialect {}, text)
        .tokenize()
        .map_err(|e| e.to_string())?;
    if tokens
        .iter()
        .any(|token| matches!(token, Token::DoubleQuotedString(_)))
    {
        return Err(
            "it has a double-quoted \"…\", a string or a name depending on sql_mode; write 'text' for a string \
             and `name` for a column"
                .into(),
        );
    }
    Ok(())
}

/// The columns an assignment list assigns, in order, as written (MySQL compares column names without regard
/// to case; the caller matches them against the catalog so).
pub fn assignment_list(set: &str) -> Result<Vec<String>, String> {
    if set.trim().is_empty() {
        return Err("it is empty".into());
    }
    refuse_double_quotes(set)?;
    // The newlines end any trailing `-- ` or `#` comment inside the user's text, as in the batch statement.
    let statements = parse(&format!("UPDATE x SET\n{set}\n"))?;
    let update = match statements.as_slice() {
        [ast::Statement::Update(update)] => update,
        [_] => return Err("it is not an assignment list".into()),
        more => {
            return Err(format!(
                "it makes {} statements, not one assignment list",
                more.len()
            ))
        }
    };
    if update.selection.is_some() {
        return Err("it contains a WHERE clause; use --where".into());
    }
    if update.from.is_some() || !update.table.joins.is_empty() {
        return Err(
            "it joins another table; a backfill updates one table from its own columns".into(),
        );
    }
    if !update.order_by.is_empty() || update.limit.is_some() {
        return Err("it contains ORDER BY or LIMIT; the batches choose the rows".into());
    }
    if update.returning.is_some() {
        return Err("it contains RETURNING".into());
    }
    let list = update
        .assignments
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ast::Statement::Update(update.clone()).to_string() != format!("UPDATE x SET {list}") {
        return Err("it carries clauses beyond an assignment list".into());
    }
    let mut columns = Vec::new();
    for assignment in &update.assignments {
        let names = match &assignment.target {
            ast::AssignmentTarget::ColumnName(name) => std::slice::from_ref(name),
            ast::AssignmentTarget::Tuple(names) => names.as_slice(),
        };
        for name in names {
            match name.0.last().and_then(|part| part.as_ident()) {
                Some(ident) => columns.push(ident.value.clone()),
                None => return Err("an assignment has no target column".into()),
            }
        }
    }
    if columns.is_empty() {
        return Err("it assigns nothing".into());
    }
    // Followed by a WHERE, as in the batch statement, it must still be one UPDATE with that WHERE: this refuses
    // a `;` that would end the statement before the key-range bound.
    match parse(&format!("UPDATE x SET\n{set}\nWHERE false")).as_deref() {
        Ok([ast::Statement::Update(bounded)]) if bounded.selection.is_some() => Ok(columns),
        _ => Err(
            "it does not end where an assignment list ends (a ';' or an unclosed construct?)"
                .into(),
        ),
    }
}

/// The column names of a `--key a,b` list, as written (plain or backtick-quoted; MySQL compares column names
/// without regard to case, so the caller matches them against the catalog so). Read as the select list of
/// `SELECT <key>`: every item must be one bare, unaliased name.
pub fn column_list(key: &str) -> Result<Vec<String>, String> {
    if key.trim().is_empty() {
        return Err("it is empty".into());
    }
    refuse_double_quotes(key)?;
    let statements = parse(&format!("SELECT\n{key}\n"))?;
    let query = match statements.as_slice() {
        [ast::Statement::Query(query)] => query,
        [_] => return Err("it is not a list of column names".into()),
        more => {
            return Err(format!(
                "it makes {} statements, not a list of column names",
                more.len()
            ))
        }
    };
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return Err("it is not a list of column names".into());
    };
    let mut columns = Vec::new();
    for item in &select.projection {
        match item {
            ast::SelectItem::UnnamedExpr(ast::Expr::Identifier(ident)) => {
                columns.push(ident.value.clone())
            }
            _ => return Err(format!("{item} is not a column name")),
        }
    }
    let list = select
        .projection
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if query.to_string() != format!("SELECT {list}") {
        return Err("it carries clauses beyond a list of column names".into());
    }
    Ok(columns)
}

/// Checks that a WHERE text is exactly one expression.
pub fn predicate(predicate: &str) -> Result<(), String> {
    if predicate.trim().is_empty() {
        return Err("it is empty".into());
    }
    refuse_double_quotes(predicate)?;
    let statements = parse(&format!("SELECT 1 WHERE\n{predicate}\n"))?;
    let query = match statements.as_slice() {
        [ast::Statement::Query(query)] => query,
        [_] => return Err("it is not an expression".into()),
        more => {
            return Err(format!(
                "it makes {} statements, not one expression",
                more.len()
            ))
        }
    };
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return Err("it carries clauses beyond one expression".into());
    };
    let Some(expr) = &select.selection else {
        return Err("it is not an expression".into());
    };
    if query.to_string() != format!("SELECT 1 WHERE {expr}") {
        return Err("it carries clauses beyond one expression".into());
    }
    // In the batch statement the predicate sits in parentheses after the key range: it must close there.
    match parse(&format!("SELECT 1 WHERE true AND (\n{predicate}\n)")).as_deref() {
        Ok([ast::Statement::Query(_)]) => Ok(()),
        _ => Err("it does not end where an expression ends".into()),
    }
}

/// Checks that a generated batch statement is exactly one single-table UPDATE (or DELETE, `delete`) with a
/// WHERE clause and nothing joined, ordered, limited or returned: the last line of defence against user text
/// that closes or comments out the key-range bound.
pub fn bounded_change(sql: &str, delete: bool) -> Result<(), String> {
    let statements = parse(sql)?;
    let bounded = match (statements.as_slice(), delete) {
        ([ast::Statement::Update(update)], false) => {
            update.selection.is_some()
                && update.from.is_none()
                && update.table.joins.is_empty()
                && update.order_by.is_empty()
                && update.limit.is_none()
                && update.returning.is_none()
        }
        ([ast::Statement::Delete(delete)], true) => {
            let from = match &delete.from {
                ast::FromTable::WithFromKeyword(from) | ast::FromTable::WithoutKeyword(from) => {
                    from
                }
            };
            delete.selection.is_some()
                && delete.tables.is_empty()
                && delete.using.is_none()
                && from.len() == 1
                && from[0].joins.is_empty()
                && delete.order_by.is_empty()
                && delete.limit.is_none()
                && delete.returning.is_none()
        }
        ([_], _) => false,
        (more, _) => {
            return Err(format!(
                "the generated batch makes {} statements",
                more.len()
            ))
        }
    };
    if bounded {
        Ok(())
    } else {
        Err(format!(
            "the generated batch is not a single bounded {}",
            if delete { "DELETE" } else { "UPDATE" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_assignment_lists_parse_into_their_columns() {
        assert_eq!(assignment_list("n = n + 1").unwrap(), vec!["n"]);
        assert_eq!(
            assignment_list("`order_status_v2` = `order_status`, `Odd Name` = LOWER(note)")
                .unwrap(),
            vec!["order_status_v2", "Odd Name"]
        );
        assert_eq!(
            assignment_list(
                "t.note = CONCAT_WS('-', a, b), flags = flags | 4, n = IF(n <=> NULL, 0, n DIV 2)"
            )
            .unwrap(),
            vec!["note", "flags", "n"]
        );
        // A backslash escape is MySQL's: the quote after it does not end the string.
        assert_eq!(assignment_list(r"note = 'it\'s'").unwrap(), vec!["note"]);
        // So this is one string to MySQL (PostgreSQL's grammar reads a `;` and a second statement in it).
        assert_eq!(
            assignment_list(r"note = 'x\'; DROP TABLE t; -- '").unwrap(),
            vec!["note"]
        );
        assert_eq!(assignment_list("a = 1 # why").unwrap(), vec!["a"]);
        assert_eq!(assignment_list("a = 1 -- why").unwrap(), vec!["a"]);
        // `--1` without a space is not a comment in MySQL: 1 minus minus 1.
        assert_eq!(assignment_list("a = 1 --1").unwrap(), vec!["a"]);
    }

    #[test]
    fn mysql_assignment_lists_cannot_smuggle_anything() {
        for bad in [
            "",
            "a = 1; DROP TABLE orders",
            "a = 1;",
            "a = 1 WHERE true",
            "a = 1 LIMIT 10",
            "a = 1 ORDER BY id",
            "a = 1 RETURNING *",
            "a = ",
            "a = 1 /* unterminated",
            "a = 'open",
            "a = 1; --",
            "a = 1; #",
            "\"a\" = 1",
        ] {
            assert!(assignment_list(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn mysql_predicates_are_one_expression() {
        predicate("`order_status_v2` IS NULL").unwrap();
        predicate("a > 1 AND b IN (SELECT 1) && c REGEXP '^x' OR d <=> NULL").unwrap();
        predicate("created_at < NOW() - INTERVAL 2 YEAR").unwrap();
        predicate("status = 'x' # why").unwrap();
        predicate(r#"note = 'say "hi"'"#).unwrap();
        for bad in [
            "",
            "true) OR (true",
            "true; DELETE FROM t",
            "a = 1 ORDER BY 1",
            "a = 1 LIMIT 1",
            "a = 1 GROUP BY a",
            "a = 1 INTO @x",
            "a = 1 FOR UPDATE",
            "a =",
            r"a = 'x\' OR true",
            "\"archived\" = 0",
        ] {
            assert!(predicate(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn mysql_key_lists_are_bare_column_names() {
        assert_eq!(column_list("id").unwrap(), vec!["id"]);
        assert_eq!(column_list("`id`").unwrap(), vec!["id"]);
        assert_eq!(
            column_list("tenant_id, `Odd Name`,ID").unwrap(),
            vec!["tenant_id", "Odd Name", "ID"]
        );
        assert_eq!(column_list("`a``b`").unwrap(), vec!["a`b"]);
        for bad in [
            "",
            " ",
            "id,",
            "t.id",
            "id AS k",
            "id + 1",
            "1",
            "'id'",
            "\"id\"",
            "*",
            "id FROM t",
            "id; DROP TABLE t",
            "`id",
            "id WHERE true",
        ] {
            assert!(column_list(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn generated_changes_must_be_bounded_and_single() {
        bounded_change(
            "UPDATE `t` SET\na = 1 # why\nWHERE `id` <= CAST(? AS SIGNED)",
            false,
        )
        .unwrap();
        bounded_change(
            "DELETE FROM `t`\nWHERE `id` <= ? AND (\na < 2 -- why\n)",
            true,
        )
        .unwrap();
        for (bad, delete) in [
            ("UPDATE t SET a = 1", false),
            ("UPDATE t SET a = 1 WHERE x; SELECT 1", false),
            ("UPDATE t JOIN u ON t.a = u.a SET t.a = 1 WHERE true", false),
            ("UPDATE t SET a = 1 WHERE true LIMIT 1", false),
            ("DELETE FROM t", true),
            ("DELETE t FROM t JOIN u ON t.a = u.a WHERE true", true),
            ("UPDATE t SET a = 1 WHERE true", true),
        ] {
            assert!(bounded_change(bad, delete).is_err(), "{bad:?} was accepted");
        }
    }
}
