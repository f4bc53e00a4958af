//! `tidegate backfill`: not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: BackfillArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("backfill", "issue 4, backfill")
}
