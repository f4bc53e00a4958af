use tidegate_sql::syntax::protobuf::ObjectType;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP VIEW` of a view this migration did not create (materialized views are `drop-table`'s).
    ///
    /// ## Why is this bad?
    /// Running application code, reports and other services query the view by name; from the commit on every
/// one of those queries fails with "relation does not exist". Views are often the compatibility layer of an
/// earlier rename, so the readers may be the ones nobody remembers.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the view: the drop waits for queries running on it and blocks new ones meanwhile.
/// No lock on the tables it reads.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP VIEW orders_summary;
    /// ```
    ///
    /// ## Use instead
    /// Find and release the readers first (`pg_stat_statements` shows who still queries it), then drop it with a
/// `tidegate:ignore drop-view` reason. A view this migration creates may be dropped freely:
/// ```sql
/// CREATE VIEW orders_scratch AS SELECT 1 AS id;
/// DROP VIEW orders_scratch;
/// ```
    pub struct DropView {
        severity: Warning,
        summary: "DROP VIEW breaks running code and reports that read the view",
        size_sensitive: false,
    }
}

impl Rule for DropView {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(context, &[ObjectType::ObjectView]) {
            violations.push(
                Violation::new(statement, format!("dropping view {name} breaks every running query that reads it"))
                    .help("release the code and reports that read the view first, then drop it with a tidegate:ignore reason"),
            );
        }
    }
}
