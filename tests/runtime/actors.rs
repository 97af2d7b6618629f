//! Behaviour of the actor runtime: generations, links, monitors, panics,
//! requests, timers, fairness, shutdown and counters.
//!
//! Every wait is bounded: threads wait on channels or pending replies with a
//! timeout, and every reactor is shut down and joined with a deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_actors::{
    Actor, ActorId, Addr, Config, Ctx, ExitReason, Reactor, ReactorHandle, Reply, RequestError,
};
use credit_testkit::{
    join_bounded, recv, Downs, Notice, Notices, Probe, ProbeMsg, TestReactor, WAIT,
};

// ----- helpers ---------------------------------------------------------------

fn linked(origin: ActorId, reason: ExitReason) -> ExitReason {
    ExitReason::Linked {
        origin,
        reason: Arc::new(reason),
    }
}

fn spawn(handle: &ReactorHandle, make: impl FnOnce() -> Probe + Send + 'static) -> Addr<Probe> {
    handle.spawn(make).expect("spawn")
}

fn count(handle: &ReactorHandle, a: Addr<Probe>) -> Result<u64, RequestError> {
    handle.request_wait(a, ProbeMsg::Count, WAIT)
}

fn notices(handle: &ReactorHandle, a: Addr<Probe>) -> Notices {
    handle
        .request_wait(a, ProbeMsg::Notices, WAIT)
        .expect("notices")
}

/// Makes `a` process everything queued to it so far (a round trip).
fn sync(handle: &ReactorHandle, a: Addr<Probe>) {
    count(handle, a).expect("sync");
}

// ----- generations -------------------------------------------------------------

#[test]
fn send_to_stale_handle_never_reaches_the_slots_next_tenant() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let a = spawn(&handle, Probe::new);
    assert!(handle.kill(a.id()));
    assert!(!handle.is_alive(a.id()));

    // Same type, so only the generation can tell the two apart.
    let b = spawn(&handle, Probe::new);
    assert_eq!(b.id().index(), a.id().index(), "slot should be reused");
    assert_ne!(b.id().generation(), a.id().generation());
    assert_ne!(b.id(), a.id());

    let before = handle.stats().unwrap().dead_sends;
    let delivered = handle
        .call(move |core| core.send(a, ProbeMsg::Inc), WAIT)
        .unwrap();
    assert!(!delivered, "send on the old handle must return false");

    // The same through an actor's Ctx.
    let (tx, rx) = channel();
    handle.send(
        b,
        ProbeMsg::Run(Box::new(move |_, ctx| {
            tx.send(ctx.send(a, ProbeMsg::Inc)).unwrap();
        })),
    );
    assert!(!recv(&rx), "ctx.send on the old handle must return false");
    // And through the handle (posted, then dropped on the reactor).
    handle.send(a, ProbeMsg::Inc);

    assert_eq!(count(&handle, b), Ok(0), "B must not see A's messages");
    assert_eq!(handle.stats().unwrap().dead_sends, before + 3);
    assert!(!handle.is_alive(a.id()));
    assert!(handle.is_alive(b.id()));
    drop(handle);
    reactor.finish();
}

// ----- links ---------------------------------------------------------------------

#[test]
fn link_chain_exit_reason_keeps_the_origin() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let a = spawn(&handle, Probe::new);
    let b = spawn(&handle, Probe::new);
    let c = spawn(&handle, Probe::new);
    handle.send(b, ProbeMsg::Link(a.id()));
    handle.send(b, ProbeMsg::Link(c.id()));
    sync(&handle, b);
    let mut rx = Downs::observe(&handle, &[(a.id(), 1), (b.id(), 2), (c.id(), 3)]);

    handle.kill(a.id());

    assert_eq!(rx.of(a.id()), (1, ExitReason::Killed));
    // B and C may be reported in either order; collect both.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(rx.next_notice());
    }
    seen.sort_by_key(|d| d.1);
    assert_eq!(seen[0], (b.id(), 2, linked(a.id(), ExitReason::Killed)));
    assert_eq!(
        seen[1],
        (c.id(), 3, linked(a.id(), ExitReason::Killed)),
        "C's reason must name A, the origin of the chain, not B"
    );
    assert_eq!(seen[1].2.root(), &ExitReason::Killed);
    assert_eq!(handle.stats().unwrap().live_actors, 1); // the observer
    drop(handle);
    reactor.finish();
}

#[test]
fn actor_handling_link_notices_survives_peer_exit_and_still_answers() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let (tx, rx) = channel();
    let s = spawn(&handle, move || Probe::reporting(tx).staying());
    let p = spawn(&handle, Probe::new);
    let q = spawn(&handle, Probe::new);
    handle.send(s, ProbeMsg::Link(p.id()));
    handle.send(s, ProbeMsg::Link(q.id()));
    sync(&handle, s);

    handle.kill(p.id());
    handle.send(q, ProbeMsg::Stop);
    let mut got = vec![recv(&rx), recv(&rx)];
    got.sort_by_key(|e| match e {
        Notice::Link { peer, .. } => *peer,
        _ => panic!("unexpected event {e:?}"),
    });
    let mut want = vec![
        Notice::Link {
            me: s.id(),
            peer: p.id(),
            reason: ExitReason::Killed,
        },
        Notice::Link {
            me: s.id(),
            peer: q.id(),
            reason: ExitReason::Normal,
        },
    ];
    want.sort_by_key(|e| match e {
        Notice::Link { peer, .. } => *peer,
        _ => unreachable!(),
    });
    assert_eq!(got, want);

    assert!(handle.is_alive(s.id()));
    handle.send(s, ProbeMsg::Inc);
    assert_eq!(count(&handle, s), Ok(1));
    assert_eq!(notices(&handle, s).links.len(), 2);
    drop(handle);
    reactor.finish();
}

#[test]
fn links_fire_on_normal_exit_too() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let a = spawn(&handle, Probe::new);
    let b = spawn(&handle, Probe::new);
    handle.send(b, ProbeMsg::Link(a.id()));
    sync(&handle, b);
    let mut rx = Downs::observe(&handle, &[(a.id(), 1), (b.id(), 2)]);

    handle.send(a, ProbeMsg::Stop);
    assert_eq!(rx.of(a.id()), (1, ExitReason::Normal));
    assert_eq!(rx.of(b.id()), (2, linked(a.id(), ExitReason::Normal)));
    assert!(!handle.is_alive(b.id()));
    drop(handle);
    reactor.finish();
}

// ----- monitors --------------------------------------------------------------------

#[test]
fn monitor_sees_normal_exit_with_its_reference_and_never_kills_the_watcher() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let (tx, rx) = channel();
    let w = spawn(&handle, move || Probe::reporting(tx));
    let t1 = spawn(&handle, Probe::new);
    let t2 = spawn(&handle, Probe::new);
    handle.send(w, ProbeMsg::Monitor(t1.id(), 42));
    handle.send(w, ProbeMsg::Monitor(t2.id(), 43));
    sync(&handle, w);

    handle.send(t1, ProbeMsg::Stop);
    assert_eq!(
        recv(&rx),
        Notice::Down {
            me: w.id(),
            peer: t1.id(),
            reference: 42,
            reason: ExitReason::Normal
        }
    );
    handle.kill(t2.id());
    assert_eq!(
        recv(&rx),
        Notice::Down {
            me: w.id(),
            peer: t2.id(),
            reference: 43,
            reason: ExitReason::Killed
        }
    );

    // The watcher is alive and well.
    assert!(handle.is_alive(w.id()));
    handle.send(w, ProbeMsg::Inc);
    assert_eq!(count(&handle, w), Ok(1));
    drop(handle);
    reactor.finish();
}

#[test]
fn demonitor_and_unlink_are_idempotent_and_silence_notices() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let w = spawn(&handle, Probe::new); // default: a link notice would kill it
    let t = spawn(&handle, Probe::new);
    handle.send(w, ProbeMsg::Monitor(t.id(), 1));
    handle.send(w, ProbeMsg::Link(t.id()));
    sync(&handle, w);
    handle.send(w, ProbeMsg::Demonitor(t.id(), 1));
    handle.send(w, ProbeMsg::Demonitor(t.id(), 1));
    handle.send(w, ProbeMsg::Unlink(t.id()));
    handle.send(w, ProbeMsg::Unlink(t.id()));
    // Removing what never existed is fine too.
    handle.send(w, ProbeMsg::Demonitor(t.id(), 999));
    sync(&handle, w);
    let mut rx = Downs::observe(&handle, &[(t.id(), 7)]);

    handle.send(t, ProbeMsg::Stop);
    assert_eq!(rx.of(t.id()), (7, ExitReason::Normal));
    // Any notice for W was queued before this request.
    assert_eq!(notices(&handle, w), Notices::default());
    assert!(handle.is_alive(w.id()));
    drop(handle);
    reactor.finish();
}

#[test]
fn monitoring_or_linking_a_dead_actor_notifies_at_once() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let dead = spawn(&handle, Probe::new);
    handle.kill(dead.id());
    assert!(!handle.is_alive(dead.id()));

    let (tx, rx) = channel();
    let w = spawn(&handle, move || Probe::reporting(tx).staying());
    handle.send(w, ProbeMsg::Monitor(dead.id(), 5));
    assert_eq!(
        recv(&rx),
        Notice::Down {
            me: w.id(),
            peer: dead.id(),
            reference: 5,
            reason: ExitReason::NoSuchActor
        }
    );
    handle.send(w, ProbeMsg::Link(dead.id()));
    assert_eq!(
        recv(&rx),
        Notice::Link {
            me: w.id(),
            peer: dead.id(),
            reason: ExitReason::NoSuchActor
        }
    );

    // An actor that does not handle link notices dies of it.
    let l = spawn(&handle, Probe::new);
    let mut orx = Downs::observe(&handle, &[(l.id(), 9)]);
    handle.send(l, ProbeMsg::Link(dead.id()));
    assert_eq!(
        orx.of(l.id()),
        (9, linked(dead.id(), ExitReason::NoSuchActor))
    );
    drop(handle);
    reactor.finish();
}

// ----- panics ------------------------------------------------------------------------

#[test]
fn panic_fails_only_that_actor_and_fires_its_monitors() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let p = spawn(&handle, Probe::new);
    let s1 = spawn(&handle, Probe::new);
    let s2 = spawn(&handle, Probe::new);
    let mut rx = Downs::observe(&handle, &[(p.id(), 3)]);

    handle.send(s1, ProbeMsg::Inc);
    handle.send(p, ProbeMsg::Inc);
    handle.send(p, ProbeMsg::Panic(format!("deliberate panic #{}", 17)));
    handle.send(p, ProbeMsg::Inc); // queued behind the panic, never handled
    handle.send(s2, ProbeMsg::Inc);

    assert_eq!(
        rx.of(p.id()),
        (3, ExitReason::Failed(Arc::from("deliberate panic #17")))
    );
    assert!(!handle.is_alive(p.id()));
    assert_eq!(count(&handle, s1), Ok(1));
    assert_eq!(count(&handle, s2), Ok(1));
    assert_eq!(count(&handle, p), Err(RequestError::DeadActor(p.id())));

    // The reactor keeps running: spawn and talk to a newcomer.
    let n = spawn(&handle, Probe::new);
    handle.send(n, ProbeMsg::Inc);
    assert_eq!(count(&handle, n), Ok(1));
    drop(handle);
    reactor.finish();
}

// ----- requests -----------------------------------------------------------------------

/// Holds three requests, then answers them in reverse order.
struct Hoarder {
    held: Vec<(u64, Reply<u64>)>,
    answered: Arc<Mutex<Vec<u64>>>,
}

enum HMsg {
    Ask(u64, Reply<u64>),
}

impl Actor for Hoarder {
    type Msg = HMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: HMsg) {
        let HMsg::Ask(tag, reply) = msg;
        self.held.push((tag, reply));
        if self.held.len() == 3 {
            while let Some((tag, reply)) = self.held.pop() {
                self.answered.lock().unwrap().push(tag);
                reply.resolve(ctx, tag * 100 + 7);
            }
        }
    }
}

/// Asks the hoarder once, on start, and reports what it got.
struct Asker {
    tag: u64,
    callee: Addr<Hoarder>,
    out: Sender<(u64, Result<u64, RequestError>)>,
}

enum AskerMsg {
    Got(Result<u64, RequestError>),
}

impl Actor for Asker {
    type Msg = AskerMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let tag = self.tag;
        ctx.request(self.callee, move |r| HMsg::Ask(tag, r), AskerMsg::Got);
    }
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, msg: AskerMsg) {
        let AskerMsg::Got(r) = msg;
        self.out.send((self.tag, r)).unwrap();
    }
}

#[test]
fn detached_replies_answered_out_of_order_reach_their_actor_callers() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let answered = Arc::new(Mutex::new(Vec::new()));
    let ans = answered.clone();
    let h = handle
        .spawn(move || Hoarder {
            held: Vec::new(),
            answered: ans,
        })
        .unwrap();
    let (tx, rx) = channel();
    for tag in 1..=3 {
        let out = tx.clone();
        handle
            .spawn(move || Asker {
                tag,
                callee: h,
                out,
            })
            .unwrap();
    }
    let mut got: Vec<_> = (0..3).map(|_| recv(&rx)).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, vec![(1, Ok(107)), (2, Ok(207)), (3, Ok(307))]);
    assert_eq!(*answered.lock().unwrap(), vec![3, 2, 1]);
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "one answer each"
    );
    assert_eq!(handle.call(|core| core.pending_requests(), WAIT), Ok(0));
    drop(handle);
    reactor.finish();
}

#[test]
fn detached_replies_answered_out_of_order_reach_their_thread_callers() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let answered = Arc::new(Mutex::new(Vec::new()));
    let ans = answered.clone();
    let h = handle
        .spawn(move || Hoarder {
            held: Vec::new(),
            answered: ans,
        })
        .unwrap();
    let threads: Vec<_> = (1..=3u64)
        .map(|tag| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let r = handle
                    .request(h, move |r| HMsg::Ask(tag, r))
                    .wait_timeout(WAIT);
                (tag, r)
            })
        })
        .collect();
    let mut got: Vec<_> = threads.into_iter().map(join_bounded).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, vec![(1, Ok(107)), (2, Ok(207)), (3, Ok(307))]);
    let order = answered.lock().unwrap().clone();
    assert_eq!(order.len(), 3);
    drop(handle);
    reactor.finish();
}

/// Keeps every request it gets, unanswered, until told to answer or drop.
struct Silent {
    held: Vec<Reply<u64>>,
}

enum SMsg {
    Hold(Reply<u64>),
    AnswerAll(Reply<usize>),
    DropAll,
    DropAtOnce(Reply<u64>),
}

impl Actor for Silent {
    type Msg = SMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: SMsg) {
        match msg {
            SMsg::Hold(r) => self.held.push(r),
            SMsg::AnswerAll(done) => {
                // The i-th held reply gets i + 1.
                let n = self.held.len();
                for (i, r) in self.held.drain(..).enumerate() {
                    r.resolve(ctx, i as u64 + 1);
                }
                done.resolve(ctx, n);
            }
            SMsg::DropAll => self.held.clear(),
            SMsg::DropAtOnce(r) => drop(r),
        }
    }
}

/// Makes requests on command and records every outcome.
struct Caller {
    results: Vec<Result<u64, RequestError>>,
    out: Sender<Result<u64, RequestError>>,
}

enum CMsg {
    Ask {
        to: Addr<Silent>,
        timeout: Option<Duration>,
        drop_at_once: bool,
    },
    AskProbe(Addr<Probe>, Option<Duration>),
    Got(Result<u64, RequestError>),
    Results(Reply<Vec<Result<u64, RequestError>>>),
}

impl Actor for Caller {
    type Msg = CMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: CMsg) {
        match msg {
            CMsg::Ask {
                to,
                timeout,
                drop_at_once,
            } => {
                let make = move |r| {
                    if drop_at_once {
                        SMsg::DropAtOnce(r)
                    } else {
                        SMsg::Hold(r)
                    }
                };
                match timeout {
                    Some(t) => ctx.request_timeout(to, make, CMsg::Got, t),
                    None => ctx.request(to, make, CMsg::Got),
                }
            }
            CMsg::AskProbe(to, None) => ctx.request(to, ProbeMsg::Count, CMsg::Got),
            CMsg::AskProbe(to, Some(t)) => ctx.request_timeout(to, ProbeMsg::Count, CMsg::Got, t),
            CMsg::Got(r) => {
                self.results.push(r.clone());
                self.out.send(r).unwrap();
            }
            CMsg::Results(r) => r.resolve(ctx, self.results.clone()),
        }
    }
}

fn caller(handle: &ReactorHandle) -> (Addr<Caller>, Receiver<Result<u64, RequestError>>) {
    let (tx, rx) = channel();
    let c = handle
        .spawn(move || Caller {
            results: Vec::new(),
            out: tx,
        })
        .unwrap();
    (c, rx)
}

#[test]
fn request_timeout_rejects_and_late_answer_is_dropped_quietly() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let s = handle.spawn(|| Silent { held: Vec::new() }).unwrap();
    let (c, rx) = caller(&handle);
    let t0 = Instant::now();
    handle.send(
        c,
        CMsg::Ask {
            to: s,
            timeout: Some(Duration::from_millis(30)),
            drop_at_once: false,
        },
    );
    assert_eq!(recv(&rx), Err(RequestError::Timeout));
    assert!(
        t0.elapsed() >= Duration::from_millis(30),
        "timed out too early"
    );

    // A second request, which reuses the first one's table slot.
    handle.send(
        c,
        CMsg::Ask {
            to: s,
            timeout: None,
            drop_at_once: false,
        },
    );
    sync_silent(&handle, s);
    // The callee answers both: the late answer (1) is dropped, and must not
    // complete the second request in its place; the second gets 2.
    assert_eq!(handle.request_wait(s, SMsg::AnswerAll, WAIT), Ok(2));
    assert_eq!(recv(&rx), Ok(2));
    let results = handle.request_wait(c, CMsg::Results, WAIT).unwrap();
    assert_eq!(results, vec![Err(RequestError::Timeout), Ok(2)]);
    assert!(handle.is_alive(s.id()) && handle.is_alive(c.id()));
    assert_eq!(handle.call(|core| core.pending_requests(), WAIT), Ok(0));
    assert_eq!(handle.call(|core| core.pending_timers(), WAIT), Ok(0));
    drop(handle);
    reactor.finish();
}

#[test]
fn answered_request_with_timeout_never_times_out_later() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let p = spawn(&handle, Probe::new);
    let (c, rx) = caller(&handle);
    handle.send(c, CMsg::AskProbe(p, Some(Duration::from_millis(20))));
    assert_eq!(recv(&rx), Ok(0));
    // Well past the deadline: still just the one answer.
    assert!(rx.recv_timeout(Duration::from_millis(60)).is_err());
    assert_eq!(handle.call(|core| core.pending_timers(), WAIT), Ok(0));
    drop(handle);
    reactor.finish();
}

#[test]
fn request_to_dead_actor_is_rejected_with_dead_actor() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let d = spawn(&handle, Probe::new);
    handle.kill(d.id());
    assert!(!handle.is_alive(d.id()));

    // From an actor.
    let (c, rx) = caller(&handle);
    handle.send(c, CMsg::AskProbe(d, None));
    assert_eq!(recv(&rx), Err(RequestError::DeadActor(d.id())));
    // From a thread.
    assert_eq!(
        handle.request(d, ProbeMsg::Count).wait_timeout(WAIT),
        Err(RequestError::DeadActor(d.id()))
    );
    assert_eq!(count(&handle, d), Err(RequestError::DeadActor(d.id())));
    drop(handle);
    reactor.finish();
}

#[test]
fn reply_slot_dropped_unanswered_rejects_with_dropped() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let s = handle.spawn(|| Silent { held: Vec::new() }).unwrap();
    let (c, rx) = caller(&handle);

    // Actor caller, slot dropped in the handler.
    handle.send(
        c,
        CMsg::Ask {
            to: s,
            timeout: None,
            drop_at_once: true,
        },
    );
    assert_eq!(recv(&rx), Err(RequestError::Dropped));

    // Actor caller, slot held then dropped later.
    handle.send(
        c,
        CMsg::Ask {
            to: s,
            timeout: None,
            drop_at_once: false,
        },
    );
    sync_silent(&handle, s);
    handle.send(s, SMsg::DropAll);
    assert_eq!(recv(&rx), Err(RequestError::Dropped));

    // Actor caller, callee killed while holding the slot.
    handle.send(
        c,
        CMsg::Ask {
            to: s,
            timeout: Some(WAIT),
            drop_at_once: false,
        },
    );
    sync_silent(&handle, s);
    handle.kill(s.id());
    assert_eq!(recv(&rx), Err(RequestError::Dropped));

    // Thread caller.
    let s2 = handle.spawn(|| Silent { held: Vec::new() }).unwrap();
    assert_eq!(
        handle.request(s2, SMsg::DropAtOnce).wait_timeout(WAIT),
        Err(RequestError::Dropped)
    );
    let pending = handle.request(s2, SMsg::Hold);
    sync_silent(&handle, s2);
    handle.kill(s2.id());
    assert_eq!(pending.wait_timeout(WAIT), Err(RequestError::Dropped));

    assert_eq!(handle.call(|core| core.pending_requests(), WAIT), Ok(0));
    assert_eq!(handle.call(|core| core.pending_timers(), WAIT), Ok(0));
    drop(handle);
    reactor.finish();
}

/// Makes `s` handle everything queued to it so far.
fn sync_silent(handle: &ReactorHandle, s: Addr<Silent>) {
    // A request the Silent drops at once: its rejection proves the Silent
    // handled everything queued before it.
    assert_eq!(
        handle.request(s, SMsg::DropAtOnce).wait_timeout(WAIT),
        Err(RequestError::Dropped)
    );
}

#[test]
fn cross_thread_request_blocks_and_gets_its_answer() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let p = spawn(&handle, Probe::new);
    for _ in 0..5 {
        handle.send(p, ProbeMsg::Inc);
    }
    assert_eq!(handle.request_wait(p, ProbeMsg::Count, WAIT), Ok(5));
    assert_eq!(handle.request(p, ProbeMsg::Count).wait(), Ok(5));
    assert_eq!(
        handle.call(move |core| core.is_alive(p.id()), WAIT),
        Ok(true)
    );
    drop(handle);
    reactor.finish();
}

#[test]
fn blocking_wait_on_reactor_thread_returns_would_block() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let p = spawn(&handle, Probe::new);
    let q = spawn(&handle, Probe::new);
    let (tx, rx) = channel();
    handle.send(
        p,
        ProbeMsg::Run(Box::new(move |_, ctx| {
            let h = ctx.handle();
            let t0 = Instant::now();
            let results = vec![
                h.request_wait(q, ProbeMsg::Count, WAIT),
                h.request(q, ProbeMsg::Count).wait_timeout(WAIT),
                h.request(q, ProbeMsg::Count).wait(),
                h.call(|_| 0u64, WAIT),
            ];
            tx.send((results, t0.elapsed())).unwrap();
        })),
    );
    let (results, took) = recv(&rx);
    for r in results {
        assert_eq!(r, Err(RequestError::WouldBlockReactor));
    }
    assert!(took < Duration::from_secs(1), "it blocked for {took:?}");
    // The reactor is still responsive.
    assert_eq!(count(&handle, p), Ok(0));
    drop(handle);
    reactor.finish();
}

// ----- timers ---------------------------------------------------------------------------

struct Clock {
    out: Sender<u64>,
}

enum ClockMsg {
    Arm(Sender<(bool, bool)>),
    Fired(u64),
}

impl Actor for Clock {
    type Msg = ClockMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ClockMsg) {
        match msg {
            ClockMsg::Arm(ack) => {
                let me = ctx.me();
                let ms = Duration::from_millis;
                ctx.send_after(me, ClockMsg::Fired(30), ms(30));
                ctx.send_after(me, ClockMsg::Fired(10), ms(10));
                let doomed = ctx.send_after(me, ClockMsg::Fired(15), ms(15));
                ctx.send_after(me, ClockMsg::Fired(20), ms(20));
                let first = ctx.cancel_timer(doomed);
                let second = ctx.cancel_timer(doomed);
                ack.send((first, second)).unwrap();
            }
            ClockMsg::Fired(n) => self.out.send(n).unwrap(),
        }
    }
}

#[test]
fn timers_fire_in_deadline_order_and_cancelled_timer_never_fires() {
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let (tx, rx) = channel();
    let c = handle.spawn(move || Clock { out: tx }).unwrap();
    let (ack_tx, ack_rx) = channel();
    let t0 = Instant::now();
    handle.send(c, ClockMsg::Arm(ack_tx));
    assert_eq!(
        recv(&ack_rx),
        (true, false),
        "cancel: first true, then false"
    );
    let fired: Vec<u64> = (0..3).map(|_| recv(&rx)).collect();
    assert_eq!(fired, vec![10, 20, 30]);
    assert!(t0.elapsed() >= Duration::from_millis(30));
    // The cancelled one (15 ms) was due before the 30 ms one: it never fires.
    assert!(rx.try_recv().is_err());
    assert_eq!(handle.call(|core| core.pending_timers(), WAIT), Ok(0));
    assert_eq!(handle.stats().unwrap().timers_fired, 3);
    drop(handle);
    reactor.finish();
}

// ----- fairness ---------------------------------------------------------------------------

struct Flooded {
    handled: Arc<AtomicU64>,
    done: Sender<()>,
    total: u64,
}

impl Actor for Flooded {
    type Msg = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _: ()) {
        let n = self.handled.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.total {
            self.done.send(()).unwrap();
        }
    }
}

struct Bystander {
    flood_handled: Arc<AtomicU64>,
    seen: Sender<u64>,
}

impl Actor for Bystander {
    type Msg = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _: ()) {
        self.seen
            .send(self.flood_handled.load(Ordering::Relaxed))
            .unwrap();
    }
}

#[test]
fn flooded_actor_does_not_starve_another() {
    const N: u64 = 100_000;
    let config = Config {
        budget: 8,
        ..Config::default()
    };
    let reactor = TestReactor::start_with(config);
    let handle = reactor.handle.clone();
    let handled = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = channel();
    let (seen_tx, seen_rx) = channel();
    let h1 = handled.clone();
    let f = handle
        .spawn(move || Flooded {
            handled: h1,
            done: done_tx,
            total: N,
        })
        .unwrap();
    let h2 = handled.clone();
    let g = handle
        .spawn(move || Bystander {
            flood_handled: h2,
            seen: seen_tx,
        })
        .unwrap();
    let before = handle.stats().unwrap();
    // One burst, in one reactor command: F's 100,000 first, then G's one.
    let queued = handle
        .call(
            move |core| {
                let mut ok = 0u64;
                for _ in 0..N {
                    ok += core.send(f, ()) as u64;
                }
                ok += core.send(g, ()) as u64;
                ok
            },
            WAIT,
        )
        .unwrap();
    assert_eq!(queued, N + 1);
    let g_saw = recv(&seen_rx);
    recv(&done_rx);
    assert_eq!(handled.load(Ordering::Relaxed), N);
    assert!(g_saw < N, "G ran only after F's whole flood ({g_saw})");
    assert!(
        g_saw <= config.budget as u64,
        "G waited for {g_saw} of F's messages, more than one budget"
    );
    let after = handle.stats().unwrap();
    assert!(after.forced_yields > before.forced_yields);
    assert!(after.forced_yields - before.forced_yields >= N / 8 - 1);
    assert_eq!(after.messages - before.messages, N + 1);
    drop(handle);
    reactor.finish();
}

// ----- run, shutdown ------------------------------------------------------------------------

#[test]
fn run_returns_once_no_actor_is_alive_and_no_handle_exists() {
    // No handle: returns when the last actor stops.
    let (tx, rx) = channel();
    let t = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let a = reactor.spawn(Probe::new());
        let b = reactor.spawn(Probe::new());
        reactor.send(a, ProbeMsg::Stop);
        reactor.send(b, ProbeMsg::Inc);
        reactor.send(b, ProbeMsg::Stop);
        let r = reactor.run();
        tx.send((r.is_ok(), reactor.stats())).unwrap();
    });
    let (ok, stats) = recv(&rx);
    assert!(ok);
    assert_eq!(stats.live_actors, 0);
    assert_eq!(stats.exited, 2);
    join_bounded(t);

    // With a handle: keeps running until the handle is dropped.
    let (htx, hrx) = channel();
    let (dtx, drx) = channel();
    let (etx, erx) = channel();
    let t = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let a = reactor.spawn(Probe::reporting(etx));
        reactor.send(a, ProbeMsg::Stop);
        htx.send(reactor.handle()).unwrap();
        let r = reactor.run();
        dtx.send(r.is_ok()).unwrap();
    });
    let handle = recv(&hrx);
    assert!(matches!(
        recv(&erx),
        Notice::Stopped {
            reason: ExitReason::Normal,
            ..
        }
    ));
    // The actor is gone, yet the reactor still serves the handle.
    let stats = handle.stats().expect("reactor should still run");
    assert_eq!(stats.live_actors, 0);
    assert!(drx.try_recv().is_err());
    drop(handle);
    assert!(recv(&drx));
    join_bounded(t);
}

#[test]
fn shutdown_terminates_live_actors_with_shutdown_reason() {
    let (handle, join) = Reactor::start(Config::default(), |_| {}).expect("start reactor");
    let (tx, rx) = channel();
    let addrs: Vec<Addr<Probe>> = (0..3)
        .map(|_| {
            let tx = tx.clone();
            spawn(&handle, move || Probe::reporting(tx))
        })
        .collect();
    drop(tx);
    let keep = handle.clone();
    assert!(handle.shutdown());
    drop(handle);
    // The reactor stops although a handle (`keep`) still exists.
    join_bounded(join).unwrap();
    let mut stopped: Vec<(ActorId, ExitReason)> = rx
        .iter()
        .map(|e| match e {
            Notice::Stopped { me, reason } => (me, reason),
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    stopped.sort_by_key(|s| s.0);
    let want: Vec<_> = addrs
        .iter()
        .map(|a| (a.id(), ExitReason::Shutdown))
        .collect();
    assert_eq!(stopped, want);
    // A stopped reactor refuses further work.
    assert!(!keep.send(addrs[0], ProbeMsg::Inc));
    assert_eq!(keep.stats(), Err(RequestError::ReactorGone));
    assert_eq!(
        keep.request(addrs[0], ProbeMsg::Count).wait_timeout(WAIT),
        Err(RequestError::ReactorGone)
    );
}

// ----- counters -------------------------------------------------------------------------------

enum CountMsg {
    One,
    Last(Reply<u64>),
}

struct Tally(u64);

impl Actor for Tally {
    type Msg = CountMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: CountMsg) {
        self.0 += 1;
        if let CountMsg::Last(r) = msg {
            r.resolve(ctx, self.0);
        }
    }
}

struct Pinger {
    peer: Option<Addr<Pinger>>,
    left: u64,
    done: Option<Reply<u64>>,
    handled: u64,
}

enum PingMsg {
    Go(Addr<Pinger>, u64, Reply<u64>),
    Ball(Addr<Pinger>),
}

impl Actor for Pinger {
    type Msg = PingMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: PingMsg) {
        self.handled += 1;
        match msg {
            PingMsg::Go(peer, n, done) => {
                self.peer = Some(peer);
                self.left = n;
                self.done = Some(done);
                let me = ctx.me();
                ctx.send(peer, PingMsg::Ball(me));
                self.left -= 1;
            }
            PingMsg::Ball(from) => {
                if self.done.is_some() && self.left == 0 {
                    let d = self.done.take().unwrap();
                    d.resolve(ctx, self.handled);
                } else {
                    if self.done.is_some() {
                        self.left -= 1;
                    }
                    let me = ctx.me();
                    ctx.send(from, PingMsg::Ball(me));
                }
            }
        }
    }
}

#[test]
fn stats_messages_counts_exactly_the_messages_sent() {
    const N: u64 = 1000;
    let reactor = TestReactor::start();
    let handle = reactor.handle.clone();
    let t = handle.spawn(|| Tally(0)).unwrap();
    let before = handle.stats().unwrap();
    for _ in 0..N - 1 {
        assert!(handle.send(t, CountMsg::One));
    }
    assert_eq!(handle.request_wait(t, CountMsg::Last, WAIT), Ok(N));
    let after = handle.stats().unwrap();
    assert_eq!(after.messages - before.messages, N, "one-way sends");
    assert_eq!(after.dead_sends, before.dead_sends);

    // Between actors: `Go` plus 2 * 500 balls.
    const R: u64 = 500;
    let a = handle
        .spawn(|| Pinger {
            peer: None,
            left: 0,
            done: None,
            handled: 0,
        })
        .unwrap();
    let b = handle
        .spawn(|| Pinger {
            peer: None,
            left: 0,
            done: None,
            handled: 0,
        })
        .unwrap();
    let before = handle.stats().unwrap();
    let handled_by_a = handle
        .request_wait(a, move |r| PingMsg::Go(b, R, r), WAIT)
        .unwrap();
    let after = handle.stats().unwrap();
    assert_eq!(
        handled_by_a,
        1 + R,
        "Go plus one returned ball per round trip"
    );
    assert_eq!(after.messages - before.messages, 1 + 2 * R);

    // Reactor-local: no commands, no handles.
    let (tx, rx) = channel();
    let th = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let t = reactor.spawn(Probe::new());
        for _ in 0..N - 1 {
            reactor.send(t, ProbeMsg::Inc);
        }
        reactor.send(t, ProbeMsg::Stop);
        reactor.run().unwrap();
        tx.send(reactor.stats()).unwrap();
    });
    let stats = recv(&rx);
    assert_eq!(stats.messages, N);
    join_bounded(th);
    drop(handle);
    reactor.finish();
}

#[test]
fn stats_messages_counts_envelopes_handled_before_a_panic() {
    // Three envelopes are handled in one run: Inc, Inc, then the panic.
    let (tx, rx) = channel();
    let th = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let p = reactor.spawn(Probe::new());
        reactor.send(p, ProbeMsg::Inc);
        reactor.send(p, ProbeMsg::Inc);
        reactor.send(p, ProbeMsg::Panic("counted panic".into()));
        reactor.run().unwrap();
        tx.send(reactor.stats()).unwrap();
    });
    let stats = recv(&rx);
    join_bounded(th);
    assert_eq!(stats.exited, 1);
    assert_eq!(
        stats.messages, 3,
        "envelopes handled in a run that ended in a panic are not counted"
    );
}
