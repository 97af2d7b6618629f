//! Groups of reactors: sends, links, monitors and requests between actors
//! of different reactors, and the lanes' back-pressure.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use credit_actors::{
    Actor, ActorId, Addr, Config, Ctx, ExitReason, LinkAction, MonitorRef, Reactors, Reply,
    RequestError, SendError,
};
use credit_testkit::Busy;

const WAIT: Duration = Duration::from_secs(10);

fn group(n: usize, peer_queue: usize) -> Reactors {
    Reactors::start(
        n,
        Config {
            peer_queue,
            ..Config::default()
        },
        |_| {},
    )
    .expect("start the group")
}

fn stop(reactors: Reactors) -> Vec<credit_actors::Metrics> {
    reactors.shutdown();
    reactors.join().expect("every reactor stops cleanly")
}

/// Records every number it gets, then reports them when told to.
struct Sink {
    got: Vec<(u32, u64)>,
    out: Sender<Vec<(u32, u64)>>,
    expect: usize,
}

enum SinkMsg {
    Item(u32, u64),
}

impl Actor for Sink {
    type Msg = SinkMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, SinkMsg::Item(from, n): SinkMsg) {
        self.got.push((from, n));
        if self.got.len() == self.expect {
            let _ = self.out.send(std::mem::take(&mut self.got));
            ctx.stop();
        }
    }
}

/// A sink on reactor `r` that reports once it has `expect` items.
fn sink_on(
    reactors: &Reactors,
    r: usize,
    expect: usize,
) -> (Addr<Sink>, Receiver<Vec<(u32, u64)>>) {
    let (tx, rx) = channel();
    let sink = reactors
        .handle(r)
        .spawn(move || Sink {
            got: Vec::new(),
            out: tx,
            expect,
        })
        .unwrap();
    (sink, rx)
}

/// Sends `count` numbered items to `to`, `per_run` per run.
struct Source {
    tag: u32,
    to: Addr<Sink>,
    next: u64,
    count: u64,
}

impl Actor for Source {
    type Msg = ();
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.send(ctx.me(), ());
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, (): ()) {
        for _ in 0..100 {
            if self.next == self.count {
                ctx.stop();
                return;
            }
            ctx.send(self.to, SinkMsg::Item(self.tag, self.next));
            self.next += 1;
        }
        ctx.send(ctx.me(), ());
    }
}

#[test]
fn sends_across_reactors_arrive_in_send_order_per_sender() {
    // A lane of 64 is far smaller than what is sent: most of it waits on
    // the sending side, and must still arrive, in order.
    let reactors = group(3, 64);
    let (sink, rx) = sink_on(&reactors, 2, 20_000);
    assert_eq!(sink.id().reactor(), 2, "spawned where asked");
    for (r, tag) in [(0, 0u32), (1, 1)] {
        reactors
            .handle(r)
            .spawn(move || Source {
                tag,
                to: sink,
                next: 0,
                count: 10_000,
            })
            .unwrap();
    }
    let got = rx.recv_timeout(WAIT).expect("every item arrives");
    for tag in [0, 1] {
        let seq: Vec<u64> = got
            .iter()
            .filter(|(t, _)| *t == tag)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(seq, (0..10_000).collect::<Vec<_>>(), "sender {tag}");
    }
    let m = stop(reactors);
    assert!(m[0].stats.peer_sends >= 10_000, "{:?}", m[0].stats);
    assert!(m[2].stats.peer_received >= 20_000, "{:?}", m[2].stats);
}

/// Tries to send `count` items to a sink on another reactor with
/// `try_send`, keeping what comes back and retrying when told of room.
struct Careful {
    to: Addr<Sink>,
    next: u64,
    count: u64,
    refused: u64,
    report: Sender<u64>,
}

enum CarefulMsg {
    Go,
}

impl Actor for Careful {
    type Msg = CarefulMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.send(ctx.me(), CarefulMsg::Go);
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, CarefulMsg::Go: CarefulMsg) {
        while self.next < self.count {
            match ctx.try_send(self.to, SinkMsg::Item(0, self.next)) {
                Ok(()) => self.next += 1,
                Err(SendError::Full(SinkMsg::Item(_, n))) => {
                    assert_eq!(n, self.next, "the refused message comes back");
                    self.refused += 1;
                    ctx.when_room(self.to.id().reactor(), CarefulMsg::Go);
                    return;
                }
                Err(SendError::Dead) => panic!("the sink is alive"),
            }
        }
        let _ = self.report.send(self.refused);
        ctx.stop();
    }
}

#[test]
fn a_full_lane_hands_the_message_back_and_says_when_there_is_room() {
    let reactors = group(2, 16);
    let (sink, rx) = sink_on(&reactors, 1, 5_000);
    let (rtx, rrx) = channel();
    reactors
        .handle(0)
        .spawn(move || Careful {
            to: sink,
            next: 0,
            count: 5_000,
            refused: 0,
            report: rtx,
        })
        .unwrap();
    let got = rx.recv_timeout(WAIT).expect("everything arrives");
    let refused = rrx.recv_timeout(WAIT).unwrap();
    let seq: Vec<u64> = got.iter().map(|(_, n)| *n).collect();
    assert_eq!(seq, (0..5_000).collect::<Vec<_>>(), "no loss, in order");
    // 5,000 items through a lane of 16 within one run each: the lane was
    // full at least once per 16 items the receiver drained late.
    assert!(refused > 0, "the lane never filled");
    let m = stop(reactors);
    assert_eq!(m[0].stats.peer_full, refused);
}

/// Reports its notices.
struct Watcher {
    out: Sender<String>,
}

enum WatcherMsg {
    Monitor(ActorId, MonitorRef),
    Demonitor(ActorId, MonitorRef),
    Link(ActorId),
}

impl Actor for Watcher {
    type Msg = WatcherMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: WatcherMsg) {
        match msg {
            WatcherMsg::Monitor(peer, r) => ctx.monitor(peer, r),
            WatcherMsg::Demonitor(peer, r) => ctx.demonitor(peer, r),
            WatcherMsg::Link(peer) => ctx.link(peer),
        }
    }
    fn down(&mut self, _ctx: &mut Ctx<'_, Self>, peer: ActorId, r: MonitorRef, why: &ExitReason) {
        let _ = self.out.send(format!("down {peer} {r} {why}"));
    }
    fn link_exit(&mut self, _: &mut Ctx<'_, Self>, peer: ActorId, why: &ExitReason) -> LinkAction {
        let _ = self.out.send(format!("link {peer} {why}"));
        LinkAction::Stay
    }
}

/// Does nothing until it is killed.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    fn handle(&mut self, _: &mut Ctx<'_, Self>, (): ()) {}
}

fn drain(rx: &Receiver<String>, settle: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(s) = rx.recv_timeout(settle) {
        out.push(s);
    }
    out
}

#[test]
fn monitors_across_reactors_fire_once_and_never_after_demonitor() {
    let reactors = group(2, 4096);
    let (tx, rx) = channel();
    let w = reactors
        .handle(0)
        .spawn(move || Watcher { out: tx })
        .unwrap();
    let h1 = reactors.handle(1);
    let (a, b, c) = (
        h1.spawn(|| Idle).unwrap(),
        h1.spawn(|| Idle).unwrap(),
        h1.spawn(|| Idle).unwrap(),
    );
    let h0 = reactors.handle(0);
    h0.send(w, WatcherMsg::Monitor(a.id(), 1));
    h0.send(w, WatcherMsg::Monitor(a.id(), 2));
    h0.send(w, WatcherMsg::Monitor(b.id(), 3));
    h0.send(w, WatcherMsg::Demonitor(b.id(), 3));
    h0.send(w, WatcherMsg::Monitor(c.id(), 4));
    // Both monitors of `a` are set once `c`'s monitor is: a request to
    // reactor 1 that waits behind them.
    assert!(h1.is_alive(c.id()));
    std::thread::sleep(Duration::from_millis(50));
    h1.kill(a.id());
    h1.kill(b.id());
    h1.terminate(c.id(), ExitReason::value("done"));
    let mut got = drain(&rx, Duration::from_millis(300));
    got.sort();
    assert_eq!(
        got,
        vec![
            format!("down {a} 1 killed"),
            format!("down {a} 2 killed"),
            format!("down {c} 4 exit: done"),
        ],
        "one notice per monitor, none for the removed one"
    );
    // A monitor of an actor already dead fires at once, with NoSuchActor.
    h0.send(w, WatcherMsg::Monitor(a.id(), 5));
    let got = drain(&rx, Duration::from_millis(300));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with(&format!("down {a} 5")), "{got:?}");
    stop(reactors);
}

#[test]
fn links_across_reactors_fire_both_ways_and_tolerate_notices_in_flight() {
    let reactors = group(2, 4096);
    let (tx0, rx0) = channel();
    let (tx1, rx1) = channel();
    let (h0, h1) = (reactors.handle(0), reactors.handle(1));
    let w0 = h0.spawn(move || Watcher { out: tx0 }).unwrap();
    let w1 = h1.spawn(move || Watcher { out: tx1 }).unwrap();
    let x = h1.spawn(|| Idle).unwrap();
    // w0 links x (reactor 1); killing x tells w0.
    h0.send(w0, WatcherMsg::Link(x.id()));
    assert!(h1.is_alive(x.id()));
    std::thread::sleep(Duration::from_millis(50));
    h1.kill(x.id());
    assert_eq!(
        drain(&rx0, Duration::from_millis(300)),
        vec![format!("link {x} killed")]
    );
    // w1 links w0, then w0 and w1 die at once: each one's notice is in
    // flight to a dead actor, which drops it; nothing fires twice, and
    // nothing reaches the slots' next tenants.
    h1.send(w1, WatcherMsg::Link(w0.id()));
    std::thread::sleep(Duration::from_millis(50));
    h0.kill(w0.id());
    h1.kill(w1.id());
    std::thread::sleep(Duration::from_millis(200));
    let late0 = drain(&rx0, Duration::from_millis(100));
    let late1 = drain(&rx1, Duration::from_millis(100));
    assert!(late0.len() + late1.len() <= 1, "{late0:?} {late1:?}");
    // Linking a dead actor across reactors: NoSuchActor, once.
    let (tx2, rx2) = channel();
    let w2 = h0.spawn(move || Watcher { out: tx2 }).unwrap();
    h0.send(w2, WatcherMsg::Link(x.id()));
    assert_eq!(
        drain(&rx2, Duration::from_millis(300)),
        vec![format!("link {x} {}", ExitReason::NoSuchActor)]
    );
    let m = stop(reactors);
    assert!(
        m.iter().all(|m| m.stats.live_actors == 0),
        "shutdown ends everything"
    );
}

/// Answers `Ask` at once, holds `Hold` for ever, drops `Drop`.
struct Callee {
    held: Vec<Reply<u64>>,
}

enum CalleeMsg {
    Ask(u64, Reply<u64>),
    Hold(Reply<u64>),
    Drop(Reply<u64>),
}

impl Actor for Callee {
    type Msg = CalleeMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: CalleeMsg) {
        match msg {
            CalleeMsg::Ask(n, r) => r.resolve(ctx, n * 2),
            CalleeMsg::Hold(r) => self.held.push(r),
            CalleeMsg::Drop(r) => drop(r),
        }
    }
}

/// Makes the four kinds of request to a callee on another reactor.
struct Caller {
    callee: Addr<Callee>,
    dead: Addr<Callee>,
    out: Sender<String>,
}

enum CallerMsg {
    Got(&'static str, Result<u64, RequestError>),
}

impl Actor for Caller {
    type Msg = CallerMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let t = Duration::from_millis(200);
        ctx.request_timeout(
            self.callee,
            |r| CalleeMsg::Ask(21, r),
            |res| CallerMsg::Got("ask", res),
            t,
        );
        ctx.request_timeout(
            self.callee,
            CalleeMsg::Hold,
            |res| CallerMsg::Got("hold", res),
            t,
        );
        ctx.request(self.callee, CalleeMsg::Drop, |res| {
            CallerMsg::Got("drop", res)
        });
        ctx.request(self.dead, CalleeMsg::Hold, |res| {
            CallerMsg::Got("dead", res)
        });
    }
    fn handle(&mut self, _: &mut Ctx<'_, Self>, CallerMsg::Got(what, res): CallerMsg) {
        let _ = self.out.send(format!("{what} {res:?}"));
    }
}

#[test]
fn requests_across_reactors_answer_time_out_and_reject_as_on_one() {
    let reactors = group(2, 4096);
    let h1 = reactors.handle(1);
    let callee = h1.spawn(|| Callee { held: Vec::new() }).unwrap();
    let dead = h1.spawn(|| Callee { held: Vec::new() }).unwrap();
    h1.kill(dead.id());
    assert!(!h1.is_alive(dead.id()));
    let (tx, rx) = channel();
    reactors
        .handle(0)
        .spawn(move || Caller {
            callee,
            dead,
            out: tx,
        })
        .unwrap();
    let mut got = drain(&rx, Duration::from_millis(600));
    got.sort();
    assert_eq!(
        got,
        vec![
            "ask Ok(42)".to_string(),
            format!("dead Err(DeadActor({dead}))"),
            "drop Err(Dropped)".to_string(),
            "hold Err(Timeout)".to_string(),
        ]
    );
    stop(reactors);
}

/// Spawns a child on another reactor and reports its address.
struct Parent {
    out: Sender<ActorId>,
}

impl Actor for Parent {
    type Msg = Addr<Idle>;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let there = (ctx.reactor() + 1) % ctx.reactors();
        assert!(ctx.spawn_on(there, || Idle, |child| child));
    }
    fn handle(&mut self, _: &mut Ctx<'_, Self>, child: Addr<Idle>) {
        let _ = self.out.send(child.id());
    }
}

#[test]
fn spawn_on_places_an_actor_on_the_chosen_reactor() {
    let reactors = group(2, 4096);
    let (tx, rx) = channel();
    reactors
        .handle(0)
        .spawn(move || Parent { out: tx })
        .unwrap();
    let child = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(child.reactor(), 1);
    assert!(reactors.handle(1).is_alive(child));
    assert!(
        !reactors.handle(0).is_alive(child),
        "reactor 0 does not mistake it for one of its own"
    );
    stop(reactors);
}

#[test]
fn a_send_to_a_dead_actor_of_another_reactor_is_counted_there() {
    let reactors = group(2, 4096);
    let (h0, h1) = (reactors.handle(0), reactors.handle(1));
    let gone = h1.spawn(|| Idle).unwrap();
    h1.kill(gone.id());
    assert!(!h1.is_alive(gone.id()));
    let dead_before = h1.stats().unwrap().dead_sends;
    // From reactor 0, through the lane.
    h0.call(move |core| core.send(gone, ()), WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(h1.stats().unwrap().dead_sends, dead_before + 1);
    stop(reactors);
}

/// Blocks its reactor for `for_ms` in one run, once.
struct Stuck {
    for_ms: u64,
}

impl Actor for Stuck {
    type Msg = ();
    fn started(&mut self, _: &mut Ctx<'_, Self>) {
        std::thread::sleep(Duration::from_millis(self.for_ms));
    }
    fn handle(&mut self, _: &mut Ctx<'_, Self>, (): ()) {}
}

#[test]
fn peers_see_a_reactor_stuck_in_a_run_and_one_kept_busy() {
    let reactors = group(2, 4096);
    let (h0, h1) = (reactors.handle(0), reactors.handle(1));
    // Idle: neither stuck nor busy.
    std::thread::sleep(Duration::from_millis(120));
    let idle = h0
        .call(|core| (core.silent_for(1), core.busy_of(1)), WAIT)
        .unwrap();
    assert_eq!(idle.0, Duration::ZERO);
    assert!(idle.1 < 100, "an idle reactor shows busy: {}", idle.1);
    // Stuck in one run of 400 ms: seen in the same turn for a while.
    h1.post(|core| {
        core.spawn(Stuck { for_ms: 400 });
    });
    std::thread::sleep(Duration::from_millis(50));
    let first = h0.call(|core| core.silent_for(1), WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let later = h0.call(|core| core.silent_for(1), WAIT).unwrap();
    assert!(first < Duration::from_millis(20), "{first:?}");
    assert!(later >= Duration::from_millis(90), "{later:?}");
    assert!(later > credit_actors::net::STALL);
    std::thread::sleep(Duration::from_millis(300));
    // Kept busy by many short runs: each turn ends after `turn_time`, so
    // the reactor is never stuck, but its busy share says it is busy.
    let busy = h1.spawn(|| Busy::new(Duration::from_millis(1))).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (silent, share) = h0
        .call(|core| (core.silent_for(1), core.busy_of(1)), WAIT)
        .unwrap();
    assert!(share >= credit_actors::net::BUSY, "busy share {share}");
    assert!(silent < credit_actors::net::STALL, "{silent:?}");
    let cut = h1.stats().unwrap().cut_turns;
    assert!(cut > 10, "turns cut by turn_time: {cut}");
    h1.kill(busy.id());
    stop(reactors);
}

/// Holds every reply slot it gets.
struct Holder {
    held: Vec<Reply<u64>>,
}

impl Actor for Holder {
    type Msg = Reply<u64>;
    fn handle(&mut self, _: &mut Ctx<'_, Self>, r: Reply<u64>) {
        self.held.push(r)
    }
}

/// Asks a holder, and monitors it.
struct Asker {
    to: Addr<Holder>,
    out: Sender<String>,
}

impl Actor for Asker {
    type Msg = Result<u64, RequestError>;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.monitor(self.to.id(), 7);
        ctx.request(self.to, |r| r, |res| res);
    }
    fn handle(&mut self, _: &mut Ctx<'_, Self>, res: Result<u64, RequestError>) {
        let _ = self.out.send(format!("reply {res:?}"));
    }
    fn down(&mut self, _: &mut Ctx<'_, Self>, _: ActorId, _: MonitorRef, why: &ExitReason) {
        let _ = self.out.send(format!("down {why}"));
    }
}

#[test]
fn a_reactor_that_stops_rejects_its_callers_and_tells_its_watchers() {
    let reactors = group(2, 4096);
    let holder = reactors
        .handle(1)
        .spawn(|| Holder { held: Vec::new() })
        .unwrap();
    let idle = reactors.handle(1).spawn(|| Idle).unwrap();
    let (tx, rx) = channel();
    reactors
        .handle(0)
        .spawn(move || Asker {
            to: holder,
            out: tx,
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    reactors.handle(1).shutdown();
    let mut got = drain(&rx, Duration::from_millis(500));
    got.sort();
    assert_eq!(
        got,
        vec![
            "down reactor shutdown".to_string(),
            "reply Err(Dropped)".to_string()
        ]
    );
    // Sends to the stopped reactor are refused and counted here.
    let h0 = reactors.handle(0);
    let dead = h0.stats().unwrap().dead_sends;
    assert!(!h0.call(move |core| core.send(idle, ()), WAIT).unwrap());
    assert_eq!(h0.stats().unwrap().dead_sends, dead + 1);
    stop(reactors);
}

#[test]
fn a_monitor_set_from_a_third_reactor_fires() {
    let reactors = group(3, 4096);
    let (tx, rx) = channel();
    let w = reactors
        .handle(0)
        .spawn(move || Watcher { out: tx })
        .unwrap();
    let h1 = reactors.handle(1);
    let p = h1.spawn(|| Idle).unwrap();
    h1.kill(p.id());
    assert!(!h1.is_alive(p.id()));
    // Reactor 0 blocked for a while, so that what reactors 1 and 2 send
    // it waits in both lanes and is drained in one turn.
    reactors.handle(0).post(|core| {
        core.spawn(Stuck { for_ms: 100 });
    });
    std::thread::sleep(Duration::from_millis(10));
    let (wid, pid) = (w.id(), p.id());
    reactors
        .handle(2)
        .post(move |core| core.monitor(wid, pid, 99));
    let got = drain(&rx, Duration::from_millis(500));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with(&format!("down {p} 99")), "{got:?}");
    stop(reactors);
}
