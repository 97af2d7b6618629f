//! A probe actor: records what it receives and runs what it is sent.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_actors::net::{CloseReason, ListenerEvent, Socket, SocketEvent, Unit};
use credit_actors::{
    Actor, ActorId, Addr, Ctx, ExitReason, LinkAction, MonitorRef, ReactorHandle, Reply,
    RequestError,
};

use crate::WAIT;

/// A link or monitor notice, or the probe's own end, as a probe reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A linked peer ended.
    Link {
        /// The probe.
        me: ActorId,
        /// The peer.
        peer: ActorId,
        /// The peer's exit reason.
        reason: ExitReason,
    },
    /// A monitored peer ended.
    Down {
        /// The probe.
        me: ActorId,
        /// The peer.
        peer: ActorId,
        /// The monitor's reference.
        reference: MonitorRef,
        /// The peer's exit reason.
        reason: ExitReason,
    },
    /// The probe itself stopped.
    Stopped {
        /// The probe.
        me: ActorId,
        /// Why.
        reason: ExitReason,
    },
}

/// Everything a probe records in its log, in arrival order.
#[derive(Debug)]
pub enum Event {
    /// From a socket it controls.
    Socket(SocketEvent),
    /// From a listener it controls.
    Listener(ListenerEvent),
    /// A send promise answered (tagged by the test).
    Flushed(u32, Result<(), RequestError>),
    /// A link or monitor notice, or its own end.
    Notice(Notice),
}

/// Link and monitor notices a probe has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notices {
    /// Link notices: (peer, reason).
    pub links: Vec<(ActorId, ExitReason)>,
    /// Monitor notices: (peer, reference, reason).
    pub downs: Vec<(ActorId, MonitorRef, ExitReason)>,
}

/// A closure run inside the probe actor, with its state and context.
pub type Job = Box<dyn for<'a, 'b> FnOnce(&'a mut Probe, &'a mut Ctx<'b, Probe>) + Send>;

/// Messages to a [`Probe`].
pub enum ProbeMsg {
    /// Adds one to its count.
    Inc,
    /// Answered with its count.
    Count(Reply<u64>),
    /// Answered with the notices it has seen.
    Notices(Reply<Notices>),
    /// Links it to the actor.
    Link(ActorId),
    /// Removes a link.
    Unlink(ActorId),
    /// Monitors the actor with the reference.
    Monitor(ActorId, MonitorRef),
    /// Removes a monitor.
    Demonitor(ActorId, MonitorRef),
    /// Stops normally.
    Stop,
    /// Panics with the message.
    Panic(String),
    /// Runs arbitrary code on the reactor thread, inside the probe.
    Run(Job),
    /// A socket event (the probe controls sockets).
    Socket(SocketEvent),
    /// A listener event (the probe controls listeners).
    Listener(ListenerEvent),
    /// A tagged send promise's outcome.
    Flushed(u32, Result<(), RequestError>),
}

impl std::fmt::Debug for ProbeMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeMsg::Run(_) => f.write_str("Run(..)"),
            ProbeMsg::Socket(e) => write!(f, "Socket({e:?})"),
            ProbeMsg::Listener(e) => write!(f, "Listener({e:?})"),
            ProbeMsg::Flushed(t, r) => write!(f, "Flushed({t}, {r:?})"),
            ProbeMsg::Count(_) => f.write_str("Count"),
            ProbeMsg::Notices(_) => f.write_str("Notices"),
            other => write!(f, "{}", probe_msg_name(other)),
        }
    }
}

fn probe_msg_name(m: &ProbeMsg) -> &'static str {
    match m {
        ProbeMsg::Inc => "Inc",
        ProbeMsg::Link(_) => "Link",
        ProbeMsg::Unlink(_) => "Unlink",
        ProbeMsg::Monitor(..) => "Monitor",
        ProbeMsg::Demonitor(..) => "Demonitor",
        ProbeMsg::Stop => "Stop",
        ProbeMsg::Panic(_) => "Panic",
        _ => "ProbeMsg",
    }
}

impl From<SocketEvent> for ProbeMsg {
    fn from(e: SocketEvent) -> Self {
        ProbeMsg::Socket(e)
    }
}

impl From<ListenerEvent> for ProbeMsg {
    fn from(e: ListenerEvent) -> Self {
        ProbeMsg::Listener(e)
    }
}

/// An actor that records what it receives: socket and listener events in
/// its log, link and monitor notices in its log, its [`Notices`] and on its
/// notice channel (if it has one).
#[derive(Debug)]
pub struct Probe {
    /// Messages counted with [`ProbeMsg::Inc`].
    pub count: u64,
    /// Handle link notices and stay alive (default: die of them).
    pub stay_on_link: bool,
    /// Notices seen so far.
    pub notices: Notices,
    log: Arc<Mutex<Vec<Event>>>,
    notice_tx: Option<Sender<Notice>>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

impl Probe {
    /// A probe that dies of link notices, as actors do by default.
    pub fn new() -> Probe {
        Probe {
            count: 0,
            stay_on_link: false,
            notices: Notices::default(),
            log: Arc::default(),
            notice_tx: None,
        }
    }

    /// A probe that also reports its notices on `tx`.
    pub fn reporting(tx: Sender<Notice>) -> Probe {
        Probe {
            notice_tx: Some(tx),
            ..Probe::new()
        }
    }

    /// The same probe, handling link notices and staying alive.
    pub fn staying(self) -> Probe {
        Probe {
            stay_on_link: true,
            ..self
        }
    }

    fn notice(&mut self, n: Notice) {
        if let Some(tx) = &self.notice_tx {
            let _ = tx.send(n.clone());
        }
        self.log.lock().unwrap().push(Event::Notice(n));
    }
}

impl Actor for Probe {
    type Msg = ProbeMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ProbeMsg) {
        let event = match msg {
            ProbeMsg::Inc => return self.count += 1,
            ProbeMsg::Count(r) => return r.resolve(ctx, self.count),
            ProbeMsg::Notices(r) => return r.resolve(ctx, self.notices.clone()),
            ProbeMsg::Link(p) => return ctx.link(p),
            ProbeMsg::Unlink(p) => return ctx.unlink(p),
            ProbeMsg::Monitor(p, r) => return ctx.monitor(p, r),
            ProbeMsg::Demonitor(p, r) => return ctx.demonitor(p, r),
            ProbeMsg::Stop => return ctx.stop(),
            ProbeMsg::Panic(m) => panic!("{m}"),
            ProbeMsg::Run(job) => return job(self, ctx),
            ProbeMsg::Socket(e) => Event::Socket(e),
            ProbeMsg::Listener(e) => Event::Listener(e),
            ProbeMsg::Flushed(tag, r) => Event::Flushed(tag, r),
        };
        self.log.lock().unwrap().push(event);
    }

    fn link_exit(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        reason: &ExitReason,
    ) -> LinkAction {
        self.notices.links.push((peer, reason.clone()));
        self.notice(Notice::Link {
            me: ctx.id(),
            peer,
            reason: reason.clone(),
        });
        if self.stay_on_link {
            LinkAction::Stay
        } else {
            LinkAction::Exit
        }
    }

    fn down(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        reference: MonitorRef,
        reason: &ExitReason,
    ) {
        self.notices.downs.push((peer, reference, reason.clone()));
        self.notice(Notice::Down {
            me: ctx.id(),
            peer,
            reference,
            reason: reason.clone(),
        });
    }

    fn stopped(&mut self, ctx: &mut Ctx<'_, Self>, reason: &ExitReason) {
        self.notice(Notice::Stopped {
            me: ctx.id(),
            reason: reason.clone(),
        });
    }
}

/// The test thread's side of a probe: its address and its log.
#[derive(Debug)]
pub struct ProbeHandle {
    /// The reactor it runs on.
    pub handle: ReactorHandle,
    /// The probe.
    pub addr: Addr<Probe>,
    log: Arc<Mutex<Vec<Event>>>,
}

impl ProbeHandle {
    /// Spawns a probe that stays alive on link notices (it controls sockets
    /// that end while the test goes on).
    pub fn spawn(handle: &ReactorHandle) -> ProbeHandle {
        ProbeHandle::spawn_with(handle, || Probe {
            stay_on_link: true,
            ..Probe::new()
        })
    }

    /// Spawns the probe `make` builds.
    pub fn spawn_with(
        handle: &ReactorHandle,
        make: impl FnOnce() -> Probe + Send + 'static,
    ) -> ProbeHandle {
        let (tx, rx) = channel();
        let addr = handle
            .spawn(move || {
                let probe = make();
                let _ = tx.send(probe.log.clone());
                probe
            })
            .expect("spawn probe");
        let log = rx.recv_timeout(WAIT).expect("probe log");
        ProbeHandle {
            handle: handle.clone(),
            addr,
            log,
        }
    }

    /// Runs `f` inside the probe (with its context) and returns its result.
    pub fn with<R: Send + 'static>(
        &self,
        f: impl for<'a, 'b> FnOnce(&'a mut Ctx<'b, Probe>) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = channel();
        let job: Job = Box::new(move |_, ctx| {
            let _ = tx.send(f(ctx));
        });
        assert!(self.handle.send(self.addr, ProbeMsg::Run(job)));
        rx.recv_timeout(WAIT)
            .expect("the probe did not run the job")
    }

    /// Applies `f` to the log.
    pub fn peek<R>(&self, f: impl FnOnce(&[Event]) -> R) -> R {
        f(&self.log.lock().unwrap())
    }

    /// Waits until `f` (over the log) returns `Some`.
    pub fn wait_for<R>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[Event]) -> Option<R>,
    ) -> R {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.peek(&mut f) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Data units received so far (from any socket), in order; errors as
    /// their text.
    pub fn units(&self) -> Vec<Result<Unit, String>> {
        self.peek(|log| {
            log.iter()
                .filter_map(|e| match e {
                    Event::Socket(SocketEvent::Data(_, r)) => {
                        Some(r.clone().map_err(|e| e.to_string()))
                    }
                    _ => None,
                })
                .collect()
        })
    }

    /// How many data units arrived.
    pub fn data_count(&self) -> usize {
        self.units().len()
    }

    /// Bytes of the data units that arrived.
    pub fn data_bytes(&self) -> usize {
        self.units()
            .iter()
            .map(|u| u.as_ref().map_or(0, |u| u.len()))
            .sum()
    }

    /// Waits until at least `n` data units arrived.
    pub fn wait_data_count(&self, n: usize) {
        self.wait_for(&format!("{n} data units"), WAIT, |log| {
            let c = log
                .iter()
                .filter(|e| matches!(e, Event::Socket(SocketEvent::Data(..))))
                .count();
            (c >= n).then_some(())
        });
    }

    /// Waits for the first `Closed` event and returns its reason.
    pub fn wait_closed(&self) -> CloseReason {
        self.wait_for("Closed", WAIT, |log| {
            log.iter().find_map(|e| match e {
                Event::Socket(SocketEvent::Closed(_, r)) => Some(r.clone()),
                _ => None,
            })
        })
    }

    /// Sockets accepted so far, in order.
    pub fn accepted(&self) -> Vec<Addr<Socket>> {
        self.peek(|log| {
            log.iter()
                .filter_map(|e| match e {
                    Event::Listener(ListenerEvent::Accepted(_, s, _)) => Some(*s),
                    _ => None,
                })
                .collect()
        })
    }

    /// A barrier through `sock`'s mailbox: a send promise is handled after
    /// every message the probe sent it before, and resolves at once when
    /// nothing is queued.
    pub fn sync(&self, sock: Addr<Socket>) {
        static NEXT: AtomicU32 = AtomicU32::new(1_000_000);
        let tag = NEXT.fetch_add(1, Ordering::Relaxed);
        self.with(move |ctx| sock.flushed(ctx, move |r| ProbeMsg::Flushed(tag, r)));
        self.wait_for("sync", WAIT, |log| {
            log.iter().find_map(|e| match e {
                Event::Flushed(t, r) if *t == tag => Some(r.clone()),
                _ => None,
            })
        })
        .expect("sync promise rejected");
    }
}
