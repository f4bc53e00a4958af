//! Turns an unbatched `DELETE` of a migration into a batched delete run on the backfill engine: the table and the
//! predicate, deparsed from the parse tree (never cut out of the text). Pure: a parse tree in, a spec or the reason
//! it cannot be converted out.
//!
//! The batched delete walks the key range fixed when the run starts, and in each batch deletes the rows of that
//! range that match the predicate at that moment, evaluated on the target table alone. That equals the one
//! statement's result when the predicate depends only on the row itself; the refusals below are the shapes where
//! it would not (a join through USING, a sub-select over the table being deleted from, a CTE, RETURNING rows a run
//! cannot return, ONLY on an inheritance parent). A predicate with `now()` is evaluated per batch, so it moves with
//! the run's clock: a row that comes to match while the run walks towards it is deleted too.

use pg_query::protobuf;

use crate::phases::{deparse_predicate, quote_identifier, reads_table};
use tidegate_backfill::spec::BackfillSpec;

/// The batched delete a single-table `DELETE` stands for, or why it does not stand for one.
pub fn delete_converts(delete: &protobuf::DeleteStmt) -> Result<BackfillSpec, String> {
    if !delete.using_clause.is_empty() {
        return Err(
            "it joins other tables (DELETE … USING), so a key range of one table does not bound it"
                .into(),
        );
    }
    if delete.with_clause.is_some() {
        return Err("it has a WITH clause".into());
    }
    if delete.returning_clause.is_some() {
        return Err("it has a RETURNING clause, whose rows a batched delete cannot return".into());
    }
    let relation = delete.relation.as_ref().ok_or("it names no table")?;
    if !relation.inh {
        return Err("it uses ONLY, which a batched delete does not reproduce".into());
    }
    if !relation.catalogname.is_empty() {
        return Err(format!(
            "it names the database ({}) in the table name",
            relation.catalogname
        ));
    }
    let predicate = delete.where_clause.as_deref();
    if let (Some(alias), Some(predicate)) = (&relation.alias, predicate) {
        if uses_qualifier(predicate, &alias.aliasname) {
            return Err(format!(
                "its WHERE refers to the table by its alias {:?}, which the batch statement does not have",
                alias.aliasname
            ));
        }
    }
    if reads_table(&[], predicate, relation) {
        return Err(format!(
            "a sub-select reads {} itself: one DELETE sees the table as it was before, but each batch would \
             see the rows earlier batches deleted",
            relation.relname
        ));
    }
    if let Some(predicate) = predicate {
        if let Some(why) = unbatchable_node(predicate) {
            return Err(why);
        }
    }
    let table = match relation.schemaname.as_str() {
        "" => quote_identifier(&relation.relname)?,
        schema => format!(
            "{}.{}",
            quote_identifier(schema)?,
            quote_identifier(&relation.relname)?
        ),
    };
    let predicate = predicate.map(deparse_predicate).transpose()?;
    Ok(BackfillSpec::delete(table, predicate))
}

/// Whether a column reference anywhere in the tree is qualified by `qualifier` (`o.created_at` for alias `o`).
fn uses_qualifier(node: &protobuf::Node, qualifier: &str) -> bool {
    fn walk(value: &serde_json::Value, qualifier: &str) -> bool {
        match value {
            serde_json::Value::Object(map) => {
                let qualified = map
                    .get("ColumnRef")
                    .and_then(|column| column.get("fields"))
                    .and_then(|fields| fields.as_array())
                    .is_some_and(|fields| {
                        fields.len() > 1
                            && fields[0]
                                .pointer("/node/String/sval")
                                .and_then(|name| name.as_str())
                                == Some(qualifier)
                    });
                qualified || map.values().any(|value| walk(value, qualifier))
            }
            serde_json::Value::Array(values) => values.iter().any(|value| walk(value, qualifier)),
            _ => false,
        }
    }
    walk(&serde_json::to_value(node).unwrap_or_default(), qualifier)
}

/// Nodes that make sense only inside the one statement as written: a cursor position, a bind parameter.
fn unbatchable_node(node: &protobuf::Node) -> Option<String> {
    fn walk(value: &serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::Object(map) => {
                if map.contains_key("CurrentOfExpr") {
                    return Some(
                        "it deletes WHERE CURRENT OF a cursor, a single row no key range names"
                            .into(),
                    );
                }
                if map.contains_key("ParamRef") {
                    return Some(
                        "its WHERE uses a bind parameter ($n), which has no value in a migration"
                            .into(),
                    );
                }
                map.values().find_map(walk)
            }
            serde_json::Value::Array(values) => values.iter().find_map(walk),
            _ => None,
        }
    }
    walk(&serde_json::to_value(node).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_query::NodeEnum;
    use tidegate_backfill::spec::Operation;

    fn parse_delete(sql: &str) -> protobuf::DeleteStmt {
        match pg_query::parse(sql, 0).unwrap().protobuf.stmts[0]
            .stmt
            .clone()
            .unwrap()
            .node
            .unwrap()
        {
            NodeEnum::DeleteStmt(delete) => *delete,
            other => panic!("{other:?}"),
        }
    }

    /// The parse tree of a statement with every `location` field zeroed, for comparing meaning, not layout.
    fn tree(sql: &str) -> serde_json::Value {
        fn strip(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::Object(map) => {
                    map.remove("location");
                    map.values_mut().for_each(strip);
                }
                serde_json::Value::Array(values) => values.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut value = serde_json::to_value(parse_delete(sql)).unwrap();
        strip(&mut value);
        value
    }

    /// The statement a spec stands for, as `DELETE FROM <table> WHERE <predicate>`.
    fn as_statement(spec: &BackfillSpec) -> String {
        assert_eq!(spec.operation, Operation::Delete);
        match &spec.predicate {
            Some(p) => format!("DELETE FROM {} WHERE {p}", spec.table),
            None => format!("DELETE FROM {}", spec.table),
        }
    }

    #[test]
    fn the_predicate_is_deparsed_to_the_same_meaning() {
        for sql in [
            "DELETE FROM orders WHERE created_at < '2020-01-01'",
            "DELETE FROM orders WHERE status IN ('expired', 'void') AND NOT archived",
            "DELETE FROM app.events WHERE kind = 'debug' OR payload->>'level' = 'trace'",
            "DELETE FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE banned)",
            "DELETE FROM \"Shop\".\"Orders\" WHERE \"Status\" IS NULL -- why\n",
            "DELETE FROM \"order\" WHERE \"user\" = 'x' AND \"desc\" IS NOT NULL",
            "DELETE FROM orders WHERE orders.created_at < now() - interval '2 years'",
            "DELETE FROM sessions",
        ] {
            let spec = delete_converts(&parse_delete(sql)).unwrap();
            assert_eq!(spec.key, None);
            let rebuilt = as_statement(&spec);
            assert_eq!(tree(&rebuilt), tree(sql), "{sql} became {rebuilt}");
            tidegate_backfill::spec::validate_where(spec.predicate.as_deref().unwrap_or("true"))
                .unwrap();
        }
        let spec =
            delete_converts(&parse_delete("DELETE FROM \"Shop\".\"Orders\" WHERE a = 1")).unwrap();
        assert_eq!(spec.table, "\"Shop\".\"Orders\"");
        assert_eq!(spec.predicate.as_deref(), Some("a = 1"));
        let everything = delete_converts(&parse_delete("DELETE FROM sessions")).unwrap();
        assert_eq!(everything, BackfillSpec::delete("sessions", None));
    }

    #[test]
    fn an_alias_is_fine_unless_the_predicate_uses_it() {
        let spec = delete_converts(&parse_delete(
            "DELETE FROM orders o WHERE created_at < '2020-01-01'",
        ))
        .unwrap();
        assert_eq!(spec.table, "orders");
        let why = delete_converts(&parse_delete(
            "DELETE FROM orders AS o WHERE o.created_at < '2020-01-01'",
        ))
        .unwrap_err();
        assert!(why.contains("alias \"o\""), "{why}");
        // A correlated sub-select through the alias is the same reference.
        let why = delete_converts(&parse_delete(
            "DELETE FROM orders o WHERE EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id)",
        ))
        .unwrap_err();
        assert!(why.contains("alias"), "{why}");
    }

    #[test]
    fn shapes_a_key_range_cannot_reproduce_are_refused_with_the_reason() {
        for (sql, expected) in [
            ("DELETE FROM orders USING customers c WHERE orders.customer_id = c.id AND c.banned", "USING"),
            ("WITH old AS (SELECT id FROM archive) DELETE FROM orders WHERE id IN (SELECT id FROM old)", "WITH"),
            ("DELETE FROM orders WHERE status = 'void' RETURNING id", "RETURNING"),
            ("DELETE FROM ONLY orders WHERE status = 'void'", "ONLY"),
            ("DELETE FROM shop.public.orders WHERE a = 1", "database"),
            ("DELETE FROM orders WHERE id IN (SELECT max(id) FROM orders GROUP BY customer_id)", "reads orders itself"),
            ("DELETE FROM orders WHERE EXISTS (SELECT 1 FROM app.orders x WHERE x.parent = orders.id)", "reads orders itself"),
            ("DELETE FROM orders WHERE CURRENT OF c", "CURRENT OF"),
            ("DELETE FROM orders WHERE id = $1", "bind parameter"),
        ] {
            let why = delete_converts(&parse_delete(sql)).unwrap_err();
            assert!(why.contains(expected), "{sql}: {why}");
        }
        // A sub-select over another table is fine.
        assert!(delete_converts(&parse_delete(
            "DELETE FROM orders WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.customer_id)"
        ))
        .is_ok());
    }

    #[test]
    fn the_stored_spec_is_a_delete() {
        let spec = delete_converts(&parse_delete("DELETE FROM orders WHERE a = 1")).unwrap();
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"table":"orders","operation":"delete","where":"a = 1","key":null}"#
        );
    }
}
