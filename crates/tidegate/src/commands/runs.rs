//! `tidegate runs`: not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: RunsArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("runs", "issue 4, backfill")
}
