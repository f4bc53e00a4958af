//! `tidegate backfill`: a batched, adaptive, throttled, exactly-once resumable data change: an UPDATE (`--set`)
//! or a DELETE (`--delete`). Parses flags into a spec and options, runs `tidegate_backfill::engine`, renders its events.

use super::parse_duration;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tidegate_backfill::controller::ControllerConfig;
use tidegate_backfill::engine::{
    self, BackfillError, BackfillOptions, ForegroundBudget, Replica, RunEnd, RunTarget, StopHandle,
};
use tidegate_backfill::events::{rows_verb, Event};
use tidegate_backfill::pacing::Window;
use tidegate_backfill::scaling::ScalerConfig;
use tidegate_backfill::spec::{parse_key_for, BackfillSpec};
use tidegate_backfill::throttle::Thresholds;
use tidegate_db::mysql::MySqlConfig;
use tidegate_db::target::Target;
use tidegate_metrics::addr::MetricsAddr;

use super::{exit_clean, exit_failure, exit_usage, Format};

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// Connection URL (postgresql://…, or mysql://… / mariadb://… for MySQL and MariaDB); else DATABASE_URL, else libpq's PG* variables
    #[arg(long)]
    pub db: Option<String>,
    /// The table to change (`table` or `schema.table`)
    #[arg(long, required_unless_present = "resume")]
    pub table: Option<String>,
    /// The assignment list, e.g. "order_status_v2 = order_status"
    #[arg(long, required_unless_present_any = ["resume", "delete"])]
    pub set: Option<String>,
    /// Delete the rows matching --where instead of updating them (batched like an update)
    #[arg(long, conflicts_with = "set")]
    pub delete: bool,
    /// With --delete and no --where: delete every row of the table (within its key range at start)
    // Without --delete, --set is required and conflicts with --all, so clap refuses --all alone too.
    #[arg(long, conflicts_with_all = ["predicate", "set"])]
    pub all: bool,
    /// Only rows matching this predicate on the table's own columns
    #[arg(long = "where")]
    pub predicate: Option<String>,
    /// Key columns naming a unique NOT NULL index (default: the primary key)
    #[arg(long)]
    pub key: Option<String>,
    /// Target execution time of one batch's UPDATE (e.g. 100ms, 1s)
    #[arg(long, value_parser = parse_duration)]
    pub batch_time: Option<Duration>,
    /// Rows per batch: fixed, or the starting size when --batch-time is also given
    #[arg(long)]
    pub batch_size: Option<u64>,
    /// Upper bound on rows changed per second
    #[arg(long)]
    pub max_rows_per_second: Option<u64>,
    /// Run batches only within this daily UTC window, e.g. 22:00-06:00
    #[arg(long)]
    pub window: Option<String>,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output: text (progress bar on a TTY, plain lines otherwise) or json (one event per line)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Resume run ID (see `tidegate runs`)
    #[arg(long, value_name = "ID", conflicts_with_all = ["table", "set", "delete", "all", "predicate", "key", "restart"])]
    pub resume: Option<i64>,
    /// Discard the unfinished run of this spec and start over
    #[arg(long)]
    pub restart: bool,
    /// Workers in this process, each claiming its own key ranges: a number, or `auto` (start with one, add
    /// workers while each brings at least 15% more rows/s and nothing throttles, up to 4)
    #[arg(long, value_parser = parse_workers, default_value = "auto")]
    pub workers: Workers,
    /// Hold one read-only snapshot beside the workers for at most this long at a time, so batches run at one
    /// UPDATE's speed (vacuum waits as long; let go at once for a session that waits on it); 0 = never
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    pub hold_horizon: Duration,
    /// Foreground budget: wait while the write-path probe (a row lock taken and rolled back, as an application
    /// UPDATE would) takes longer than this, as a median over 2 s. `auto`: 3x its median before the run, at
    /// least 10ms; `off`: not watched
    #[arg(long, value_parser = parse_foreground, default_value = "auto")]
    pub max_fg_latency: ForegroundBudget,
    /// lock_timeout of every batch
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub lock_timeout: Duration,
    /// statement_timeout of every batch (default: 10x --batch-time, at least 1s)
    #[arg(long, value_parser = parse_duration)]
    pub statement_timeout: Option<Duration>,
    /// Throttle when a replica lags more than this
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub max_replica_lag: Duration,
    /// MySQL/MariaDB: a replica to watch (mysql://user:password@host:port/), repeatable; its lag is read on it
    /// with SHOW REPLICA STATUS, and a replica whose replication is stopped makes the run wait
    #[arg(long = "replica", value_name = "URL")]
    pub replicas: Vec<String>,
    /// Throttle when more client backends than this are active
    #[arg(long)]
    pub max_active: Option<u32>,
    /// The probe query whose latency is watched (default: a primary-key lookup on the table)
    #[arg(long)]
    pub probe_sql: Option<String>,
    /// Throttle when the probe takes longer than this
    #[arg(long, value_parser = parse_duration, default_value = "250ms")]
    pub max_probe_latency: Duration,
    /// A query returning one boolean: true means wait
    #[arg(long)]
    pub throttle_query: Option<String>,
    /// Abort (instead of pausing) when a signal turns critical
    #[arg(long)]
    pub critical_abort: bool,
    /// How long signals must be healthy before a critical pause lifts by itself
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub critical_recovery: Duration,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while the run goes (a port alone: 127.0.0.1)
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<MetricsAddr>,
    /// With --metrics-addr: keep serving this long after the run ends, so a scrape sees how it ended (e.g. 30s)
    #[arg(long, value_parser = parse_duration, default_value = "0s", requires = "metrics_addr")]
    pub metrics_linger: Duration,
    /// Keys per claimed range at least (the unit that workers and processes share out); a range holds four
    /// batches when batches are larger
    #[arg(long, default_value_t = 20_000, hide = true)]
    pub chunk_rows: u64,
}

/// `--workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Fixed(u32),
}

fn parse_workers(text: &str) -> Result<Workers, String> {
    match text.trim() {
        "auto" => Ok(Workers::Auto),
        number => match number.parse::<u32>() {
            Ok(0) => Err("--workers must be at least 1 (or auto)".into()),
            Ok(n) => Ok(Workers::Fixed(n)),
            Err(_) => Err(format!(
                "{text:?} is not a number of workers: give 1, 2, … or auto"
            )),
        },
    }
}

fn parse_foreground(text: &str) -> Result<ForegroundBudget, String> {
    match text.trim() {
        "auto" => Ok(ForegroundBudget::Auto),
        "off" => Ok(ForegroundBudget::Off),
        other => match parse_duration(other)? {
            zero if zero.is_zero() => {
                Err("--max-fg-latency must be more than zero (or auto, or off)".into())
            }
            limit => Ok(ForegroundBudget::Limit(limit)),
        },
    }
}

fn options_from(args: &BackfillArgs) -> anyhow::Result<BackfillOptions> {
    let mut controller = ControllerConfig::default();
    if let Some(t) = args.batch_time {
        if t.is_zero() {
            return Err(super::usage("--batch-time must be more than zero"));
        }
        controller.target = t;
    }
    if let Some(n) = args.batch_size {
        if n == 0 {
            return Err(super::usage("--batch-size must be at least 1"));
        }
        controller.initial = n;
        controller.max = controller.max.max(n);
        controller.min = controller.min.min(n);
        controller.fixed = args.batch_time.is_none();
    }
    if args.max_rows_per_second == Some(0) {
        return Err(super::usage("--max-rows-per-second must be at least 1"));
    }
    let window = match &args.window {
        Some(w) => Some(w.parse::<Window>()?),
        None => None,
    };
    let replicas = replicas_from(&args.replicas)?;
    Ok(BackfillOptions {
        controller,
        lock_timeout: args.lock_timeout,
        statement_timeout: args.statement_timeout,
        thresholds: Thresholds {
            max_replica_lag: args.max_replica_lag,
            max_active: args.max_active,
            max_probe_latency: args.max_probe_latency,
            critical_recovery: args.critical_recovery,
            ..Thresholds::default()
        },
        probe_sql: args.probe_sql.clone(),
        throttle_query: args.throttle_query.clone(),
        max_rows_per_second: args.max_rows_per_second,
        window,
        workers: match args.workers {
            Workers::Fixed(n) => n,
            Workers::Auto => 1,
        },
        scale_workers: match args.workers {
            Workers::Fixed(_) => None,
            Workers::Auto => Some(ScalerConfig::default()),
        },
        hold_horizon: Some(args.hold_horizon).filter(|hold| !hold.is_zero()),
        foreground: args.max_fg_latency,
        chunk_rows: args.chunk_rows.max(1),
        critical_abort: args.critical_abort,
        restart: args.restart,
        replicas,
        ..BackfillOptions::default()
    })
}

/// `--replica URL`s: MySQL/MariaDB URLs (the password never printed: each is named by its redacted form).
pub(super) fn replicas_from(urls: &[String]) -> anyhow::Result<Vec<Replica>> {
    urls.iter()
        .map(|url| {
            let config = MySqlConfig::from_url_in(url, "--replica")
                .map_err(|e| super::usage(e.to_string()))?;
            Ok(Replica::new(config.redacted(), config))
        })
        .collect()
}

/// `--replica` with a PostgreSQL `--db`: refused (its primary reports its replicas' lag itself).
pub(super) fn replicas_fit(target: &Target, replicas: &[Replica]) -> Result<(), String> {
    if target.family() == tidegate_db::driver::Family::Postgres && !replicas.is_empty() {
        return Err(
            "--replica is for MySQL/MariaDB, whose primary cannot see its replicas' lag; a PostgreSQL primary \
             reports it in pg_stat_replication, which tidegate reads already: leave --replica out"
                .into(),
        );
    }
    Ok(())
}

pub fn run(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let options = match options_from(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit_usage());
        }
    };
    let config = match Target::resolve(args.db.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit_usage());
        }
    };
    if let Err(e) = replicas_fit(&config, &options.replicas) {
        eprintln!("error: {e}");
        return Ok(exit_usage());
    }
    let target = match args.resume {
        Some(id) => RunTarget::Resume(id),
        None => {
            let key = match &args.key {
                Some(k) => match parse_key_for(config.family(), k) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(exit_usage());
                    }
                },
                None => None,
            };
            let table = args.table.clone().unwrap_or_default();
            let spec = if args.delete {
                // A DELETE without WHERE empties a table; on production that is more often a slip than a plan.
                if args.predicate.is_none() && !args.all {
                    eprintln!(
                        "error: --delete without --where would delete every row of {table}; add --where to say which \
                         rows, or --all if you mean every row"
                    );
                    return Ok(exit_usage());
                }
                BackfillSpec::delete(table, args.predicate.clone())
            } else {
                BackfillSpec {
                    predicate: args.predicate.clone(),
                    ..BackfillSpec::update(table, args.set.clone().unwrap_or_default())
                }
            };
            RunTarget::Spec(BackfillSpec { key, ..spec })
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if args.dry_run {
            return dry_run(&config, target, &options, args.format).await;
        }
        let endpoint = match super::metrics::start(args.metrics_addr, args.format).await {
            Ok(endpoint) => endpoint,
            Err(code) => return Ok(code),
        };
        let stop = StopHandle::default();
        spawn_signal_handlers(stop.clone());
        let metrics = endpoint.as_ref().map(|e| e.metrics.clone());
        let code = execute(&config, target, options, args.format, metrics, stop.clone()).await;
        if let Some(endpoint) = endpoint {
            endpoint.linger(args.metrics_linger, &stop).await;
        }
        code
    })
}

async fn dry_run(
    config: &Target,
    target: RunTarget,
    options: &BackfillOptions,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let client = match config.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit_failure());
        }
    };
    let spec = match target {
        RunTarget::Spec(spec) => spec,
        RunTarget::Resume(id) => {
            let row = if tidegate_backfill::state::schema_exists(client.as_ref()).await? {
                tidegate_backfill::state::find_run(client.as_ref(), id).await?
            } else {
                None
            };
            match row {
                Some(row) => {
                    serde_json::from_str(&row.spec_json).context("reading the run's spec")?
                }
                None => {
                    eprintln!("error: there is no run {id}; `tidegate runs` lists them");
                    return Ok(exit_usage());
                }
            }
        }
    };
    let prepared = match engine::prepare(client.as_ref(), &spec).await {
        Ok(p) => p,
        Err(e) => return Ok(report_error(&e)),
    };
    let existing = if tidegate_backfill::state::schema_exists(client.as_ref()).await? {
        let json = engine::identity_json(&prepared);
        tidegate_backfill::state::find_unfinished(client.as_ref(), &json)
            .await?
            .map(|r| r.id)
    } else {
        None
    };
    let plan = prepared.plan(options, existing);
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"event": "plan", "plan": plan}))?
        );
        return Ok(exit_clean());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "dry run: nothing will be changed")?;
    writeln!(out, "target:  {}", config.redacted())?;
    writeln!(out, "table:   {}", plan.table)?;
    writeln!(
        out,
        "runs:    {} ({}), in batches",
        plan.statement, plan.kind
    )?;
    writeln!(
        out,
        "key:     ({}) from index {}",
        plan.key.join(", "),
        plan.key_index
    )?;
    match plan.estimated_rows {
        Some(rows) => writeln!(
            out,
            "rows:    about {rows} (planner estimate); about {} batches of {} to start with, resized to take {} ms each",
            plan.estimated_batches.unwrap_or(0),
            plan.initial_batch_size,
            plan.batch_time_ms
        )?,
        None => writeln!(out, "rows:    unknown (table never analysed)")?,
    }
    writeln!(
        out,
        "limits:  lock_timeout {} ms, statement_timeout {} ms per batch",
        plan.lock_timeout_ms, plan.statement_timeout_ms
    )?;
    if let Some(id) = plan.existing_run {
        writeln!(
            out,
            "resumes: unfinished run {id} of the same spec (use --restart to discard it)"
        )?;
    }
    writeln!(out, "\none batch, one transaction:")?;
    for sql in &plan.batch_sql {
        for line in sql.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    writeln!(out, "  with {}", plan.batch_parameters.join("; "))?;
    writeln!(
        out,
        "\nhealth signals watched (every 250 ms, on a second connection):"
    )?;
    for s in &plan.health_signals {
        writeln!(out, "  - {s}")?;
    }
    Ok(exit_clean())
}

fn report_error(error: &BackfillError) -> ExitCode {
    eprintln!("error: {error}");
    match error {
        BackfillError::Input(_) => exit_usage(),
        _ => exit_failure(),
    }
}

async fn execute(
    config: &Target,
    target: RunTarget,
    options: BackfillOptions,
    format: Format,
    metrics: Option<Arc<tidegate_metrics::Metrics>>,
    stop: StopHandle,
) -> anyhow::Result<ExitCode> {
    let renderer = Arc::new(Mutex::new(Renderer::new(format)));
    let sink_renderer = renderer.clone();
    let sink: engine::EventSink = Arc::new(move |event: &Event| {
        if let Some(metrics) = &metrics {
            metrics.record_backfill(event);
        }
        sink_renderer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .render(event);
    });
    let result = engine::run(config, target, options, sink, stop).await;
    renderer.lock().unwrap_or_else(|e| e.into_inner()).finish();
    let resume_hint = |id: i64| {
        format!(
            "tidegate backfill --db '{}' --resume {id}",
            config.redacted()
        )
    };
    match result {
        Ok(outcome) => match outcome.end {
            RunEnd::Completed => {
                if format == Format::Text {
                    println!(
                        "run {} completed: {} rows {} in {} batches",
                        outcome.run_id,
                        outcome.rows_done,
                        rows_verb(outcome.kind),
                        outcome.batches
                    );
                }
                Ok(exit_clean())
            }
            RunEnd::Interrupted { reason } => {
                eprintln!(
                    "run {} paused ({reason}); the batch in flight was finished or rolled back. Resume with:\n    {}\n(or run the same command again)",
                    outcome.run_id,
                    resume_hint(outcome.run_id)
                );
                Ok(exit_failure())
            }
            RunEnd::Aborted { reason } => {
                let verb = rows_verb(outcome.kind);
                eprintln!(
                    "run {} aborted ({reason}); {} rows {verb} stay {verb}",
                    outcome.run_id, outcome.rows_done
                );
                Ok(exit_failure())
            }
        },
        Err(BackfillError::RunFailed { run_id, message }) => {
            eprintln!("error: run {run_id} failed: {message}");
            eprintln!(
                "its progress is saved; resume with:\n    {}",
                resume_hint(run_id)
            );
            Ok(exit_failure())
        }
        Err(BackfillError::AlreadyFinished { run_id, status }) => {
            let message = format!(
                "run {run_id} of this spec is already {status}; nothing to do. Pass --restart to run it again \
                 (a non-idempotent SET would then apply twice)"
            );
            if format == Format::Json {
                let event = serde_json::json!({"event": "nothing_to_do", "run_id": run_id, "status": status, "message": message});
                println!("{event}");
            }
            if status == tidegate_backfill::state::RunStatus::Completed {
                if format == Format::Text {
                    println!("{message}");
                }
                Ok(exit_clean())
            } else {
                eprintln!("error: {message}");
                Ok(exit_usage())
            }
        }
        Err(other) => Ok(report_error(&other)),
    }
}

pub(crate) fn spawn_signal_handlers(stop: StopHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
    ] {
        let stop = stop.clone();
        if let Ok(mut stream) = signal(kind) {
            tokio::spawn(async move {
                let mut count = 0;
                while stream.recv().await.is_some() {
                    count += 1;
                    if count > 1 {
                        eprintln!("{name} again: exiting now; the batch in flight rolls back");
                        std::process::exit(130);
                    }
                    eprintln!("{name}: finishing the batch in flight, then pausing (send again to quit at once)");
                    stop.request(&format!("interrupted by {name}"));
                }
            });
        }
    }
}

/// Renders events: a progress bar on a TTY, plain lines otherwise, or JSON lines.
struct Renderer {
    format: Format,
    bar: Option<indicatif::ProgressBar>,
    last_line: Option<Instant>,
    state: String,
    /// `updated` or `deleted`, from the run's kind.
    verb: &'static str,
}

impl Renderer {
    fn new(format: Format) -> Self {
        let bar = (format == Format::Text && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows scanned · {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            format,
            bar,
            last_line: None,
            state: "running".into(),
            verb: "changed",
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn render(&mut self, event: &Event) {
        if self.format == Format::Json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", event.to_json());
            let _ = out.flush();
            return;
        }
        match event {
            Event::Started {
                run_id,
                kind,
                resumed,
                table,
                key,
                estimated_rows,
                rows_done,
                workers,
            } => {
                self.verb = rows_verb(kind);
                if let (Some(bar), Some(est)) = (&self.bar, estimated_rows) {
                    bar.set_length((*est).max(0) as u64);
                }
                self.line(&format!(
                    "run {run_id} ({kind}) {} on {table}, key ({}), about {} rows, {workers} worker(s){}",
                    if *resumed { "resumed" } else { "started" },
                    key.join(", "),
                    estimated_rows.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
                    if *resumed { format!(", {rows_done} rows already done") } else { String::new() }
                ));
            }
            Event::Batch {
                rows_done,
                rows_scanned,
                rows_per_second,
                next_batch_size,
                estimated_rows,
                eta_seconds,
                ..
            } => {
                let eta = eta_seconds.map(|s| format!("ETA {}s", s.round())).unwrap_or_else(|| "ETA ?".into());
                let message = format!(
                    "{rows_done} {} · {:.0} rows/s · {eta} · batch {next_batch_size} · {}",
                    self.verb, rows_per_second, self.state
                );
                if let Some(bar) = &self.bar {
                    bar.set_position(*rows_scanned);
                    bar.set_message(message);
                } else if self.last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                    self.last_line = Some(Instant::now());
                    let of = estimated_rows.map(|e| format!("/{e}")).unwrap_or_default();
                    eprintln!("progress: {rows_scanned}{of} rows scanned, {message}");
                }
            }
            Event::Throttled {
                level,
                reason,
                recovering,
                ..
            } => {
                let described = match recovering {
                    Some(recovery) => format!("{reason} ({recovery})"),
                    None => reason.clone(),
                };
                self.state = format!("{} ({described})", format!("{level:?}").to_lowercase());
                if let Some(bar) = &self.bar {
                    bar.set_message(self.state.clone());
                }
                // The countdown changes every tick; a line only for the onset.
                if recovering.is_none() {
                    self.line(&format!("throttled: {reason}"));
                }
            }
            Event::ThrottleLifted { .. } => {
                self.state = "running".into();
                self.line("throttle lifted: running");
            }
            Event::Note { message, .. } => self.line(&format!("note: {message}")),
            Event::Retry {
                cause,
                attempt,
                backoff_ms,
                next_batch_size,
                ..
            } => self.line(&format!(
                "retry {attempt}: batch hit {cause}; rolled back, waiting {backoff_ms} ms, next batch {next_batch_size} rows"
            )),
            Event::Reconnecting { reason, attempt, .. } => {
                self.line(&format!("connection lost ({reason}); reconnecting (attempt {attempt})"))
            }
            Event::Reconnected { .. } => self.line("reconnected; continuing from the checkpoint"),
            Event::Waiting { reason, .. } => {
                self.state = format!("waiting ({reason})");
                self.line(&format!("waiting: {reason}"));
            }
            Event::Paused { reason, .. } => {
                self.state = format!("paused ({reason})");
                self.line(&format!("paused: {reason}"));
            }
            Event::Resumed { .. } => {
                self.state = "running".into();
                self.line("resumed");
            }
            Event::Completed { .. } | Event::Aborted { .. } | Event::Failed { .. } => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
