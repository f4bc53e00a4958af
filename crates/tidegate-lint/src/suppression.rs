//! Inline suppressions: `-- tidegate:ignore RULE[,RULE] reason` silences those rules on the next statement;
//! `-- tidegate:ignore-file RULE[,RULE] reason` silences them in the whole file. A suppression without a reason,
//! or naming an unknown rule, is itself reported (rule `invalid-suppression`), so silencing stays deliberate.
//! Each directive remembers whether it silenced anything, so one that silenced nothing is reported too (rule
//! `unused-suppression`).

use std::cell::Cell;

use tidegate_sql::{Comment, ParsedSource, Statement};

use crate::registry::{suggest_rule, RuleId};

/// One rule named by one directive.
#[derive(Debug)]
pub struct Directive {
    /// The 1-based line of the comment.
    pub line: usize,
    /// The statement it silences; `None` for `tidegate:ignore-file`.
    pub statement: Option<usize>,
    pub rule: RuleId,
    /// Whether it has silenced a finding.
    used: Cell<bool>,
}

#[derive(Debug, Default)]
pub struct Suppressions {
    directives: Vec<Directive>,
    /// (line, message) of malformed directives.
    pub problems: Vec<(usize, String)>,
}

impl Suppressions {
    pub fn collect(parsed: &ParsedSource) -> Suppressions {
        Self::collect_from(&parsed.statements, &parsed.trailing_comments)
    }

    /// The directives in the comments before `statements` and in `trailing` (the comments after the last
    /// statement of the file, when `statements` end it).
    pub fn collect_from(statements: &[Statement], trailing: &[Comment]) -> Suppressions {
        let mut suppressions = Suppressions::default();
        for statement in statements {
            for comment in &statement.leading_comments {
                suppressions.read(comment, Some(statement.index));
            }
        }
        for comment in trailing {
            suppressions.read(comment, None);
        }
        suppressions
    }

    /// The directives of a MySQL-family migration: the comments before each statement and after the last.
    pub fn collect_mysql(parsed: &tidegate_sql::mysql::MyParsed) -> Suppressions {
        let mut suppressions = Suppressions::default();
        for statement in &parsed.statements {
            for comment in &statement.leading_comments {
                suppressions.read(comment, Some(statement.index));
            }
        }
        for comment in &parsed.trailing_comments {
            suppressions.read(comment, None);
        }
        suppressions
    }

    /// Moves the `tidegate:ignore-file` directives out, in order (a file linted window by window keeps one
    /// list of them for the whole file).
    pub fn take_file_wide(&mut self) -> Vec<Directive> {
        let (file_wide, statement) = std::mem::take(&mut self.directives)
            .into_iter()
            .partition(|directive| directive.statement.is_none());
        self.directives = statement;
        file_wide
    }

    /// Adds directives taken from another part of the file.
    pub fn extend(&mut self, directives: Vec<Directive>) {
        self.directives.extend(directives);
    }

    pub fn is_empty(&self) -> bool {
        self.directives.is_empty()
    }

    /// Whether a directive for `rule` on `line` silenced something.
    pub fn used(&self, line: usize, rule: RuleId) -> bool {
        self.directives.iter().any(|directive| {
            directive.line == line && directive.rule == rule && directive.used.get()
        })
    }

    /// Whether a directive silences `rule` on `statement`; every directive that does is marked used.
    pub fn is_suppressed(&self, rule: RuleId, statement: usize) -> bool {
        let mut suppressed = false;
        for directive in &self.directives {
            if directive.rule == rule && directive.statement.is_none_or(|s| s == statement) {
                directive.used.set(true);
                suppressed = true;
            }
        }
        suppressed
    }

    /// The directives that have silenced nothing so far.
    pub fn unused(&self) -> impl Iterator<Item = &Directive> {
        self.directives
            .iter()
            .filter(|directive| !directive.used.get())
    }

    fn read(&mut self, comment: &Comment, next_statement: Option<usize>) {
        let text = comment.text.as_str();
        let (whole_file, rest) = if let Some(rest) = text.strip_prefix("tidegate:ignore-file") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("tidegate:ignore") {
            (false, rest)
        } else {
            return;
        };
        let directive = if whole_file {
            "tidegate:ignore-file"
        } else {
            "tidegate:ignore"
        };
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            self.problems.push((
                comment.line,
                format!("`{directive}{rest}` is not a tidegate directive; write `-- {directive} RULE reason`"),
            ));
            return;
        }
        let rest = rest.trim();
        let (rule_list, reason) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(rules, reason)| (rules, reason.trim()));
        if rule_list.is_empty() {
            self.problems.push((
                comment.line,
                format!("`{directive}` names no rule; write `-- {directive} RULE reason`"),
            ));
            return;
        }
        let mut rules = Vec::new();
        for rule in rule_list
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            if let Some(id) = RuleId::from_id(rule) {
                rules.push(id);
            } else {
                let suggestions = suggest_rule(rule);
                let hint = if suggestions.is_empty() {
                    "`tidegate lint --rules` lists the rules".to_string()
                } else {
                    format!("did you mean `{}`?", suggestions.join("`, `"))
                };
                self.problems.push((
                    comment.line,
                    format!("`{directive}` names unknown rule `{rule}`: {hint}"),
                ));
            }
        }
        if reason.is_empty() {
            self.problems.push((
                comment.line,
                format!(
                    "`{directive} {rule_list}` gives no reason; say why the hazard is acceptable here (the suppression still applies)"
                ),
            ));
        }
        let statement = match (whole_file, next_statement) {
            (true, _) => Some(None),
            (false, Some(statement)) => Some(Some(statement)),
            (false, None) => None,
        };
        if let Some(statement) = statement {
            self.directives
                .extend(rules.into_iter().map(|rule| Directive {
                    line: comment.line,
                    statement,
                    rule,
                    used: Cell::new(false),
                }));
        } else {
            self.problems.push((
                comment.line,
                format!("`{directive}` is not followed by any statement; it silences nothing"),
            ));
        }
    }
}
