//! `tidegate scratch start|stop|status`: a throwaway PostgreSQL (or, with `--engine mariadb`, MariaDB) from the
//! machine's own binaries.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tidegate_db::scratch::{self, ScratchError, ScratchStatus, StartOptions};
use tidegate_db::scratch_mariadb;

#[derive(Debug, Args)]
pub struct ScratchArgs {
    #[command(subcommand)]
    pub action: ScratchAction,
}

#[derive(Debug, Subcommand)]
pub enum ScratchAction {
    /// Start a scratch server; prints its connection URL as the last line
    Start {
        #[command(flatten)]
        location: Location,
        /// Port on 127.0.0.1 (default: a free one)
        #[arg(long)]
        port: Option<u16>,
        /// Which server: PostgreSQL (initdb, postgres) or MariaDB (mariadb-install-db, mariadbd)
        #[arg(long, value_enum, default_value_t = Engine::Postgres)]
        engine: Engine,
    },
    /// Stop the scratch server and remove its directory
    Stop {
        #[command(flatten)]
        location: Location,
    },
    /// Print the scratch server's URL, or say that none runs
    Status {
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Postgres,
    Mariadb,
}

#[derive(Debug, Args)]
pub struct Location {
    /// Directory holding the cluster (default: a per-user state directory)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Location {
    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(scratch::default_dir)
    }
}

pub fn run(args: ScratchArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        ScratchAction::Start {
            location,
            port,
            engine: Engine::Mariadb,
        } => {
            let mut options = scratch_mariadb::StartOptions::new(location.dir());
            options.port = port;
            match scratch_mariadb::start(&options) {
                Ok(server) => {
                    if server.user.switched_from_root {
                        eprintln!(
                            "note: running as root; mariadb-install-db and mariadbd run as the system user '{}'",
                            server.user.name
                        );
                    }
                    eprintln!(
                        "scratch MariaDB started in {} (log: {}); stop it with `tidegate scratch stop --dir {}`",
                        server.dir.display(),
                        server.log_path().display(),
                        server.dir.display(),
                    );
                    println!("{}", server.url());
                    Ok(super::exit_clean())
                }
                Err(error) => fail(error),
            }
        }
        ScratchAction::Start { location, port, .. } => {
            let mut options = StartOptions::new(location.dir());
            options.port = port;
            match scratch::start(&options) {
                Ok(server) => {
                    if server.user.switched_from_root {
                        eprintln!(
                            "note: running as root; initdb and postgres run as the system user '{}'",
                            server.user.name
                        );
                    }
                    eprintln!(
                        "scratch PostgreSQL {} started in {} (log: {}); stop it with `tidegate scratch stop --dir {}`",
                        server.binaries.major_version,
                        server.dir.display(),
                        server.log_path().display(),
                        server.dir.display(),
                    );
                    println!("{}", server.url());
                    Ok(super::exit_clean())
                }
                Err(error) => fail(error),
            }
        }
        ScratchAction::Stop { location } => {
            match if scratch_mariadb::is_mariadb_dir(&location.dir()) {
                scratch_mariadb::stop(&location.dir())
            } else {
                scratch::stop(&location.dir())
            } {
                Ok(()) => {
                    eprintln!(
                        "scratch server in {} stopped and removed",
                        location.dir().display()
                    );
                    Ok(super::exit_clean())
                }
                Err(ScratchError::NotRunning { dir }) => {
                    // Stopping what is already stopped is what a cleanup trap does: say so, succeed.
                    eprintln!(
                        "no scratch server runs in {}; nothing to stop",
                        dir.display()
                    );
                    Ok(super::exit_clean())
                }
                Err(error) => fail(error),
            }
        }
        ScratchAction::Status { location } if scratch_mariadb::is_mariadb_dir(&location.dir()) => {
            match scratch_mariadb::status(&location.dir()) {
                Ok(Some((server, true))) => {
                    println!("{}", server.url());
                    Ok(super::exit_clean())
                }
                Ok(Some((server, false))) => {
                    eprintln!(
                        "the scratch MariaDB in {} is not running (it crashed or was killed); \
                         `tidegate scratch stop --dir {}` cleans up, `tidegate scratch start --engine mariadb` starts a new one",
                        server.dir.display(),
                        server.dir.display()
                    );
                    Ok(super::exit_failure())
                }
                Ok(None) => {
                    eprintln!("no scratch server runs in {}", location.dir().display());
                    Ok(super::exit_failure())
                }
                Err(error) => fail(error),
            }
        }
        ScratchAction::Status { location } => match scratch::status(&location.dir()) {
            Ok(ScratchStatus::Running(server)) => {
                println!("{}", server.url());
                Ok(super::exit_clean())
            }
            Ok(ScratchStatus::Stopped(server)) => {
                eprintln!(
                    "the scratch server in {} is not running (it crashed or was killed); \
                     `tidegate scratch stop --dir {}` cleans up, `tidegate scratch start` starts a new one",
                    server.dir.display(),
                    server.dir.display()
                );
                Ok(super::exit_failure())
            }
            Ok(ScratchStatus::None) => {
                eprintln!("no scratch server runs in {}", location.dir().display());
                Ok(super::exit_failure())
            }
            Err(error) => fail(error),
        },
    }
}

fn fail(error: ScratchError) -> anyhow::Result<ExitCode> {
    eprintln!("error: {error}");
    Ok(match error {
        ScratchError::CommandFailed { .. } | ScratchError::Io { .. } => super::exit_failure(),
        _ => super::exit_usage(),
    })
}
