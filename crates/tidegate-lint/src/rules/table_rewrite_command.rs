use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags commands that rewrite a pre-existing table by design: `VACUUM FULL`, `CLUSTER`,
    /// `ALTER TABLE … SET TABLESPACE`, `SET LOGGED`, `SET UNLOGGED` and `SET ACCESS METHOD`.
    ///
    /// ## Why is this bad?
    /// Each copies every row into a new file under ACCESS EXCLUSIVE: the table can be neither read nor written
    /// until the copy ends, and the disk needs room for both copies.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the whole rewrite.
    ///
    /// ## PostgreSQL versions
    /// All (`SET ACCESS METHOD` from 15).
    ///
    /// ## Example
    /// ```sql
    /// VACUUM FULL orders;
    /// ALTER TABLE orders SET TABLESPACE fast_ssd;
    /// ```
    ///
    /// ## Use instead
    /// Plain `VACUUM` (no exclusive lock), or an online rebuild tool such as `pg_repack` / `pg_squeeze`;
    /// for tablespace moves, `pg_repack --tablespace`.
    pub struct TableRewriteCommand {
        severity: Error,
        summary: "VACUUM FULL, CLUSTER, SET TABLESPACE/LOGGED/UNLOGGED/ACCESS METHOD rewrite the table under ACCESS EXCLUSIVE",
        size_sensitive: true,
    }
}

impl Rule for TableRewriteCommand {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            let command = match effect.operation {
                Operation::Vacuum { full: true } => "VACUUM FULL",
                Operation::Cluster => "CLUSTER",
                Operation::AlterTable(AlterSubcommand::SetTablespace) => "SET TABLESPACE",
                Operation::AlterTable(AlterSubcommand::SetLogged) => "SET LOGGED",
                Operation::AlterTable(AlterSubcommand::SetUnlogged) => "SET UNLOGGED",
                Operation::AlterTable(AlterSubcommand::SetAccessMethod) => "SET ACCESS METHOD",
                _ => continue,
            };
            violations.push(
                Violation::new(statement, format!("{command} rewrites all of {} while blocking reads and writes", effect.table))
                    .help("use plain VACUUM, or an online rebuild (pg_repack, pg_squeeze) outside the migration")
                    .effect(effect),
            );
        }
    }
}
