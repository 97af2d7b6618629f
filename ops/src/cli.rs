//! The operations options `echo-server` and `chat-server` share, and what
//! they set up: the PROXY policy, the admin endpoint, the sockets systemd
//! passed, and the notifications it expects.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};

use credit_actors::net::proxy::{parse_cidrs, Cidr, ProxyPolicy};
use credit_actors::net::ListenSpec;
use credit_actors::ReactorHandle;

use crate::admin::{Admin, AdminConfig, Readiness};
use crate::systemd;

/// A list of trusted proxies, as `--proxy-from` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trusted(pub Vec<Cidr>);

impl std::str::FromStr for Trusted {
    type Err = String;
    fn from_str(s: &str) -> Result<Trusted, String> {
        parse_cidrs(s).map(Trusted)
    }
}

/// Running behind a load balancer, under systemd, with an admin endpoint.
#[derive(clap::Args, Clone, Debug)]
pub struct OpsArgs {
    /// Every connection starts with a PROXY protocol header (v1 or v2),
    /// sent by a load balancer listed in --proxy-from; logs and the
    /// service then see the client's address. Connections from elsewhere,
    /// and missing, malformed or late headers, are refused and logged.
    #[arg(long, requires = "proxy_from")]
    pub proxy_protocol: bool,
    /// The load balancers whose PROXY headers are believed: addresses or
    /// blocks, comma-separated (10.0.0.2,192.168.0.0/24,::1). Without
    /// --proxy-protocol it applies to the admin endpoint only (which reads
    /// a header from these sources if they send one).
    #[arg(long, value_name = "CIDR,...")]
    pub proxy_from: Option<Trusted>,
    /// Seconds a connection may take to send its PROXY header.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub proxy_timeout: f64,
    /// Serve /metrics (Prometheus), /healthz and /readyz over HTTP on
    /// this address (HOST:PORT, or :PORT for every interface).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// While this file exists, /readyz answers 503 so that load balancers
    /// send no new connections; sessions already open carry on.
    #[arg(long, value_name = "PATH")]
    pub drain_file: Option<PathBuf>,
}

/// What the options and the environment set up. See [`OpsArgs`].
#[derive(Debug)]
pub struct Ops {
    /// The PROXY policy for the service's connections, if any.
    pub proxy: Option<Arc<ProxyPolicy>>,
    /// What `/readyz` says.
    pub readiness: Readiness,
    /// The service's listening socket, passed by systemd.
    pub service_fd: Option<RawFd>,
    admin: Option<ListenSpec>,
    admin_proxy: Option<Arc<ProxyPolicy>>,
    ready_sent: AtomicBool,
}

impl Ops {
    /// Reads the options, and takes the sockets systemd passed (one named
    /// `admin` serves the admin endpoint; the first other one, the
    /// service).
    pub fn new(args: &OpsArgs) -> Result<Ops, String> {
        let timeout = match args.proxy_timeout {
            t if t.is_finite() && t > 0.0 => Duration::from_secs_f64(t),
            t => return Err(format!("--proxy-timeout must be positive, got {t}")),
        };
        let policy = args.proxy_from.as_ref().map(|t| ProxyPolicy {
            timeout,
            ..ProxyPolicy::new(t.0.clone())
        });
        let fds = systemd::listen_fds().map_err(|e| format!("socket activation: {e}"))?;
        let mut service_fd = None;
        let mut admin_fd = None;
        for f in fds {
            let slot = if f.name.as_deref() == Some("admin") {
                &mut admin_fd
            } else {
                &mut service_fd
            };
            if slot.is_none() {
                *slot = Some(f.fd);
            } else {
                // Closed, so that clients reaching it are refused rather
                // than left waiting in a backlog nobody accepts from.
                warn!(
                    "socket activation: descriptor {} ({:?}) is not used; closing it",
                    f.fd, f.name
                );
                // SAFETY: the descriptor was passed to this process, which
                // has no other use for it; closing an invalid one only
                // fails with EBADF.
                unsafe { libc::close(f.fd) };
            }
        }
        if let Some(fd) = service_fd {
            info!("socket activation: listening on the socket systemd passed (fd {fd})");
        }
        let admin = match (admin_fd, args.admin.as_deref()) {
            (Some(fd), _) => Some(ListenSpec::inherited(fd)),
            (None, Some(addr)) => Some(parse_listen(addr)?),
            (None, None) => None,
        };
        Ok(Ops {
            proxy: policy.clone().filter(|_| args.proxy_protocol).map(Arc::new),
            readiness: Readiness::new(args.drain_file.clone()),
            service_fd,
            admin,
            admin_proxy: policy.map(Arc::new),
            ready_sent: AtomicBool::new(false),
        })
    }

    /// Where the service listens: the socket systemd passed, if any, else
    /// `spec`.
    pub fn service_listen(&self, spec: ListenSpec) -> ListenSpec {
        match self.service_fd {
            Some(fd) => ListenSpec::inherited(fd),
            None => spec,
        }
    }

    /// Starts the admin endpoint, if asked for, reporting `reactors`.
    pub fn start_admin(&self, reactors: Vec<ReactorHandle>) -> Result<Option<Admin>, String> {
        let Some(listen) = self.admin.clone() else {
            return Ok(None);
        };
        let mut config = AdminConfig::new(listen.clone(), reactors, self.readiness.clone());
        config.proxy = self.admin_proxy.clone();
        Admin::start(config)
            .map(Some)
            .map_err(|e| format!("cannot start the admin endpoint on {listen}: {e}"))
    }

    /// The service listens: tells systemd (`READY=1`), once.
    pub fn ready(&self, status: &str) {
        if self.ready_sent.swap(true, Ordering::SeqCst) {
            return;
        }
        notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// The first stop signal: `/readyz` answers 503 from now on, and
    /// systemd is told (`STOPPING=1`).
    pub fn stopping(&self) {
        self.readiness.stop();
        notify("STOPPING=1\nSTATUS=draining");
    }
}

fn notify(state: &str) {
    if let Err(e) = systemd::notify(state) {
        warn!("cannot notify the service manager: {e}");
    }
}

/// `HOST:PORT`, `[V6]:PORT` or `:PORT`.
pub fn parse_listen(addr: &str) -> Result<ListenSpec, String> {
    let (host, port) = split_host_port(addr)?;
    Ok(if host.is_empty() {
        ListenSpec::port(port)
    } else {
        ListenSpec::host_port(host, port)
    })
}

/// The host (brackets taken off an IPv6 address; empty for `:PORT`) and
/// the port of `HOST:PORT`.
pub fn split_host_port(addr: &str) -> Result<(&str, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{addr:?}: {port:?} is not a port"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_every_form() {
        assert_eq!(
            parse_listen("127.0.0.1:9100").unwrap(),
            ListenSpec::host_port("127.0.0.1", 9100)
        );
        assert_eq!(
            parse_listen("[::1]:0").unwrap(),
            ListenSpec::host_port("::1", 0)
        );
        assert_eq!(parse_listen(":9100").unwrap(), ListenSpec::port(9100));
        assert!(parse_listen("9100").is_err());
        assert!(parse_listen("a:b").is_err());
    }
}
