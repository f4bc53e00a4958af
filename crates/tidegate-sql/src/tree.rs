//! Small readers over the `pg_query` parse tree: names, types, constants. Everything here reads nodes; nothing
//! looks at SQL text.

use pg_query::protobuf::{self, a_const, RangeVar};
use pg_query::{Node, NodeEnum};
use serde::Serialize;

/// A table name as written, optionally schema-qualified. Unquoted identifiers arrive lower-cased from the parser.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        Self {
            schema: schema.filter(|s| !s.is_empty()).map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn from_range_var(range_var: &RangeVar) -> Self {
        Self::new(Some(&range_var.schemaname), &range_var.relname)
    }

    /// A name from a dotted list of `String` nodes (`DROP TABLE a.b`).
    pub fn from_name_list(items: &[Node]) -> Option<Self> {
        let parts: Vec<&str> = items.iter().filter_map(string_value).collect();
        match parts.as_slice() {
            [name] => Some(Self::new(None, name)),
            [.., schema, name] => Some(Self::new(Some(schema), name)),
            [] => None,
        }
    }

    /// The lookup key: the schema defaults to `public` (tidegate does not model `search_path`).
    pub fn key(&self) -> (String, String) {
        (
            self.schema.clone().unwrap_or_else(|| "public".to_string()),
            self.name.clone(),
        )
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The value of a `String` node.
pub fn string_value(node: &Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

/// The integer value of an `Integer` node or an integer `A_Const`.
pub fn integer_value(node: &Node) -> Option<i64> {
    match node.node.as_ref()? {
        NodeEnum::Integer(i) => Some(i64::from(i.ival)),
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Ival(i) => Some(i64::from(i.ival)),
            _ => None,
        },
        _ => None,
    }
}

/// A column type reduced to what tidegate reasons about: the type's base name (`int4`, `varchar`,
/// `timestamptz`, `serial`), its modifiers (`varchar(20)` → `[20]`) and whether it is an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ColumnType {
    pub name: String,
    pub modifiers: Vec<i64>,
    pub array: bool,
}

impl ColumnType {
    pub fn from_type_name(type_name: &protobuf::TypeName) -> Self {
        let name = type_name
            .names
            .iter()
            .filter_map(string_value)
            .next_back()
            .unwrap_or_default()
            .to_string();
        Self {
            name: canonical_type_name(&name).to_string(),
            modifiers: type_name.typmods.iter().filter_map(integer_value).collect(),
            array: !type_name.array_bounds.is_empty(),
        }
    }

    pub fn is_serial(&self) -> bool {
        matches!(
            self.name.as_str(),
            "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
        )
    }

    /// Whether changing a column from `self` to `new` leaves the stored bytes valid, so PostgreSQL neither
    /// rewrites the table nor rebuilds its indexes. Only conversions PostgreSQL documents as binary-coercible
    /// (or typmod-only relaxations) are listed; anything else is assumed to rewrite.
    pub fn converts_without_rewrite_to(&self, new: &ColumnType) -> bool {
        if self.array != new.array {
            return false;
        }
        let widening = |old: &[i64], new: &[i64]| match (old, new) {
            (_, []) => true,
            ([old], [new]) => new >= old,
            _ => false,
        };
        match (self.name.as_str(), new.name.as_str()) {
            (old, new_name) if old == new_name && self.modifiers == new.modifiers => true,
            ("varchar", "varchar") | ("varbit", "varbit") => {
                widening(&self.modifiers, &new.modifiers)
            }
            ("varchar", "text") | ("text", "text") => true,
            ("text", "varchar") => new.modifiers.is_empty(),
            ("numeric", "numeric") => match (self.modifiers.as_slice(), new.modifiers.as_slice()) {
                (_, []) => true,
                ([old_precision], [new_precision]) => new_precision >= old_precision,
                ([old_precision, old_scale], [new_precision, new_scale]) => {
                    new_scale == old_scale && new_precision >= old_precision
                }
                _ => false,
            },
            ("timestamp", "timestamp")
            | ("timestamptz", "timestamptz")
            | ("time", "time")
            | ("interval", "interval") => widening(&self.modifiers, &new.modifiers),
            ("cidr", "inet") => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if !self.modifiers.is_empty() {
            let modifiers: Vec<String> = self.modifiers.iter().map(i64::to_string).collect();
            write!(f, "({})", modifiers.join(","))?;
        }
        if self.array {
            f.write_str("[]")?;
        }
        Ok(())
    }
}

/// The parser already maps SQL-standard spellings (`integer`, `character varying`) to internal names; this folds
/// the remaining aliases users can write directly.
fn canonical_type_name(name: &str) -> &str {
    match name {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "character varying" => "varchar",
        "decimal" => "numeric",
        "bool" | "boolean" => "bool",
        "float" | "double precision" => "float8",
        "real" => "float4",
        other => other,
    }
}

/// The function name of a call (`pg_catalog.now` → `now`).
pub fn function_name(call: &protobuf::FuncCall) -> Option<&str> {
    call.funcname.iter().filter_map(string_value).next_back()
}

/// Functions PostgreSQL marks VOLATILE that people use as column defaults. A default calling one of these is
/// evaluated per row, so `ADD COLUMN … DEFAULT` rewrites the table even on PostgreSQL 11+.
pub const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
    "pg_current_xact_id",
];

/// Whether an expression calls a known volatile function anywhere inside it.
pub fn calls_volatile_function(node: &Node) -> bool {
    let mut found = false;
    visit_expression(node, &mut |inner| {
        if let NodeEnum::FuncCall(call) = inner {
            if function_name(call).is_some_and(|name| VOLATILE_FUNCTIONS.contains(&name)) {
                found = true;
            }
        }
    });
    found
}

/// Visits the nodes of a scalar expression (operators, calls, casts, boolean logic, CASE, lists). Subqueries are
/// not entered.
pub fn visit_expression(node: &Node, visit: &mut dyn FnMut(&NodeEnum)) {
    let Some(inner) = node.node.as_ref() else {
        return;
    };
    visit(inner);
    let mut children: Vec<&Node> = Vec::new();
    match inner {
        NodeEnum::FuncCall(call) => children.extend(call.args.iter()),
        NodeEnum::TypeCast(cast) => children.extend(cast.arg.as_deref()),
        NodeEnum::AExpr(expr) => {
            children.extend(expr.lexpr.as_deref());
            children.extend(expr.rexpr.as_deref());
        }
        NodeEnum::BoolExpr(expr) => children.extend(expr.args.iter()),
        NodeEnum::NullTest(test) => children.extend(test.arg.as_deref()),
        NodeEnum::List(list) => children.extend(list.items.iter()),
        NodeEnum::CoalesceExpr(expr) => children.extend(expr.args.iter()),
        NodeEnum::CaseExpr(expr) => {
            children.extend(expr.arg.as_deref());
            children.extend(expr.args.iter());
            children.extend(expr.defresult.as_deref());
        }
        NodeEnum::CaseWhen(when) => {
            children.extend(when.expr.as_deref());
            children.extend(when.result.as_deref());
        }
        _ => {}
    }
    for child in children {
        visit_expression(child, visit);
    }
}

/// The last field of a column reference (`o.id` → `id`) and its qualifier if any.
pub fn column_reference(node: &Node) -> Option<(Option<&str>, &str)> {
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(column) => {
            let fields: Vec<&str> = column.fields.iter().filter_map(string_value).collect();
            match fields.as_slice() {
                [name] => Some((None, name)),
                [.., qualifier, name] => Some((Some(qualifier), name)),
                [] => None,
            }
        }
        _ => None,
    }
}

/// Whether an expression is a constant or a parameter (a literal, `$1`, a cast of one, a negative number, or
/// arithmetic on those).
pub fn is_constant(node: &Node) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(_)) | Some(NodeEnum::ParamRef(_)) => true,
        Some(NodeEnum::TypeCast(cast)) => cast.arg.as_deref().is_some_and(is_constant),
        // `-1`, and arithmetic on constants such as `$1 + 1000`.
        Some(NodeEnum::AExpr(expr)) => {
            expr.kind == protobuf::AExprKind::AexprOp as i32
                && expr.lexpr.as_deref().is_none_or(is_constant)
                && expr.rexpr.as_deref().is_some_and(is_constant)
        }
        _ => false,
    }
}

/// The operator name of an `A_Expr` (`=`, `>=`, …).
pub fn operator_name(expr: &protobuf::AExpr) -> Option<&str> {
    expr.name.iter().filter_map(string_value).next_back()
}

/// The string of an `A_Const` string literal.
pub fn string_constant(node: &Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Sval(s) => Some(&s.sval),
            _ => None,
        },
        NodeEnum::TypeCast(cast) => string_constant(cast.arg.as_deref()?),
        _ => None,
    }
}

/// Tables named directly in a FROM list (joins walked, subqueries not).
pub fn from_tables(from: &[Node], out: &mut Vec<RangeVar>) {
    for item in from {
        match item.node.as_ref() {
            Some(NodeEnum::RangeVar(range_var)) => out.push(range_var.clone()),
            Some(NodeEnum::JoinExpr(join)) => {
                let sides: Vec<Node> = [join.larg.as_deref(), join.rarg.as_deref()]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                from_tables(&sides, out);
            }
            _ => {}
        }
    }
}

/// A `DefElem` option list entry's name, e.g. `concurrently` in `REINDEX (CONCURRENTLY) …`.
pub fn has_option(options: &[Node], name: &str) -> bool {
    options.iter().any(|option| match option.node.as_ref() {
        Some(NodeEnum::DefElem(element)) => {
            element.defname.eq_ignore_ascii_case(name)
                && element
                    .arg
                    .as_deref()
                    .map(|arg| match arg.node.as_ref() {
                        Some(NodeEnum::Boolean(b)) => b.boolval,
                        Some(NodeEnum::String(s)) => !matches!(s.sval.as_str(), "false" | "off"),
                        Some(NodeEnum::Integer(i)) => i.ival != 0,
                        _ => true,
                    })
                    .unwrap_or(true)
        }
        _ => false,
    })
}

/// The string literals of a statement's text, as PostgreSQL's scanner reads them (quotes removed, `''`
/// unescaped). Used where the parse tree is too deep to walk for one question ("is this enum value used?").
pub fn string_literals(sql: &str) -> Vec<String> {
    if sql.contains('\0') {
        return Vec::new();
    }
    let Ok(tokens) = pg_query::scan_tokens(sql) else {
        return Vec::new();
    };
    tokens
        .into_iter()
        .filter(|token| token.token == protobuf::Token::Sconst as i32)
        .filter_map(|token| {
            let start = usize::try_from(token.start).ok()?;
            let end = usize::try_from(token.end).ok()?;
            let literal = sql.get(start..end)?;
            let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
            Some(inner.replace("''", "'"))
        })
        .collect()
}

/// The identifiers of a statement's text longer than `max_bytes`, as written (PostgreSQL's scanner truncates
/// them to 63 bytes before the parse tree exists, so only the text still has the full name): each with its
/// byte offset in `sql` and its name (quotes removed, `""` unescaped).
pub fn long_identifiers(sql: &str, max_bytes: usize) -> Vec<(usize, String)> {
    if sql.contains('\0') {
        return Vec::new();
    }
    let Ok(tokens) = pg_query::scan_tokens(sql) else {
        return Vec::new();
    };
    tokens
        .into_iter()
        .filter(|token| token.token == protobuf::Token::Ident as i32)
        .filter_map(|token| {
            let start = usize::try_from(token.start).ok()?;
            let end = usize::try_from(token.end).ok()?;
            let written = sql.get(start..end)?;
            let name = match written.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => written.to_string(),
            };
            (name.len() > max_bytes).then_some((start, name))
        })
        .collect()
}

/// The names a `WITH` clause defines: relations in FROM with these names are CTEs, not tables.
pub fn cte_names(with_clause: Option<&protobuf::WithClause>) -> Vec<String> {
    with_clause
        .map(|with_clause| {
            with_clause
                .ctes
                .iter()
                .filter_map(|cte| match cte.node.as_ref() {
                    Some(NodeEnum::CommonTableExpr(cte)) => Some(cte.ctename.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
