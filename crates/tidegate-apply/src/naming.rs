//! The names PostgreSQL gives unnamed indexes and constraints, so that a statement apply runs in another form
//! (`CREATE INDEX` as `CREATE INDEX CONCURRENTLY`, `ADD UNIQUE` as an index plus `USING INDEX`) ends with the
//! object named exactly as plain psql would have named it.
//!
//! This follows PostgreSQL's `makeObjectName`, `ChooseRelationName`, `ChooseConstraintName`,
//! `ChooseIndexColumnNames` and `FigureColname` (src/backend/commands/indexcmds.c, catalog/pg_constraint.c,
//! parser/parse_target.c). The names in use are an input ([`NamesInUse`]): the live database's and those created
//! earlier in the same apply. Pure; the real-server check is in crates/tidegate/tests/apply_rewrites.rs.

use std::collections::HashSet;

use tidegate_sql::syntax::{protobuf, NodeEnum};

/// NAMEDATALEN - 1: the longest identifier PostgreSQL keeps, in bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Relation and constraint names in use, per schema.
#[derive(Debug, Clone, Default)]
pub struct NamesInUse {
    relations: HashSet<(String, String)>,
    constraints: HashSet<(String, String)>,
}

impl NamesInUse {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_relation(&mut self, schema: &str, name: &str) {
        self.relations
            .insert((schema.to_string(), name.to_string()));
    }

    pub fn add_constraint(&mut self, schema: &str, name: &str) {
        self.constraints
            .insert((schema.to_string(), name.to_string()));
    }

    fn relation_taken(&self, schema: &str, name: &str) -> bool {
        self.relations
            .contains(&(schema.to_string(), name.to_string()))
    }

    fn constraint_taken(&self, schema: &str, name: &str) -> bool {
        self.constraints
            .contains(&(schema.to_string(), name.to_string()))
    }
}

/// The longest prefix of `text` of at most `bytes` bytes that ends on a character boundary (`pg_mbcliplen`).
fn clip(text: &str, bytes: usize) -> &str {
    if text.len() <= bytes {
        return text;
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `makeObjectName`: `name1_name2_label`, shortening the longer of name1 and name2 a byte at a time until it fits.
pub fn make_object_name(name1: &str, name2: Option<&str>, label: &str) -> String {
    let mut overhead = if label.is_empty() { 0 } else { label.len() + 1 };
    if name2.is_some() {
        overhead += 1;
    }
    let available = MAX_IDENTIFIER_BYTES.saturating_sub(overhead);
    let mut name1_bytes = name1.len();
    let mut name2_bytes = name2.map_or(0, str::len);
    while name1_bytes + name2_bytes > available {
        if name1_bytes > name2_bytes {
            name1_bytes -= 1;
        } else {
            name2_bytes -= 1;
        }
    }
    let mut name = clip(name1, name1_bytes).to_string();
    if let Some(name2) = name2 {
        name.push('_');
        name.push_str(clip(name2, name2_bytes));
    }
    if !label.is_empty() {
        name.push('_');
        name.push_str(label);
    }
    name
}

/// `ChooseRelationName`: the first of `name1_name2_label`, `…_label1`, `…_label2`… that no relation in the schema
/// has (and, for a constraint's index, no constraint either). The chosen name is recorded as taken.
pub fn choose_relation_name(
    names: &mut NamesInUse,
    schema: &str,
    name1: &str,
    name2: Option<&str>,
    label: &str,
    is_constraint: bool,
) -> String {
    let mut pass = 0;
    loop {
        let suffix = if pass == 0 {
            label.to_string()
        } else {
            format!("{label}{pass}")
        };
        let candidate = make_object_name(name1, name2, &suffix);
        let taken = names.relation_taken(schema, &candidate)
            || (is_constraint && names.constraint_taken(schema, &candidate));
        if !taken {
            names.add_relation(schema, &candidate);
            if is_constraint {
                names.add_constraint(schema, &candidate);
            }
            return candidate;
        }
        pass += 1;
    }
}

/// `ChooseConstraintName` for CHECK and FOREIGN KEY constraints: unique among the schema's constraint names.
pub fn choose_constraint_name(
    names: &mut NamesInUse,
    schema: &str,
    name1: &str,
    name2: Option<&str>,
    label: &str,
) -> String {
    let mut pass = 0;
    loop {
        let suffix = if pass == 0 {
            label.to_string()
        } else {
            format!("{label}{pass}")
        };
        let candidate = make_object_name(name1, name2, &suffix);
        if !names.constraint_taken(schema, &candidate) {
            names.add_constraint(schema, &candidate);
            return candidate;
        }
        pass += 1;
    }
}

/// `ChooseIndexNameAddition` / `ChooseForeignKeyConstraintNameAddition`: the names joined by `_`, stopping once
/// the result reaches NAMEDATALEN bytes (it is clipped later).
pub fn name_addition<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut addition = String::new();
    for name in names {
        if !addition.is_empty() {
            addition.push('_');
        }
        addition.push_str(clip(
            name,
            (MAX_IDENTIFIER_BYTES + 1).saturating_sub(addition.len()),
        ));
        if addition.len() > MAX_IDENTIFIER_BYTES {
            break;
        }
    }
    addition
}

/// `ChooseIndexColumnNames`: each index element's name (a column's name, an expression's `FigureColname`, else
/// `expr`), with a digit appended to a name an earlier element already has.
pub fn index_column_names(elements: &[protobuf::Node]) -> Vec<String> {
    let mut chosen: Vec<String> = Vec::with_capacity(elements.len());
    for element in elements {
        let original = match element.node.as_ref() {
            Some(NodeEnum::IndexElem(element)) if !element.indexcolname.is_empty() => {
                element.indexcolname.clone()
            }
            Some(NodeEnum::IndexElem(element)) if !element.name.is_empty() => element.name.clone(),
            Some(NodeEnum::IndexElem(element)) => element
                .expr
                .as_deref()
                .and_then(figure_column_name)
                .unwrap_or_else(|| "expr".to_string()),
            _ => "expr".to_string(),
        };
        let mut candidate = clip(&original, MAX_IDENTIFIER_BYTES).to_string();
        let mut suffix = 1;
        while chosen.contains(&candidate) {
            let digits = suffix.to_string();
            candidate = format!(
                "{}{digits}",
                clip(&original, MAX_IDENTIFIER_BYTES - digits.len())
            );
            suffix += 1;
        }
        chosen.push(candidate);
    }
    chosen
}

/// `FigureColnameInternal`'s answer for an expression, when it has one of strength > 0.
pub fn figure_column_name(node: &protobuf::Node) -> Option<String> {
    figure(node).map(|(name, _)| name)
}

fn figure(node: &protobuf::Node) -> Option<(String, u8)> {
    let last_string = |nodes: &[protobuf::Node]| {
        nodes.last().and_then(|node| match node.node.as_ref() {
            Some(NodeEnum::String(string)) => Some(string.sval.clone()),
            _ => None,
        })
    };
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(column) => last_string(&column.fields).map(|name| (name, 2)),
        NodeEnum::AIndirection(indirection) => match last_string(&indirection.indirection) {
            Some(name) => Some((name, 2)),
            None => indirection.arg.as_deref().and_then(figure),
        },
        NodeEnum::FuncCall(call) => last_string(&call.funcname).map(|name| (name, 2)),
        NodeEnum::AExpr(expr) if expr.kind == protobuf::AExprKind::AexprNullif as i32 => {
            Some(("nullif".into(), 2))
        }
        NodeEnum::TypeCast(cast) => {
            let inner = cast.arg.as_deref().and_then(figure);
            match inner {
                Some((name, strength)) if strength > 1 => Some((name, strength)),
                _ => cast
                    .type_name
                    .as_ref()
                    .and_then(|type_name| last_string(&type_name.names))
                    .map(|name| (name, 1))
                    .or(inner),
            }
        }
        NodeEnum::CollateClause(collate) => collate.arg.as_deref().and_then(figure),
        NodeEnum::CaseExpr(case) => match case.defresult.as_deref().and_then(figure) {
            Some((name, strength)) if strength > 1 => Some((name, strength)),
            _ => Some(("case".into(), 1)),
        },
        NodeEnum::AArrayExpr(_) => Some(("array".into(), 2)),
        NodeEnum::RowExpr(_) => Some(("row".into(), 2)),
        NodeEnum::CoalesceExpr(_) => Some(("coalesce".into(), 2)),
        NodeEnum::MinMaxExpr(minmax) => Some((
            if minmax.op == protobuf::MinMaxOp::IsGreatest as i32 {
                "greatest".into()
            } else {
                "least".into()
            },
            2,
        )),
        _ => None,
    }
}

/// The columns an expression reads, in the order PostgreSQL's `pull_var_clause` meets them, without repeats.
pub fn columns_read(node: &protobuf::Node) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(fields) = map.get("ColumnRef").and_then(|column| column.get("fields")) {
                    let name = fields
                        .as_array()
                        .and_then(|fields| fields.last())
                        .and_then(|last| last.get("node").unwrap_or(last).get("String"))
                        .and_then(|string| string.get("sval"))
                        .and_then(|name| name.as_str());
                    if let Some(name) = name {
                        if !found.iter().any(|known| known == name) {
                            found.push(name.to_string());
                        }
                    }
                    return;
                }
                for value in map.values() {
                    walk(value, found);
                }
            }
            serde_json::Value::Array(values) => {
                for value in values {
                    walk(value, found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&serde_json::to_value(node).unwrap_or_default(), &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_shortened_the_way_postgres_does() {
        assert_eq!(
            make_object_name("orders", Some("customer_id"), "idx"),
            "orders_customer_id_idx"
        );
        assert_eq!(make_object_name("orders", None, "pkey"), "orders_pkey");
        let long = "a".repeat(60);
        let name = make_object_name(&long, Some("customer_id"), "fkey");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_customer_id_fkey"), "{name}");
        let both = make_object_name(&"t".repeat(40), Some(&"c".repeat(40)), "idx");
        assert_eq!(both.len(), 63);
        assert_eq!(both, format!("{}_{}_idx", "t".repeat(29), "c".repeat(29)));
        // Multibyte characters are never cut in half.
        let name = make_object_name(&"é".repeat(40), None, "pkey");
        assert!(name.len() <= 63 && name.ends_with("_pkey"), "{name}");
    }

    #[test]
    fn a_taken_name_gets_the_next_number() {
        let mut names = NamesInUse::new();
        names.add_relation("public", "orders_customer_id_idx");
        assert_eq!(
            choose_relation_name(
                &mut names,
                "public",
                "orders",
                Some("customer_id"),
                "idx",
                false
            ),
            "orders_customer_id_idx1"
        );
        assert_eq!(
            choose_relation_name(
                &mut names,
                "public",
                "orders",
                Some("customer_id"),
                "idx",
                false
            ),
            "orders_customer_id_idx2"
        );
        // Another schema is another namespace.
        assert_eq!(
            choose_relation_name(
                &mut names,
                "shop",
                "orders",
                Some("customer_id"),
                "idx",
                false
            ),
            "orders_customer_id_idx"
        );
        names.add_constraint("public", "orders_total_check");
        assert_eq!(
            choose_constraint_name(&mut names, "public", "orders", Some("total"), "check"),
            "orders_total_check1"
        );
    }

    fn index_elements(sql: &str) -> Vec<protobuf::Node> {
        let parsed = pg_query::parse(sql, 0).unwrap().protobuf;
        match parsed.stmts[0]
            .stmt
            .as_ref()
            .unwrap()
            .node
            .as_ref()
            .unwrap()
        {
            NodeEnum::IndexStmt(index) => index.index_params.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn index_columns_are_named_like_postgres_names_them() {
        assert_eq!(
            index_column_names(&index_elements("CREATE INDEX ON t (a, b DESC)")),
            ["a", "b"]
        );
        assert_eq!(
            index_column_names(&index_elements(
                "CREATE INDEX ON t (lower(email), lower(name), (a + b), (x::text))"
            )),
            ["lower", "lower1", "expr", "x"]
        );
        assert_eq!(
            index_column_names(&index_elements("CREATE INDEX ON t ((payload->>'kind'))")),
            ["expr"]
        );
    }

    #[test]
    fn the_columns_a_check_reads_come_in_order_without_repeats() {
        let parsed = pg_query::parse("SELECT 1 WHERE a > 0 AND (b < a OR t.c IS NULL)", 0)
            .unwrap()
            .protobuf;
        let NodeEnum::SelectStmt(select) = parsed.stmts[0]
            .stmt
            .as_ref()
            .unwrap()
            .node
            .as_ref()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            columns_read(select.where_clause.as_deref().unwrap()),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn additions_join_names() {
        assert_eq!(name_addition(["a", "b"]), "a_b");
        let long = "x".repeat(70);
        assert!(name_addition([long.as_str(), "b"]).len() <= 64);
    }
}
