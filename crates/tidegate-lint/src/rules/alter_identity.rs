use tidegate_sql::syntax::protobuf::AlterTableType;

use crate::context::{pre_existing_alter_commands, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … ALTER COLUMN … ADD | SET | DROP IDENTITY` (and `SET GENERATED`) on a pre-existing
    /// table.
    ///
    /// ## Why is this bad?
    /// It changes what inserts of the running application may and must send. `ADD GENERATED ALWAYS AS
    /// IDENTITY` and `SET GENERATED ALWAYS` make every insert that supplies the key fail ("cannot insert a
    /// non-DEFAULT value into column", unless it says `OVERRIDING SYSTEM VALUE`); `DROP IDENTITY` removes the
    /// default, so every insert that leaves the key out fails with a NOT NULL violation. A new identity
    /// sequence also starts at 1 unless told otherwise, colliding with the keys already there.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (existing values are kept: no rewrite).
    ///
    /// ## PostgreSQL versions
    /// 10 and later (identity columns exist since 10).
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
    /// ```
    ///
    /// ## Use instead
    /// Add the identity as `BY DEFAULT` starting above the current keys, so inserts that still send keys keep
    /// working, and move to `ALWAYS` only after every writer leaves the key out, with a `tidegate:ignore
    /// alter-identity` reason. Creating identity columns on new tables is not reported:
    /// ```sql
    /// CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
    /// ```
    pub struct AlterIdentity {
        severity: Warning,
        summary: "ADD / SET / DROP IDENTITY changes which inserts of running code succeed",
        size_sensitive: false,
    }
}

impl Rule for AlterIdentity {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect, command) in pre_existing_alter_commands(
            context,
            &[
                AlterTableType::AtAddIdentity,
                AlterTableType::AtSetIdentity,
                AlterTableType::AtDropIdentity,
            ],
        ) {
            let subtype = AlterTableType::try_from(command.subtype).unwrap_or_default();
            let consequence = if subtype == AlterTableType::AtDropIdentity {
                "inserts that leave the key out fail with a NOT NULL violation"
            } else {
                "inserts that supply the key may start failing, and a new sequence may collide with existing keys"
            };
            violations.push(
                Violation::new(statement, format!("changing the identity of {}.{}: {consequence}", effect.table, command.name))
                    .help("add identities BY DEFAULT, starting above the current keys; move to ALWAYS once no writer sends keys")
                    .effect(effect),
            );
        }
    }
}
