use tidegate_sql::{AlterSubcommand, ColumnFill, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD COLUMN … NOT NULL` without a `DEFAULT` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// Existing rows would hold NULL in the new column, so PostgreSQL rejects the statement as soon as the table
    /// has a single row: the migration passes on an empty development database and fails in production. Even
    /// when it succeeds, application code deployed before the migration does not write the column and its
    /// INSERTs start failing.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE (briefly, until the statement fails).
    ///
    /// ## PostgreSQL versions
    /// All. From PostgreSQL 11 a constant `DEFAULT` makes this a catalog-only change.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN currency text NOT NULL;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
    /// ```
    /// or add it nullable, backfill in batches, then make it NOT NULL (see `set-not-null-scan`).
    ///
    /// ## MySQL and MariaDB
    /// The same rule with `--dialect mysql|mariadb`, for a different failure: the ALTER succeeds (INSTANT on
    /// MariaDB 10.3+ and MySQL 8.0.12+) and gives existing rows the type's implicit value (0, '', a zero date),
    /// which no one chose; then every INSERT of the release still running that omits the column fails under strict
    /// sql_mode, the default since MySQL 5.7 and MariaDB 10.2.4, with error 1364 ("Field … doesn't have a default
    /// value"). Checked against MariaDB 10.11 in tidegate-sql's `mysql_online_ddl_against_mariadb` test. An
    /// `AUTO_INCREMENT` or generated column is filled by the server and is not flagged.
    ///
    /// ## MySQL example
    /// ```sql mariadb
    /// ALTER TABLE orders ADD COLUMN currency VARCHAR(3) NOT NULL;
    /// ```
    pub struct AddRequiredColumn {
        severity: Error,
        summary: "ADD COLUMN NOT NULL without DEFAULT fails on a table with rows",
        size_sensitive: false,
    }
}

impl Rule for AddRequiredColumn {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::app_compat(
            context,
            violations,
            crate::mysql::AppCompat::AddRequiredColumn,
        );
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if effect.operation
                == Operation::AlterTable(AlterSubcommand::AddColumn {
                    fill: ColumnFill::Null,
                    not_null: true,
                })
            {
                let column = effect.column.as_deref().unwrap_or("the column");
                violations.push(
                    Violation::new(statement, format!("adding NOT NULL column {column} without a DEFAULT fails as soon as {} has a row", effect.table))
                        .help("give it a constant DEFAULT (catalog-only from PostgreSQL 11), or add it nullable, backfill in batches, then SET NOT NULL")
                        .effect(effect),
                );
            }
        }
    }
}
