use crate::context::{without_lock_timeout, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags the first statement of a migration that requests a lock blocking application traffic (SHARE or
    /// stronger) on a pre-existing table while no `lock_timeout` is set.
    ///
    /// ## Why is this bad?
    /// A lock request waits behind every transaction already holding a conflicting lock (a long report, an idle
    /// transaction left open by a worker). While it waits, every new query on the table queues behind it, even
    /// plain SELECTs when the request is ACCESS EXCLUSIVE. A DDL statement that would take milliseconds turns
    /// into an outage lasting as long as the longest transaction. A `lock_timeout` makes the statement give up
    /// instead, and it can be retried.
    ///
    /// ## Lock taken
    /// Whatever the statement takes; the hazard is the time spent waiting for it.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ADD COLUMN note text;
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// SET lock_timeout = '2s';
    /// ALTER TABLE orders ADD COLUMN note text;
    /// ```
    /// `tidegate apply` sets a lock_timeout and retries with backoff for you.
    ///
    /// ## MySQL and MariaDB
    /// With `--dialect mysql|mariadb`: the first ALTER, CREATE/DROP INDEX, RENAME, TRUNCATE, DROP or OPTIMIZE
    /// on a pre-existing table with no `SET [SESSION] lock_wait_timeout = n` (n ≤ 300 s) before it and, on
    /// MariaDB, no `WAIT n`/`NOWAIT` on the statement. Even an INSTANT ALTER needs an exclusive metadata lock; it
    /// waits behind any open transaction that read the table, and every later query waits behind it, for up to
    /// `lock_wait_timeout` (MySQL's default: a year; MariaDB's: a day). Both timeouts are error 1205.
    ///
    /// ## MySQL example
    /// ```sql mariadb
    /// ALTER TABLE orders ADD COLUMN note TEXT, ALGORITHM=INSTANT;
    /// ```
    ///
    /// ## MySQL use instead
    /// ```sql mariadb
    /// SET SESSION lock_wait_timeout = 5;
    /// ALTER TABLE orders ADD COLUMN note TEXT, ALGORITHM=INSTANT;
    /// ALTER TABLE orders WAIT 5 ADD COLUMN tag TEXT, ALGORITHM=INSTANT;
    /// ```
    pub struct MissingLockTimeout {
        severity: Warning,
        summary: "A blocking lock on a pre-existing table requested with no lock_timeout set",
        size_sensitive: false,
    }
}

impl Rule for MissingLockTimeout {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn runs_on(&self, _dialect: crate::Dialect) -> bool {
        true
    }

    fn check_mysql(&self, context: &crate::mysql::MyContext<'_>, violations: &mut Vec<Violation>) {
        crate::mysql::missing_lock_timeout(context, violations);
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        // Reported once per file: at the first statement that needs a lock_timeout and runs without one.
        let Some(statement) = context
            .facts
            .first_without_lock_timeout
            .and_then(|index| context.statement(index))
        else {
            return;
        };
        {
            if let Some(effect) = without_lock_timeout(statement) {
                violations.push(
                    Violation::new(
                        statement,
                        format!(
                            "{} on {} is requested with no lock_timeout: while it waits for running transactions, every query on {} queues behind it",
                            effect.lock, effect.table, effect.table
                        ),
                    )
                    .help("start the migration with `SET lock_timeout = '2s';` (and retry on timeout), or run it with `tidegate apply`, which does both")
                    .effect(effect)
                    .whole_statement(),
                );
                // One finding per migration: the fix (one SET at the top) covers every statement.
            }
        }
    }
}
