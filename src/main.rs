//! `tidegate-hook`: the tidegate command line under the name the root package gives it, so that
//! `cargo install --path .` (how pre-commit builds `.pre-commit-hooks.yaml`'s hook) installs it.

fn main() -> std::process::ExitCode {
    tidegate::run()
}
