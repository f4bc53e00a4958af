//! The plan report: pending migrations' statements joined with the facts of their tables through the
//! [`model`](crate::model), and its three renderings (text, JSON, markdown). Pure: the facts come in as values,
//! so a test renders a report from facts it made up.

use std::collections::BTreeMap;

use serde::Serialize;
use tidegate_sql::{
    AnalyzedMigration, LockLevel, Operation, Statement, StatementKind, TableName, TableOrigin,
};

use crate::model::{
    assess, estimate_seconds, format_bytes, format_duration, group_thousands, Action, Assessment,
    EffectFacts, Policy, TableFacts, Verdict,
};

/// The key tables are looked up by: `(schema, name)`, schema defaulting to `public`.
pub type TableKey = (String, String);

/// `schema.name` for a key.
pub fn display_key(key: &TableKey) -> String {
    format!("{}.{}", key.0, key.1)
}

/// One pending migration, analysed (earlier migrations already replayed into the catalog).
#[derive(Debug, Clone)]
pub struct PendingMigration {
    pub version: String,
    /// The path as the user should read it.
    pub path: String,
    pub analyzed: AnalyzedMigration,
}

/// Where the report's facts came from, for its header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportHeader {
    /// The database, redacted (never a password).
    pub target: String,
    /// The server's major version.
    pub server_version: u32,
    /// The version whose lock facts were used.
    pub pg_version: u32,
    /// How long write rates were sampled.
    pub sample_seconds: f64,
    /// Whether `tidegate.migrations` exists.
    pub history_table: bool,
    /// Migrations of the directory already recorded there (skipped).
    pub applied: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    #[serde(flatten)]
    pub header: ReportHeader,
    pub migrations: Vec<MigrationPlan>,
    pub tables: Vec<TableReport>,
    pub summary: Summary,
    /// What could not be measured, and other caveats.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    pub version: String,
    pub path: String,
    pub statements: Vec<StatementPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementPlan {
    /// 1-based position in the migration.
    pub number: usize,
    pub line: usize,
    /// The statement's first line, shortened.
    pub sql: String,
    pub kind: StatementKind,
    pub verdict: Verdict,
    /// The largest estimate over its tables.
    pub estimate_seconds: f64,
    /// The longest a lock that blocks application traffic is held (0 when none is taken): the statement's
    /// own work plus the later statements of its transaction.
    pub lock_hold_seconds: f64,
    pub reasons: Vec<String>,
    pub actions: Vec<Action>,
    pub effects: Vec<EffectPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectPlan {
    pub table: String,
    pub operation: Operation,
    pub lock: LockLevel,
    pub blocks: &'static str,
    pub rewrite: bool,
    pub scan: bool,
    pub created_in_migration: bool,
    #[serde(flatten)]
    pub assessment: Assessment,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReport {
    pub table: String,
    #[serde(flatten)]
    pub facts: TableFacts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub migrations: usize,
    pub statements: usize,
    pub safe: usize,
    pub needs_batching: usize,
    pub needs_window: usize,
    pub dangerous: usize,
    /// The worst verdict (safe when there is nothing pending).
    pub verdict: Verdict,
}

impl Summary {
    /// `4 statements in 2 migrations: 1 safe, 1 needs batching, 1 needs a window, 1 dangerous`.
    pub fn line(&self) -> String {
        let plural = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("{n} {one}")
            } else {
                format!("{n} {many}")
            }
        };
        format!(
            "{} in {}: {} safe, {} needs batching, {} needs a window, {} dangerous",
            plural(self.statements, "statement", "statements"),
            plural(self.migrations, "migration", "migrations"),
            self.safe,
            self.needs_batching,
            self.needs_window,
            self.dangerous
        )
    }
}

/// The tables whose facts a report needs: every table a pending statement touches, except those created in
/// the migration itself.
pub fn tables_to_probe(migrations: &[PendingMigration]) -> Vec<TableKey> {
    let mut keys: Vec<TableKey> = migrations
        .iter()
        .flat_map(|migration| migration.analyzed.statements())
        .flat_map(|statement| &statement.effects)
        .filter(|effect| effect.origin != TableOrigin::CreatedInThisMigration)
        .map(|effect| effect.table.key())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Joins statements and table facts through the model. A table missing from `tables` counts as not in the
/// database.
pub fn build_report(
    header: ReportHeader,
    migrations: &[PendingMigration],
    tables: &BTreeMap<TableKey, TableFacts>,
    policy: &Policy,
) -> PlanReport {
    let missing = TableFacts::missing();
    let facts_of = |table: &TableName| tables.get(&table.key()).unwrap_or(&missing);
    let mut plans = Vec::new();
    let mut summary = Summary {
        migrations: migrations.len(),
        statements: 0,
        safe: 0,
        needs_batching: 0,
        needs_window: 0,
        dangerous: 0,
        verdict: Verdict::Safe,
    };
    for migration in migrations {
        let statements = migration.analyzed.statements();
        // Each statement's own work, so an earlier lock in the same transaction knows how long it is held.
        let own: Vec<f64> = statements
            .iter()
            .map(|statement| {
                effect_facts(statement, 0.0)
                    .iter()
                    .zip(&statement.effects)
                    .map(|(facts, effect)| {
                        estimate_seconds(facts, facts_of(&effect.table), policy).0
                    })
                    .fold(0.0, f64::max)
            })
            .collect();
        let mut statement_plans = Vec::new();
        for (i, statement) in statements.iter().enumerate() {
            if matches!(
                statement.kind,
                StatementKind::TransactionControl | StatementKind::Session
            ) {
                continue;
            }
            let held_through: f64 = if statement.transaction.in_transaction() {
                statements
                    .iter()
                    .zip(&own)
                    .skip(i + 1)
                    .filter(|(later, _)| later.transaction == statement.transaction)
                    .map(|(_, seconds)| seconds)
                    .sum()
            } else {
                0.0
            };
            let mut effects = Vec::new();
            for (facts, effect) in effect_facts(statement, held_through)
                .into_iter()
                .zip(&statement.effects)
            {
                let assessment = assess(&facts, facts_of(&effect.table), policy);
                effects.push(EffectPlan {
                    table: display_key(&effect.table.key()),
                    operation: effect.operation,
                    lock: effect.lock,
                    blocks: effect.lock.blocks(),
                    rewrite: effect.rewrite,
                    scan: effect.scan,
                    created_in_migration: facts.created_in_migration,
                    assessment,
                });
            }
            let mut plan = StatementPlan {
                number: statement.index + 1,
                line: statement.span.start.line,
                sql: short_sql(&statement.text),
                kind: statement.kind,
                verdict: Verdict::Safe,
                estimate_seconds: 0.0,
                lock_hold_seconds: 0.0,
                reasons: Vec::new(),
                actions: Vec::new(),
                effects,
            };
            if let Some(error) = &statement.syntax_error {
                plan.verdict = Verdict::Dangerous;
                plan.reasons.push(format!(
                    "does not parse: {error}; fix it before the release"
                ));
            } else if plan.effects.is_empty() {
                plan.reasons.push("touches no table".into());
            }
            for effect in &plan.effects {
                plan.verdict = plan.verdict.max(effect.assessment.verdict);
                plan.estimate_seconds = plan
                    .estimate_seconds
                    .max(effect.assessment.estimate_seconds);
                if effect.lock.blocks_traffic() && !effect.created_in_migration {
                    plan.lock_hold_seconds = plan
                        .lock_hold_seconds
                        .max(effect.assessment.lock_hold_seconds);
                }
                for reason in &effect.assessment.reasons {
                    let reason = format!("{}: {reason}", effect.table);
                    if !plan.reasons.contains(&reason) {
                        plan.reasons.push(reason);
                    }
                }
                plan.actions
                    .extend(effect.assessment.actions.iter().copied());
            }
            plan.actions.sort();
            plan.actions.dedup();
            summary.statements += 1;
            match plan.verdict {
                Verdict::Safe => summary.safe += 1,
                Verdict::NeedsBatching => summary.needs_batching += 1,
                Verdict::NeedsWindow => summary.needs_window += 1,
                Verdict::Dangerous => summary.dangerous += 1,
            }
            summary.verdict = summary.verdict.max(plan.verdict);
            statement_plans.push(plan);
        }
        plans.push(MigrationPlan {
            version: migration.version.clone(),
            path: migration.path.clone(),
            statements: statement_plans,
        });
    }
    PlanReport {
        header,
        migrations: plans,
        tables: tables
            .iter()
            .map(|(key, facts)| TableReport {
                table: display_key(key),
                facts: facts.clone(),
            })
            .collect(),
        summary,
        notes: Vec::new(),
    }
}

/// The model's inputs for each of a statement's effects.
fn effect_facts(statement: &Statement, held_through_seconds: f64) -> Vec<EffectFacts> {
    statement
        .effects
        .iter()
        .map(|effect| EffectFacts {
            operation: effect.operation,
            lock: effect.lock,
            rewrite: effect.rewrite,
            scan: effect.scan,
            created_in_migration: effect.origin == TableOrigin::CreatedInThisMigration,
            rows: effect.rows,
            held_through_seconds,
        })
        .collect()
}

/// The first line of a statement, whitespace collapsed, at most 60 characters.
fn short_sql(text: &str) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= 60 {
        collapsed
    } else {
        let cut: String = collapsed.chars().take(59).collect();
        format!("{cut}…")
    }
}

fn work_label(effect: &EffectPlan) -> &'static str {
    if effect.created_in_migration {
        "new table"
    } else if matches!(
        effect.operation,
        Operation::Update | Operation::Delete | Operation::Merge
    ) {
        "row changes"
    } else if effect.rewrite {
        "rewrite"
    } else if matches!(
        effect.operation,
        Operation::CreateIndex { .. } | Operation::Reindex { .. }
    ) {
        "index build"
    } else if effect.scan {
        "scan"
    } else {
        "catalog"
    }
}

/// The estimate, and the lock hold when a transaction makes it longer than the statement's own work.
fn estimate_cell(statement: &StatementPlan) -> String {
    let estimate = format_duration(statement.estimate_seconds);
    if statement.lock_hold_seconds > statement.estimate_seconds + 0.001 {
        format!(
            "{estimate} (lock held {})",
            format_duration(statement.lock_hold_seconds)
        )
    } else {
        estimate
    }
}

fn table_summary(facts: &TableFacts) -> String {
    if !facts.exists {
        return "not in database".into();
    }
    let approx = if facts.rows_exact { "" } else { "~" };
    let mut text = format!(
        "{approx}{} rows, {}",
        group_thousands(facts.rows),
        format_bytes(facts.total_bytes)
    );
    if let Some(writes) = facts.writes_per_second {
        text.push_str(&format!(", {writes:.0} writes/s"));
    }
    text
}

/// Human text: a table per migration, reasons and actions under each statement, the tables, a summary.
pub fn render_text(report: &PlanReport) -> String {
    let mut out = String::new();
    let header = &report.header;
    out.push_str(&format!(
        "tidegate plan: {} (PostgreSQL {}; lock facts of {}), {}\n",
        header.target,
        header.server_version,
        header.pg_version,
        sampling(header)
    ));
    if header.applied > 0 {
        out.push_str(&format!(
            "{} migration(s) already recorded in tidegate.migrations were skipped\n",
            header.applied
        ));
    }
    if report.migrations.is_empty() {
        out.push_str("\nnothing pending: every migration is recorded in tidegate.migrations\n");
    }
    for migration in &report.migrations {
        out.push_str(&format!("\n{}\n", migration.path));
        let mut rows: Vec<[String; 7]> = vec![[
            "line".into(),
            "statement".into(),
            "table".into(),
            "lock".into(),
            "work".into(),
            "estimate".into(),
            "verdict".into(),
        ]];
        for statement in &migration.statements {
            let first = statement.effects.first();
            rows.push([
                statement.line.to_string(),
                statement.sql.clone(),
                first.map_or("-".into(), |e| e.table.clone()),
                first.map_or("-".into(), |e| e.lock.sql_name().into()),
                first.map_or("-".into(), |e| work_label(e).into()),
                estimate_cell(statement),
                statement.verdict.name().into(),
            ]);
            for effect in statement.effects.iter().skip(1) {
                rows.push([
                    String::new(),
                    String::new(),
                    effect.table.clone(),
                    effect.lock.sql_name().into(),
                    work_label(effect).into(),
                    format_duration(effect.assessment.estimate_seconds),
                    effect.assessment.verdict.name().into(),
                ]);
            }
        }
        let mut widths = [0usize; 7];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut row_index = 0;
        let write_row = |out: &mut String, row: &[String; 7]| {
            let mut line = String::from("  ");
            for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        write_row(&mut out, &rows[0]);
        row_index += 1;
        for statement in &migration.statements {
            write_row(&mut out, &rows[row_index]);
            row_index += 1;
            for _ in statement.effects.iter().skip(1) {
                write_row(&mut out, &rows[row_index]);
                row_index += 1;
            }
            if statement.verdict != Verdict::Safe {
                for reason in &statement.reasons {
                    out.push_str(&format!("        why: {reason}\n"));
                }
                for action in &statement.actions {
                    out.push_str(&format!("        do:  {}\n", action.text()));
                }
            }
        }
    }
    if !report.tables.is_empty() {
        out.push_str("\ntables\n");
        for table in &report.tables {
            let facts = &table.facts;
            let mut line = format!("  {}: {}", table.table, table_summary(facts));
            if let Some(rate) = facts.scan_bytes_per_second {
                line.push_str(&format!(
                    ", read at {}/s",
                    format_bytes(rate.round() as u64)
                ));
            }
            out.push_str(&line);
            out.push('\n');
            for session in &facts.lock_holders {
                out.push_str(&format!(
                    "    lock: {}\n",
                    crate::model::HolderSummary(session)
                ));
            }
        }
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&format!(
        "\n{}: {}\n",
        verdict_headline(report.summary.verdict),
        report.summary.line()
    ));
    out
}

fn sampling(header: &ReportHeader) -> String {
    if header.sample_seconds > 0.0 {
        format!(
            "write rates sampled over {}",
            format_duration(header.sample_seconds)
        )
    } else {
        "write rates not sampled".into()
    }
}

fn verdict_headline(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Safe => "safe to release",
        Verdict::NeedsBatching => "needs batching",
        Verdict::NeedsWindow => "needs a maintenance window",
        Verdict::Dangerous => "dangerous",
    }
}

/// Machine output: the whole report as one JSON object.
pub fn render_json(report: &PlanReport) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|error| {
        // Serialising plain data structs cannot fail; say so plainly if it ever does.
        format!("{{\"error\": \"could not serialise the plan: {error}\"}}")
    });
    text.push('\n');
    text
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('`', "'")
}

/// A section a release manager pastes into a release checklist.
pub fn render_markdown(report: &PlanReport) -> String {
    let mut out = String::new();
    let header = &report.header;
    out.push_str("### Migration risk (tidegate plan)\n\n");
    out.push_str(&format!(
        "Assessed against `{}` (PostgreSQL {}), {}.\n\n",
        header.target,
        header.server_version,
        sampling(header)
    ));
    if report.migrations.is_empty() {
        out.push_str("Nothing pending.\n");
        return out;
    }
    out.push_str("| Migration | Line | Statement | Table | Lock | Work | Estimate | Verdict |\n");
    out.push_str("|---|---:|---|---|---|---|---:|---|\n");
    let tables: BTreeMap<&str, &TableFacts> = report
        .tables
        .iter()
        .map(|table| (table.table.as_str(), &table.facts))
        .collect();
    for migration in &report.migrations {
        for statement in &migration.statements {
            let (table, lock, work) = match statement.effects.first() {
                Some(effect) => {
                    let context = if effect.created_in_migration {
                        "new".to_string()
                    } else {
                        tables
                            .get(effect.table.as_str())
                            .map_or("not in database".into(), |facts| table_summary(facts))
                    };
                    (
                        format!("{} ({context})", effect.table),
                        effect.lock.sql_name().to_string(),
                        work_label(effect).to_string(),
                    )
                }
                None => ("-".into(), "-".into(), "-".into()),
            };
            let verdict = match statement.verdict {
                Verdict::Safe => "safe".to_string(),
                other => format!("**{}**", other.name()),
            };
            out.push_str(&format!(
                "| `{}` | {} | `{}` | {} | {} | {} | {} | {} |\n",
                markdown_cell(&migration.path),
                statement.line,
                markdown_cell(&statement.sql),
                markdown_cell(&table),
                lock,
                work,
                estimate_cell(statement),
                verdict
            ));
        }
    }
    out.push_str(&format!(
        "\n**Summary:** {}. Verdict: **{}**.\n",
        report.summary.line(),
        verdict_headline(report.summary.verdict)
    ));
    let flagged: Vec<(&MigrationPlan, &StatementPlan)> = report
        .migrations
        .iter()
        .flat_map(|migration| {
            migration
                .statements
                .iter()
                .filter(|statement| statement.verdict != Verdict::Safe)
                .map(move |statement| (migration, statement))
        })
        .collect();
    if !flagged.is_empty() {
        out.push_str("\n**Why**\n\n");
        for (migration, statement) in &flagged {
            for reason in &statement.reasons {
                out.push_str(&format!(
                    "- `{}` line {}: {}\n",
                    markdown_cell(&migration.path),
                    statement.line,
                    reason
                ));
            }
        }
        out.push_str("\n**Actions**\n\n");
        for (migration, statement) in &flagged {
            for action in &statement.actions {
                out.push_str(&format!(
                    "- [ ] `{}` line {}: {}\n",
                    markdown_cell(&migration.path),
                    statement.line,
                    action.text()
                ));
            }
        }
    }
    out
}
