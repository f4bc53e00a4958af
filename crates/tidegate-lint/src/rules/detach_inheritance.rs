use tidegate_sql::syntax::protobuf::AlterTableType;

use crate::context::{pre_existing_alter_commands, Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER TABLE … NO INHERIT parent` on a pre-existing table.
    ///
    /// ## Why is this bad?
    /// Queries on the parent read its children's rows too; once the child is detached its rows vanish from
    /// every query on the parent, and updates and deletes through the parent no longer reach them. The running
    /// application gets fewer rows, without an error.
    ///
    /// ## Lock taken
    /// ACCESS EXCLUSIVE on the child table and ACCESS SHARE on the parent, briefly once granted.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER TABLE orders_2019 NO INHERIT orders;
    /// ```
    ///
    /// ## Use instead
    /// Move the readers that need the child's rows to query it by name first (or copy the rows somewhere they
    /// read), then detach it with a `tidegate:ignore detach-inheritance` reason. Attaching is not reported:
    /// ```sql
    /// ALTER TABLE orders_2027 INHERIT orders;
    /// ```
    pub struct DetachInheritance {
        severity: Warning,
        summary: "NO INHERIT makes the child's rows vanish from queries on the parent",
        size_sensitive: false,
    }
}

impl Rule for DetachInheritance {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for (statement, effect, _) in
            pre_existing_alter_commands(context, &[AlterTableType::AtDropInherit])
        {
            violations.push(
                Violation::new(statement, format!("detaching {} from its parent removes its rows from every query on the parent", effect.table))
                    .help("move readers that need these rows to the child table first, then detach it")
                    .effect(effect),
            );
        }
    }
}
