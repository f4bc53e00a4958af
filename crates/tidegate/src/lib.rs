//! The `tidegate` command line: parses arguments, calls the library crates, renders their results.
//! All behaviour lives in the library crates; this crate only wires them to a terminal.
//!
//! It is a library with one function, [`run`], so that two binaries can be the same program: `tidegate` (this
//! crate's `src/main.rs`) and `tidegate-hook`, the root package's binary, which is what `cargo install --path .`
//! at the repository root builds (pre-commit's Rust hooks are built that way).
//!
//! ```no_run
//! // What src/main.rs does: parse std::env::args, run the verb, exit with its code
//! // (0 clean, 1 findings or failure, 2 usage or input error).
//! fn main() -> std::process::ExitCode {
//!     tidegate::run()
//! }
//! ```

mod commands;

/// mimalloc instead of glibc's allocator: linting allocates and frees a parse tree per statement, and glibc's
/// `malloc`/`free` were a quarter of `tidegate lint`'s time (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Database migrations that cannot take production down.
#[derive(Debug, Parser)]
#[command(name = "tidegate", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check migration files for statements that lock, rewrite or overload a busy database
    Lint(commands::lint::LintArgs),
    /// Language server over stdio: lint findings as diagnostics while you edit (`.sql` files)
    Lsp(commands::lsp::LspArgs),
    /// Print the documentation of a lint rule
    Explain(commands::explain::ExplainArgs),
    /// Assess the risk of pending migrations against the live database (read-only)
    Plan(commands::plan::PlanArgs),
    /// Apply pending migrations safely: schema and data split, lock timeouts, retries, health gate
    Apply(commands::apply::ApplyArgs),
    /// Adopt a database another framework migrated: record its applied migrations as baselined
    Baseline(commands::baseline::BaselineArgs),
    /// Show every migration's state in the database: applied, baselined, pending, failed, running, changed
    Status(commands::status::StatusArgs),
    /// Run a batched, throttled, resumable data change on a table
    Backfill(Box<commands::backfill::BackfillArgs>),
    /// List backfill and migration runs recorded in the database
    Runs(commands::runs::RunsArgs),
    /// The incident-style timeline of a backfill run or an apply, from the journal (markdown, html, json)
    Report(commands::report::ReportArgs),
    /// Pause a running backfill from any terminal or machine
    Pause(commands::control::ControlArgs),
    /// Resume a paused backfill
    Resume(commands::control::ControlArgs),
    /// Abort a backfill; rows already changed stay changed
    Abort(commands::control::ControlArgs),
    /// Re-create the source's tables on a scratch server with synthetic rows from its statistics (read-only on
    /// the source), and check their fidelity; running the migration on the copy comes next
    Rehearse(commands::rehearse::RehearseArgs),
    /// Replay the incident on a scratch server: the naive migration beside tidegate's
    Demo(commands::demo::DemoArgs),
    /// Start, stop or inspect a throwaway PostgreSQL built from the machine's own binaries
    Scratch(commands::scratch::ScratchArgs),
}

/// Runs the command line on the process's arguments.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Lint(args) => commands::lint::run(args),
        Command::Lsp(args) => commands::lsp::run(args),
        Command::Explain(args) => commands::explain::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Apply(args) => commands::apply::run(args),
        Command::Baseline(args) => commands::baseline::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Backfill(args) => commands::backfill::run(*args),
        Command::Runs(args) => commands::runs::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Pause(args) => commands::control::run(commands::control::Action::Pause, args),
        Command::Resume(args) => commands::control::run(commands::control::Action::Resume, args),
        Command::Abort(args) => commands::control::run(commands::control::Action::Abort, args),
        Command::Rehearse(args) => commands::rehearse::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Scratch(args) => commands::scratch::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<commands::UsageError>().is_some() {
                commands::exit_usage()
            } else {
                commands::exit_failure()
            }
        }
    }
}
