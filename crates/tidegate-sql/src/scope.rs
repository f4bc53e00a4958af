//! How many rows a data change reaches, decided once from the parse tree so that lint, plan and apply agree on
//! what "bounded to one batch" means.
//!
//! A statement is *one batch* when its own text bounds it to a slice of the target's key: `WHERE id = 42`, a key
//! range with both ends (`id >= $1 AND id < $2`, `BETWEEN`), `id IN (list)`, `id = ANY($1)`, `id IN (SELECT …
//! LIMIT n)`, or a join with a CTE that has a `LIMIT` on the key. For `INSERT … SELECT` it is the source that is
//! bounded: a `LIMIT` on the SELECT, or a key bound on the source table. MySQL's `UPDATE … LIMIT n` will be one
//! batch too when its dialect arrives.

use pg_query::protobuf::{self, AExprKind, BoolExprType};
use pg_query::{Node, NodeEnum};
use serde::Serialize;

use crate::tree::{column_reference, from_tables, is_constant, operator_name};

/// How far a data change reaches into a table, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowScope {
    /// Bounded to one batch of the table's key: a short statement whatever the table's size.
    OneBatch,
    /// A WHERE limits the rows, but not to a batch of the key: any number of rows.
    Filtered,
    /// Every row a join matches (`UPDATE … FROM`, `DELETE … USING`, `MERGE`).
    Joined,
    /// Every row: no WHERE.
    All,
}

impl RowScope {
    pub fn is_one_batch(self) -> bool {
        self == RowScope::OneBatch
    }

    /// A WHERE, a join or a batch bound limits the rows (so the table's size is an upper bound).
    pub fn is_limited(self) -> bool {
        self != RowScope::All
    }
}

/// The reach of an `UPDATE` (`from` is its FROM list) or a `DELETE` (`from` is its USING list) on the target named
/// or aliased `qualifier`, whose key is `key_columns`.
pub(crate) fn change_scope(
    with_clause: Option<&protobuf::WithClause>,
    from: &[Node],
    where_clause: Option<&Node>,
    key_columns: &[String],
    qualifier: &str,
) -> RowScope {
    if bounds_a_batch(where_clause, key_columns, qualifier)
        || bounded_by_limited_cte(with_clause, from, where_clause, key_columns, qualifier)
    {
        RowScope::OneBatch
    } else if !from.is_empty() {
        RowScope::Joined
    } else if where_clause.is_some() {
        RowScope::Filtered
    } else {
        RowScope::All
    }
}

/// The reach of one SELECT (an `INSERT … SELECT` arm) into its source `source`, whose key is `key_columns`.
pub(crate) fn read_scope(
    select: &protobuf::SelectStmt,
    source: &protobuf::RangeVar,
    key_columns: &[String],
) -> RowScope {
    let qualifier = source
        .alias
        .as_ref()
        .map_or(source.relname.as_str(), |alias| alias.aliasname.as_str());
    if limits_rows(select) || bounds_a_batch(select.where_clause.as_deref(), key_columns, qualifier)
    {
        RowScope::OneBatch
    } else if select.where_clause.is_some() {
        RowScope::Filtered
    } else {
        RowScope::All
    }
}

/// Whether a SELECT has a row limit (`LIMIT n`, `FETCH FIRST n ROWS`); `LIMIT ALL` and `LIMIT NULL` are none.
pub(crate) fn limits_rows(select: &protobuf::SelectStmt) -> bool {
    select.limit_count.as_deref().is_some_and(
        |limit| !matches!(limit.node.as_ref(), Some(NodeEnum::AConst(constant)) if constant.isnull),
    )
}

/// Whether a WHERE clause bounds a statement to one batch of `key_columns`: a key equality, a key range with both
/// ends, `key IN (list)`, `key = ANY(…)` or `key IN (SELECT … LIMIT n)`, in any conjunct. `qualifier` is the target
/// table's name or alias; a column qualified with another relation's name does not count.
fn bounds_a_batch(where_clause: Option<&Node>, key_columns: &[String], qualifier: &str) -> bool {
    let Some(where_clause) = where_clause else {
        return false;
    };
    let mut conjuncts = Vec::new();
    collect_conjuncts(where_clause, &mut conjuncts);
    let is_key = |node: &Node| is_key_column(node, key_columns, qualifier);
    let mut lower = false;
    let mut upper = false;
    for conjunct in conjuncts {
        match conjunct.node.as_ref() {
            Some(NodeEnum::AExpr(expr)) => {
                let (Some(left), right) = (expr.lexpr.as_deref(), expr.rexpr.as_deref()) else {
                    continue;
                };
                let kind = expr.kind;
                if kind == AExprKind::AexprBetween as i32
                    || kind == AExprKind::AexprBetweenSym as i32
                    || kind == AExprKind::AexprIn as i32
                    || kind == AExprKind::AexprOpAny as i32
                {
                    if is_key(left) {
                        return true;
                    }
                    continue;
                }
                if kind != AExprKind::AexprOp as i32 {
                    continue;
                }
                let Some(right) = right else { continue };
                let operator = operator_name(expr).unwrap_or_default();
                let constant_on_right = if is_key(left) && is_constant(right) {
                    true
                } else if is_key(right) && is_constant(left) {
                    false
                } else {
                    continue;
                };
                match (operator, constant_on_right) {
                    ("=", _) => return true,
                    (">" | ">=", true) | ("<" | "<=", false) => lower = true,
                    ("<" | "<=", true) | (">" | ">=", false) => upper = true,
                    _ => {}
                }
            }
            Some(NodeEnum::SubLink(link)) => {
                // key IN (SELECT key FROM … LIMIT n)
                let limited = link.subselect.as_deref().is_some_and(|select| {
                    matches!(select.node.as_ref(), Some(NodeEnum::SelectStmt(s)) if limits_rows(s))
                });
                if limited && link.testexpr.as_deref().is_some_and(is_key) {
                    return true;
                }
            }
            _ => {}
        }
    }
    lower && upper
}

fn is_key_column(node: &Node, key_columns: &[String], qualifier: &str) -> bool {
    column_reference(node).is_some_and(|(table, column)| {
        key_columns.iter().any(|key| key == column) && table.is_none_or(|table| table == qualifier)
    })
}

fn collect_conjuncts<'n>(node: &'n Node, out: &mut Vec<&'n Node>) {
    if let Some(NodeEnum::BoolExpr(expr)) = node.node.as_ref() {
        if expr.boolop == BoolExprType::AndExpr as i32 {
            for arg in &expr.args {
                collect_conjuncts(arg, out);
            }
            return;
        }
    }
    out.push(node);
}

/// Whether a join source bounds the statement to one batch: `WITH batch AS (SELECT … LIMIT n) UPDATE t … FROM
/// batch WHERE t.key = batch.col` (the same for `DELETE … USING`). Every relation in `from` must be such a
/// limited CTE, and the WHERE must tie the target's key to it.
fn bounded_by_limited_cte(
    with_clause: Option<&protobuf::WithClause>,
    from: &[Node],
    where_clause: Option<&Node>,
    key_columns: &[String],
    qualifier: &str,
) -> bool {
    let (Some(with_clause), Some(where_clause)) = (with_clause, where_clause) else {
        return false;
    };
    let limited_ctes: Vec<&str> = with_clause
        .ctes
        .iter()
        .filter_map(|cte| match cte.node.as_ref() {
            Some(NodeEnum::CommonTableExpr(cte)) => {
                let limited = matches!(
                    cte.ctequery.as_deref().and_then(|query| query.node.as_ref()),
                    Some(NodeEnum::SelectStmt(select)) if limits_rows(select)
                );
                limited.then_some(cte.ctename.as_str())
            }
            _ => None,
        })
        .collect();
    let mut sources = Vec::new();
    from_tables(from, &mut sources);
    if sources.is_empty() || sources.len() != from.len() {
        return false;
    }
    let mut names = Vec::new();
    for source in &sources {
        if !source.schemaname.is_empty() || !limited_ctes.contains(&source.relname.as_str()) {
            return false;
        }
        names.push(
            source
                .alias
                .as_ref()
                .map_or(source.relname.clone(), |alias| alias.aliasname.clone()),
        );
    }
    let mut conjuncts = Vec::new();
    collect_conjuncts(where_clause, &mut conjuncts);
    let is_key = |node: &Node| is_key_column(node, key_columns, qualifier);
    let is_batch_column = |node: &Node| {
        column_reference(node)
            .is_some_and(|(table, _)| table.is_some_and(|table| names.iter().any(|n| n == table)))
    };
    conjuncts
        .iter()
        .any(|conjunct| match conjunct.node.as_ref() {
            Some(NodeEnum::AExpr(expr)) if operator_name(expr) == Some("=") => {
                match (expr.lexpr.as_deref(), expr.rexpr.as_deref()) {
                    (Some(left), Some(right)) => {
                        (is_key(left) && is_batch_column(right))
                            || (is_key(right) && is_batch_column(left))
                    }
                    _ => false,
                }
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analyze_sql, Catalog, MigrationSettings};

    /// The row scope of each statement of `sql`, analysed after `history`.
    fn scopes(history: &str, sql: &str) -> Vec<Option<RowScope>> {
        let mut catalog = Catalog::new();
        analyze_sql(history, MigrationSettings::default(), &mut catalog);
        analyze_sql(sql, MigrationSettings::default(), &mut catalog)
            .statements()
            .iter()
            .map(|statement| statement.row_scope())
            .collect()
    }

    fn scope(sql: &str) -> Option<RowScope> {
        let all = scopes("", sql);
        assert_eq!(all.len(), 1, "{sql}");
        all[0]
    }

    #[test]
    fn one_key_batch_is_recognised_in_every_spelling() {
        for sql in [
            "UPDATE orders SET a = 1 WHERE id = 42",
            "UPDATE orders SET a = 1 WHERE 42 = id AND a IS NULL",
            "UPDATE orders SET a = 1 WHERE id IN (SELECT id FROM orders WHERE a IS NULL ORDER BY id LIMIT 5000)",
            "UPDATE orders SET a = 1 WHERE id IN (SELECT id FROM orders FETCH FIRST 100 ROWS ONLY)",
            "DELETE FROM orders WHERE id BETWEEN $1 AND $2",
            "UPDATE orders SET a = 1 WHERE id >= $1 AND id < $1 + 1000",
            "UPDATE orders SET a = 1 WHERE id > 10 AND id <= 20 AND status = 'x'",
            "DELETE FROM orders WHERE id IN (1, 2, 3)",
            "DELETE FROM orders WHERE id = ANY($1)",
            "UPDATE orders o SET a = 1 WHERE o.id = 7",
            "WITH batch AS (SELECT id FROM orders WHERE a IS NULL LIMIT 100) \
             UPDATE orders SET a = 1 FROM batch WHERE orders.id = batch.id",
            "WITH batch AS (SELECT id FROM orders LIMIT 100) DELETE FROM orders USING batch b WHERE b.id = orders.id",
            "INSERT INTO archive SELECT * FROM orders WHERE id >= 1 AND id < 10001",
            "INSERT INTO archive SELECT * FROM orders WHERE status = 'closed' ORDER BY id LIMIT 1000",
        ] {
            assert_eq!(scope(sql), Some(RowScope::OneBatch), "{sql}");
        }
    }

    #[test]
    fn anything_else_is_filtered_joined_or_everything() {
        for (sql, expected) in [
            ("UPDATE orders SET a = 1", RowScope::All),
            ("DELETE FROM orders", RowScope::All),
            ("UPDATE orders SET a = 1 WHERE id > 10", RowScope::Filtered),
            ("UPDATE orders SET a = 1 WHERE created_at < '2020-01-01'", RowScope::Filtered),
            ("UPDATE orders SET a = 1 WHERE id = 1 OR status = 'x'", RowScope::Filtered),
            ("UPDATE orders SET a = 1 WHERE id IN (SELECT id FROM orders LIMIT ALL)", RowScope::Filtered),
            ("UPDATE orders SET a = 1 WHERE id IN (SELECT order_id FROM refunds)", RowScope::Filtered),
            // Another relation's key does not bound the target.
            ("UPDATE orders o SET a = 1 WHERE customers.id = 7", RowScope::Filtered),
            ("UPDATE orders SET a = c.a FROM customers c WHERE orders.customer_id = c.id", RowScope::Joined),
            ("DELETE FROM orders USING customers c WHERE orders.customer_id = c.id AND c.id = 1", RowScope::Joined),
            ("MERGE INTO orders o USING staged s ON o.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a", RowScope::Joined),
            ("INSERT INTO archive SELECT * FROM orders", RowScope::All),
            ("INSERT INTO archive SELECT * FROM orders WHERE status = 'closed'", RowScope::Filtered),
            (
                "INSERT INTO archive SELECT * FROM orders WHERE id = 1 UNION ALL SELECT * FROM refunds",
                RowScope::All,
            ),
        ] {
            assert_eq!(scope(sql), Some(expected), "{sql}");
        }
    }

    #[test]
    fn an_insert_select_through_a_cte_is_not_taken_for_one_batch() {
        assert_eq!(
            scope("WITH src AS (SELECT * FROM orders) INSERT INTO archive SELECT * FROM src"),
            Some(RowScope::All)
        );
        assert_eq!(
            scope("INSERT INTO flags SELECT 'dark-mode', true"),
            Some(RowScope::OneBatch)
        );
    }

    #[test]
    fn statements_that_are_not_bulk_data_changes_have_no_scope() {
        for sql in [
            "INSERT INTO orders (id) VALUES (1), (2)",
            "COPY orders FROM STDIN",
            "SELECT * FROM orders",
            "ALTER TABLE orders ADD COLUMN a int",
        ] {
            assert_eq!(scope(sql), None, "{sql}");
        }
    }

    #[test]
    fn the_key_is_the_primary_key_the_catalog_knows() {
        let history = "CREATE TABLE codes (code text PRIMARY KEY, id int); \
                       ALTER TABLE squashed ADD CONSTRAINT squashed_pkey PRIMARY KEY (uid);";
        assert_eq!(
            scopes(
                history,
                "UPDATE codes SET id = 1 WHERE code = 'a'; UPDATE codes SET id = 1 WHERE id = 1; \
                 DELETE FROM squashed WHERE uid = 5; DELETE FROM squashed WHERE id = 5;"
            ),
            vec![
                Some(RowScope::OneBatch),
                Some(RowScope::Filtered),
                Some(RowScope::OneBatch),
                Some(RowScope::Filtered)
            ]
        );
    }

    #[test]
    fn each_source_of_an_insert_select_has_its_own_scope() {
        let mut catalog = Catalog::new();
        let migration = analyze_sql(
            "INSERT INTO archive SELECT o.* FROM orders o JOIN refunds r ON r.order_id = o.id WHERE o.id BETWEEN 1 AND 100",
            MigrationSettings::default(),
            &mut catalog,
        );
        let rows: Vec<(String, Option<RowScope>)> = migration.statements()[0]
            .effects
            .iter()
            .map(|effect| (effect.table.name.clone(), effect.rows))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("archive".to_string(), Some(RowScope::Filtered)),
                ("orders".to_string(), Some(RowScope::OneBatch)),
                ("refunds".to_string(), Some(RowScope::Filtered)),
            ]
        );
    }
}
