//! The rule registry: the one table mapping stable rule ids to rules.

use crate::context::{Context, Violation};
use crate::Severity;

/// Declares [`RuleId`]: one variant per rule, named as the rule's struct, with its stable string id.
macro_rules! rule_ids {
    ($($variant:ident => $id:literal,)*) => {
        /// A rule's identity. The string form (`create-index-non-concurrently`) is part of the interface: output
        /// formats, `tidegate.toml`, `-- tidegate:ignore`. Code compares `RuleId`s, never strings, so a renamed
        /// rule is a compile error wherever it is named.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleId {
            $($variant,)*
        }

        impl RuleId {
            /// Every rule id, in declaration order.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            /// The stable string id.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $id,)*
                }
            }

            /// The rule id spelled `id`, if there is one.
            pub fn from_id(id: &str) -> Option<RuleId> {
                match id {
                    $($id => Some(RuleId::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

rule_ids! {
    AddColumn => "add-column",
    AddColumnDefaultRewrite => "add-column-default-rewrite",
    AddColumnSerial => "add-column-serial",
    AddColumnStoredGenerated => "add-column-stored-generated",
    AddEnumValue => "add-enum-value",
    AddRequiredColumn => "add-required-column",
    AlterColumnTypeRewrite => "alter-column-type-rewrite",
    AlterDatabaseSettings => "alter-database-settings",
    AlterDomainAddConstraint => "alter-domain-add-constraint",
    AlterExtension => "alter-extension",
    AlterIdentity => "alter-identity",
    AlterPolicy => "alter-policy",
    AlterRoleSettings => "alter-role-settings",
    AlterSequenceValues => "alter-sequence-values",
    AlterSystem => "alter-system",
    AttachPartitionWithoutCheck => "attach-partition-without-check",
    CheckConstraintWithoutNotValid => "check-constraint-without-not-valid",
    ConcurrentIndexIfNotExists => "concurrent-index-if-not-exists",
    ConcurrentlyInTransaction => "concurrently-in-transaction",
    CreateDomainWithConstraint => "create-domain-with-constraint",
    CreateIndexNonConcurrently => "create-index-non-concurrently",
    CreatePolicy => "create-policy",
    DetachInheritance => "detach-inheritance",
    DetachPartitionNonConcurrently => "detach-partition-non-concurrently",
    DisableTriggers => "disable-triggers",
    DropColumn => "drop-column",
    DropConstraint => "drop-constraint",
    DropDatabase => "drop-database",
    DropDomain => "drop-domain",
    DropExtension => "drop-extension",
    DropFunction => "drop-function",
    DropGeneratedExpression => "drop-generated-expression",
    DropIndexNonConcurrently => "drop-index-non-concurrently",
    DropNotNull => "drop-not-null",
    DropPolicy => "drop-policy",
    DropPrimaryKey => "drop-primary-key",
    DropSchema => "drop-schema",
    DropSequence => "drop-sequence",
    DropTable => "drop-table",
    DropTrigger => "drop-trigger",
    DropType => "drop-type",
    DropView => "drop-view",
    MysqlAlgorithmUnspecified => "mysql-algorithm-unspecified",
    MysqlAlterCopy => "mysql-alter-copy",
    MysqlAlterRebuild => "mysql-alter-rebuild",
    EnumAddValueInTransaction => "enum-add-value-in-transaction",
    EnumValueOrdering => "enum-value-ordering",
    ExclusionConstraint => "exclusion-constraint",
    ForeignKeyWithoutNotValid => "foreign-key-without-not-valid",
    IdentifierTooLong => "identifier-too-long",
    InvalidSuppression => "invalid-suppression",
    LockTable => "lock-table",
    MissingLockTimeout => "missing-lock-timeout",
    MissingStatementTimeout => "missing-statement-timeout",
    MultipleTablesLocked => "multiple-tables-locked",
    NewWriteRestriction => "new-write-restriction",
    PreferBigintOverInt => "prefer-bigint-over-int",
    PreferBigintOverSmallint => "prefer-bigint-over-smallint",
    PreferIdentityOverSerial => "prefer-identity-over-serial",
    PreferJsonbOverJson => "prefer-jsonb-over-json",
    PreferTextOverChar => "prefer-text-over-char",
    PreferTextOverVarchar => "prefer-text-over-varchar",
    PreferTimestamptz => "prefer-timestamptz",
    PrimaryKeyWithoutIndex => "primary-key-without-index",
    RefreshMatviewNonConcurrently => "refresh-matview-non-concurrently",
    ReindexNonConcurrently => "reindex-non-concurrently",
    RenameColumn => "rename-column",
    RenameObject => "rename-object",
    RenameTable => "rename-table",
    ReplicaIdentity => "replica-identity",
    RequireSchemaQualified => "require-schema-qualified",
    RevokePrivileges => "revoke-privileges",
    RobustStatements => "robust-statements",
    RowLevelSecurity => "row-level-security",
    SchemaChangeWithBackfill => "schema-change-with-backfill",
    SetDefault => "set-default",
    SetNotNullScan => "set-not-null-scan",
    SetSchema => "set-schema",
    SyntaxError => "syntax-error",
    TableRewriteCommand => "table-rewrite-command",
    TransactionNesting => "transaction-nesting",
    TruncateCascade => "truncate-cascade",
    UnbatchedDelete => "unbatched-delete",
    UnbatchedInsertSelect => "unbatched-insert-select",
    UnbatchedUpdate => "unbatched-update",
    UniqueConstraintWithoutIndex => "unique-constraint-without-index",
    UnusedSuppression => "unused-suppression",
    ValidateInSameTransaction => "validate-in-same-transaction",
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A rule's identity and documentation. `doc` is the rule's own doc comment, collected at compile time, so the
/// code, `tidegate explain` and `docs/rules/` can never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleDoc {
    /// The rule's identity; `id.as_str()` is the stable string id.
    pub id: RuleId,
    pub default_severity: Severity,
    /// One line: what the rule flags.
    pub summary: &'static str,
    /// Whether the hazard scales with table size, so that `--stats` may lower it to info on small tables.
    pub size_sensitive: bool,
    /// Whether the rule runs when `tidegate.toml` does not mention it. An opt-in rule (`false`) flags what is
    /// right for some teams and noise for others (every `ADD COLUMN`, every unqualified name); it runs once
    /// `[lint.rules]` sets it to `on` or a severity.
    pub enabled_by_default: bool,
    raw_doc: &'static str,
}

impl RuleDoc {
    #[doc(hidden)]
    pub const fn new(
        id: RuleId,
        default_severity: Severity,
        summary: &'static str,
        size_sensitive: bool,
        enabled_by_default: bool,
        raw_doc: &'static str,
    ) -> Self {
        Self {
            id,
            default_severity,
            summary,
            size_sensitive,
            enabled_by_default,
            raw_doc,
        }
    }

    /// `warning`, or `warning, off by default` for an opt-in rule: how pages and listings name the default.
    pub fn default_setting(&self) -> String {
        if self.enabled_by_default {
            self.default_severity.to_string()
        } else {
            format!("{}, off by default", self.default_severity)
        }
    }

    /// The documentation as Markdown (the doc comment without its leading `///` spaces).
    pub fn documentation(&self) -> String {
        let mut text = String::with_capacity(self.raw_doc.len());
        for line in self.raw_doc.lines() {
            text.push_str(line.strip_prefix(' ').unwrap_or(line));
            text.push('\n');
        }
        text
    }

    /// The page written to `docs/rules/<id>.md`.
    pub fn markdown_page(&self) -> String {
        format!(
            "<!-- generated by `tidegate explain --all --markdown docs/rules`; edit crates/tidegate-lint/src/rules/{}.rs instead -->\n# {}\n\n{}\n\nDefault severity: **{}**{}{}\n\n{}",
            self.id.as_str().replace('-', "_"),
            self.id,
            self.summary,
            self.default_severity,
            if self.size_sensitive {
                " (lowered to info on tables below `small_table_rows` when `--stats` is given)"
            } else {
                ""
            },
            if self.enabled_by_default {
                String::new()
            } else {
                format!(
                    "\n\n**Off by default** (opt-in): turn it on in `tidegate.toml` with `[lint.rules]` `{} = \"on\"` (or a severity).",
                    self.id
                )
            },
            self.documentation()
        )
    }
}

/// A lint rule: its documentation and its check over one analysed migration.
pub trait Rule: Sync + Send {
    fn doc(&self) -> &'static RuleDoc;
    fn check(&self, context: &Context<'_>, violations: &mut Vec<Violation>);

    /// Whether the rule judges migrations of `dialect`: PostgreSQL's alone unless the rule says otherwise (and
    /// then it has a [`Rule::check_mysql`]). `--rules` lists, and lint runs, only the dialect's rules.
    fn runs_on(&self, dialect: crate::Dialect) -> bool {
        dialect == crate::Dialect::Postgres
    }

    /// The rule on a MySQL/MariaDB migration; rules about PostgreSQL alone keep the default, which finds nothing.
    fn check_mysql(
        &self,
        _context: &crate::mysql::MyContext<'_>,
        _violations: &mut Vec<Violation>,
    ) {
    }
}

/// Declares a rule's unit struct and its [`RuleDoc`] from the doc comment written on it.
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            severity: $severity:ident,
            summary: $summary:literal,
            size_sensitive: $size_sensitive:literal
            $(, enabled_by_default: $enabled:literal)? $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl $name {
            pub const DOC: $crate::RuleDoc = $crate::RuleDoc::new(
                $crate::RuleId::$name,
                $crate::Severity::$severity,
                $summary,
                $size_sensitive,
                $crate::registry::enabled_by_default(&[$($enabled)?]),
                concat!($($doc, "\n"),*),
            );
        }
    };
}
pub(crate) use declare_rule;

/// `enabled_by_default` as the rule declared it; a rule that does not say is on by default.
#[doc(hidden)]
pub const fn enabled_by_default(declared: &[bool]) -> bool {
    match declared {
        [enabled] => *enabled,
        _ => true,
    }
}

/// Every rule, in the order `tidegate lint --rules` lists them.
pub fn registry() -> &'static [&'static dyn Rule] {
    crate::rules::ALL
}

/// The rule with this string id.
pub fn find_rule(id: &str) -> Option<&'static dyn Rule> {
    RuleId::from_id(id).map(rule)
}

/// The rule of this id.
pub fn rule(id: RuleId) -> &'static dyn Rule {
    registry()
        .iter()
        .copied()
        .find(|rule| rule.doc().id == id)
        .expect("every RuleId has a rule in the registry (tested)")
}

/// Up to three known ids close to `id`, for "did you mean" messages.
pub fn suggest_rule(id: &str) -> Vec<&'static str> {
    let mut scored: Vec<(f64, &'static str)> = registry()
        .iter()
        .map(|rule| rule.doc().id.as_str())
        .map(|known| {
            let mut score = strsim::jaro_winkler(id, known);
            if known.contains(id) || id.contains(known) {
                score += 0.2;
            }
            (score, known)
        })
        .filter(|(score, _)| *score > 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, id)| id).collect()
}

/// `docs/rules/README.md`: the index of every rule page.
pub fn rules_index_markdown() -> String {
    let mut page = String::from(
        "<!-- generated by `tidegate explain --all --markdown docs/rules`; edit the rules' doc comments instead -->\n# tidegate lint rules\n\n`tidegate explain <rule>` prints the same pages in a terminal. Severities can be changed per rule in\n`tidegate.toml` (`[lint.rules]`), and a statement can be exempted with `-- tidegate:ignore <rule> <reason>`.\n\n| Rule | Default severity | What it flags |\n|---|---|---|\n",
    );
    for rule in registry() {
        let doc = rule.doc();
        page.push_str(&format!(
            "| [`{}`]({}.md) | {} | {} |\n",
            doc.id,
            doc.id,
            doc.default_setting(),
            doc.summary
        ));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dialect;

    /// The rules each dialect runs (and `--rules` lists): a rule added to MySQL's set must be added here, so a
    /// rule with a `check_mysql` is never left out by a forgotten `runs_on`, nor a PostgreSQL rule let in.
    #[test]
    fn each_dialect_runs_its_own_rules() {
        let on = |dialect: Dialect| -> Vec<&str> {
            registry()
                .iter()
                .filter(|rule| rule.runs_on(dialect))
                .map(|rule| rule.doc().id.as_str())
                .collect()
        };
        let mysql = on(Dialect::MySql);
        assert_eq!(
            mysql,
            vec![
                "syntax-error",
                "schema-change-with-backfill",
                "unbatched-update",
                "unbatched-delete",
                "add-required-column",
                "mysql-alter-copy",
                "mysql-alter-rebuild",
                "mysql-algorithm-unspecified",
                "missing-lock-timeout",
                "drop-column",
                "drop-table",
                "rename-column",
                "rename-table",
                "invalid-suppression",
                "unused-suppression",
            ]
        );
        assert_eq!(on(Dialect::MariaDb), mysql);
        let postgres = on(Dialect::Postgres);
        assert_eq!(postgres.len(), registry().len() - 3);
        assert!(postgres.iter().all(|id| !id.starts_with("mysql-")));
    }
}
