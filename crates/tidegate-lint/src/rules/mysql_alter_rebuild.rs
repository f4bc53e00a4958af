use tidegate_sql::mysql::Algorithm;

use crate::context::{Context, Violation};
use crate::mysql::{describe_operations, violation, MyContext};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// MySQL and MariaDB only. Flags an ALTER on a pre-existing table whose cheapest algorithm is INPLACE with a
    /// table rebuild (and no operation that needs COPY, which `mysql-alter-copy` reports): making a column NOT
    /// NULL, adding or replacing the primary key, `FORCE`, `ENGINE=InnoDB`, `OPTIMIZE TABLE`, `ROW_FORMAT=`, a
    /// first FULLTEXT index; on MySQL before 8.0.29 also DROP COLUMN and ADD COLUMN … AFTER.
    ///
    /// ## Why is this bad?
    /// An in-place rebuild lets reads and (usually) writes go on, but it rewrites the whole clustered index: it
    /// takes as long as a copy, needs as much disk again, logs every concurrent write in an online log that
    /// fails the ALTER when it outgrows `innodb_online_alter_log_max_size`, makes replicas lag by its full duration
    /// (they apply it after it finished on the primary), and at the end upgrades to an EXCLUSIVE metadata lock —
    /// which waits for every open transaction on the table while every new query queues behind it.
    ///
    /// ## Lock taken
    /// SHARED_UPGRADABLE metadata lock during the rebuild (SHARED_NO_WRITE when writes are not allowed), EXCLUSIVE
    /// at the start and to commit.
    ///
    /// ## PostgreSQL versions
    /// Not applicable: the rule is about MySQL and MariaDB (`--dialect mysql|mariadb`).
    ///
    /// ## Example
    /// ```sql mariadb
    /// SET SESSION lock_wait_timeout = 5;
    /// ALTER TABLE orders FORCE, ALGORITHM=INPLACE, LOCK=NONE;
    /// ```
    ///
    /// ## Use instead
    /// Run it off-peak with a short `lock_wait_timeout` and watch replica lag, or through an online
    /// schema-change tool (gh-ost, pt-online-schema-change) that throttles; for NOT NULL, a CHECK that the
    /// application already honours is often enough. Changes the server does in place without a rebuild are quiet:
    /// ```sql mariadb
    /// SET SESSION lock_wait_timeout = 5;
    /// ALTER TABLE orders ADD INDEX orders_customer (customer_id), ALGORITHM=NOCOPY, LOCK=NONE;
    /// ```
    pub struct MysqlAlterRebuild {
        severity: Warning,
        summary: "MySQL/MariaDB ALTER that rebuilds the table in place: long, and an exclusive lock at the end",
        size_sensitive: true,
    }
}

impl Rule for MysqlAlterRebuild {
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
            if analysis.cheapest() != Some(Algorithm::Inplace) {
                continue;
            }
            let rebuilding: Vec<&'static str> = analysis
                .operations
                .iter()
                .filter(|planned| {
                    planned.facts.cheapest == Algorithm::Inplace && planned.facts.rebuilds
                })
                .map(|planned| planned.operation.describe())
                .collect();
            if rebuilding.is_empty() {
                continue;
            }
            let writes = if analysis.concurrent_dml() {
                "writes go on but are logged and replayed"
            } else {
                "writes wait for the whole rebuild"
            };
            let mut found = violation(
                statement,
                format!(
                    "{} rebuilds {table} in place on {}: as long as a copy ({writes}), replicas lag by as long, and the final EXCLUSIVE metadata lock waits for every open transaction on {table}",
                    rebuilding.join(", "),
                    context.target()
                ),
            )
            .help("run it off-peak with `SET SESSION lock_wait_timeout = 5` (retrying on error 1205), or through gh-ost / pt-online-schema-change, which throttle on replica lag")
            .table(&MyContext::table_name(table));
            found.lock = Some(format!(
                "{} ({})",
                analysis
                    .operations
                    .iter()
                    .map(|planned| planned.facts.mdl)
                    .find(|mdl| *mdl == tidegate_sql::mysql::Mdl::NoWriteThenExclusive)
                    .unwrap_or(tidegate_sql::mysql::Mdl::UpgradableThenExclusive)
                    .describe(),
                describe_operations(analysis)
            ));
            violations.push(found);
        }
    }
}
