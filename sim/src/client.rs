//! A scripted client of the simulated network: it connects at a drawn
//! time, writes its bytes in drawn pieces with drawn pauses, reads what
//! arrives in drawn sizes, and ends as its script says (half-close, close,
//! a reset at a drawn byte, or it stops reading). Every draw comes from
//! the simulation's one generator.

use std::io;
use std::time::{Duration, Instant};

use credit_actors::sim::{ClientConn, Sim};

/// How a client's script ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Sends everything, half-closes, reads until the server's FIN.
    HalfClose,
    /// Sends everything, reads until it has what it waits for, closes.
    Close,
    /// Resets the connection once it has written this many bytes (often
    /// mid-line).
    Reset(usize),
    /// Never reads: writes what the server takes, waits, then goes away
    /// (a reset, since it leaves input unread).
    StopReading,
}

impl Ending {
    /// A client that ends this way expects every answer.
    pub fn expects_all(self) -> bool {
        matches!(self, Ending::HalfClose | Ending::Close)
    }
}

/// How a client's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Its connect was refused.
    Refused,
    /// The server's FIN arrived (after everything it sent).
    Eof,
    /// The server reset the connection (or a write found it reset).
    ResetByServer,
    /// The client reset it, as scripted.
    ResetByClient,
    /// The client closed it, as scripted.
    ClosedByClient,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Open,
    Done(End),
}

/// One scripted client.
#[derive(Debug)]
pub struct Client {
    /// Its number in the run.
    pub index: usize,
    conn: Option<ClientConn>,
    start: Instant,
    /// Everything it will send.
    pub out: Vec<u8>,
    /// Bytes of `out` the network took.
    pub sent: usize,
    /// Its script's ending.
    pub ending: Ending,
    inbox: Vec<u8>,
    /// The complete lines received (without their LF).
    pub lines: Vec<Vec<u8>>,
    state: State,
    write_at: Instant,
    shut: bool,
    linger_until: Option<Instant>,
}

/// How long a client that stopped reading stays before it goes.
const LINGER: Duration = Duration::from_millis(50);

impl Client {
    /// A client that connects at `start` and sends `out`.
    pub fn new(index: usize, start: Instant, out: Vec<u8>, ending: Ending) -> Client {
        Client {
            index,
            conn: None,
            start,
            out,
            sent: 0,
            ending,
            inbox: Vec::new(),
            lines: Vec::new(),
            state: State::Waiting,
            write_at: start,
            shut: false,
            linger_until: None,
        }
    }

    /// Client `index`, sending `out`, with a drawn ending (a half-close
    /// 4 times in 10, a close once answered 3, a reset at a drawn byte 2,
    /// never reading 1) and a start within the first 3 ms.
    pub fn drawn(sim: &mut Sim, index: usize, out: Vec<u8>) -> Client {
        let ending = match sim.below(10) {
            0..=3 => Ending::HalfClose,
            4..=6 => Ending::Close,
            7 | 8 => Ending::Reset(sim.below(out.len() as u64 + 1) as usize),
            _ => Ending::StopReading,
        };
        let start = sim.now() + Duration::from_micros(sim.below(3000));
        Client::new(index, start, out, ending)
    }

    /// How it ended, once it has.
    pub fn end(&self) -> Option<End> {
        match self.state {
            State::Done(e) => Some(e),
            _ => None,
        }
    }

    /// Its connection, once made.
    pub fn conn(&self) -> Option<ClientConn> {
        self.conn
    }

    /// When it next wants to act on its own (not on an arrival).
    pub fn wake(&self) -> Option<Instant> {
        match self.state {
            State::Waiting => Some(self.start),
            State::Open if self.sent < self.out.len() => match self.linger_until {
                Some(t) => Some(t.min(self.write_at)),
                None => Some(self.write_at),
            },
            State::Open => self.linger_until,
            State::Done(_) => None,
        }
    }

    /// What it is waiting for, for a report.
    pub fn waiting_for(&self) -> String {
        match self.state {
            State::Waiting => "its start".into(),
            State::Done(e) => format!("nothing (ended: {e:?})"),
            State::Open if self.sent < self.out.len() => format!(
                "the server to take its bytes ({} of {} sent)",
                self.sent,
                self.out.len()
            ),
            State::Open if self.shut => {
                format!("the server's FIN ({} lines received)", self.lines.len())
            }
            State::Open => format!("more answers ({} lines received)", self.lines.len()),
        }
    }

    fn finish(&mut self, end: End) {
        self.state = State::Done(end);
    }

    /// Acts at the virtual time now: connects when due, reads what
    /// arrived, writes a drawn piece, and ends when its script says.
    /// `satisfied`: it has every answer it waits for (for `Close`).
    pub fn act(
        &mut self,
        sim: &mut Sim,
        now: Instant,
        addr: std::net::SocketAddr,
        satisfied: impl Fn(&Client) -> bool,
    ) {
        match self.state {
            State::Done(_) => return,
            State::Waiting if now < self.start => return,
            State::Waiting => match sim.connect(addr) {
                Ok(c) => {
                    self.conn = Some(c);
                    self.state = State::Open;
                    if self.ending == Ending::StopReading {
                        // It writes what the server takes (which stops
                        // once the server holds back), then goes away.
                        self.linger_until = Some(now + LINGER);
                    }
                }
                Err(_) => return self.finish(End::Refused),
            },
            State::Open => {}
        }
        let c = self.conn.expect("open");
        if self.ending != Ending::StopReading {
            loop {
                let max = 1 + sim.below(2048) as usize;
                match sim.read(c, max) {
                    Ok(data) if data.is_empty() => {
                        self.cut_lines();
                        return self.finish(End::Eof);
                    }
                    Ok(data) => self.inbox.extend_from_slice(&data),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.cut_lines();
                        return self.finish(End::ResetByServer);
                    }
                }
            }
            self.cut_lines();
        }
        if self.sent < self.out.len() && now >= self.write_at {
            if let Ending::Reset(at) = self.ending {
                if self.sent >= at {
                    sim.reset(c);
                    return self.finish(End::ResetByClient);
                }
            }
            let left = self.out.len() - self.sent;
            let left = match self.ending {
                Ending::Reset(at) => left.min(at - self.sent),
                _ => left,
            };
            let piece = 1 + sim.below(left as u64) as usize;
            match sim.write(c, &self.out[self.sent..self.sent + piece]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return self.finish(End::ResetByServer),
            }
            // A pause before the next piece, a third of the time.
            self.write_at = if sim.chance(333) {
                now + Duration::from_micros(sim.below(800))
            } else {
                now
            };
        }
        if self.linger_until.is_some_and(|t| now >= t) {
            sim.close(c);
            return self.finish(End::ClosedByClient);
        }
        if self.sent < self.out.len() {
            if let Ending::Reset(at) = self.ending {
                if self.sent >= at {
                    sim.reset(c);
                    return self.finish(End::ResetByClient);
                }
            }
            return;
        }
        match self.ending {
            Ending::HalfClose if !self.shut => {
                self.shut = true;
                sim.shutdown_write(c);
            }
            Ending::HalfClose => {}
            Ending::Close if satisfied(self) => {
                sim.close(c);
                self.finish(End::ClosedByClient);
            }
            Ending::Close => {}
            Ending::Reset(_) => {
                sim.reset(c);
                self.finish(End::ResetByClient);
            }
            Ending::StopReading => {}
        }
    }

    fn cut_lines(&mut self) {
        while let Some(i) = self.inbox.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.inbox.drain(..=i).collect();
            line.pop();
            self.lines.push(line);
        }
    }

    /// Bytes received after the last complete line.
    pub fn partial(&self) -> &[u8] {
        &self.inbox
    }
}

/// A drawn line of `len` bytes of letters, digits and spaces.
pub fn text(sim: &mut Sim, len: usize) -> Vec<u8> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
    (0..len)
        .map(|_| CHARS[sim.below(CHARS.len() as u64) as usize])
        .collect()
}
