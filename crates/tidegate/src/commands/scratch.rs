//! `tidegate scratch`: placeholder until the scratch module lands.
use std::process::ExitCode;
#[derive(Debug, clap::Args)]
pub struct ScratchArgs {}
pub fn run(_args: ScratchArgs) -> anyhow::Result<ExitCode> {
    super::not_built_yet("scratch", "issue 2")
}
