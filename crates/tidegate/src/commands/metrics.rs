//! `--metrics-addr` on `backfill` and `apply`: starts the metrics endpoint before the run and says where it is.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_backfill::engine::StopHandle;

use tidegate_metrics::addr::MetricsAddr;
use tidegate_metrics::server::{serve, MetricsServer};
use tidegate_metrics::Metrics;

use super::Format;

/// The endpoint of a run: the metrics its sink records, and the server (which stops when this drops).
pub(crate) struct Endpoint {
    pub metrics: Arc<Metrics>,
    _server: MetricsServer,
}

/// Starts serving on `addr` (none: no endpoint). Tells where on stderr, and with `--format json` also as the first
/// line on stdout (`{"event":"metrics_listening","addr":"127.0.0.1:9187"}`: the port, when 0 was asked for).
/// An address that is not this machine's is a usage error (exit 2); a port in use and the like exit 1.
pub(crate) async fn start(
    addr: Option<MetricsAddr>,
    format: Format,
) -> Result<Option<Endpoint>, ExitCode> {
    let Some(addr) = addr else { return Ok(None) };
    let metrics = Arc::new(Metrics::new());
    let server = match serve(addr.socket_addr(), metrics.clone()).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: --metrics-addr: {error}; choose another address or port, or leave the flag out");
            return Err(if error.is_bad_address() {
                super::exit_usage()
            } else {
                super::exit_failure()
            });
        }
    };
    let local = server.local_addr();
    eprintln!("metrics: serving http://{local}/metrics");
    if !addr.is_loopback() {
        eprintln!(
            "metrics: warning: {local} is reachable from other machines, without authentication (it shows run ids, \
             table names, migration versions and progress); give a port alone to listen on 127.0.0.1 only"
        );
    }
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({ "event": "metrics_listening", "addr": local.to_string() })
        );
    }
    Ok(Some(Endpoint {
        metrics,
        _server: server,
    }))
}

impl Endpoint {
    /// Keeps serving for `linger` after the run ended, so that a scrape sees its final values (a run can end
    /// between two scrapes); a Ctrl-C ends the wait.
    pub async fn linger(self, linger: Duration, stop: &StopHandle) {
        if linger.is_zero() {
            return;
        }
        eprintln!(
            "metrics: serving the final values for {} s more (--metrics-linger; Ctrl-C to quit now)",
            linger.as_secs_f64()
        );
        let until = Instant::now() + linger;
        while Instant::now() < until && stop.requested().is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
