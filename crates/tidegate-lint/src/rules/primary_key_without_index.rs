use tidegate_sql::{AlterSubcommand, ConstraintKind, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ADD PRIMARY KEY` on a pre-existing table that does not reuse a unique index built beforehand
    /// (`USING INDEX`).
    ///
    /// ## Why is this bad?
    /// The primary key's unique index is built inside the ALTER TABLE under ACCESS EXCLUSIVE, and any key column
    /// not yet NOT NULL is also scanned: the table is unavailable for the whole build.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE for the index build (and NOT NULL scans).
    ///
    /// ## PostgreSQL versions
    /// All. Make the columns NOT NULL first without a scan (see `set-not-null-scan`).
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE events ADD PRIMARY KEY (id);
    /// ```
    ///
    /// ## Use instead
    /// ```sql
    /// CREATE UNIQUE INDEX CONCURRENTLY events_pkey ON events (id);
    /// -- then:
    /// ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey;
    /// ```
    pub struct PrimaryKeyWithoutIndex {
        severity: Error,
        summary: "ADD PRIMARY KEY builds its index under ACCESS EXCLUSIVE; build it concurrently and use USING INDEX",
        size_sensitive: true,
    }
}

impl Rule for PrimaryKeyWithoutIndex {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect) in context.pre_existing_effects() {
            if let Operation::AlterTable(AlterSubcommand::AddConstraint {
                kind: ConstraintKind::PrimaryKey,
                using_index: false,
                ..
            }) = effect.operation
            {
                violations.push(
                    Violation::new(statement, format!("adding a primary key to {} builds its index while blocking all reads and writes", effect.table))
                        .help(format!("CREATE UNIQUE INDEX CONCURRENTLY {}_pkey ON {} (…); then ADD CONSTRAINT {}_pkey PRIMARY KEY USING INDEX {}_pkey", effect.table.name, effect.table, effect.table.name, effect.table.name))
                        .effect(effect),
                );
            }
        }
    }
}
