//! `tidegate apply`: not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: ApplyArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("apply", "issue 5, plan and apply")
}
