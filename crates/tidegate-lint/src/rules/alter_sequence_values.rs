use tidegate_sql::syntax::NodeEnum;
use tidegate_sql::TableName;

use crate::context::{Context, Violation};
use crate::registry::{declare_rule, Rule, RuleDoc};

declare_rule! {
    /// ## What it does
    /// Flags `ALTER SEQUENCE` that changes the values a sequence hands out: `RESTART`, `START`, `INCREMENT`,
    /// `MINVALUE`, `MAXVALUE`, `CYCLE`, `AS type`. Changing `OWNED BY` or `CACHE` is not flagged.
    ///
    /// ## Why is this bad?
    /// Inserts of the running application take their keys from the sequence. `RESTART` (or a lower `MAXVALUE`
    /// with `CYCLE`) hands out values already in use, so inserts fail with duplicate-key errors until the
    /// sequence passes the existing keys; a new `INCREMENT` or `AS smallint` changes the range code expects,
    /// and a sequence that runs out fails every insert ("reached maximum value of sequence").
    ///
    /// ## Lock taken
    /// ROW EXCLUSIVE and SHARE ROW EXCLUSIVE on the sequence only; concurrent `nextval` calls wait briefly.
    ///
    /// ## PostgreSQL versions
    /// All.
    ///
    /// ## Example
    /// ```sql
    /// ALTER SEQUENCE invoice_numbers RESTART WITH 1;
    /// ```
    ///
    /// ## Use instead
    /// Move a sequence forward only, past every key in use, with `setval` from the data:
    /// ```sql
    /// SELECT setval('invoice_numbers', (SELECT max(number) FROM invoices));
    /// ```
    pub struct AlterSequenceValues {
        severity: Warning,
        summary: "ALTER SEQUENCE RESTART / INCREMENT / bounds can hand out keys already in use",
        size_sensitive: false,
    }
}

const VALUE_OPTIONS: &[&str] = &[
    "restart",
    "start",
    "increment",
    "minvalue",
    "maxvalue",
    "cycle",
    "as",
];

impl Rule for AlterSequenceValues {
    fn doc(&self) -> &'static RuleDoc {
        &Self::DOC
    }

    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>) {
        for statement in context.statements() {
            let Some(NodeEnum::AlterSeqStmt(alter)) = statement.node.as_deref() else {
                continue;
            };
            let changed: Vec<&str> = alter
                .options
                .iter()
                .filter_map(|option| match option.node.as_ref() {
                    Some(NodeEnum::DefElem(element)) => Some(element.defname.as_str()),
                    _ => None,
                })
                .filter(|name| VALUE_OPTIONS.contains(name))
                .collect();
            if changed.is_empty() {
                continue;
            }
            let sequence = alter
                .sequence
                .as_ref()
                .map(|sequence| TableName::from_range_var(sequence).to_string())
                .unwrap_or_default();
            let restart = changed.contains(&"restart");
            let consequence = if restart {
                "RESTART can hand out keys already in use: inserts fail with duplicate keys"
            } else {
                "it changes the values inserts of running code receive"
            };
            violations.push(
                Violation::new(
                    statement,
                    format!(
                        "altering {} of sequence {sequence}: {consequence}",
                        changed.join(", ").to_uppercase()
                    ),
                )
                .help(
                    "move sequences forward only, with setval(seq, (SELECT max(key) FROM table))",
                ),
            );
        }
    }
}
