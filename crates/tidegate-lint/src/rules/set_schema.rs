use tidegate_sql::syntax::protobuf::ObjectType;
use tidegate_sql::syntax::NodeEnum;
use tidegate_sql::TableName;

use crate::context::{object_name, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER … SET SCHEMA` (tables, views, sequences, functions, types, …) of an object this migration
    /// did not create.
    ///
    /// ## Why is this bad?
    /// Running code finds the object by its schema-qualified name or through its `search_path`; once it
    /// moves, every query that names it the old way fails with "does not exist" (or, worse, finds another
    /// object of the same name earlier in the `search_path`). Moving a table moves its indexes, constraints and
    /// owned sequences with it.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on a moved table, view or sequence, briefly once granted; the catalog entry of other
    /// objects.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders SET SCHEMA sales;
    /// ```
    ///
    /// ## Use instead
    /// Move the object and leave a view (or wrapper function) under the old name until every reader has moved,
    /// in one transaction, with a `tidegate:ignore set-schema` reason; or create it in the new schema from the
    /// start:
    /// ```sql
    /// CREATE TABLE sales.invoices (id bigint PRIMARY KEY);
    /// ```
    pub struct SetSchema {
        severity: Warning,
        summary: "SET SCHEMA moves an object away from the name running code uses",
        size_sensitive: false,
    }
}

impl Rule for SetSchema {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterObjectSchemaStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            let kind = ObjectType::try_from(alter.object_type).unwrap_or_default();
            let (name, table) = match &alter.relation {
                Some(relation) => {
                    let table = TableName::from_range_var(relation);
                    (table.to_string(), Some(table))
                }
                None => (
                    alter.object.as_deref().map(object_name).unwrap_or_default(),
                    None,
                ),
            };
            if table
                .as_ref()
                .is_some_and(|table| !context.is_pre_existing(table))
                && matches!(kind, ObjectType::ObjectTable)
            {
                continue;
            }
            let mut violation = Violation::new(
                statement,
                format!(
                    "moving {name} to schema {} breaks every query that names it the old way",
                    alter.newschema
                ),
            )
            .help("leave a view or wrapper under the old name until every reader has moved");
            if let Some(table) = &table {
                violation = violation.table(table);
            }
            violations.push(violation);
        }
    }
}
