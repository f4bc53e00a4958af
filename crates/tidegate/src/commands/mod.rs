//! One module per verb. Each exposes its clap `Args` struct and a `run` function returning an exit code:
//! 0 clean, 1 findings or the failure of what was asked, 2 usage or input error.

use std::process::ExitCode;

pub mod apply;
pub mod backfill;
pub mod control;
pub mod demo;
pub mod explain;
pub mod lint;
pub mod plan;
pub mod runs;
pub mod scratch;

/// Output formats shared by the verbs that talk to a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Nothing to report.
pub fn exit_clean() -> ExitCode {
    ExitCode::SUCCESS
}

/// Findings, or the failure of what was asked.
pub fn exit_failure() -> ExitCode {
    ExitCode::from(1)
}

/// Usage or input error.
pub fn exit_usage() -> ExitCode {
    ExitCode::from(2)
}
