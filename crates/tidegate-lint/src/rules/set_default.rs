use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … ALTER COLUMN … SET DEFAULT` on a pre-existing table. Off by default: most default
    /// changes are intended; turn it on where writers must never be surprised.
    ///
    /// ## Why is this bad?
    /// Every insert that leaves the column out, including those of the application version still running and
    /// of other services, stores the new default from the commit on. When the default carries meaning (a
    /// status, a currency, a flag) old writers start creating rows that mean something they did not intend.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (existing rows are not touched).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ALTER COLUMN currency SET DEFAULT 'USD';
    /// ```
    ///
    /// ## Use instead
    /// Make writers set the value explicitly before changing what the default means. A default on a column the
    /// migration adds is not reported:
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN channel text DEFAULT 'web';
    /// ```
    pub struct SetDefault {
        severity: Warning,
        summary: "SET DEFAULT changes what inserts of running code store",
        size_sensitive: false,
        enabled_by_default: false,
    }
}

impl Rule for SetDefault {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation == Operation::AlterTable(AlterSubcommand::SetDefault) {
                let column = effect.column.as_deref().unwrap_or_default();
                violations.push(
                    Violation::new(statement, format!("a new default for {}.{column} changes what inserts that leave it out store, old code's included", effect.table))
                        .help("make writers set the value explicitly before changing the default")
                        .effect(effect),
                );
            }
        }
    }
}
