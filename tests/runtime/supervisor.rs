//! The supervisor: one-for-one restarts by policy, restart intensity, and
//! taking the children down with it.
//!
//! Children publish their typed handles into a shared list when they start,
//! so the test thread can talk to the current incarnation. Every wait is
//! bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use credit_actors::actor::{ChildInfo, ChildSpec, Restart, Supervisor, SupervisorMsg};
use credit_actors::{
    Actor, ActorId, Addr, Ctx, ExitReason, LinkAction, ReactorHandle, Reply, RequestError,
};
use credit_testkit::{wait_until, Downs, ObserverMsg, TestReactor, WAIT};

// ----- a worker that can be told to crash or finish -----------------------

type Sink = Arc<Mutex<Vec<Addr<Worker>>>>;

struct Worker {
    sink: Sink,
}

enum WorkerMsg {
    /// Answered with the worker's own id.
    Ping(Reply<ActorId>),
    /// Panics with "boom".
    Boom,
    /// Ends normally.
    Finish,
}

impl Actor for Worker {
    type Msg = WorkerMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.sink.lock().unwrap().push(ctx.me());
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Ping(reply) => {
                let me = ctx.id();
                reply.resolve(ctx, me)
            }
            WorkerMsg::Boom => panic!("boom"),
            WorkerMsg::Finish => ctx.stop(),
        }
    }
}

/// A child spec for a worker publishing into `sink`.
fn worker(name: &str, restart: Restart, sink: &Sink) -> ChildSpec {
    let sink = sink.clone();
    ChildSpec::actor(name.to_string(), restart, move || Worker {
        sink: sink.clone(),
    })
}

fn sink() -> Sink {
    Arc::new(Mutex::new(Vec::new()))
}

/// Waits until `sink` holds `n` incarnations and returns the last one.
fn incarnation(sink: &Sink, n: usize) -> Addr<Worker> {
    wait_until(&format!("{n} incarnations"), WAIT, || {
        sink.lock().unwrap().len() >= n
    });
    let all = sink.lock().unwrap();
    assert_eq!(all.len(), n, "more incarnations than expected: {all:?}");
    all[n - 1]
}

fn ping(handle: &ReactorHandle, w: Addr<Worker>) -> Result<ActorId, RequestError> {
    handle.request_wait(w, WorkerMsg::Ping, WAIT)
}

fn children(handle: &ReactorHandle, sup: Addr<Supervisor>) -> Vec<ChildInfo> {
    handle
        .request_wait(sup, SupervisorMsg::Children, WAIT)
        .expect("Children request")
}

/// An observer monitoring each of `peers` (reference 7).
fn observe(handle: &ReactorHandle, peers: &[ActorId]) -> Downs {
    let peers: Vec<_> = peers.iter().map(|&p| (p, 7)).collect();
    Downs::observe(handle, &peers)
}

// ----- tests ---------------------------------------------------------------

#[test]
fn panicking_permanent_child_is_restarted_with_a_new_id_and_answers_requests() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let sink = sink();
    let s = sink.clone();
    let sup = h
        .spawn(move || Supervisor::new().child(worker("worker", Restart::Permanent, &s)))
        .unwrap();

    let first = incarnation(&sink, 1);
    assert_eq!(ping(h, first), Ok(first.id()));
    let kids = children(h, sup);
    assert_eq!(kids.len(), 1);
    assert_eq!(&*kids[0].name, "worker");
    assert_eq!(kids[0].id, Some(first.id()));
    assert_eq!(kids[0].restarts, 0);

    assert!(h.send(first, WorkerMsg::Boom));
    let second = incarnation(&sink, 2);
    assert_ne!(second.id(), first.id(), "a restart must get a new id");
    assert_eq!(ping(h, second), Ok(second.id()));
    assert_eq!(
        ping(h, first),
        Err(RequestError::DeadActor(first.id())),
        "the old incarnation is gone"
    );
    let kids = children(h, sup);
    assert_eq!(kids[0].id, Some(second.id()));
    assert_eq!(kids[0].restarts, 1);
    assert!(
        h.is_alive(sup.id()),
        "the supervisor survives a child's panic"
    );
}

#[test]
fn only_the_failed_child_is_restarted_one_for_one() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let (a, b) = (sink(), sink());
    let (sa, sb) = (a.clone(), b.clone());
    let sup = h
        .spawn(move || {
            Supervisor::new()
                .child(worker("a", Restart::Permanent, &sa))
                .child(worker("b", Restart::Permanent, &sb))
        })
        .unwrap();
    let a1 = incarnation(&a, 1);
    let b1 = incarnation(&b, 1);
    assert!(h.send(a1, WorkerMsg::Boom));
    let a2 = incarnation(&a, 2);
    assert_eq!(ping(h, a2), Ok(a2.id()));
    // b was left alone: same incarnation, still answering.
    assert_eq!(b.lock().unwrap().len(), 1);
    assert_eq!(ping(h, b1), Ok(b1.id()));
    let kids = children(h, sup);
    let ids: Vec<_> = kids.iter().map(|c| (c.name.to_string(), c.id)).collect();
    assert_eq!(
        ids,
        vec![("a".into(), Some(a2.id())), ("b".into(), Some(b1.id()))]
    );
}

#[test]
fn transient_child_exiting_normally_is_not_restarted_but_is_after_a_panic() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let (t, p) = (sink(), sink());
    let (st, sp) = (t.clone(), p.clone());
    let sup = h
        .spawn(move || {
            Supervisor::new()
                .child(worker("finishes", Restart::Transient, &st))
                .child(worker("panics", Restart::Transient, &sp))
        })
        .unwrap();
    let t1 = incarnation(&t, 1);
    let p1 = incarnation(&p, 1);

    assert!(h.send(t1, WorkerMsg::Finish));
    assert!(h.send(p1, WorkerMsg::Boom));
    // The panicking one comes back ...
    let p2 = incarnation(&p, 2);
    assert_eq!(ping(h, p2), Ok(p2.id()));
    // ... the normally finished one does not, and the supervisor lists it
    // without an id.
    wait_until("the finished child to be listed as ended", WAIT, || {
        children(h, sup)[0].id.is_none()
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        t.lock().unwrap().len(),
        1,
        "a transient child was restarted after a normal exit"
    );
    let kids = children(h, sup);
    assert_eq!(kids[0].id, None);
    assert_eq!(kids[0].restarts, 0);
    assert_eq!(kids[1].id, Some(p2.id()));
    assert!(h.is_alive(sup.id()));
}

#[test]
fn temporary_child_is_never_restarted_even_after_a_panic() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let s = sink();
    let s2 = s.clone();
    let sup = h
        .spawn(move || Supervisor::new().child(worker("temp", Restart::Temporary, &s2)))
        .unwrap();
    let w = incarnation(&s, 1);
    assert!(h.send(w, WorkerMsg::Boom));
    wait_until("the temporary child to be listed as ended", WAIT, || {
        children(h, sup)[0].id.is_none()
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(s.lock().unwrap().len(), 1);
    assert!(h.is_alive(sup.id()));
}

#[test]
fn exceeding_restart_intensity_terminates_the_supervisor_with_the_reason_and_its_children() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let (s, other) = (sink(), sink());
    let (s2, other2) = (s.clone(), other.clone());
    let sup = h
        .spawn(move || {
            Supervisor::new()
                .intensity(2, Duration::from_secs(10))
                .child(worker("crashy", Restart::Permanent, &s2))
                .child(worker("sibling", Restart::Permanent, &other2))
        })
        .unwrap();
    let sib = incarnation(&other, 1);
    let first = incarnation(&s, 1);
    let mut rx = observe(h, &[sup.id(), sib.id()]);

    // Two restarts are allowed ...
    assert!(h.send(first, WorkerMsg::Boom));
    let second = incarnation(&s, 2);
    assert!(h.send(second, WorkerMsg::Boom));
    let third = incarnation(&s, 3);
    assert!(h.is_alive(sup.id()));
    // ... the third is not.
    assert!(h.send(third, WorkerMsg::Boom));
    let reason = rx.reason_of(sup.id());
    let ExitReason::Value(text) = &reason else {
        panic!("expected an explained exit value, got {reason:?}");
    };
    for part in [
        "restart intensity",
        "2 restarts within 10s",
        "crashy",
        &third.id().to_string(),
        "failed: boom",
    ] {
        assert!(text.contains(part), "{text:?} should mention {part:?}");
    }
    // No fourth incarnation, and the sibling went down with the supervisor.
    assert_eq!(s.lock().unwrap().len(), 3);
    assert_eq!(
        rx.reason_of(sib.id()),
        ExitReason::linked(sup.id(), &reason)
    );
    assert!(!h.is_alive(sib.id()));
}

#[test]
fn restarts_older_than_the_period_do_not_count_towards_the_intensity() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let s = sink();
    let s2 = s.clone();
    let sup = h
        .spawn(move || {
            Supervisor::new()
                .intensity(1, Duration::from_millis(200))
                .child(worker("spaced", Restart::Permanent, &s2))
        })
        .unwrap();
    let mut w = incarnation(&s, 1);
    for n in 2..=4 {
        std::thread::sleep(Duration::from_millis(250));
        assert!(h.send(w, WorkerMsg::Boom));
        w = incarnation(&s, n);
        assert_eq!(ping(h, w), Ok(w.id()));
    }
    assert!(
        h.is_alive(sup.id()),
        "spaced-out failures must not exceed the intensity"
    );
    // Two failures inside the period do.
    let mut rx = observe(h, &[sup.id()]);
    std::thread::sleep(Duration::from_millis(250));
    assert!(h.send(w, WorkerMsg::Boom));
    let w5 = incarnation(&s, 5);
    assert!(h.send(w5, WorkerMsg::Boom));
    assert!(matches!(rx.reason_of(sup.id()), ExitReason::Value(_)));
}

/// A child that handles link notices by staying alive, as `EchoService`
/// does for its sockets: the links alone would not take it down.
struct Stubborn;

impl Actor for Stubborn {
    type Msg = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) {}
    fn link_exit(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        _peer: ActorId,
        _r: &ExitReason,
    ) -> LinkAction {
        LinkAction::Stay
    }
}

#[test]
fn killing_the_supervisor_terminates_every_child_even_one_that_ignores_link_notices() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let s = sink();
    let s2 = s.clone();
    let sup = h
        .spawn(move || {
            Supervisor::new()
                .child(worker("worker", Restart::Permanent, &s2))
                .child(ChildSpec::actor("stubborn", Restart::Permanent, || {
                    Stubborn
                }))
        })
        .unwrap();
    let w = incarnation(&s, 1);
    let kids = children(h, sup);
    let stubborn_id = kids[1].id.expect("stubborn child running");
    let mut rx = observe(h, &[w.id(), stubborn_id, sup.id()]);

    assert!(h.kill(sup.id()));
    assert_eq!(rx.reason_of(sup.id()), ExitReason::Killed);
    let expected = ExitReason::linked(sup.id(), &ExitReason::Killed);
    assert_eq!(rx.reason_of(w.id()), expected);
    assert_eq!(rx.reason_of(stubborn_id), expected);
    // Nobody restarted anything.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.lock().unwrap().len(), 1);
    assert_eq!(
        h.stats().unwrap().live_actors,
        1,
        "only the observer is left"
    );
}

#[test]
fn stop_message_ends_the_supervisor_normally_and_its_children_with_it() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    let s = sink();
    let s2 = s.clone();
    let sup = h
        .spawn(move || Supervisor::new().child(worker("worker", Restart::Permanent, &s2)))
        .unwrap();
    let w = incarnation(&s, 1);
    let mut rx = observe(h, &[sup.id(), w.id()]);
    assert!(h.send(sup, SupervisorMsg::Stop));
    assert_eq!(rx.reason_of(sup.id()), ExitReason::Normal);
    assert_eq!(
        rx.reason_of(w.id()),
        ExitReason::linked(sup.id(), &ExitReason::Normal)
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        s.lock().unwrap().len(),
        1,
        "a stopping supervisor restarted a child"
    );
}

#[test]
fn a_start_function_returning_a_dead_actor_counts_as_a_failed_start() {
    // A start function that spawns nothing alive: each start is reported at
    // once (no such actor) and restarted until the intensity is exceeded,
    // which terminates the supervisor instead of looping for ever.
    let rig = TestReactor::start();
    let h = &rig.handle;
    let starts = Arc::new(Mutex::new(0u32));
    let counter = starts.clone();
    let mut rx = Downs::observe(h, &[]);
    let obs = rx.addr;
    // Spawn the supervisor and watch it in one reactor call, so its first
    // turn cannot come before the monitor.
    let sup = h
        .call(
            move |core| {
                let spec = ChildSpec::new("ghost", Restart::Permanent, move |ctx| {
                    *counter.lock().unwrap() += 1;
                    let id = ctx.spawn(Stubborn).id();
                    ctx.kill(id);
                    id
                });
                let sup = core.spawn(
                    Supervisor::new()
                        .intensity(3, Duration::from_secs(5))
                        .child(spec),
                );
                core.send(obs, ObserverMsg::WatchNow(sup.id(), 7));
                sup
            },
            WAIT,
        )
        .unwrap();
    let reason = rx.reason_of(sup.id());
    let ExitReason::Value(text) = &reason else {
        panic!("expected an explained exit value, got {reason:?}");
    };
    assert!(text.contains("ghost"), "{text}");
    assert_eq!(*starts.lock().unwrap(), 4, "one start and three restarts");
}
