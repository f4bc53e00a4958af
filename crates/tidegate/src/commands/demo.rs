//! `tidegate demo`: not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("demo", "issue 6, the demo")
}
