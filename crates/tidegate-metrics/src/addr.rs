//! `--metrics-addr`: where the metrics endpoint listens.
//!
//! `PORT` (or `:PORT`) alone listens on loopback (127.0.0.1), the way a DBA expects a flag that was not asked to
//! expose anything. `HOST:PORT` listens where it says, `0.0.0.0:PORT` or `[::]:PORT` included: a non-loopback
//! address is something someone wrote on purpose, so it works, and the command says on stderr that the endpoint is
//! reachable from other machines ([`MetricsAddr::is_loopback`]). `HOST` is an IP address or `localhost`; other host
//! names are refused rather than resolved (a bind address that depends on DNS is a surprise waiting to happen).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// A parsed `--metrics-addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(SocketAddr);

/// Why a `--metrics-addr` value is not an address (a usage error: exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{value}' is not a metrics address: {why}; give PORT (listens on 127.0.0.1), or HOST:PORT with HOST an IP \
     address or localhost (e.g. 127.0.0.1:9187, 0.0.0.0:9187 for every interface, [::1]:9187)"
)]
pub struct AddrError {
    pub value: String,
    pub why: String,
}

impl MetricsAddr {
    pub fn socket_addr(self) -> SocketAddr {
        self.0
    }

    /// Whether only this machine can reach it.
    pub fn is_loopback(self) -> bool {
        self.0.ip().is_loopback()
    }
}

impl std::fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn port(value: &str, text: &str) -> Result<u16, AddrError> {
    let error = |why: String| AddrError {
        value: value.to_string(),
        why,
    };
    if text.is_empty() {
        return Err(error("the port is missing".into()));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(format!("'{text}' is not a port number")));
    }
    text.parse::<u16>()
        .map_err(|_| error(format!("port {text} is over 65535")))
}

impl FromStr for MetricsAddr {
    type Err = AddrError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |why: &str| AddrError {
            value: value.to_string(),
            why: why.to_string(),
        };
        let text = value.trim();
        if text.is_empty() {
            return Err(error("it is empty"));
        }
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if !text.starts_with('[') && text.matches(':').count() > 1 {
            return Err(error("an IPv6 address needs brackets, as in [::1]:9187"));
        }
        // PORT or :PORT: loopback.
        if let Some(p) = text.strip_prefix(':') {
            return Ok(Self(SocketAddr::new(loopback, port(value, p)?)));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Self(SocketAddr::new(loopback, port(value, text)?)));
        }
        // [v6]:PORT
        if let Some(rest) = text.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                return Err(error("an IPv6 address in brackets lacks its ']'"));
            };
            let Some(p) = after.strip_prefix(':') else {
                return Err(error("the port is missing after the IPv6 address"));
            };
            let ip = host
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| error(&format!("'{host}' is not an IPv6 address")))?;
            return Ok(Self(SocketAddr::new(IpAddr::V6(ip), port(value, p)?)));
        }
        let Some((host, p)) = text.rsplit_once(':') else {
            return Err(error("the port is missing"));
        };
        let ip = if host.eq_ignore_ascii_case("localhost") {
            loopback
        } else {
            host.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| {
                error(&format!(
                    "'{host}' is not an IP address (host names other than localhost are not resolved)"
                ))
            })?
        };
        Ok(Self(SocketAddr::new(ip, port(value, p)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SocketAddr, AddrError> {
        text.parse::<MetricsAddr>().map(MetricsAddr::socket_addr)
    }

    #[test]
    fn a_port_alone_listens_on_loopback() {
        assert_eq!(parse("9187").unwrap(), "127.0.0.1:9187".parse().unwrap());
        assert_eq!(parse(":9187").unwrap(), "127.0.0.1:9187".parse().unwrap());
        assert!("9187".parse::<MetricsAddr>().unwrap().is_loopback());
    }

    #[test]
    fn an_explicit_host_is_taken_as_written() {
        assert_eq!(
            parse("0.0.0.0:9187").unwrap(),
            "0.0.0.0:9187".parse().unwrap()
        );
        assert!(!"0.0.0.0:9187".parse::<MetricsAddr>().unwrap().is_loopback());
        assert_eq!(
            parse("10.1.2.3:80").unwrap(),
            "10.1.2.3:80".parse().unwrap()
        );
        assert_eq!(parse("[::]:9187").unwrap(), "[::]:9187".parse().unwrap());
        assert!("[::1]:9187".parse::<MetricsAddr>().unwrap().is_loopback());
        assert_eq!(
            parse("localhost:9187").unwrap(),
            "127.0.0.1:9187".parse().unwrap()
        );
        assert_eq!(parse("127.0.0.1:0").unwrap().port(), 0);
    }

    #[test]
    fn bad_addresses_say_what_is_wrong_and_what_to_give() {
        for (text, why) in [
            ("", "it is empty"),
            ("metrics.example.com:9187", "not an IP address"),
            ("127.0.0.1", "the port is missing"),
            ("127.0.0.1:", "the port is missing"),
            ("127.0.0.1:http", "'http' is not a port number"),
            ("127.0.0.1:70000", "port 70000 is over 65535"),
            ("99999", "port 99999 is over 65535"),
            ("::1:9187", "needs brackets"),
            ("[::1", "lacks its ']'"),
            ("[::1]", "port is missing"),
            ("[nope]:1", "not an IPv6 address"),
            ("300.1.1.1:80", "not an IP address"),
        ] {
            let error = parse(text).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(why), "{text}: {message}");
            assert!(message.contains("0.0.0.0:9187"), "{text}: {message}");
        }
    }
}
