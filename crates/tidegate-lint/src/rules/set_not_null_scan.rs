use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER COLUMN … SET NOT NULL` (and PostgreSQL 18's `ADD CONSTRAINT … NOT NULL col` without
    /// `NOT VALID`) on a pre-existing table when no validated constraint already proves the column has no
    /// NULLs.
    ///
    /// ## Why is this bad?
    /// PostgreSQL scans the whole table to check for NULLs while holding ACCESS EXCLUSIVE: no reads or writes
    /// until the scan ends.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for a full scan; only momentarily when a validated `CHECK (col IS NOT NULL)` exists.
    ///
    /// ## PostgreSQL versions
    /// From PostgreSQL 12, a validated `CHECK (col IS NOT NULL)` lets SET NOT NULL skip the scan (tidegate sees
    /// it when the CHECK was added and validated earlier in the file or in earlier migrations, also on a table
    /// created before the linted history, such as a squashed baseline). PostgreSQL 18 can add the NOT NULL
    /// constraint itself as `NOT VALID` and validate it without blocking. Before 12 there is no scan-free way.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD CONSTRAINT orders_customer_id_not_null CHECK (customer_id IS NOT NULL) NOT VALID;
    /// -- separate transaction:
    /// ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_not_null;
    /// -- separate transaction: no scan now
    /// ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;
    /// ALTER TABLE orders DROP CONSTRAINT orders_customer_id_not_null;
    /// ```
    pub struct SetNotNullScan {
        severity: Error,
        summary: "SET NOT NULL scans the table under ACCESS EXCLUSIVE unless a validated CHECK proves it",
        size_sensitive: true,
    }
}

impl Rule for SetNotNullScan {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            let proven_by_constraint = match effect.operation {
                Operation::AlterTable(AlterSubcommand::SetNotNull {
                    proven_by_constraint,
                }) => proven_by_constraint,
                // PostgreSQL 18: `ADD CONSTRAINT … NOT NULL col` without NOT VALID scans just the same.
                Operation::AlterTable(AlterSubcommand::AddConstraint {
                    kind: ConstraintKind::NotNull,
                    not_valid: false,
                    ..
                }) => false,
                _ => continue,
            };
            if !effect.scan {
                continue;
            }
            let column = effect.column.as_deref().unwrap_or("the column");
            let table = &effect.table;
            let help = if proven_by_constraint {
                format!(
                    "{} ignores the CHECK constraint here; from PostgreSQL 12 it skips the scan",
                    context.pg_version
                )
            } else if context.pg_version.at_least(18) {
                format!("ALTER TABLE {table} ADD CONSTRAINT {column}_not_null NOT NULL {column} NOT VALID; then VALIDATE CONSTRAINT {column}_not_null in a separate transaction")
            } else if context.pg_version.at_least(12) {
                format!("ADD CONSTRAINT {column}_not_null CHECK ({column} IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT it in a separate transaction; then SET NOT NULL (no scan) and drop the CHECK")
            } else {
                format!("{} cannot skip this scan; run it in a maintenance window sized with `tidegate plan`, or upgrade to 12+", context.pg_version)
            };
            violations.push(
                Violation::new(statement, format!("making {table}.{column} NOT NULL scans the whole table while blocking reads and writes"))
                    .help(help)
                    .effect(effect),
            );
        }
    }
}
