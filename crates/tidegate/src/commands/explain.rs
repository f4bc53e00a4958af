//! `tidegate explain`: not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: ExplainArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("explain", "issue 3, the migration linter")
}
