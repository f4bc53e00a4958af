use tidegate_sql::syntax::protobuf::AlterTableType;
use tidegate_sql::syntax::NodeEnum;
use tidegate_sql::{AlterSubcommand, Operation};

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … ENABLE | DISABLE | FORCE | NO FORCE ROW LEVEL SECURITY` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// Enabling row-level security on a table with no policy for the application's role hides every row from
    /// it: its queries return nothing and its writes fail, from the commit on (the table's owner and superusers
    /// are exempt, so the migration's own checks and a developer's psql session look fine). Disabling it shows
    /// every row to every role that has table privileges, which is a data leak rather than an outage.
    /// `FORCE` applies the policies to the table owner too, which is often the role the application uses.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (but queued behind running transactions).
    ///
    /// ## PostgreSQL versions
    /// All (row-level security exists since 9.5).
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
    /// ```
    ///
    /// ## Use instead
    /// Create the policies for every role the application uses first, enable row-level security in the same
    /// transaction, and check as the application's role (`SET ROLE app`) that it still sees its rows; record
    /// the decision with a `tidegate:ignore row-level-security` reason. On a table this migration creates it is
    /// not reported:
    /// ```sql
    /// CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id bigint NOT NULL);
    /// ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
    /// ```
    pub struct RowLevelSecurity {
        severity: Warning,
        summary: "Turning row-level security on or off changes which rows every role sees",
        size_sensitive: false,
    }
}

impl Rule for RowLevelSecurity {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterTableStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            let subtypes = alter
                .cmds
                .iter()
                .filter_map(|command| match command.node.as_ref() {
                    Some(NodeEnum::AlterTableCmd(command)) => {
                        AlterTableType::try_from(command.subtype).ok()
                    }
                    _ => None,
                });
            for subtype in subtypes {
                let consequence = match subtype {
                    AlterTableType::AtEnableRowSecurity => {
                        "hides every row from roles no policy lets in; their queries return nothing"
                    }
                    AlterTableType::AtDisableRowSecurity => {
                        "shows every row to every role with table privileges"
                    }
                    AlterTableType::AtForceRowSecurity => {
                        "applies the policies to the table owner too, often the application's role"
                    }
                    AlterTableType::AtNoForceRowSecurity => {
                        "lets the table owner see every row again"
                    }
                    _ => continue,
                };
                let Some(effect) = statement.effects.iter().find(|effect| {
                    effect.origin.is_pre_existing()
                        && effect.operation
                            == Operation::AlterTable(AlterSubcommand::RowLevelSecurity)
                }) else {
                    continue;
                };
                violations.push(
                    Violation::new(statement, format!("changing row-level security on {}: it {consequence}", effect.table))
                        .help("create policies for every role the application uses in the same transaction, and check as that role")
                        .effect(effect),
                );
            }
        }
    }
}
