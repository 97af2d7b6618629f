//! The echo workload: the echo service, unchanged, with drawn settings
//! (credit window, line limit and what an overlong line does, the most
//! sessions at once, the output high-water mark), and drawn clients.
//!
//! From the clients' side: every line is answered exactly once and in
//! order (`You said: ` and the line, or `error: ` for an overlong line or
//! one that is not UTF-8), and a client that sent everything and
//! half-closed gets every answer and then the server's FIN. A client that
//! resets or stops reading gets a prefix of its answers. From the
//! trace: never more sessions than `max_conns`, every session monitored
//! by the service ended with exactly one notice, and none left at the end.

use std::net::SocketAddr;

use credit_actors::net::{ListenSpec, OverlongPolicy, SocketConfig};
use credit_actors::sim::{Sim, SERVER_IP};
use credit_echo::{EchoConfig, EchoService, REPLY_PREFIX};

use crate::client::{text, Client, End};
use crate::{Run, Workload};

/// The echo workload's drawn settings.
#[derive(Clone, Debug)]
pub struct Echo {
    window: u32,
    max_unit: usize,
    overlong_closes: bool,
    max_conns: Option<usize>,
    high_water: usize,
    /// Each client's lines, as sent (without the LF).
    scripts: Vec<Vec<Vec<u8>>>,
}

const PORT: u16 = 4096;

/// What the service answers to a line, `None` for an error line.
fn answer(line: &[u8], max_unit: usize) -> Option<Vec<u8>> {
    if line.len() > max_unit || std::str::from_utf8(line).is_err() {
        return None;
    }
    let mut a = REPLY_PREFIX.as_bytes().to_vec();
    a.extend_from_slice(line);
    Some(a)
}

impl Workload for Echo {
    fn draw(sim: &mut Sim) -> (Echo, Vec<Client>) {
        let window = [1, 2, 3, 64][sim.below(4) as usize];
        let max_unit = [16, 64, 4096][sim.below(3) as usize];
        let overlong_closes = sim.chance(200);
        let max_conns = [None, Some(1), Some(2), Some(4)][sim.below(4) as usize];
        let high_water = [256, 4096, 1 << 20][sim.below(3) as usize];
        let n = 1 + sim.below(6) as usize;
        let mut clients = Vec::new();
        let mut scripts = Vec::new();
        for i in 0..n {
            let lines = sim.below(12) as usize;
            let mut script = Vec::new();
            for _ in 0..lines {
                let line = match sim.below(20) {
                    // Overlong: well past the limit.
                    0 => {
                        let len = max_unit * 2 + 1 + sim.below(50) as usize;
                        text(sim, len)
                    }
                    // Not UTF-8.
                    1 => {
                        let len = sim.below(8) as usize;
                        let mut l = text(sim, len);
                        l.push(0xff);
                        l
                    }
                    _ => {
                        let len = sim.below((max_unit / 2) as u64 + 1) as usize;
                        text(sim, len)
                    }
                };
                script.push(line);
            }
            let mut out = Vec::new();
            for l in &script {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
            clients.push(Client::drawn(sim, i, out));
            scripts.push(script);
        }
        let echo = Echo {
            window,
            max_unit,
            overlong_closes,
            max_conns,
            high_water,
            scripts,
        };
        (echo, clients)
    }

    fn start(&self, sim: &mut Sim) -> SocketAddr {
        let config = EchoConfig {
            listen: ListenSpec::port(PORT),
            conn: SocketConfig {
                max_unit: self.max_unit,
                overlong: if self.overlong_closes {
                    OverlongPolicy::Close
                } else {
                    OverlongPolicy::Skip
                },
                high_water: self.high_water,
                ..SocketConfig::default()
            },
            max_conns: self.max_conns,
            window: self.window,
            group: None,
        };
        sim.core().spawn(EchoService::new(config));
        SocketAddr::new(SERVER_IP, PORT)
    }

    fn memory_settings(&self) -> (usize, usize) {
        (self.high_water, self.max_unit)
    }

    fn satisfied(&self, c: &Client) -> bool {
        c.lines.len() >= self.expected(c.index).len()
    }

    fn describe(&self) -> String {
        format!(
            "echo: window {}, max_unit {} ({}), max_conns {:?}, high_water {}, {} clients",
            self.window,
            self.max_unit,
            if self.overlong_closes {
                "overlong closes"
            } else {
                "overlong skipped"
            },
            self.max_conns,
            self.high_water,
            self.scripts.len()
        )
    }

    fn check(&self, run: &Run<'_>, v: &mut Vec<String>) {
        for c in run.clients {
            let reason = run.servers[c.index]
                .as_ref()
                .and_then(|s| run.facts.closes.get(s))
                .map(String::as_str);
            self.check_client(c, reason, v);
        }
        let facts = run.facts;
        let peak = facts.peak.get("EchoSession").copied().unwrap_or(0);
        if let Some(max) = self.max_conns {
            if peak > max as u64 {
                v.push(format!(
                    "{peak} sessions alive at once, over max_conns {max}"
                ));
            }
        }
        // The service monitors every session.
        for id in facts.unnoticed("EchoSession") {
            v.push(format!("session {id} ended with no monitor notice"));
        }
        if run.settled {
            for ty in ["EchoSession", "Socket"] {
                let alive = facts.alive.get(ty).copied().unwrap_or(0);
                if alive != 0 {
                    v.push(format!(
                        "{alive} {ty}s still alive once every client had gone"
                    ));
                }
            }
        }
    }
}

impl Echo {
    /// The answers client `i` should get, in order (`None`: an error
    /// line). With overlong lines closing the connection, the answers end
    /// before the first one.
    fn expected(&self, i: usize) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for l in &self.scripts[i] {
            if l.len() > self.max_unit && self.overlong_closes {
                break;
            }
            out.push(answer(l, self.max_unit));
        }
        out
    }

    fn check_client(&self, c: &Client, server_reason: Option<&str>, v: &mut Vec<String>) {
        let want = self.expected(c.index);
        let who = format!("client {} ({:?})", c.index, c.ending);
        for (k, got) in c.lines.iter().enumerate() {
            match want.get(k) {
                None => {
                    v.push(format!(
                        "{who}: answer {k} ({:?}) is one more than its {} lines",
                        String::from_utf8_lossy(got),
                        want.len()
                    ));
                    break;
                }
                Some(Some(w)) if got != w => {
                    v.push(format!(
                        "{who}: answer {k} is {:?}, not {:?}",
                        String::from_utf8_lossy(got),
                        String::from_utf8_lossy(w)
                    ));
                    break;
                }
                Some(None) if !got.starts_with(b"error: ") => {
                    v.push(format!(
                        "{who}: answer {k} is {:?}, not an error line",
                        String::from_utf8_lossy(got)
                    ));
                    break;
                }
                _ => {}
            }
        }
        let cut_short = self.overlong_closes
            && self.scripts[c.index]
                .iter()
                .any(|l| l.len() > self.max_unit);
        match c.end() {
            None => v.push(format!("{who}: stuck, waiting for {}", c.waiting_for())),
            Some(End::Refused) if !c.lines.is_empty() => {
                v.push(format!("{who}: refused, yet answered"))
            }
            // Every answer, up to the overlong line where one closes.
            Some(End::Eof) | Some(End::ClosedByClient)
                if c.ending.expects_all() && c.lines.len() != want.len() =>
            {
                v.push(format!(
                    "{who}: ended ({:?}) with {} answers of {}",
                    c.end(),
                    c.lines.len(),
                    want.len()
                ))
            }
            // A reset only after an overlong line, and only behind every
            // answer before it.
            Some(End::ResetByServer)
                if c.ending.expects_all() && (!cut_short || c.lines.len() != want.len()) =>
            {
                v.push(format!(
                    "{who}: reset by the server after {} answers of {}",
                    c.lines.len(),
                    want.len()
                ))
            }
            _ => {}
        }
        // The server closed after an overlong line, and said why.
        if cut_short
            && c.ending.expects_all()
            && matches!(c.end(), Some(End::Eof) | Some(End::ResetByServer))
        {
            match server_reason {
                Some(r) if r.starts_with("limit exceeded") => {}
                r => v.push(format!(
                    "{who}: sent an overlong line and was closed with {r:?}, not limit exceeded"
                )),
            }
        }
        if c.ending.expects_all() && c.end() == Some(End::Eof) && !c.partial().is_empty() {
            v.push(format!(
                "{who}: {} bytes after the last full answer",
                c.partial().len()
            ));
        }
    }
}
