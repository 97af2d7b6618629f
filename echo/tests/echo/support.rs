//! An in-process echo server for the tests, on 127.0.0.1 with a port the
//! kernel picks; the rest of the scaffolding comes from `credit-testkit`.

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use credit_actors::net::{ListenSpec, SocketConfig};
use credit_actors::{Addr, Config, Reactor, ReactorHandle};
use credit_echo::{EchoConfig, EchoService, ServiceMsg};
use credit_testkit::{Peer, WAIT};

/// The echo-server binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_echo-server");

/// The reply prefix of the echo server.
pub const PREFIX: &str = "You said: ";

/// An echo service on its own reactor thread, listening on 127.0.0.1 with a
/// port the kernel picked. Shut down and joined (bounded) on drop.
pub struct Server {
    pub handle: ReactorHandle,
    pub service: Addr<EchoService>,
    pub addr: SocketAddr,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// A server with default connection settings.
    pub fn start() -> Server {
        Server::start_with(SocketConfig::default(), None)
    }

    /// A server whose accepted connections use `conn`.
    pub fn start_with(conn: SocketConfig, max_conns: Option<usize>) -> Server {
        Server::start_config(EchoConfig {
            conn,
            max_conns,
            ..EchoConfig::default()
        })
    }

    /// A server with these settings, except that it always listens on
    /// 127.0.0.1 with a port the kernel picks.
    pub fn start_config(config: EchoConfig) -> Server {
        Server::start_budget(config, None)
    }

    /// A server with these settings and a buffer memory limit.
    pub fn start_budget(config: EchoConfig, limit: Option<usize>) -> Server {
        let config = EchoConfig {
            listen: ListenSpec::host_port("127.0.0.1", 0),
            ..config
        };
        let (handle, join) = Reactor::start(Config::default(), move |core| {
            credit_actors::net::set_buffer_limit(core, limit);
        })
        .expect("start reactor");
        let service = handle
            .spawn(move || EchoService::new(config))
            .expect("spawn the echo service");
        let addr = handle
            .request_wait(service, ServiceMsg::WhenReady, WAIT)
            .expect("the echo service did not report its address");
        assert!(addr.ip().is_loopback(), "bound to {addr}");
        assert_ne!(addr.port(), 0, "no port picked");
        Server {
            handle,
            service,
            addr,
            join: Some(join),
        }
    }

    /// The service's count of live sessions.
    pub fn sessions(&self) -> usize {
        self.handle
            .request_wait(self.service, ServiceMsg::Sessions, WAIT)
            .expect("Sessions request failed")
    }

    /// Polls the session count until it equals `n`; panics at the deadline.
    pub fn wait_sessions(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.sessions();
            if now == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "session count stayed at {now}, expected {n}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A raw client connected to this server.
    pub fn connect(&self) -> Peer {
        Peer::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(join) = self.join.take() {
            let deadline = Instant::now() + WAIT;
            while !join.is_finished() {
                if Instant::now() >= deadline {
                    // Do not hang the test binary; a panic here while
                    // already panicking would abort, so just report.
                    eprintln!("reactor thread did not stop within {WAIT:?}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let result = join.join();
            if !std::thread::panicking() {
                result
                    .expect("reactor thread panicked")
                    .expect("reactor failed");
            }
        }
    }
}
