use crate::context::{Context, Violation};
use crate::mysql::{algorithm_clause, violation, MyContext};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// MySQL and MariaDB only. Flags an `ALTER TABLE`, `CREATE INDEX` or `DROP INDEX` on a pre-existing table
    /// that says neither `ALGORITHM=` nor `LOCK=` (nor MariaDB's `ALTER ONLINE`). The help gives the clause that
    /// matches what the server can do for the statement (from the online-DDL facts of `--dialect` and
    /// `--db-version`).
    ///
    /// ## Why is this bad?
    /// Without them the server silently picks the cheapest algorithm it can — which, for a change that turns out
    /// not to be instant on this version, this row format or this table, is a full copy with writes blocked.
    /// With `ALGORITHM=INSTANT` (or `NOCOPY`/`INPLACE`) and `LOCK=NONE` written down, the same statement fails
    /// at once with error 1845/1846 instead, and nothing has happened to the table.
    ///
    /// ## Lock taken
    /// Whatever the algorithm the server picks takes (see `mysql-alter-copy`, `mysql-alter-rebuild`).
    ///
    /// ## PostgreSQL versions
    /// Not applicable: the rule is about MySQL and MariaDB (`--dialect mysql|mariadb`).
    ///
    /// ## Example
    /// ```sql mysql
    /// ALTER TABLE orders ADD COLUMN note VARCHAR(200) NULL;
    /// ```
    ///
    /// ## Use instead
    /// ```sql mysql
    /// ALTER TABLE orders ADD COLUMN note VARCHAR(200) NULL, ALGORITHM=INSTANT;
    /// ```
    pub struct MysqlAlgorithmUnspecified {
        severity: Warning,
        summary: "MySQL/MariaDB ALTER without ALGORITHM=/LOCK=: the server may silently copy instead of failing fast",
        size_sensitive: false,
    }
}

impl Rule for MysqlAlgorithmUnspecified {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, dialect: crate::Dialect) -> bool {
        dialect != crate::Dialect::Postgres
    }

    fn check(&self, _context: &Context<'_>, _violations: &mut Vec<Violation>) {}

    fn check_mysql(&self, context: &MyContext<'_>, violations: &mut Vec<Violation>) {
        for (statement, analysis) in context.statements() {
            let tidegate_sql::mysql::MyKind::Alter(alter) = &statement.kind else {
                continue;
            };
            let (Some(table), true) = (&analysis.table, analysis.pre_existing) else {
                continue;
            };
            if alter.algorithm.is_some() || alter.lock.is_some() || alter.online {
                continue;
            }
            // A COPY is `mysql-alter-copy`'s to report; asking for it explicitly would fail nothing faster.
            if analysis.cheapest() == Some(tidegate_sql::mysql::Algorithm::Copy) {
                continue;
            }
            // RENAME TABLE and the partition maintenance MariaDB takes no ALGORITHM with have nothing to say.
            let Some(clause) = algorithm_clause(context.target(), analysis) else {
                continue;
            };
            if analysis
                .operations
                .iter()
                .all(|planned| planned.operation == tidegate_sql::mysql::DdlOperation::RenameTable)
            {
                continue;
            }
            violations.push(
                violation(
                    statement,
                    format!(
                        "ALTER on {table} names no ALGORITHM= or LOCK=: if the server cannot do it the cheap way, it silently copies {table} with writes blocked instead of failing"
                    ),
                )
                .help(format!(
                    "add `{clause}` (what {} can do for this statement), so a more expensive plan fails at once with error 1845/1846",
                    context.target()
                ))
                .table(&MyContext::table_name(table)),
            );
        }
    }
}
