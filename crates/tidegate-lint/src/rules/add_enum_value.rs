use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TYPE … ADD VALUE`. Off by default: most clients map enums to strings; turn it on when they
    /// map them to closed enums.
    ///
    /// ## Why is this bad?
    /// Once the value exists, new code writes it and the application version still running reads it. Clients
    /// that decode the column into a closed enum (generated ORM models, protobuf/GraphQL enums, a `match` with
    /// no default arm) fail on the first row that holds it, far from the migration.
    ///
    /// ## Lock taken
    /// No table lock.
    ///
    /// ## PostgreSQL versions
    /// All (see `enum-add-value-in-transaction` for the transaction limits before PostgreSQL 12).
    ///
    /// ## Example
    /// ```sql
    /// ALTER TYPE order_status ADD VALUE 'on_hold' AFTER 'paid';
    /// ```
    ///
    /// ## Use instead
    /// Release readers that accept the new value (or ignore unknown ones) first, then add it with a
    /// `tidegate:ignore add-enum-value` reason. Creating a new enum type is not reported:
    /// ```sql
    /// CREATE TYPE refund_status AS ENUM ('requested', 'approved', 'paid');
    /// ```
    pub struct AddEnumValue {
        severity: Warning,
        summary: "ADD VALUE sends running code an enum value it may not decode",
        size_sensitive: false,
        enabled_by_default: false,
    }
}

impl Rule for AddEnumValue {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterEnumStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            if !alter.old_val.is_empty() || alter.new_val.is_empty() {
                continue;
            }
            let type_name = alter
                .type_name
                .iter()
                .filter_map(tidegate_sql::syntax::string_value)
                .collect::<Vec<_>>()
                .join(".");
            violations.push(
                Violation::new(statement, format!("'{}' becomes a value of {type_name}: readers that decode it into a closed enum fail on it", alter.new_val))
                    .help("release readers that accept the new value first"),
            );
        }
    }
}
