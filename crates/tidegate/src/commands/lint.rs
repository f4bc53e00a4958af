//! `tidegate lint`: not built yet.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: LintArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("lint", "issue 3, the migration linter")
}
