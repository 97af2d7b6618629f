//! Heap allocations per message in steady-state actor ping-pong.
//!
//! The binary's global allocator counts per thread, and the reactor runs on
//! a thread of its own, so tests running beside this one do not disturb the
//! count.

use std::sync::mpsc::channel;
use std::time::Duration;

use credit_actors::{Actor, Addr, Ctx, Reactor};
use credit_testkit::CountingAlloc;

const WARMUP: u64 = 10_000;
const MEASURED: u64 = 200_000;

/// Bounces a ball; the first player records the allocation counter when the
/// warm-up ends and when the measured stretch ends, then stops.
struct Player {
    /// Round trips still to play (first player only).
    left: Option<u64>,
    marks: Vec<u64>,
    out: Option<std::sync::mpsc::Sender<(u64, u64)>>,
}

enum Msg {
    Serve(Addr<Player>),
    Ball(Addr<Player>),
}

impl Actor for Player {
    type Msg = Msg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Msg) {
        let to = match msg {
            Msg::Serve(to) => to,
            Msg::Ball(from) => {
                if let Some(left) = self.left.as_mut() {
                    if *left == MEASURED {
                        self.marks.push(CountingAlloc::thread());
                    }
                    if *left == 0 {
                        self.marks.push(CountingAlloc::thread());
                        let (a, b) = (self.marks[0], self.marks[1]);
                        self.out.take().unwrap().send((a, b)).unwrap();
                        ctx.kill(from.id());
                        ctx.stop();
                        return;
                    }
                    *left -= 1;
                }
                from
            }
        };
        let me = ctx.me();
        ctx.send(to, Msg::Ball(me));
    }
}

#[test]
fn steady_state_ping_pong_allocates_almost_nothing() {
    // The counter works: a boxed value is one allocation.
    let before = CountingAlloc::thread();
    let boxed = std::hint::black_box(Box::new(7u64));
    assert!(CountingAlloc::thread() > before, "allocator not counting");
    drop(boxed);

    let (tx, rx) = channel();
    let th = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let a = reactor.spawn(Player {
            left: Some(WARMUP + MEASURED),
            marks: Vec::with_capacity(2),
            out: Some(tx),
        });
        let b = reactor.spawn(Player {
            left: None,
            marks: Vec::new(),
            out: None,
        });
        reactor.send(a, Msg::Serve(b));
        reactor.run().unwrap();
        reactor.stats()
    });
    let (start, end) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ping-pong did not finish in time");
    let stats = th.join().unwrap();
    // Each measured round trip is two messages.
    let messages = 2 * MEASURED;
    let allocs = end - start;
    let per_message = allocs as f64 / messages as f64;
    eprintln!(
        "{allocs} allocations over {messages} messages: {per_message:.5} per message \
         ({} messages handled in all)",
        stats.messages
    );
    assert!(stats.messages >= messages);
    assert!(
        per_message < 0.01,
        "{per_message} allocations per message ({allocs} over {messages})"
    );
}

/// Answers each request with the value plus one.
struct Echoer;

enum EchoerMsg {
    Ask(u64, credit_actors::Reply<u64>),
}

impl Actor for Echoer {
    type Msg = EchoerMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: EchoerMsg) {
        let EchoerMsg::Ask(v, reply) = msg;
        reply.resolve(ctx, v + 1);
    }
}

/// Asks the echoer in a loop, and records the allocation counter when the
/// warm-up ends and when the measured stretch ends.
struct Asker {
    echoer: Addr<Echoer>,
    left: u64,
    marks: Vec<u64>,
    out: Option<std::sync::mpsc::Sender<(u64, u64)>>,
}

enum AskerMsg {
    Got(Result<u64, credit_actors::RequestError>),
}

impl Actor for Asker {
    type Msg = AskerMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.request(self.echoer, |r| EchoerMsg::Ask(0, r), AskerMsg::Got);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: AskerMsg) {
        let AskerMsg::Got(v) = msg;
        let v = v.expect("answered");
        if self.left == MEASURED || self.left == 0 {
            self.marks.push(CountingAlloc::thread());
        }
        if self.left == 0 {
            let (a, b) = (self.marks[0], self.marks[1]);
            self.out.take().unwrap().send((a, b)).unwrap();
            ctx.kill(self.echoer.id());
            ctx.stop();
            return;
        }
        self.left -= 1;
        ctx.request(self.echoer, move |r| EchoerMsg::Ask(v, r), AskerMsg::Got);
    }
}

#[test]
fn steady_state_request_reply_allocates_nothing() {
    let (tx, rx) = channel();
    let th = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let echoer = reactor.spawn(Echoer);
        reactor.spawn(Asker {
            echoer,
            left: WARMUP + MEASURED,
            marks: Vec::with_capacity(2),
            out: Some(tx),
        });
        reactor.run().unwrap();
    });
    let (start, end) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("request/reply did not finish in time");
    th.join().unwrap();
    let allocs = end - start;
    eprintln!("{allocs} allocations over {MEASURED} request/reply round trips");
    assert_eq!(allocs, 0, "a round trip allocates in steady state");
}
