//! `tidegate demo`: the postmortem replayed on a scratch PostgreSQL (or, `--engine mariadb`, MariaDB) — the
//! migration as it shipped, then the same migration the way tidegate runs it, under the same foreground workload —
//! in numbers and a picture.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tidegate_db::scratch::{self, ScratchServer, StartOptions};
use tidegate_db::scratch_mariadb::{self, MariaDbServer};
use tidegate_rehearse::act::{run_act, run_act_with, ActConfig, ActProgress, ActReport};
use tidegate_rehearse::demo::{self, TidegateActOptions};
use tidegate_rehearse::orders::{MyOrdersWorkload, OrdersWorkload};
use tidegate_rehearse::report;
use tidegate_rehearse::workload::Workload;
use tidegate_rehearse::workload::WorkloadConfig;

use super::parse_duration;
use super::scratch::Engine;
use super::Format;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which server the incident is replayed on: PostgreSQL, or MariaDB (a scratch MariaDB; with --db, a
    /// mysql:// URL)
    #[arg(long, value_enum, default_value_t = Engine::Postgres)]
    pub engine: Engine,
    /// Run against this database instead of a scratch server (it must not have an `orders` table)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Rows in the `orders` table
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Foreground requests per second (70% reads, 20% updates, 10% inserts)
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Foreground connections
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// The application's request timeout (statement_timeout on the foreground connections)
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub request_timeout: Duration,
    /// Foreground traffic measured before each migration starts, and again after it ends
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub settle: Duration,
    /// Seed for the synthetic rows and the request stream
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write a self-contained HTML report (charts, timeline, table) to this file
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

/// A scratch server the demo started.
enum Scratch {
    Postgres(ScratchServer),
    MariaDb(MariaDbServer),
}

/// Stops the scratch server when the demo ends, however it ends (error, Ctrl-C, panic).
struct ScratchGuard(Option<Scratch>);

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        let (dir, stopped) = match self.0.take() {
            None => return,
            Some(Scratch::Postgres(server)) => {
                let stopped = scratch::stop(&server.dir).map_err(|e| e.to_string());
                (server.dir, stopped)
            }
            Some(Scratch::MariaDb(server)) => {
                let stopped = scratch_mariadb::stop(&server.dir).map_err(|e| e.to_string());
                (server.dir, stopped)
            }
        };
        if let Err(error) = stopped {
            eprintln!(
                "warning: could not remove the scratch server in {}: {error}",
                dir.display()
            );
        }
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.rows == 0 {
        return Err(super::usage("--rows must be at least 1"));
    }
    if !args.rate.is_finite() || args.rate <= 0.0 || args.connections == 0 {
        return Err(super::usage(
            "--rate must be positive and --connections at least 1",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut guard = ScratchGuard(None);
        let url = match (&args.db, args.engine) {
            (Some(url), _) => url.clone(),
            (None, Engine::Postgres) => {
                let server = start_scratch()?;
                let url = server.url();
                guard.0 = Some(Scratch::Postgres(server));
                url
            }
            (None, Engine::Mariadb) => {
                let server = start_scratch_mariadb()?;
                let url = server.url();
                guard.0 = Some(Scratch::MariaDb(server));
                url
            }
        };
        // Set once the demo has made sure `orders` is its own to create (on --db it refuses a user's table).
        let owns_orders = AtomicBool::new(false);
        let outcome = tokio::select! {
            outcome = run_demo(&url, &args, &owns_orders) => outcome,
            signal = shutdown_signal() => {
                eprintln!(
                    "\n{signal}: stopping; {}",
                    if args.db.is_some() { "the demo's orders table is dropped" } else { "the scratch server is removed" }
                );
                Ok(ExitCode::from(130))
            }
        };
        // On --db the database outlives the demo: however the demo ended (error, Ctrl-C), the table it created
        // goes, so the next run does not find it and take it for the user's.
        if args.db.is_some() && owns_orders.load(Ordering::SeqCst) {
            let dropped = match args.engine {
                Engine::Postgres => demo::drop_demo_objects(&url).await,
                Engine::Mariadb => demo::mysql::drop_demo_objects(&url).await,
            };
            if let Err(error) = dropped {
                eprintln!("warning: could not drop the demo's orders table: {error}");
            }
        }
        drop(guard);
        outcome
    })
}

fn start_scratch() -> anyhow::Result<ScratchServer> {
    let dir = std::env::temp_dir().join(format!("tidegate-demo-{}", std::process::id()));
    let mut options = StartOptions::new(&dir);
    options.shared_buffers = "256MB".into();
    let server = scratch::start(&options).context("starting the demo's scratch PostgreSQL")?;
    eprintln!(
        "scratch PostgreSQL {} started in {}{}",
        server.binaries.major_version,
        server.dir.display(),
        if server.user.switched_from_root {
            format!(
                " (as the system user '{}', since we run as root)",
                server.user.name
            )
        } else {
            String::new()
        }
    );
    Ok(server)
}

fn start_scratch_mariadb() -> anyhow::Result<MariaDbServer> {
    let dir = std::env::temp_dir().join(format!("tidegate-demo-mariadb-{}", std::process::id()));
    let mut options = scratch_mariadb::StartOptions::new(&dir);
    options.buffer_pool = "256M".into();
    let server = scratch_mariadb::start(&options).context("starting the demo's scratch MariaDB")?;
    eprintln!(
        "scratch MariaDB started in {}{}",
        server.dir.display(),
        if server.user.switched_from_root {
            format!(
                " (as the system user '{}', since we run as root)",
                server.user.name
            )
        } else {
            String::new()
        }
    );
    Ok(server)
}

pub(super) async fn shutdown_signal() -> &'static str {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => "terminated",
    }
}

async fn run_demo(
    url: &str,
    args: &DemoArgs,
    owns_orders: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    if args.db.is_some() {
        let existing = match args.engine {
            Engine::Postgres => tidegate_rehearse::demo::existing_orders(url).await,
            Engine::Mariadb => tidegate_rehearse::demo::mysql::existing_orders(url).await,
        }
        .map_err(anyhow::Error::msg)?;
        if let Some(table) = existing {
            return Err(super::usage(format!(
                "this database already has a table {table}; the demo creates and drops `orders`, so point --db at \
                 an empty database (or leave --db out to use a scratch server)"
            )));
        }
    }
    owns_orders.store(true, Ordering::SeqCst);
    let config = ActConfig {
        workload: WorkloadConfig {
            rate_per_second: args.rate,
            connections: args.connections,
            request_timeout: args.request_timeout,
            seed: args.seed,
            application_name: "tidegate-demo-app".into(),
        },
        before: args.settle,
        after: args.settle,
    };
    let live = LiveDisplay::new(args.format == Format::Text);
    if args.engine == Engine::Mariadb {
        let acts = run_acts_mariadb(url, args, &config, &live).await?;
        drop(live);
        return finish(args, acts);
    }
    let source = Arc::new(OrdersWorkload::new(args.rows));

    live.line(&format!("act 1 — naive: loading {} orders …", args.rows));
    demo::rebuild_orders(url, args.rows, args.seed)
        .await
        .map_err(anyhow::Error::msg)?;
    live.line("act 1 — naive: ALTER TABLE + whole-table UPDATE in one transaction, as shipped");
    let naive = run_act(
        "naive",
        url,
        &config,
        source.clone(),
        || demo::run_naive_migration(url),
        |progress| live.tick("naive", &progress),
    )
    .await?;
    live.finish_act(&naive);

    live.line(&format!(
        "act 2 — tidegate: rebuilding the same {} orders …",
        args.rows
    ));
    demo::rebuild_orders(url, args.rows, args.seed)
        .await
        .map_err(anyhow::Error::msg)?;
    live.line(
        "act 2 — tidegate: `tidegate apply` of the same file: schema phase with lock_timeout, then a throttled, batched backfill",
    );
    let tidegate = run_act(
        "tidegate",
        url,
        &config,
        source,
        || demo::run_tidegate_migration(url, TidegateActOptions::default()),
        |progress| live.tick("tidegate", &progress),
    )
    .await?;
    live.finish_act(&tidegate);
    // The demo leaves the database as it found it.
    demo::drop_demo_objects(url)
        .await
        .map_err(anyhow::Error::msg)?;

    drop(live);
    finish(args, [naive, tidegate])
}

/// The two acts on MySQL/MariaDB: the same scenes, through the session seam.
async fn run_acts_mariadb(
    url: &str,
    args: &DemoArgs,
    config: &ActConfig,
    live: &LiveDisplay,
) -> anyhow::Result<[ActReport; 2]> {
    let driver = demo::mysql::driver(url).map_err(anyhow::Error::msg)?;
    let source = Arc::new(MyOrdersWorkload(OrdersWorkload::new(args.rows)));

    live.line(&format!("act 1 — naive: loading {} orders …", args.rows));
    demo::mysql::rebuild_orders(url, args.rows, args.seed)
        .await
        .map_err(anyhow::Error::msg)?;
    live.line(
        "act 1 — naive: ALTER TABLE, then the whole-table UPDATE as one statement, as shipped",
    );
    let workload =
        Workload::start_sessions(driver.clone(), config.workload.clone(), source.clone()).await?;
    let naive = run_act_with(
        "naive",
        workload,
        config,
        || demo::mysql::run_naive_migration(url),
        |progress| live.tick("naive", &progress),
    )
    .await;
    live.finish_act(&naive);

    live.line(&format!(
        "act 2 — tidegate: rebuilding the same {} orders …",
        args.rows
    ));
    demo::mysql::rebuild_orders(url, args.rows, args.seed)
        .await
        .map_err(anyhow::Error::msg)?;
    live.line(
        "act 2 — tidegate: `tidegate apply` of the same file: the ALTER with ALGORITHM= and a short lock_wait_timeout, then a throttled, batched backfill",
    );
    let workload = Workload::start_sessions(driver, config.workload.clone(), source).await?;
    let tidegate = run_act_with(
        "tidegate",
        workload,
        config,
        || demo::mysql::run_tidegate_migration(url, TidegateActOptions::default()),
        |progress| live.tick("tidegate", &progress),
    )
    .await;
    live.finish_act(&tidegate);
    demo::mysql::drop_demo_objects(url)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok([naive, tidegate])
}

/// The report file, the figures side by side (or JSON), and the exit code.
fn finish(args: &DemoArgs, acts: [ActReport; 2]) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.report {
        let html = report::render_html(
            "tidegate demo: the orders backfill, naive vs tidegate",
            &acts,
        );
        std::fs::write(path, html)
            .with_context(|| format!("writing the report to {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    match args.format {
        Format::Json => {
            let [naive, tidegate] = &acts;
            let json = serde_json::json!({
                "rows": args.rows,
                "engine": match args.engine { Engine::Postgres => "postgres", Engine::Mariadb => "mariadb" },
                "workload": { "rate_per_second": args.rate, "connections": args.connections,
                              "request_timeout_ms": args.request_timeout.as_millis() as u64 },
                "naive": naive,
                "tidegate": tidegate,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Text => {
            println!();
            print!("{}", report::render_table(&acts));
            println!();
            println!("{}", verdict(&acts[0], &acts[1]));
        }
    }
    let failed = acts.iter().any(|act| act.migration_error.is_some());
    Ok(if failed {
        super::exit_failure()
    } else {
        super::exit_clean()
    })
}

fn verdict(naive: &ActReport, tidegate: &ActReport) -> String {
    if let Some(error) = &tidegate.migration_error {
        return format!("tidegate's migration failed: {error}");
    }
    format!(
        "During the migration the application saw p99 {:.0} ms and {} failed requests the naive way (longest wait {:.1} s),\n\
         and p99 {:.0} ms with {} failed requests with tidegate (longest wait {:.1} s). The naive migration took {:.1} s;\n\
         tidegate's took {:.1} s, in short transactions that never locked the table for long.",
        naive.p99_ms,
        naive.errors,
        naive.longest_wait_ms / 1000.0,
        tidegate.p99_ms,
        tidegate.errors,
        tidegate.longest_wait_ms / 1000.0,
        naive.duration_s,
        tidegate.duration_s,
    )
}

/// A live view on stderr: a spinner line on a terminal, a plain line every few seconds otherwise.
struct LiveDisplay {
    bar: Option<indicatif::ProgressBar>,
}

impl LiveDisplay {
    fn new(spinner_allowed: bool) -> Self {
        let bar = (spinner_allowed && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn tick(&self, act: &str, progress: &ActProgress) {
        let second = progress.last_second.as_ref().map(|s| &s.summary);
        let text = format!(
            "{act}: {:>4}s  {:<17}  last second: {:>4} requests, p99 {:>8.1} ms, max {:>8.1} ms, {} errors  (total errors {})",
            progress.elapsed.as_secs(),
            progress.phase.to_string(),
            second.map_or(0, |s| s.requests),
            second.map_or(0.0, |s| s.p99_ms),
            second.map_or(0.0, |s| s.max_ms),
            second.map_or(0, |s| s.errors),
            progress.errors,
        );
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None if progress.elapsed.as_secs().is_multiple_of(5) => eprintln!("{text}"),
            None => {}
        }
    }

    fn finish_act(&self, act: &ActReport) {
        self.line(&format!(
            "{}: migration {} in {:.1} s; during it p99 {:.1} ms, max {:.0} ms, {} errors",
            act.name,
            if act.migration_error.is_some() {
                "FAILED"
            } else {
                "done"
            },
            act.duration_s,
            act.p99_ms,
            act.max_ms,
            act.errors
        ));
    }
}

impl Drop for LiveDisplay {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
