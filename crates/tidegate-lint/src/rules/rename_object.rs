use tidegate_sql::syntax::protobuf::ObjectType;
use tidegate_sql::syntax::NodeEnum;
use tidegate_sql::TableName;

use crate::context::{object_name, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};
use crate::Severity;

declare_rule! {
    /// ## What it does
    /// Flags `ALTER … RENAME` of objects other than tables, views and columns (those are `rename-table` and
    /// `rename-column`): functions, procedures, types, enum values, domains, schemas, sequences, indexes,
    /// constraints, triggers and policies. Renaming an index, constraint, trigger or policy is reported as
    /// info: only code that names them (`ON CONFLICT ON CONSTRAINT`, index hints, error handling on constraint
    /// names) breaks.
    ///
    /// ## Why is this bad?
    /// Running code refers to these objects by name: it calls the function, casts to the type, compares with
    /// the enum value (`status = 'shipped'`), names the schema and the sequence (`nextval('orders_id_seq')`).
    /// From the commit on, the application version still running fails wherever it uses the old name, and
    /// there is no deploy order in which both versions work.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table for indexes, constraints, triggers, policies and sequences, briefly once
    /// granted; the catalog entry of the other objects.
    ///
    /// ## PostgreSQL versions
    /// All (`ALTER TYPE … RENAME VALUE` since 10).
    ///
    /// ## Example
    /// ```sql
    /// ALTER FUNCTION order_total(bigint) RENAME TO order_amount;
    /// ALTER TYPE order_status RENAME VALUE 'sent' TO 'shipped';
    /// ```
    ///
    /// ## Use instead
    /// Create the object under the new name beside the old one (a wrapper function, a new enum value), move
    /// callers, then drop the old name. A new function that calls the old one:
    /// ```sql
    /// CREATE FUNCTION order_amount(bigint) RETURNS numeric LANGUAGE sql AS 'SELECT order_total($1)';
    /// ```
    pub struct RenameObject {
        severity: Warning,
        summary: "Renaming a function, type, enum value, schema, sequence or index breaks code using the old name",
        size_sensitive: false,
    }
}

impl Rule for RenameObject {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let rename = match statement.node.as_deref() {
                Some(NodeEnum::RenameStmt(rename)) => rename,
                Some(NodeEnum::AlterEnumStmt(alter)) if !alter.old_val.is_empty() => {
                    let type_name = alter
                        .type_name
                        .iter()
                        .filter_map(tidegate_sql::syntax::string_value)
                        .collect::<Vec<_>>()
                        .join(".");
                    violations.push(
                        Violation::new(statement, format!("renaming value '{}' of enum {type_name} to '{}' breaks running code that compares with or writes the old value", alter.old_val, alter.new_val))
                            .help("add the new value beside the old one, move writers and readers, then stop using the old value"),
                    );
                    continue;
                }
                _ => continue,
            };
            let kind = ObjectType::try_from(rename.rename_type).unwrap_or_default();
            let relation_type = ObjectType::try_from(rename.relation_type).unwrap_or_default();
            let table = rename.relation.as_ref().map(TableName::from_range_var);
            let object = rename
                .object
                .as_deref()
                .map(object_name)
                .unwrap_or_default();
            let (noun, name, minor) = match kind {
                ObjectType::ObjectFunction
                | ObjectType::ObjectProcedure
                | ObjectType::ObjectRoutine
                | ObjectType::ObjectAggregate => ("routine", object, false),
                ObjectType::ObjectType | ObjectType::ObjectDomain => ("type", object, false),
                ObjectType::ObjectAttribute => {
                    ("attribute", format!("{object}.{}", rename.subname), false)
                }
                ObjectType::ObjectColumn if relation_type == ObjectType::ObjectType => (
                    "attribute",
                    format!(
                        "{}.{}",
                        table.as_ref().map(ToString::to_string).unwrap_or_default(),
                        rename.subname
                    ),
                    false,
                ),
                ObjectType::ObjectSchema => ("schema", rename.subname.clone(), false),
                ObjectType::ObjectSequence => (
                    "sequence",
                    table.as_ref().map(ToString::to_string).unwrap_or_default(),
                    false,
                ),
                ObjectType::ObjectIndex => (
                    "index",
                    table.as_ref().map(ToString::to_string).unwrap_or_default(),
                    true,
                ),
                ObjectType::ObjectTabconstraint | ObjectType::ObjectDomconstraint => {
                    ("constraint", rename.subname.clone(), true)
                }
                ObjectType::ObjectTrigger => ("trigger", rename.subname.clone(), true),
                ObjectType::ObjectPolicy => ("policy", rename.subname.clone(), true),
                _ => continue,
            };
            // Objects on a table this migration created reach no running code.
            if matches!(
                kind,
                ObjectType::ObjectTabconstraint
                    | ObjectType::ObjectTrigger
                    | ObjectType::ObjectPolicy
            ) && table
                .as_ref()
                .is_some_and(|table| !context.is_pre_existing(table))
            {
                continue;
            }
            let violation = if minor {
                Violation::new(
                    statement,
                    format!("renaming {noun} {name} to {} breaks running code that names it (ON CONFLICT ON CONSTRAINT, hints, error handling)", rename.newname),
                )
                .help("check that no code names it; the rename is otherwise harmless")
                .severity(Severity::Info)
            } else {
                Violation::new(
                    statement,
                    format!("renaming {noun} {name} to {} breaks running code that uses the old name", rename.newname),
                )
                .help("create the new name beside the old one (a wrapper, a view), move callers, then drop the old name")
            };
            violations.push(violation);
        }
    }
}
