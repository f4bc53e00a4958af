//! The `tidegate` binary; the command line itself is the library's [`tidegate::run`].

fn main() -> std::process::ExitCode {
    tidegate::run()
}
