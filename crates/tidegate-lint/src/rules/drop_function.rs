use tidegate_sql::syntax::protobuf::ObjectType;

use crate::context::{dropped_objects, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `DROP FUNCTION`, `DROP PROCEDURE`, `DROP ROUTINE` and `DROP AGGREGATE` of a routine this migration did not create.
    ///
    /// ## Why is this bad?
    /// Application queries, `CALL`s, other functions, column defaults, CHECK constraints and triggers call the
/// routine by name. Callers in application code fail from the commit on ("function does not exist"); objects
/// in the database that depend on it make the drop fail, or with `CASCADE` are dropped with it, silently
/// removing triggers and defaults. Function bodies are not checked when the function is dropped, so another
/// function calling it only fails when it runs.
    ///
    /// ## Lock taken
    /// No table lock; the routine's own catalog entry is locked. Running calls finish; the next call fails.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// DROP FUNCTION order_total(bigint);
    /// ```
    ///
    /// ## Use instead
    /// Release the callers first and check `pg_depend` / `pg_proc.prosrc` for other users, then drop it with a
/// `tidegate:ignore drop-function` reason. A routine this migration creates may be dropped freely:
/// ```sql
/// CREATE FUNCTION scratch_total(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT $1';
/// DROP FUNCTION scratch_total(bigint);
/// ```
    pub struct DropFunction {
        severity: Warning,
        summary: "DROP FUNCTION / PROCEDURE breaks callers, triggers and defaults that use it",
        size_sensitive: false,
    }
}

impl Rule for DropFunction {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, _, name) in dropped_objects(
            context,
            &[
                ObjectType::ObjectFunction,
                ObjectType::ObjectProcedure,
                ObjectType::ObjectRoutine,
                ObjectType::ObjectAggregate,
            ],
        ) {
            violations.push(
                Violation::new(statement, format!("dropping {name} breaks every caller that still uses it (application code, other functions, triggers, defaults)"))
                    .help("release the callers first, then drop it in a later migration with a tidegate:ignore reason"),
            );
        }
    }
}
