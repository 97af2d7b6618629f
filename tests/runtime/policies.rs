//! Run-queue policies: the receiver-next slot's order, and fairness under
//! each policy.

use std::cell::RefCell;
use std::rc::Rc;

use credit_actors::reactor::RECEIVER_NEXT_MAX;
use credit_actors::{Actor, Addr, Config, Ctx, Policy, Reactor};

type Log = Rc<RefCell<Vec<&'static str>>>;

/// Logs its name on every message; on `Some(to)` it sends to `to` first.
struct Node {
    name: &'static str,
    log: Log,
}

enum Msg {
    Plain,
    Forward(Addr<Node>),
}

impl Actor for Node {
    type Msg = Msg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Msg) {
        self.log.borrow_mut().push(self.name);
        if let Msg::Forward(to) = msg {
            ctx.send(to, Msg::Plain);
        }
    }
}

/// The order in which actors run: `a` forwards to `r` while `b` and `c`
/// are already queued behind `a`.
fn order(policy: Policy) -> Vec<&'static str> {
    let log: Log = Rc::default();
    let mut reactor = Reactor::with_config(Config {
        policy,
        ..Config::default()
    })
    .unwrap();
    let node = |name| Node {
        name,
        log: log.clone(),
    };
    let a = reactor.spawn(node("a"));
    let b = reactor.spawn(node("b"));
    let c = reactor.spawn(node("c"));
    let r = reactor.spawn(node("r"));
    // The first turn runs each actor's `started`; start from an idle queue.
    reactor.turn(Some(std::time::Duration::ZERO)).unwrap();
    reactor.send(a, Msg::Forward(r));
    reactor.send(b, Msg::Plain);
    reactor.send(c, Msg::Plain);
    reactor.turn(Some(std::time::Duration::ZERO)).unwrap();
    let got = log.borrow().clone();
    got
}

#[test]
fn fifo_runs_the_receiver_after_the_queue() {
    assert_eq!(order(Policy::Fifo), ["a", "b", "c", "r"]);
}

#[test]
fn receiver_next_runs_the_receiver_before_other_queued_actors() {
    assert_eq!(order(Policy::ReceiverNext), ["a", "r", "b", "c"]);
}

/// Two actors bounce a message back and forth for ever while a third waits
/// in the queue: the slot may be used only a few times in a row.
#[test]
fn receiver_next_slot_cannot_starve_the_queue() {
    struct Bouncer {
        peer: Option<Addr<Bouncer>>,
        count: Rc<RefCell<u64>>,
        log: Log,
    }
    impl Actor for Bouncer {
        type Msg = Option<Addr<Bouncer>>;
        fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Self::Msg) {
            if let Some(p) = msg {
                self.peer = Some(p);
            }
            *self.count.borrow_mut() += 1;
            self.log.borrow_mut().push("b");
            if let Some(p) = self.peer {
                let me = ctx.me();
                ctx.send(p, Some(me));
            }
        }
    }
    let log: Log = Rc::default();
    let count = Rc::new(RefCell::new(0u64));
    let mut reactor = Reactor::with_config(Config {
        policy: Policy::ReceiverNext,
        ..Config::default()
    })
    .unwrap();
    let x = reactor.spawn(Bouncer {
        peer: None,
        count: count.clone(),
        log: log.clone(),
    });
    let y = reactor.spawn(Bouncer {
        peer: None,
        count: count.clone(),
        log: log.clone(),
    });
    let w = reactor.spawn(Node {
        name: "w",
        log: log.clone(),
    });
    reactor.turn(Some(std::time::Duration::ZERO)).unwrap();
    reactor.send(x, Some(y));
    reactor.send(w, Msg::Plain);
    reactor.turn(Some(std::time::Duration::ZERO)).unwrap();
    // x ran from the queue, then RECEIVER_NEXT_MAX runs from the slot, then
    // the queue's head.
    let pos = log.borrow().iter().position(|n| *n == "w").expect("w ran");
    assert_eq!(pos, 1 + RECEIVER_NEXT_MAX as usize);
    let bounced = *count.borrow();
    assert!(bounced > 10, "the bouncers kept running: {bounced}");
}

/// A flooded actor does not starve another, under each policy: the other
/// actor's single message is handled within the first turn, after at most
/// one budget of the flood.
#[test]
fn flooded_actor_does_not_starve_another_under_each_policy() {
    for policy in [Policy::Fifo, Policy::ReceiverNext] {
        let log: Log = Rc::default();
        let mut reactor = Reactor::with_config(Config {
            policy,
            budget: 8,
            ..Config::default()
        })
        .unwrap();
        let f = reactor.spawn(Node {
            name: "f",
            log: log.clone(),
        });
        let q = reactor.spawn(Node {
            name: "q",
            log: log.clone(),
        });
        reactor.turn(Some(std::time::Duration::ZERO)).unwrap();
        for _ in 0..1000 {
            reactor.send(f, Msg::Plain);
        }
        reactor.send(q, Msg::Plain);
        reactor.turn(Some(std::time::Duration::ZERO)).unwrap();
        let got = log.borrow();
        let pos = got.iter().position(|n| *n == "q").expect("q ran");
        assert_eq!(pos, 8, "{policy:?}: q ran after one budget of f");
    }
}
