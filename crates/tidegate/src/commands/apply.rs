//! `tidegate apply`: runs pending migrations the way the postmortem says they should have run — schema and data
//! separated, every lock bounded by lock_timeout with retries, unbatched data changes turned into backfills.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tidegate_apply::executor::ApplySink;
use tidegate_apply::phases::{Disposition, PhaseKind};
use tidegate_apply::{apply, ApplyError, ApplyEvent, ApplyOptions, ApplyPlan};
use tidegate_backfill::engine::{BackfillOptions, StopHandle};
use tidegate_backfill::events::Event as BackfillEvent;
use tidegate_backfill::pacing::Window;
use tidegate_db::mysql::MySqlConfig;
use tidegate_db::target::Target;
use tidegate_metrics::addr::MetricsAddr;

use super::backfill::spawn_signal_handlers;
use super::parse_duration;
use super::Format;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Migration directory (layout detected: plain, sqlx, diesel, golang-migrate, dbmate, Flyway, Prisma)
    #[arg(default_value = "migrations")]
    pub dir: PathBuf,
    /// Connection URL (postgresql://…, or mysql://… / mariadb://… for MySQL and MariaDB); else DATABASE_URL,
    /// else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,
    /// Print the plan (migrations, phases, locks, what becomes a backfill) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// lock_timeout of every schema statement: how long production may queue behind it (MySQL/MariaDB:
    /// lock_wait_timeout, whole seconds)
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub lock_timeout: Duration,
    /// statement_timeout of every schema statement
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub statement_timeout: Duration,
    /// How long a CONCURRENTLY statement (CREATE/DROP INDEX, REINDEX, DETACH PARTITION) may run, its waits for older
    /// transactions included; those waits queue no traffic, and its table lock request is still bounded by
    /// --lock-timeout
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub concurrent_wait: Duration,
    /// Retries of a schema phase after a lock timeout (jittered exponential backoff)
    #[arg(long, default_value_t = 10)]
    pub retries: u32,
    /// How long to wait for another apply on the same database
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub lock_wait: Duration,
    /// Start migrations only within this daily UTC window, e.g. 22:00-06:00
    #[arg(long)]
    pub window: Option<String>,
    /// Run data changes that cannot become backfills as written, in one transaction each
    #[arg(long)]
    pub allow_unbatched: bool,
    /// MySQL/MariaDB: run an ALTER that can only COPY a table of at least small_table_rows rows (every write to
    /// the table waits for the whole copy); refused otherwise
    #[arg(long)]
    pub allow_copy: bool,
    /// Refuse dangerous statements instead of running their safe equivalents (CONCURRENTLY, NOT VALID +
    /// VALIDATE, UNIQUE USING INDEX, CHECK-assisted SET NOT NULL, default-then-backfill)
    #[arg(long)]
    pub no_rewrite: bool,
    /// Target execution time of one backfill batch
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub batch_time: Duration,
    /// Upper bound on rows a backfill changes per second
    #[arg(long)]
    pub max_rows_per_second: Option<u64>,
    /// How long the health gate waits for the database to be healthy before a migration or phase, then refuses
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub health_wait: Duration,
    /// Health gate and backfills: wait while a replica lags more than this
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub max_replica_lag: Duration,
    /// MySQL/MariaDB backfill phases: a replica to watch (mysql://user:password@host:port/), repeatable; its lag
    /// is read on it with SHOW REPLICA STATUS, and a replica whose replication is stopped makes the backfill wait
    #[arg(long = "replica", value_name = "URL")]
    pub replicas: Vec<String>,
    /// Health gate and backfills: wait while more client backends than this are active
    #[arg(long)]
    pub max_active: Option<u32>,
    /// Health gate and backfills: a query returning one boolean; true means wait (as gh-ost's)
    #[arg(long)]
    pub throttle_query: Option<String>,
    /// Configuration file for the lint gate [default: tidegate.toml, searched upward]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while apply runs (a port alone: 127.0.0.1)
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<MetricsAddr>,
    /// With --metrics-addr: keep serving this long after apply ends, so a scrape sees how it ended (e.g. 30s)
    #[arg(long, value_parser = parse_duration, default_value = "0s", requires = "metrics_addr")]
    pub metrics_linger: Duration,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let replicas = match super::backfill::replicas_from(&args.replicas) {
        Ok(replicas) => replicas,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(super::exit_usage());
        }
    };
    let target = Target::resolve(args.db.as_deref());
    if let Ok(target) = &target {
        if let Err(error) = super::backfill::replicas_fit(target, &replicas) {
            eprintln!("error: {error}");
            return Ok(super::exit_usage());
        }
    }
    let config = match target {
        Ok(Target::Postgres(config)) => config,
        Ok(Target::MySql(config)) => return run_mysql(args, config, replicas),
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(super::exit_usage());
        }
    };
    let lint = match super::lint::load_config(args.config.as_deref()) {
        Ok(lint) => lint,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(super::exit_usage());
        }
    };
    let window = match args.window.as_deref().map(str::parse::<Window>).transpose() {
        Ok(window) => window,
        Err(error) => {
            eprintln!("error: --window: {error}");
            return Ok(super::exit_usage());
        }
    };
    if args.lock_timeout.is_zero() {
        eprintln!("error: --lock-timeout must be more than zero: apply never waits for a lock without a bound");
        return Ok(super::exit_usage());
    }
    if args.statement_timeout.is_zero() {
        // PostgreSQL reads 0 as "no limit"; apply never runs a schema statement without one.
        eprintln!("error: --statement-timeout must be more than zero: every schema statement runs with a bound");
        return Ok(super::exit_usage());
    }
    if args.concurrent_wait.is_zero() {
        eprintln!("error: --concurrent-wait must be more than zero: a CONCURRENTLY statement runs with a bound");
        return Ok(super::exit_usage());
    }
    // PostgreSQL's timeouts are int milliseconds: a larger value would fail every attempt at `SET`.
    const LONGEST_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);
    for (flag, value) in [
        ("--lock-timeout", args.lock_timeout),
        ("--statement-timeout", args.statement_timeout),
        ("--concurrent-wait", args.concurrent_wait),
    ] {
        if value > LONGEST_TIMEOUT {
            eprintln!(
                "error: {flag} may be at most {}h (PostgreSQL's limit of 2147483647 ms)",
                LONGEST_TIMEOUT.as_secs() / 3600
            );
            return Ok(super::exit_usage());
        }
    }
    let mut backfill = BackfillOptions::default();
    backfill.controller.target = args.batch_time;
    backfill.max_rows_per_second = args.max_rows_per_second;
    // A backfill phase keeps to the same window: its batches pause when the window closes.
    backfill.window = window;
    backfill.thresholds.max_replica_lag = args.max_replica_lag;
    backfill.thresholds.max_active = args.max_active;
    backfill.throttle_query = args.throttle_query.clone();
    let stop = StopHandle::default();
    let options = ApplyOptions {
        lock_timeout: args.lock_timeout,
        statement_timeout: args.statement_timeout,
        concurrent_wait: args.concurrent_wait,
        retries: args.retries,
        lock_wait: args.lock_wait,
        window,
        allow_unbatched: args.allow_unbatched,
        allow_copy: args.allow_copy,
        rewrite: !args.no_rewrite,
        dry_run: args.dry_run,
        layout: None,
        lint,
        backfill,
        stop: stop.clone(),
        health_wait: args.health_wait,
    };
    let format = args.format;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // A dry run runs nothing to watch: no endpoint.
    let endpoint = if args.dry_run {
        None
    } else {
        match runtime.block_on(super::metrics::start(args.metrics_addr, format)) {
            Ok(endpoint) => endpoint,
            Err(code) => return Ok(code),
        }
    };
    let metrics = endpoint.as_ref().map(|e| e.metrics.clone());
    // A dry run prints one document, the plan; a real run streams its events (one JSON object per line).
    let sink: ApplySink = if args.dry_run {
        Arc::new(|_: &ApplyEvent| {})
    } else {
        Arc::new(move |event: &ApplyEvent| {
            if let Some(metrics) = &metrics {
                metrics.record_apply(event);
            }
            render_event(format, event)
        })
    };
    let outcome = runtime.block_on(async {
        spawn_signal_handlers(stop.clone());
        apply(&config, &args.dir, options, sink).await
    });
    let code = report(outcome, format);
    if let Some(endpoint) = endpoint {
        runtime.block_on(endpoint.linger(args.metrics_linger, &stop));
    }
    code
}

fn report(
    outcome: Result<tidegate_apply::ApplySummary, ApplyError>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    match outcome {
        Ok(summary) => {
            if summary.dry_run {
                match format {
                    Format::Json => {
                        println!("{}", serde_json::to_string_pretty(&summary.plan)?)
                    }
                    Format::Text => print!("{}", render_plan(&summary.plan)),
                }
            } else if format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({ "event": "done", "applied": summary.applied_now })
                );
            } else if summary.applied_now.is_empty() {
                eprintln!(
                    "nothing to apply: all {} migrations are applied",
                    summary.plan.applied.len()
                );
            } else {
                eprintln!(
                    "applied {} migration(s): {}",
                    summary.applied_now.len(),
                    summary.applied_now.join(", ")
                );
            }
            Ok(super::exit_clean())
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(match error {
                ApplyError::Discovery(_)
                | ApplyError::NoMigrations { .. }
                | ApplyError::ChecksumChanged { .. }
                | ApplyError::Obstacles(_)
                | ApplyError::NeedsBaseline { .. } => super::exit_usage(),
                _ => super::exit_failure(),
            })
        }
    }
}

fn render_event(format: Format, event: &ApplyEvent) {
    if format == Format::Json {
        if let Ok(line) = serde_json::to_string(event) {
            println!("{line}");
        }
        return;
    }
    let line = match event {
        ApplyEvent::Planned { applied, pending } => {
            format!("{pending} pending, {applied} already applied")
        }
        ApplyEvent::WaitingForBackfill {
            run_id,
            version,
            pids,
            waited_s,
        } => format!(
            "waiting: backfill run {run_id} of {version} is still worked on by session(s) {pids:?} (an apply that \
             lost its lock?); {waited_s} s so far"
        ),
        ApplyEvent::WaitingForWindow { opens_in_s } => {
            format!(
                "outside the --window: waiting {} min for it to open",
                opens_in_s.div_ceil(60)
            )
        }
        ApplyEvent::WaitingForHealth {
            version,
            before_phase,
            reason,
            waited_s,
            ..
        } => format!(
            "waiting before phase {before_phase} of {version}: the database is not healthy ({reason}); {waited_s} s so far"
        ),
        ApplyEvent::MigrationStarted {
            version,
            name,
            phases,
        } if version == name => format!("{name}: {phases} phase(s)"),
        ApplyEvent::MigrationStarted {
            version,
            name,
            phases,
        } => format!("{version} {name}: {phases} phase(s)"),
        ApplyEvent::PhaseStarted {
            phase,
            kind,
            statements,
            ..
        } => {
            format!("  phase {phase}: {kind}, {statements} statement(s)")
        }
        ApplyEvent::PhaseSkipped { phase, reason, .. } => {
            format!("  phase {phase}: skipped ({reason})")
        }
        ApplyEvent::LockTimedOut {
            attempt,
            blockers,
            retry_in_ms,
            ..
        } => {
            let who = if blockers.is_empty() {
                "no blocker caught in the act".to_string()
            } else {
                blockers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            match retry_in_ms {
                Some(ms) => format!("    attempt {attempt}: lock not granted within lock_timeout, blocked by {who}; retrying in {:.1} s", *ms as f64 / 1000.0),
                None => format!("    attempt {attempt}: lock not granted within lock_timeout, blocked by {who}; giving up"),
            }
        }
        ApplyEvent::TransactionsOpen {
            attempt,
            table,
            transactions,
            after_lock_timeout,
            ..
        } => {
            let who = transactions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let table = table.as_deref().unwrap_or("the table");
            if *after_lock_timeout {
                format!("    attempt {attempt}: metadata lock on {table} not granted within lock_wait_timeout (error 1205); open transactions: {who}")
            } else {
                format!("    before attempt {attempt}: open transactions that may hold {table}'s metadata lock: {who}")
            }
        }
        ApplyEvent::DdlRunning {
            statement,
            added_clause,
            ..
        } => match added_clause {
            Some(clause) => format!("    running `{statement}` ({clause} added from the online-DDL facts)"),
            None => format!("    running `{statement}`"),
        },
        ApplyEvent::DroppedInvalidIndex { index, .. } => {
            format!("    dropped the INVALID index {index} left by an earlier failed build")
        }
        ApplyEvent::StatementAlreadyDone { reason, .. } => {
            format!("    already done by an interrupted earlier apply ({reason}); recorded, not run again")
        }
        ApplyEvent::Backfill { backfill, .. } => match backfill {
            BackfillEvent::Started {
                run_id,
                estimated_rows,
                ..
            } => format!(
                "    backfill run {run_id} started ({} rows estimated)",
                estimated_rows.unwrap_or(0)
            ),
            BackfillEvent::Throttled {
                reason,
                recovering: None,
                ..
            } => format!("    backfill throttled: {reason}"),
            BackfillEvent::Completed {
                rows_done, batches, ..
            } => format!("    backfill completed: {rows_done} rows in {batches} batches"),
            _ => return,
        },
        ApplyEvent::PhaseDone {
            phase, elapsed_ms, ..
        } => {
            format!(
                "  phase {phase}: done in {:.1} s",
                *elapsed_ms as f64 / 1000.0
            )
        }
        ApplyEvent::MigrationApplied {
            version,
            duration_ms,
            ..
        } => {
            format!(
                "{version}: applied in {:.1} s",
                *duration_ms as f64 / 1000.0
            )
        }
        ApplyEvent::MigrationFailed {
            version,
            phase,
            error,
        } => format!("{version}: FAILED in phase {phase}: {error}"),
    };
    eprintln!("{line}");
}

/// `tidegate apply` on MySQL/MariaDB: the same flags, the PostgreSQL-only ones refused when given.
fn run_mysql(
    args: ApplyArgs,
    config: MySqlConfig,
    replicas: Vec<tidegate_backfill::engine::Replica>,
) -> anyhow::Result<ExitCode> {
    let lint = match super::lint::load_config(args.config.as_deref()) {
        Ok(lint) => lint,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(super::exit_usage());
        }
    };
    if args.no_rewrite {
        eprintln!("error: --no-rewrite is not supported on MySQL/MariaDB yet");
        return Ok(super::exit_usage());
    }
    let window = match args.window.as_deref().map(str::parse::<Window>).transpose() {
        Ok(window) => window,
        Err(error) => {
            eprintln!("error: --window: {error}");
            return Ok(super::exit_usage());
        }
    };
    if args.lock_timeout.is_zero() || args.lock_timeout.subsec_nanos() != 0 {
        eprintln!(
            "error: --lock-timeout must be whole seconds, at least 1s, on MySQL/MariaDB (lock_wait_timeout counts seconds); got {:?}",
            args.lock_timeout
        );
        return Ok(super::exit_usage());
    }
    let mut backfill = BackfillOptions::default();
    backfill.controller.target = args.batch_time;
    backfill.max_rows_per_second = args.max_rows_per_second;
    backfill.thresholds.max_active = args.max_active;
    backfill.thresholds.max_replica_lag = args.max_replica_lag;
    backfill.replicas = replicas;
    backfill.throttle_query = args.throttle_query.clone();
    // A backfill phase keeps to the same window: its batches pause when the window closes.
    backfill.window = window;
    let stop = StopHandle::default();
    let options = ApplyOptions {
        window,
        lock_timeout: args.lock_timeout,
        statement_timeout: args.statement_timeout,
        retries: args.retries,
        lock_wait: args.lock_wait,
        allow_unbatched: args.allow_unbatched,
        allow_copy: args.allow_copy,
        dry_run: args.dry_run,
        lint,
        backfill,
        stop: stop.clone(),
        health_wait: args.health_wait,
        ..ApplyOptions::default()
    };
    let format = args.format;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // The same endpoint and series as on PostgreSQL: the executors emit the same events. A dry run has none.
    let endpoint = if args.dry_run {
        None
    } else {
        match runtime.block_on(super::metrics::start(args.metrics_addr, format)) {
            Ok(endpoint) => endpoint,
            Err(code) => return Ok(code),
        }
    };
    let metrics = endpoint.as_ref().map(|e| e.metrics.clone());
    let sink: ApplySink = if args.dry_run {
        Arc::new(|_: &ApplyEvent| {})
    } else {
        Arc::new(move |event: &ApplyEvent| {
            if let Some(metrics) = &metrics {
                metrics.record_apply(event);
            }
            render_event(format, event)
        })
    };
    let outcome = runtime.block_on(async {
        spawn_signal_handlers(stop.clone());
        tidegate_apply::mysql::apply_mysql(&config, &args.dir, options, sink).await
    });
    let code = report_mysql(outcome, format);
    if let Some(endpoint) = endpoint {
        runtime.block_on(endpoint.linger(args.metrics_linger, &stop));
    }
    code
}

fn report_mysql(
    outcome: Result<tidegate_apply::mysql::MyApplySummary, ApplyError>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    match outcome {
        Ok(summary) => {
            if summary.dry_run {
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&summary.plan)?),
                    Format::Text => print!("{}", render_mysql_plan(&summary.plan)),
                }
            } else if format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({ "event": "done", "applied": summary.applied_now })
                );
            } else if summary.applied_now.is_empty() {
                eprintln!(
                    "nothing to apply: all {} migrations are applied",
                    summary.plan.applied.len()
                );
            } else {
                eprintln!(
                    "applied {} migration(s): {}",
                    summary.applied_now.len(),
                    summary.applied_now.join(", ")
                );
            }
            Ok(super::exit_clean())
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(match error {
                ApplyError::Discovery(_)
                | ApplyError::NoMigrations { .. }
                | ApplyError::ChecksumChanged { .. }
                | ApplyError::MySqlObstacles(_) => super::exit_usage(),
                _ => super::exit_failure(),
            })
        }
    }
}

fn render_mysql_plan(plan: &tidegate_apply::mysql::MyApplyPlan) -> String {
    let mut out = format!(
        "{} ({} layout) on {}: {} applied, {} pending\n",
        plan.root.display(),
        plan.layout,
        plan.server,
        plan.applied.len(),
        plan.pending.len()
    );
    for migration in &plan.pending {
        out.push_str(&format!(
            "\n{} {}: {} phase(s){}\n",
            migration.version,
            migration.name,
            migration.phases.len(),
            if migration.phases_done > 0 {
                format!(", resuming after phase {}", migration.phases_done)
            } else {
                String::new()
            }
        ));
        for (index, phase) in migration.phases.iter().enumerate() {
            out.push_str(&format!(
                "  {}. {}: {}\n",
                index + 1,
                phase.class(),
                phase.describe()
            ));
        }
        for note in &migration.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
    }
    out
}

fn render_plan(plan: &ApplyPlan) -> String {
    let mut out = format!(
        "{} ({} layout): {} applied, {} pending\n",
        plan.root.display(),
        plan.layout,
        plan.applied.len(),
        plan.pending.len()
    );
    for migration in &plan.pending {
        if migration.version == migration.name {
            out.push_str(&format!("\n{}\n", migration.name));
        } else {
            out.push_str(&format!("\n{} {}\n", migration.version, migration.name));
        }
        for (index, phase) in migration.plan.phases.iter().enumerate() {
            let number = index + 1;
            let done = if index < migration.phases_done {
                " (done by an earlier apply)"
            } else {
                ""
            };
            let header = match &phase.kind {
                PhaseKind::Schema {
                    in_transaction: true,
                } => "schema phase, one transaction, lock_timeout + retries".to_string(),
                PhaseKind::Schema {
                    in_transaction: false,
                } => "schema phase, outside a transaction (CONCURRENTLY)".to_string(),
                PhaseKind::Backfill { spec } => {
                    format!("backfill phase: batched, throttled {}", spec.describe())
                }
                PhaseKind::DataAsWritten => {
                    "data phase, as written (--allow-unbatched)".to_string()
                }
            };
            out.push_str(&format!("  phase {number}: {header}{done}\n"));
            for step in &phase.steps {
                let Some(statement) = migration.plan.statements.get(step.statement) else {
                    continue;
                };
                if step.rewritten {
                    out.push_str(&format!(
                        "    line {:>3} (safe form): {}\n",
                        statement.line, step.sql
                    ));
                    continue;
                }
                let first_line = step.sql.lines().next().unwrap_or_default();
                let mut facts = statement.locks.join(", ");
                if statement.rewrites {
                    facts.push_str(", rewrites the table");
                } else if statement.scans {
                    facts.push_str(", scans the table");
                }
                out.push_str(&format!(
                    "    line {:>3}: {first_line}\n              {facts}\n",
                    statement.line
                ));
            }
        }
        for statement in &migration.plan.statements {
            let note = match &statement.disposition {
                Disposition::AsWrittenSmallTable {
                    table,
                    rows,
                    small_table_rows,
                    rules,
                } => format!(
                    "runs as written: {table} has {rows} row(s), below small_table_rows = {small_table_rows} \
                     ({})",
                    rules.join(", ")
                ),
                Disposition::Rewritten { rules } => {
                    format!("runs in its safe form ({})", rules.join(", "))
                }
                Disposition::Skipped { reason } => format!("skipped: {reason}"),
                _ => continue,
            };
            let first_line = statement.text.lines().next().unwrap_or_default();
            out.push_str(&format!(
                "  line {}: {first_line}\n      {note}\n",
                statement.line
            ));
        }
        if !migration.plan.is_atomic() {
            out.push_str(&format!(
                "  not atomic: its {} phases commit one by one; if one fails, the phases before it stay committed \
                 and `tidegate apply` resumes at the one that failed\n",
                migration.plan.phases.len()
            ));
        }
    }
    out
}
