use tidegate_sql::syntax::protobuf::AlterTableType;

use crate::context::{pre_existing_alter_commands, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … ALTER COLUMN … DROP EXPRESSION` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// The column keeps its current values but stops being computed: rows written from the commit on get NULL
    /// (or the column's default) unless every writer now sets it, and the running application does not, since
    /// PostgreSQL refused writes to a generated column until now. Readers that relied on the value being
    /// derived (`total = price * quantity`) silently get stale or missing values.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (the stored values are kept: no rewrite).
    ///
    /// ## PostgreSQL versions
    /// 13 and later (`DROP EXPRESSION` does not exist before).
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE order_lines ALTER COLUMN total DROP EXPRESSION;
    /// ```
    ///
    /// ## Use instead
    /// Add a plain column, fill it from the generated one with `tidegate backfill`, move writers and readers to
    /// it, then drop the generated column:
    /// ```sql
    /// ALTER TABLE order_lines ADD COLUMN total_amount numeric;
    /// ```
    pub struct DropGeneratedExpression {
        severity: Warning,
        summary: "DROP EXPRESSION stops computing a column that running code never writes",
        size_sensitive: false,
    }
}

impl Rule for DropGeneratedExpression {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect, command) in
            pre_existing_alter_commands(context, &[AlterTableType::AtDropExpression])
        {
            violations.push(
                Violation::new(statement, format!("dropping the expression of {}.{} stops computing it: rows written by code that never sets it get NULL", effect.table, command.name))
                    .help("add a plain column, backfill it, move writers and readers to it, then drop the generated column")
                    .effect(effect),
            );
        }
    }
}
