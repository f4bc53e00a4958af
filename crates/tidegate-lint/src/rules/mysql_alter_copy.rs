use tidegate_sql::mysql::{Algorithm, DdlOperation};

use crate::context::{Context, Violation};
use crate::mysql::{describe_operations, violation, MyContext};
use crate::registry::{declare_rule, Rule, RuleDoc};
use crate::Severity;

declare_rule! {
    /// ## What it does
    /// MySQL and MariaDB only. Flags an `ALTER TABLE` (or `CREATE INDEX`, `OPTIMIZE TABLE`) on a pre-existing
    /// table that the server can only run with `ALGORITHM=COPY`: changing a column's type (INT → BIGINT, any
    /// type change), shortening a VARCHAR, adding a STORED generated column, a CHECK constraint, a foreign key
    /// with `foreign_key_checks` on, dropping the primary key, `CONVERT TO CHARACTER SET`, repartitioning; on
    /// MySQL also widening a VARCHAR across 255 bytes. What the server can do comes from tidegate's online-DDL
    /// facts for the `--dialect` and `--db-version` given (MariaDB's are checked against a real MariaDB 10.11,
    /// MySQL's taken from the MySQL 8.0 manual).
    ///
    /// ## Why is this bad?
    /// A COPY builds a new table row by row under a SHARED_NO_WRITE metadata lock: reads go on, but every
    /// INSERT, UPDATE and DELETE on the table waits for the whole copy (minutes to hours on a large table), and the
    /// swap at the end takes an EXCLUSIVE lock that queues every query behind it.
    ///
    /// ## Lock taken
    /// SHARED_NO_WRITE metadata lock for the copy, then EXCLUSIVE to swap the tables.
    ///
    /// ## PostgreSQL versions
    /// Not applicable: the rule is about MySQL and MariaDB (`--dialect mysql|mariadb`).
    ///
    /// ## Example
    /// ```sql mariadb
    /// ALTER TABLE orders ADD CONSTRAINT quantity_positive CHECK (quantity > 0);
    /// ```
    ///
    /// ## Use instead
    /// Expand and contract: add the new column (instant), backfill it in batches, switch the application, drop
    /// the old one — or let an online schema-change tool (gh-ost, pt-online-schema-change) copy the table with
    /// writes going on.
    /// ```sql mariadb
    /// ALTER TABLE orders ADD COLUMN quantity_v2 BIGINT NULL, ALGORITHM=INSTANT;
    /// ```
    /// ```console
    /// $ tidegate backfill --table orders --set 'quantity_v2 = quantity' --where 'quantity_v2 IS NULL'
    /// ```
    pub struct MysqlAlterCopy {
        severity: Error,
        summary: "MySQL/MariaDB ALTER that can only COPY the table: writes blocked for the whole copy",
        size_sensitive: true,
    }
}

impl Rule for MysqlAlterCopy {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, dialect: crate::Dialect) -> bool {
        dialect != crate::Dialect::Postgres
    }

    fn check(&self, _context: &Context<'_>, _violations: &mut Vec<Violation>) {}

    fn check_mysql(&self, context: &MyContext<'_>, violations: &mut Vec<Violation>) {
        for (statement, analysis) in context.statements() {
            let (Some(table), true) = (&analysis.table, analysis.pre_existing) else {
                continue;
            };
            let copying: Vec<&'static str> = analysis
                .operations
                .iter()
                .filter(|planned| planned.facts.cheapest == Algorithm::Copy)
                .map(|planned| planned.operation.describe())
                .collect();
            if copying.is_empty() {
                continue;
            }
            let unknown = analysis
                .operations
                .iter()
                .all(|planned| planned.operation == DdlOperation::ModifyColumnUnknown);
            let requested = match &statement.kind {
                tidegate_sql::mysql::MyKind::Alter(alter) => alter.algorithm,
                _ => None,
            };
            let target = context.target();
            let mut message = format!(
                "{} on {table} can only run as ALGORITHM=COPY on {target}: every write to {table} waits for the whole copy",
                copying.join(", ")
            );
            if let Some(requested) = requested.filter(|requested| *requested < Algorithm::Copy) {
                message.push_str(&format!(
                    "; the server will refuse the ALGORITHM={} written here (error 1846)",
                    requested.name()
                ));
            }
            let mut found = violation(statement, message)
                .help("expand and contract instead (add a new column, `tidegate backfill` it, switch, drop the old one), or run it with an online schema-change tool (gh-ost, pt-online-schema-change)")
                .table(&MyContext::table_name(table));
            found.lock = Some(format!(
                "{} on {table} ({})",
                tidegate_sql::mysql::Mdl::NoWriteThenExclusive.describe(),
                describe_operations(analysis)
            ));
            if unknown {
                // tidegate has not seen the column's definition: it may only be a default or NULL change.
                found.message.push_str(" (assumed: the column's current definition is not in the migrations read; if only its default or position changes, it is cheaper)");
                found = found.severity(Severity::Warning);
            }
            violations.push(found);
        }
    }
}
