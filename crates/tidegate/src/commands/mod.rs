//! One module per verb. Each exposes its clap `Args` struct and a `run` function returning an exit code:
//! 0 clean, 1 findings or the failure of what was asked, 2 usage or input error.

use std::process::ExitCode;
use std::time::Duration;

pub mod apply;
pub mod backfill;
pub mod baseline;
pub mod control;
pub mod demo;
pub mod explain;
pub mod lint;
pub mod lsp;
mod metrics;
pub mod plan;
pub mod rehearse;
pub mod report;
pub mod runs;
pub mod scratch;
pub mod status;

/// Output formats shared by the verbs that talk to a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Nothing to report.
pub fn exit_clean() -> ExitCode {
    ExitCode::SUCCESS
}

/// Findings, or the failure of what was asked.
pub fn exit_failure() -> ExitCode {
    ExitCode::from(1)
}

/// Usage or input error.
pub fn exit_usage() -> ExitCode {
    ExitCode::from(2)
}

/// Bad input from the command line, found before anything ran: exit 2. Every other error a verb returns is a
/// failure of what was asked (exit 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as the `anyhow::Error` verbs return.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Parses every duration flag: `100ms`, `2s`, `1.5s`, `1m`, `1h`, or `0`. A bare number other than 0 is refused:
/// PostgreSQL reads it as milliseconds and most tools as seconds, so the unit must be said.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 100ms, 2s or 1m"))?;
    let seconds = match unit.trim() {
        "" if value == 0.0 => 0.0,
        "" => {
            return Err(format!(
                "{text:?} needs a unit: {text}ms, {text}s or {text}m"
            ))
        }
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a duration tidegate can wait for"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("250").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(
            parse_duration("100000000000000000000000h").is_err(),
            "too long: an error, not a panic"
        );
    }
}
