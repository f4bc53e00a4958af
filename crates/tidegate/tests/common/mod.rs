//! Helpers shared by the CLI tests that follow a running `tidegate … --format json` process through its events.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a test waits for an event it brought about before it calls the process hung.
pub const HANG: Duration = Duration::from_secs(120);

/// The child's stdout lines (`--format json`: one JSON object each), read on a thread of their own.
pub fn json_lines(child: &mut Child) -> Receiver<serde_json::Value> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(value) = serde_json::from_str(&line) {
                if tx.send(value).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Waits for the line whose `event` is `name` (lines before it are dropped).
pub fn wait_event(lines: &Receiver<serde_json::Value>, name: &str) -> serde_json::Value {
    let until = Instant::now() + HANG;
    loop {
        match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(value) if value["event"] == name => return value,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => panic!("no {name} event"),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the process ended before a {name} event")
            }
        }
    }
}
