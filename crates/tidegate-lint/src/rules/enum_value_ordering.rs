use tidegate_sql::syntax::NodeEnum;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Reports `ALTER TYPE … ADD VALUE` without `BEFORE` or `AFTER`.
    ///
    /// ## Why is this bad?
    /// An enum sorts by the order of its values, not alphabetically: `ORDER BY status`, `status < 'shipped'`,
    /// `max(status)` and range partitions on the column all follow it. A value added without a position goes to
    /// the end, which is right for some enums (a new last stage) and silently wrong for others (a stage between
    /// two existing ones sorts after all of them). Saying where the value goes makes the decision visible.
    ///
    /// ## Lock taken
    /// No table lock. (Before PostgreSQL 12 the statement cannot run inside a transaction block; see
    /// `enum-add-value-in-transaction`.)
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TYPE order_status ADD VALUE 'packed';
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TYPE order_status ADD VALUE 'packed' AFTER 'paid';
    /// ```
    pub struct EnumValueOrdering {
        severity: Info,
        summary: "ADD VALUE without BEFORE/AFTER puts the value last in the enum's sort order",
        size_sensitive: false,
    }
}

impl Rule for EnumValueOrdering {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterEnumStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            if !alter.old_val.is_empty()
                || alter.new_val.is_empty()
                || !alter.new_val_neighbor.is_empty()
            {
                continue;
            }
            let type_name = alter
                .type_name
                .iter()
                .filter_map(tidegate_sql::syntax::string_value)
                .collect::<Vec<_>>()
                .join(".");
            violations.push(
                Violation::new(statement, format!("'{}' goes last in the sort order of {type_name}: ORDER BY and comparisons on it follow that order", alter.new_val))
                    .help("say where the value belongs with BEFORE 'x' or AFTER 'x'"),
            );
        }
    }
}
