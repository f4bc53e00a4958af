use tidegate_sql::syntax::protobuf::AlterTableType;

use crate::context::{pre_existing_alter_commands, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … REPLICA IDENTITY` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// The replica identity decides what logical replication and change-data-capture consumers (Debezium,
    /// subscriptions, audit pipelines) receive for updated and deleted rows. `NOTHING` (or an index that is
    /// later dropped) makes every UPDATE and DELETE on a published table fail with "cannot update table … because
    /// it does not have a replica identity and publishes updates"; `FULL` writes the whole old row to the WAL
    /// for every update and delete, which can multiply WAL volume and replication lag on a busy table;
    /// consumers keyed on the old identity break either way.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the table, briefly once granted (but queued behind running transactions).
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders REPLICA IDENTITY FULL;
    /// ```
    ///
    /// ## Use instead
    /// Agree the change with the owners of the publication and its consumers, measure WAL volume for `FULL`,
    /// and set a `lock_timeout`; record the decision with a `tidegate:ignore replica-identity` reason. On a new
    /// table it is not reported:
    /// ```sql
    /// CREATE TABLE invoices (id bigint PRIMARY KEY);
    /// ALTER TABLE invoices REPLICA IDENTITY FULL;
    /// ```
    pub struct ReplicaIdentity {
        severity: Warning,
        summary: "REPLICA IDENTITY changes what logical replication sends (and can make writes fail)",
        size_sensitive: false,
    }
}

impl Rule for ReplicaIdentity {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect, _) in
            pre_existing_alter_commands(context, &[AlterTableType::AtReplicaIdentity])
        {
            violations.push(
                Violation::new(statement, format!("changing the replica identity of {} changes what logical replication sends for its updates and deletes", effect.table))
                    .help("agree it with the publication's consumers; FULL multiplies WAL, NOTHING makes writes to a published table fail")
                    .effect(effect),
            );
        }
    }
}
