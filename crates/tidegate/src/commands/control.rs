//! `tidegate pause|resume|abort ID`: not built yet.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy)]
pub enum Action {
    Pause,
    Resume,
    Abort,
}

#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// Arguments of the planned verb
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(action: Action, _args: ControlArgs) -> anyhow::Result<ExitCode> {
    let verb = match action {
        Action::Pause => "pause",
        Action::Resume => "resume",
        Action::Abort => "abort",
    };
    super::not_built_yet(verb, "issue 4, backfill")
}
