//! `tidegate plan`: not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: PlanArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("plan", "issue 5, plan and apply")
}
