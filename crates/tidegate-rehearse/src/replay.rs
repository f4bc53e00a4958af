//! `--workload auto` with the source's `pg_stat_statements`: its most-called statements that touch the copied
//! tables, replayed on the copy with parameters drawn from the statistics of the columns they are compared to or
//! assigned to, at their measured rate. Pure: [`plan`] decides what is replayed (and why the rest is not) from
//! what the rehearsal read; [`ReplayWorkload`] is the workload's [`RequestSource`].
//!
//! A `$n` stands for a column when the statement compares it to one (`=`, `<`, `IN`, `BETWEEN`, `LIKE`, …) or
//! assigns it to one (`SET c = $n`, an INSERT's value); its value is drawn from the synthetic column's layout, so
//! most-common values come up at their frequencies, and bound as text for the server to parse as the column's
//! type. `LIMIT $n` is bound to [`LIMIT_VALUE`] and `OFFSET $n` to 0 (pg_stat_statements does not keep the
//! constants). Anything else — DDL and utility statements, a `$n` in arithmetic or a function call, a table
//! that was not copied, a column without values — is skipped, with its reason.

use std::sync::Arc;

use serde::Serialize;
use tidegate_db::stat_statements::StatStatements;
use tidegate_sql::replay::{replay_shape, ParamTarget, Relation, ReplayShape};

use crate::synth::{ColumnGenerator, SourceTable, SynthesisPlan};
use crate::workload::{Param, Request, RequestSource, TextParam};

/// What `LIMIT $n` is bound to.
pub const LIMIT_VALUE: &str = "10";

/// The most statements a replay runs: the most-called ones that can be replayed.
pub const MAX_STATEMENTS: usize = 20;

/// Where a parameter's values come from.
#[derive(Debug, Clone)]
enum ParamSource {
    Column(Arc<ColumnGenerator>),
    Fixed(&'static str),
}

/// A statement the replay runs.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayedStatement {
    pub sql: String,
    /// Calls on the source over the interval.
    pub calls: u64,
    pub source_calls_per_second: f64,
    /// What each `$n` is drawn from, in order: `public.orders.status`, `LIMIT 10`.
    pub params: Vec<String>,
    #[serde(skip)]
    sources: Vec<ParamSource>,
}

/// Equal when they replay the same statement the same way (the generators behind the parameters are not
/// compared: they follow from the labels).
impl PartialEq for ReplayedStatement {
    fn eq(&self, other: &Self) -> bool {
        self.sql == other.sql
            && self.calls == other.calls
            && self.source_calls_per_second == other.source_calls_per_second
            && self.params == other.params
    }
}

/// A statement of the source's pg_stat_statements that touches a copied table and is not replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedStatement {
    /// `None` when the reading role may not see the text.
    pub sql: Option<String>,
    pub calls: u64,
    pub reason: String,
}

/// What the replay runs, and what it leaves out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayPlan {
    /// The interval the source's counters cover.
    pub interval_seconds: f64,
    /// The replayed statements' calls per second on the source, together.
    pub source_calls_per_second: f64,
    pub statements: Vec<ReplayedStatement>,
    pub skipped: Vec<SkippedStatement>,
}

/// The copied table a statement's relation is: by schema and name, or by name alone when only one copied table
/// (else the one in `public`) has it.
fn find_table(relation: &Relation, tables: &[SourceTable]) -> Option<usize> {
    let named: Vec<usize> = tables
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.schema.name == relation.name
                && relation
                    .schema
                    .as_ref()
                    .is_none_or(|schema| *schema == t.schema.schema)
        })
        .map(|(index, _)| index)
        .collect();
    match named.as_slice() {
        [one] => Some(*one),
        [] => None,
        several => several
            .iter()
            .copied()
            .find(|index| tables[*index].schema.schema == "public"),
    }
}

fn relation_label(relation: &Relation) -> String {
    match &relation.schema {
        Some(schema) => format!("{schema}.{}", relation.name),
        None => relation.name.clone(),
    }
}

/// The source of each `$n` of `shape`, or why one has none.
fn param_sources(
    shape: &ReplayShape,
    touched: &[usize],
    tables: &[SourceTable],
    generators: &SynthesisPlan,
) -> Result<Vec<(String, ParamSource)>, String> {
    let mut sources = Vec::new();
    for param in &shape.params {
        let n = param.number;
        let (qualifier, column) = match &param.target {
            ParamTarget::Limit => {
                sources.push((
                    format!("LIMIT {LIMIT_VALUE}"),
                    ParamSource::Fixed(LIMIT_VALUE),
                ));
                continue;
            }
            ParamTarget::Offset => {
                sources.push(("OFFSET 0".into(), ParamSource::Fixed("0")));
                continue;
            }
            ParamTarget::Column { qualifier, column } => (qualifier, column),
        };
        let has_column = |index: &usize| tables[*index].schema.column(column).is_some();
        let candidates: Vec<usize> = match qualifier {
            Some(qualifier) => {
                let relation = shape.relation_named(qualifier).ok_or_else(|| {
                    format!("${n} is compared to {qualifier}.{column}, and {qualifier} names no table of it")
                })?;
                find_table(relation, tables).into_iter().collect()
            }
            None => touched.iter().copied().filter(has_column).collect(),
        };
        let table = match candidates.as_slice() {
            [one] => *one,
            [] => return Err(format!("${n}: no copied table of it has a column {column}")),
            _ => {
                return Err(format!(
                    "${n} is compared to {column}, which several of its tables have"
                ))
            }
        };
        let generator = generators.tables.get(table).and_then(|generated| {
            generated
                .columns
                .iter()
                .find(|(name, _)| name == column)
                .map(|(_, generator)| generator.clone())
        });
        let qualified = format!("{}.{column}", tables[table].schema.qualified);
        match generator {
            Some(generator) if generator.values() > 0 => {
                sources.push((qualified, ParamSource::Column(generator)))
            }
            Some(_) => return Err(format!("${n}: {qualified} holds only NULLs in the copy")),
            None => {
                return Err(format!(
                    "${n}: {qualified} is not generated (a generated column, or not in the copy)"
                ))
            }
        }
    }
    Ok(sources)
}

/// Decides what the replay runs from the source's most-called statements: those that touch a copied table, up to
/// [`MAX_STATEMENTS`] of them replayable; the others that touch one are skipped with their reason.
pub fn plan(
    reading: &StatStatements,
    tables: &[SourceTable],
    generators: &SynthesisPlan,
) -> ReplayPlan {
    let interval = reading.interval_seconds.max(1.0);
    let mut statements = Vec::new();
    let mut skipped = Vec::new();
    for statement in &reading.statements {
        let Some(sql) = &statement.query else {
            skipped.push(SkippedStatement {
                sql: None,
                calls: statement.calls,
                reason: "its text is hidden from the reading role (pg_read_all_stats shows it)"
                    .into(),
            });
            continue;
        };
        let skip = |reason: String| SkippedStatement {
            sql: Some(sql.clone()),
            calls: statement.calls,
            reason,
        };
        let shape = match replay_shape(sql) {
            Ok(shape) => shape,
            Err(unreplayable) => {
                if unreplayable
                    .relations
                    .iter()
                    .any(|r| find_table(r, tables).is_some())
                {
                    skipped.push(skip(unreplayable.reason));
                }
                continue;
            }
        };
        let found: Vec<Option<usize>> = shape
            .relations
            .iter()
            .map(|r| find_table(r, tables))
            .collect();
        if found.iter().all(Option::is_none) {
            continue;
        }
        if let Some(missing) = shape
            .relations
            .iter()
            .zip(&found)
            .find_map(|(relation, index)| index.is_none().then_some(relation))
        {
            skipped.push(skip(format!(
                "it reads {}, which is not copied",
                relation_label(missing)
            )));
            continue;
        }
        if statements.len() >= MAX_STATEMENTS {
            skipped.push(skip(format!(
                "beyond the {MAX_STATEMENTS} most-called statements replayed"
            )));
            continue;
        }
        let touched: Vec<usize> = found.into_iter().flatten().collect();
        match param_sources(&shape, &touched, tables, generators) {
            Ok(sources) => statements.push(ReplayedStatement {
                sql: sql.clone(),
                calls: statement.calls,
                source_calls_per_second: statement.calls as f64 / interval,
                params: sources.iter().map(|(label, _)| label.clone()).collect(),
                sources: sources.into_iter().map(|(_, source)| source).collect(),
            }),
            Err(reason) => skipped.push(skip(reason)),
        }
    }
    ReplayPlan {
        interval_seconds: reading.interval_seconds,
        source_calls_per_second: statements.iter().map(|s| s.source_calls_per_second).sum(),
        statements,
        skipped,
    }
}

impl ReplayPlan {
    /// The workload that replays the statements, each as often (relative to the others) as on the source.
    pub fn workload(&self) -> ReplayWorkload {
        let mut total = 0u64;
        let cumulative = self
            .statements
            .iter()
            .map(|statement| {
                total += statement.calls.max(1);
                total
            })
            .collect();
        ReplayWorkload {
            statements: self.statements.clone(),
            cumulative,
        }
    }
}

/// The replay as a [`RequestSource`].
#[derive(Debug, Clone)]
pub struct ReplayWorkload {
    statements: Vec<ReplayedStatement>,
    /// Running totals of calls, to pick a statement in proportion to its calls.
    cumulative: Vec<u64>,
}

impl RequestSource for ReplayWorkload {
    fn statements(&self) -> Vec<String> {
        self.statements.iter().map(|s| s.sql.clone()).collect()
    }

    fn next_request(&self, rng: &mut fastrand::Rng) -> Request {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let pick = if total == 0 { 0 } else { rng.u64(..total) };
        let index = self
            .cumulative
            .partition_point(|running| *running <= pick)
            .min(self.statements.len().saturating_sub(1));
        let params = self
            .statements
            .get(index)
            .map(|statement| {
                statement
                    .sources
                    .iter()
                    .map(|source| -> Param {
                        Box::new(TextParam(match source {
                            ParamSource::Column(generator) => generator.draw(rng.u64(..)),
                            ParamSource::Fixed(text) => Some(text.to_string()),
                        }))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Request {
            statement: index,
            params,
        }
    }
}
