//! The chat workload: the chat server (supervisor, room and service),
//! unchanged, with drawn settings (each user's window, a rate limit or
//! none, the output backlog a slow user may have), and drawn users who
//! each say `m0`, `m1`, ... and end as their script says.
//!
//! From the users' side:
//! - per-user order: each user sees each other user's lines in the order
//!   they were said, each at most once;
//! - one order: any two users see the lines they both saw in the same
//!   order (the room has one log);
//! - a user who waits for its own lines before closing sees all of them,
//!   in order;
//! - a user cut off before that was closed by the server with a typed
//!   reason (too slow, for instance), which the trace shows on the
//!   user's socket.

use std::collections::HashMap;
use std::net::SocketAddr;

use credit_actors::net::{ListenSpec, SocketConfig};
use credit_actors::sim::{Sim, SERVER_IP};
use credit_chat::ChatConfig;

use crate::client::{Client, End, Ending};
use crate::{Run, Workload};

/// The chat workload's drawn settings.
#[derive(Clone, Debug)]
pub struct Chat {
    window: u32,
    rate: Option<u32>,
    max_backlog: usize,
    /// Lines each user says.
    said: Vec<usize>,
}

const PORT: u16 = 5999;
const MAX_LINE: usize = 256;

/// A user's name, from its first line (`you are NAME`).
fn name_of(c: &Client) -> Option<&str> {
    let first = c.lines.first()?;
    std::str::from_utf8(first).ok()?.strip_prefix("you are ")
}

/// The (speaker, index) of a `NAME says 'mI'` line.
fn said(line: &[u8]) -> Option<(&str, usize)> {
    let line = std::str::from_utf8(line).ok()?;
    let (name, text) = line.split_once(" says '")?;
    let i = text.strip_prefix('m')?.strip_suffix('\'')?.parse().ok()?;
    Some((name, i))
}

impl Workload for Chat {
    fn draw(sim: &mut Sim) -> (Chat, Vec<Client>) {
        let window = [1, 2, 16][sim.below(3) as usize];
        let rate = [None, None, Some(200)][sim.below(3) as usize];
        let max_backlog = [512, 4096, 256 * 1024][sim.below(3) as usize];
        let n = 2 + sim.below(4) as usize;
        let mut clients = Vec::new();
        let mut said = Vec::new();
        for i in 0..n {
            let k = sim.below(10) as usize;
            let mut out = Vec::new();
            for j in 0..k {
                out.extend_from_slice(format!("m{j}\n").as_bytes());
            }
            clients.push(Client::drawn(sim, i, out));
            said.push(k);
        }
        let chat = Chat {
            window,
            rate,
            max_backlog,
            said,
        };
        (chat, clients)
    }

    fn start(&self, sim: &mut Sim) -> SocketAddr {
        let config = ChatConfig {
            listen: ListenSpec::port(PORT),
            conn: SocketConfig {
                max_unit: MAX_LINE,
                max_backlog: Some(self.max_backlog),
                ..SocketConfig::default()
            },
            max_users: None,
            window: self.window,
            rate: self.rate,
            group: None,
            cluster: None,
        };
        sim.core().spawn(credit_chat::supervisor(config));
        SocketAddr::new(SERVER_IP, PORT)
    }

    fn memory_settings(&self) -> (usize, usize) {
        (SocketConfig::default().high_water, MAX_LINE)
    }

    fn satisfied(&self, c: &Client) -> bool {
        let Some(me) = name_of(c) else {
            return false;
        };
        let mine = c
            .lines
            .iter()
            .filter(|l| said(l).is_some_and(|(n, _)| n == me))
            .count();
        mine >= self.said[c.index]
    }

    fn describe(&self) -> String {
        format!(
            "chat: window {}, rate {:?}, max_backlog {}, {} users saying {:?}",
            self.window,
            self.rate,
            self.max_backlog,
            self.said.len(),
            self.said
        )
    }

    fn check(&self, run: &Run<'_>, v: &mut Vec<String>) {
        let mut orders: Vec<Vec<(String, usize)>> = Vec::new();
        for c in run.clients {
            let who = format!("user {} ({:?})", c.index, c.ending);
            let mut last: HashMap<&str, usize> = HashMap::new();
            let mut order = Vec::new();
            for l in &c.lines {
                let Some((name, i)) = said(l) else {
                    continue;
                };
                if let Some(&before) = last.get(name) {
                    if i <= before {
                        v.push(format!(
                            "{who} saw {name}'s m{i} after its m{before}: per-user order broken"
                        ));
                    }
                }
                last.insert(name, i);
                order.push((name.to_string(), i));
            }
            orders.push(order);
            if c.end().is_none() {
                v.push(format!("{who}: stuck, waiting for {}", c.waiting_for()));
                continue;
            }
            let me = name_of(c);
            let mine: Vec<usize> = c
                .lines
                .iter()
                .filter_map(|l| said(l).filter(|(n, _)| Some(*n) == me).map(|(_, i)| i))
                .collect();
            let k = self.said[c.index];
            let all: Vec<usize> = (0..k).collect();
            let whole = mine == all;
            if c.end() == Some(End::ClosedByClient) && c.ending == Ending::Close && !whole {
                v.push(format!(
                    "{who}: closed after seeing its own lines {mine:?}, not 0..{k}"
                ));
            }
            let cut_short = c.ending.expects_all()
                && !whole
                && matches!(c.end(), Some(End::Eof) | Some(End::ResetByServer));
            if cut_short {
                // Only the server's typed reason excuses it.
                let reason = run.servers[c.index]
                    .as_ref()
                    .and_then(|s| run.facts.closes.get(s));
                let typed = reason.is_some_and(|r| r != "closed by peer");
                let half_closed = c.ending == Ending::HalfClose && c.end() == Some(End::Eof);
                if !typed && !half_closed {
                    v.push(format!(
                        "{who}: ended ({:?}) having seen its own lines {mine:?} of 0..{k}, \
                         and the server told no reason ({reason:?})",
                        c.end()
                    ));
                }
            }
        }
        // One order: the lines two users both saw, in the same order.
        for a in 0..orders.len() {
            for b in a + 1..orders.len() {
                let pos: HashMap<&(String, usize), usize> =
                    orders[a].iter().enumerate().map(|(i, m)| (m, i)).collect();
                let mut last = None;
                for m in &orders[b] {
                    if let Some(&p) = pos.get(m) {
                        if last.is_some_and(|l| p < l) {
                            v.push(format!(
                                "users {a} and {b} saw {}'s m{} in different orders",
                                m.0, m.1
                            ));
                            break;
                        }
                        last = Some(p);
                    }
                }
            }
        }
        // The service monitors every user's agent.
        for id in run.facts.unnoticed("UserAgent") {
            v.push(format!("agent {id} ended with no monitor notice"));
        }
        if run.settled {
            for ty in ["UserAgent", "Socket"] {
                let alive = run.facts.alive.get(ty).copied().unwrap_or(0);
                if alive != 0 {
                    v.push(format!(
                        "{alive} {ty}s still alive once every user had gone"
                    ));
                }
            }
        }
    }
}
