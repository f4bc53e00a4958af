//! What a statement from `pg_stat_statements` needs to be replayed on a copy: which tables it touches and, for
//! each `$n` of its normalised text, the column it is compared to or assigned to, so a value can be drawn from
//! that column's statistics. Parsed with pg_query; anything this cannot say for sure is a reason not to replay.

use pg_query::protobuf::{self, AExprKind};
use pg_query::{Node, NodeEnum, NodeRef};

/// The statements a replay runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayKind {
    Select,
    Insert,
    Update,
    Delete,
}

/// A table the statement names, with the alias it goes by there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub schema: Option<String>,
    pub name: String,
    pub alias: Option<String>,
}

/// Where a `$n` stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamTarget {
    /// Compared to (`=`, `<`, `IN`, `BETWEEN`, `LIKE`, …) or assigned to (`SET c = $n`, an INSERT's value) a
    /// column; `qualifier` is the table or alias written before it.
    Column {
        qualifier: Option<String>,
        column: String,
    },
    /// `LIMIT $n`.
    Limit,
    /// `OFFSET $n`.
    Offset,
}

/// One `$n` and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamUse {
    pub number: u32,
    pub target: ParamTarget,
}

/// A statement that can be replayed: its kind, its tables, and every `$n` in order of number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayShape {
    pub kind: ReplayKind,
    pub relations: Vec<Relation>,
    pub params: Vec<ParamUse>,
}

impl ReplayShape {
    /// The relation a qualifier (`o` in `o.id`) names: its alias, else its name.
    pub fn relation_named(&self, qualifier: &str) -> Option<&Relation> {
        self.relations
            .iter()
            .find(|r| r.alias.as_deref() == Some(qualifier))
            .or_else(|| {
                self.relations
                    .iter()
                    .find(|r| r.alias.is_none() && r.name == qualifier)
            })
    }
}

/// A type cast around a parameter (`$1::int8`) does not change which column it stands for.
fn peel(node: &Node) -> Option<&NodeEnum> {
    match node.node.as_ref()? {
        NodeEnum::TypeCast(cast) => peel(cast.arg.as_deref()?),
        other => Some(other),
    }
}

fn param_number(node: &Node) -> Option<u32> {
    match peel(node)? {
        NodeEnum::ParamRef(param) => u32::try_from(param.number).ok(),
        _ => None,
    }
}

fn column_of(node: &Node) -> Option<(Option<String>, String)> {
    match peel(node)? {
        NodeEnum::ColumnRef(column) => {
            let fields: Vec<&str> = column
                .fields
                .iter()
                .filter_map(|field| match field.node.as_ref()? {
                    NodeEnum::String(s) => Some(s.sval.as_str()),
                    _ => None,
                })
                .collect();
            match fields.as_slice() {
                [name] => Some((None, name.to_string())),
                [.., qualifier, name] => Some((Some(qualifier.to_string()), name.to_string())),
                [] => None,
            }
        }
        _ => None,
    }
}

/// The parameters one side of a comparison holds: one, or each of a list (`IN ($1, $2)`, `BETWEEN $1 AND $2`).
fn params_of(node: &Node) -> Vec<u32> {
    match peel(node) {
        Some(NodeEnum::List(list)) => list.items.iter().filter_map(param_number).collect(),
        _ => param_number(node).into_iter().collect(),
    }
}

fn record(found: &mut Vec<ParamUse>, number: u32, target: ParamTarget) {
    if !found.iter().any(|p| p.number == number) {
        found.push(ParamUse { number, target });
    }
}

fn statement_kind(statement: &NodeEnum) -> Result<ReplayKind, String> {
    Ok(match statement {
        NodeEnum::SelectStmt(_) => ReplayKind::Select,
        NodeEnum::InsertStmt(_) => ReplayKind::Insert,
        NodeEnum::UpdateStmt(_) => ReplayKind::Update,
        NodeEnum::DeleteStmt(_) => ReplayKind::Delete,
        NodeEnum::TransactionStmt(_) => {
            return Err("transaction control (BEGIN, COMMIT, …), not a query".into())
        }
        other => {
            let name = format!("{other:?}");
            let name = name.split('(').next().unwrap_or_default().to_string();
            return Err(format!(
                "a utility or DDL statement ({name}); only SELECT, INSERT, UPDATE and DELETE are replayed"
            ));
        }
    })
}

/// Why a statement is not replayed, with the tables it names (so a statement on other tables can be left out
/// of the report altogether).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreplayable {
    pub relations: Vec<Relation>,
    pub reason: String,
}

/// The shape of `sql` (pg_stat_statements' normalised text), or why it cannot be replayed.
pub fn replay_shape(sql: &str) -> Result<ReplayShape, Unreplayable> {
    let unparsed = |reason: String| Unreplayable {
        relations: Vec::new(),
        reason,
    };
    if sql.contains('\0') {
        return Err(unparsed("the text contains a NUL byte".into()));
    }
    let parsed = match std::panic::catch_unwind(|| pg_query::parse(sql, 0)) {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(error)) => return Err(unparsed(format!("does not parse: {error}"))),
        Err(_) => return Err(unparsed("the parser failed on it".into())),
    };
    let mut relations = Vec::new();
    for (node, _, _, _) in parsed.protobuf.nodes() {
        if let NodeRef::RangeVar(range) = node {
            // A WITH query's name read in FROM is not a table.
            if range.schemaname.is_empty() && parsed.cte_names.contains(&range.relname) {
                continue;
            }
            relations.push(range_relation(range));
        }
    }
    match shape(&parsed) {
        Ok((kind, params)) => Ok(ReplayShape {
            kind,
            relations,
            params,
        }),
        Err(reason) => Err(Unreplayable { relations, reason }),
    }
}

fn shape(parsed: &pg_query::ParseResult) -> Result<(ReplayKind, Vec<ParamUse>), String> {
    let statements: Vec<&NodeEnum> = parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|raw| raw.stmt.as_ref()?.node.as_ref())
        .collect();
    let [statement] = statements.as_slice() else {
        return Err(format!(
            "{} statements in one text; one is replayed at a time",
            statements.len()
        ));
    };
    let kind = statement_kind(statement)?;
    let mut found: Vec<ParamUse> = Vec::new();
    let mut numbers: Vec<u32> = Vec::new();
    for (node, _, _, _) in parsed.protobuf.nodes() {
        match node {
            NodeRef::ParamRef(param) => {
                if let Ok(number) = u32::try_from(param.number) {
                    numbers.push(number);
                }
            }
            NodeRef::AExpr(expr) => compared(expr, &mut found),
            NodeRef::UpdateStmt(update) => {
                for target in &update.target_list {
                    if let Some(NodeEnum::ResTarget(res)) = target.node.as_ref() {
                        if let Some(number) = res.val.as_deref().and_then(param_number) {
                            record(
                                &mut found,
                                number,
                                ParamTarget::Column {
                                    qualifier: None,
                                    column: res.name.clone(),
                                },
                            );
                        }
                    }
                }
            }
            NodeRef::InsertStmt(insert) => inserted(insert, &mut found),
            NodeRef::SelectStmt(select) => {
                if let Some(number) = select.limit_count.as_deref().and_then(param_number) {
                    record(&mut found, number, ParamTarget::Limit);
                }
                if let Some(number) = select.limit_offset.as_deref().and_then(param_number) {
                    record(&mut found, number, ParamTarget::Offset);
                }
            }
            _ => {}
        }
    }
    numbers.sort_unstable();
    numbers.dedup();
    if let Some(missing) = numbers
        .iter()
        .find(|n| !found.iter().any(|p| p.number == **n))
    {
        return Err(format!(
            "${missing} is not compared to or assigned to a column, so its type and values are unknown"
        ));
    }
    found.sort_by_key(|p| p.number);
    if let Some((gap, _)) = found
        .iter()
        .enumerate()
        .find(|(index, p)| p.number as usize != index + 1)
    {
        return Err(format!(
            "${} is missing from the text: its parameters cannot be numbered",
            gap + 1
        ));
    }
    Ok((kind, found))
}

fn range_relation(range: &protobuf::RangeVar) -> Relation {
    Relation {
        schema: (!range.schemaname.is_empty()).then(|| range.schemaname.clone()),
        name: range.relname.clone(),
        alias: range.alias.as_ref().map(|alias| alias.aliasname.clone()),
    }
}

fn compared(expr: &protobuf::AExpr, found: &mut Vec<ParamUse>) {
    let kind = AExprKind::try_from(expr.kind).unwrap_or(AExprKind::Undefined);
    if !matches!(
        kind,
        AExprKind::AexprOp
            | AExprKind::AexprIn
            | AExprKind::AexprLike
            | AExprKind::AexprIlike
            | AExprKind::AexprBetween
            | AExprKind::AexprNotBetween
            | AExprKind::AexprBetweenSym
            | AExprKind::AexprNotBetweenSym
            | AExprKind::AexprDistinct
            | AExprKind::AexprNotDistinct
    ) {
        return;
    }
    // Arithmetic (`amount * $1`) does not give the parameter the column's values; a comparison does.
    if kind == AExprKind::AexprOp {
        let operator = expr.name.last().and_then(|name| match name.node.as_ref()? {
            NodeEnum::String(s) => Some(s.sval.as_str()),
            _ => None,
        });
        if !matches!(
            operator,
            Some("=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "~~" | "!~~" | "~~*" | "!~~*")
        ) {
            return;
        }
    }
    let (Some(left), Some(right)) = (expr.lexpr.as_deref(), expr.rexpr.as_deref()) else {
        return;
    };
    for (column_side, param_side) in [(left, right), (right, left)] {
        if let Some((qualifier, column)) = column_of(column_side) {
            for number in params_of(param_side) {
                record(
                    found,
                    number,
                    ParamTarget::Column {
                        qualifier: qualifier.clone(),
                        column: column.clone(),
                    },
                );
            }
        }
    }
}

fn inserted(insert: &protobuf::InsertStmt, found: &mut Vec<ParamUse>) {
    let columns: Vec<&str> = insert
        .cols
        .iter()
        .filter_map(|col| match col.node.as_ref()? {
            NodeEnum::ResTarget(res) => Some(res.name.as_str()),
            _ => None,
        })
        .collect();
    let Some(NodeEnum::SelectStmt(select)) = insert
        .select_stmt
        .as_deref()
        .and_then(|node| node.node.as_ref())
    else {
        return;
    };
    for row in &select.values_lists {
        let Some(NodeEnum::List(values)) = row.node.as_ref() else {
            continue;
        };
        for (index, value) in values.items.iter().enumerate() {
            if let (Some(number), Some(column)) = (param_number(value), columns.get(index)) {
                record(
                    found,
                    number,
                    ParamTarget::Column {
                        qualifier: None,
                        column: column.to_string(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(qualifier: Option<&str>, name: &str) -> ParamTarget {
        ParamTarget::Column {
            qualifier: qualifier.map(str::to_string),
            column: name.to_string(),
        }
    }

    fn targets(sql: &str) -> Vec<ParamTarget> {
        replay_shape(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", e.reason))
            .params
            .into_iter()
            .map(|p| p.target)
            .collect()
    }

    #[test]
    fn each_parameter_is_the_column_it_is_compared_to() {
        let shape = replay_shape(
            "SELECT o.id FROM public.orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = $1 AND $2 < o.amount AND c.country IN ($3, $4) LIMIT $5",
        )
        .unwrap();
        assert_eq!(shape.kind, ReplayKind::Select);
        assert_eq!(
            shape.relations,
            vec![
                Relation {
                    schema: Some("public".into()),
                    name: "orders".into(),
                    alias: Some("o".into())
                },
                Relation {
                    schema: None,
                    name: "customers".into(),
                    alias: Some("c".into())
                },
            ]
        );
        let targets: Vec<ParamTarget> = shape.params.iter().map(|p| p.target.clone()).collect();
        assert_eq!(
            targets,
            vec![
                column(Some("o"), "status"),
                column(Some("o"), "amount"),
                column(Some("c"), "country"),
                column(Some("c"), "country"),
                ParamTarget::Limit,
            ]
        );
        assert_eq!(shape.relation_named("o").unwrap().name, "orders");
    }

    #[test]
    fn updates_inserts_deletes_and_casts() {
        assert_eq!(
            targets("UPDATE orders SET status = $1, note = $2::text WHERE id = $3"),
            vec![
                column(None, "status"),
                column(None, "note"),
                column(None, "id")
            ]
        );
        assert_eq!(
            targets("INSERT INTO orders (customer_id, amount) VALUES ($1, $2)"),
            vec![column(None, "customer_id"), column(None, "amount")]
        );
        assert_eq!(
            targets("DELETE FROM orders WHERE ordered_on BETWEEN $1 AND $2"),
            vec![column(None, "ordered_on"), column(None, "ordered_on")]
        );
        assert_eq!(
            replay_shape("SELECT count(*) FROM orders").unwrap().params,
            vec![]
        );
        let with =
            replay_shape("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent").unwrap();
        let names: Vec<&str> = with.relations.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["orders"]);
    }

    #[test]
    fn what_cannot_be_replayed_says_why() {
        let index = replay_shape("CREATE INDEX ON orders (amount)").unwrap_err();
        assert!(
            index.reason.contains("utility or DDL") && index.reason.contains("IndexStmt"),
            "{}",
            index.reason
        );
        // The tables it names, so the report lists it only when it touches a rehearsed one.
        assert_eq!(index.relations[0].name, "orders");
        let reason = |sql: &str| replay_shape(sql).unwrap_err().reason;
        assert!(reason("BEGIN").contains("transaction control"));
        let arithmetic = reason("SELECT * FROM orders WHERE amount * $1 > $2");
        assert!(arithmetic.contains("$1 is not compared"), "{arithmetic}");
        assert!(reason("SELECT 1; SELECT 2").contains("2 statements"));
        assert!(reason("SELEC 1").contains("does not parse"));
    }
}
