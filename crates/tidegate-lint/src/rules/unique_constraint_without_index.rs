use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD CONSTRAINT … UNIQUE` (or `ADD COLUMN … UNIQUE`) on a pre-existing table that does not reuse an
    /// index built beforehand (`USING INDEX`).
    ///
    /// ## Why is this bad?
    /// PostgreSQL builds the unique index inside the ALTER TABLE, holding ACCESS EXCLUSIVE for the entire
    /// build: no reads, no writes, for as long as sorting the whole table takes.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the index build. `CREATE UNIQUE INDEX CONCURRENTLY` builds without blocking, and
    /// `ADD CONSTRAINT … UNIQUE USING INDEX` then takes ACCESS EXCLUSIVE only momentarily.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);
    /// -- then, in another migration:
    /// ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;
    /// ```
    pub struct UniqueConstraintWithoutIndex {
        severity: Error,
        summary: "ADD UNIQUE builds its index under ACCESS EXCLUSIVE; build it concurrently and use USING INDEX",
        size_sensitive: true,
    }
}

impl Rule for UniqueConstraintWithoutIndex {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if let Operation::AlterTable(AlterSubcommand::AddConstraint {
                kind: ConstraintKind::Unique,
                using_index: false,
                ..
            }) = effect.operation
            {
                let name = effect.object.as_deref().unwrap_or("the constraint");
                violations.push(
                    Violation::new(statement, format!("adding UNIQUE constraint {name} builds its index while blocking all reads and writes of {}", effect.table))
                        .help(format!("CREATE UNIQUE INDEX CONCURRENTLY {name} ON {} (…); then ALTER TABLE {} ADD CONSTRAINT {name} UNIQUE USING INDEX {name};", effect.table, effect.table))
                        .effect(effect),
                );
            }
        }
    }
}
