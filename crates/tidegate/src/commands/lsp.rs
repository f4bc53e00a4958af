//! `tidegate lsp`: the language server on stdin/stdout (all of it lives in `tidegate-lsp`).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LspArgs {
    /// Talk LSP over stdin/stdout (the only transport; accepted because editors' clients pass it)
    #[arg(long)]
    pub stdio: bool,
}

pub fn run(_args: LspArgs) -> anyhow::Result<ExitCode> {
    // The protocol's exit code: 0 after `shutdown` then `exit`, 1 when the client exited without shutting down.
    Ok(if tidegate_lsp::run_stdio()? {
        super::exit_clean()
    } else {
        super::exit_failure()
    })
}
