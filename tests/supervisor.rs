//! The supervisor: one-for-one restarts by policy, restart intensity, and
//! taking the children down with it.
//!
//! Children publish their typed handles into a shared list when they start,
//! so the test thread can talk to the current incarnation. Every wait is
//! bounded.

mod common;

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{wait_until, WAIT};
use credit_actors::actor::{ChildInfo, ChildSpec, Restart, Supervisor, SupervisorMsg};
use credit_actors::{
    Actor, ActorId, Addr, Config, Ctx, ExitReason, LinkAction, MonitorRef, Reactor, ReactorHandle,
    Reply, RequestError,
};

// ----- a reactor for one test ---------------------------------------------

struct Rig {
    handle: ReactorHandle,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl Rig {
    fn start() -> Rig {
        let (handle, join) = Reactor::start(Config::default(), |_| {}).expect("start reactor");
        Rig {
            handle,
            join: Some(join),
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(join) = self.join.take() {
            let deadline = Instant::now() + WAIT;
            while !join.is_finished() {
                if Instant::now() >= deadline {
                    eprintln!("reactor thread did not stop within {WAIT:?}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let result = join.join();
            if !std::thread::panicking() {
                result.expect("reactor panicked").expect("reactor failed");
            }
        }
    }
}

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

// ----- an observer that reports monitor notices ---------------------------

struct Observer {
    tx: Sender<(ActorId, ExitReason)>,
}

enum ObserverMsg {
    /// Monitors the actor, then answers.
    Watch(ActorId, Reply<()>),
    /// Monitors the actor.
    WatchNow(ActorId),
}

impl Actor for Observer {
    type Msg = ObserverMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ObserverMsg) {
        match msg {
            ObserverMsg::Watch(peer, done) => {
                ctx.monitor(peer, 7);
                done.resolve(ctx, ());
            }
            ObserverMsg::WatchNow(peer) => ctx.monitor(peer, 7),
        }
    }

    fn down(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        _r: MonitorRef,
        reason: &ExitReason,
    ) {
        let _ = self.tx.send((peer, reason.clone()));
    }
}

/// Monitor notices as they arrive, kept until asked for.
struct Downs {
    rx: Receiver<(ActorId, ExitReason)>,
    seen: Vec<(ActorId, ExitReason)>,
}

impl Downs {
    fn new(rx: Receiver<(ActorId, ExitReason)>) -> Downs {
        Downs {
            rx,
            seen: Vec::new(),
        }
    }

    /// The exit reason of `peer` (bounded wait).
    fn of(&mut self, peer: ActorId) -> ExitReason {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.seen.iter().position(|(p, _)| *p == peer) {
                return self.seen.remove(i).1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(notice) => self.seen.push(notice),
                Err(_) => panic!("no down notice for {peer}; others: {:?}", self.seen),
            }
        }
    }
}

/// An observer monitoring each of `peers`.
fn observe(handle: &ReactorHandle, peers: &[ActorId]) -> Downs {
    let (tx, rx) = channel();
    let obs = handle.spawn(move || Observer { tx }).unwrap();
    for &p in peers {
        handle
            .request_wait(obs, move |r| ObserverMsg::Watch(p, r), WAIT)
            .unwrap();
    }
    Downs::new(rx)
}

// ----- tests ---------------------------------------------------------------

#[test]
fn panicking_permanent_child_is_restarted_with_a_new_id_and_answers_requests() {
    let rig = Rig::start();
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
    let rig = Rig::start();
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
    let rig = Rig::start();
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
    let rig = Rig::start();
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
    let rig = Rig::start();
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
    let reason = rx.of(sup.id());
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
    assert_eq!(rx.of(sib.id()), ExitReason::linked(sup.id(), &reason));
    assert!(!h.is_alive(sib.id()));
}

#[test]
fn restarts_older_than_the_period_do_not_count_towards_the_intensity() {
    let rig = Rig::start();
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
    assert!(matches!(rx.of(sup.id()), ExitReason::Value(_)));
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
    let rig = Rig::start();
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
    assert_eq!(rx.of(sup.id()), ExitReason::Killed);
    let expected = ExitReason::linked(sup.id(), &ExitReason::Killed);
    assert_eq!(rx.of(w.id()), expected);
    assert_eq!(rx.of(stubborn_id), expected);
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
    let rig = Rig::start();
    let h = &rig.handle;
    let s = sink();
    let s2 = s.clone();
    let sup = h
        .spawn(move || Supervisor::new().child(worker("worker", Restart::Permanent, &s2)))
        .unwrap();
    let w = incarnation(&s, 1);
    let mut rx = observe(h, &[sup.id(), w.id()]);
    assert!(h.send(sup, SupervisorMsg::Stop));
    assert_eq!(rx.of(sup.id()), ExitReason::Normal);
    assert_eq!(
        rx.of(w.id()),
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
    let rig = Rig::start();
    let h = &rig.handle;
    let starts = Arc::new(Mutex::new(0u32));
    let counter = starts.clone();
    let (tx, rx) = channel();
    let mut rx = Downs::new(rx);
    let obs = h.spawn(move || Observer { tx }).unwrap();
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
                core.send::<Observer>(obs.id(), ObserverMsg::WatchNow(sup.id()));
                sup
            },
            WAIT,
        )
        .unwrap();
    let reason = rx.of(sup.id());
    let ExitReason::Value(text) = &reason else {
        panic!("expected an explained exit value, got {reason:?}");
    };
    assert!(text.contains("ghost"), "{text}");
    assert_eq!(*starts.lock().unwrap(), 4, "one start and three restarts");
}

// ----- the echo service under a supervisor ----------------------------------

#[test]
fn killed_echo_service_under_a_supervisor_listens_again_on_its_port_and_sessions_survive() {
    use credit_actors::echo::{EchoConfig, EchoService, ServiceMsg};
    use credit_actors::net::ListenSpec;

    let rig = Rig::start();
    let h = &rig.handle;
    // What the start function shares: the current service, and the port the
    // first one bound (port 0 asks for a free one; restarts reuse it).
    let current: Arc<Mutex<(Option<Addr<EchoService>>, u16)>> = Arc::new(Mutex::new((None, 0)));
    let slot = current.clone();
    let sup = h
        .spawn(move || {
            Supervisor::new().child(ChildSpec::new(
                "echo-service",
                Restart::Permanent,
                move |ctx| {
                    let mut slot = slot.lock().unwrap();
                    let config = EchoConfig {
                        listen: ListenSpec::host_port("127.0.0.1", slot.1),
                        ..EchoConfig::default()
                    };
                    let service = ctx.spawn(EchoService::new(config));
                    slot.0 = Some(service);
                    service.id()
                },
            ))
        })
        .unwrap();
    let service = |n: usize| -> Addr<EchoService> {
        let mut found = None;
        wait_until(&format!("service incarnation {n}"), WAIT, || {
            found = current.lock().unwrap().0;
            found.is_some_and(|s| {
                children(h, sup)[0].restarts as usize + 1 == n && h.is_alive(s.id())
            })
        });
        found.unwrap()
    };
    let first = service(1);
    let addr = h
        .request_wait(first, ServiceMsg::WhenReady, WAIT)
        .expect("listening");
    current.lock().unwrap().1 = addr.port();
    let mut old = common::Peer::connect(addr);
    assert_eq!(old.ask("before"), "You said: before");

    // The service dies (and its listener with it); a new one takes its place.
    assert!(h.kill(first.id()));
    let second = service(2);
    assert_ne!(second, first);
    let again = h
        .request_wait(second, ServiceMsg::WhenReady, WAIT)
        .expect("listening again");
    assert_eq!(
        again, addr,
        "the restarted service listens where the first did"
    );
    let mut new = common::Peer::connect(addr);
    assert_eq!(new.ask("after"), "You said: after");
    // The session accepted by the first service was not linked to it.
    assert_eq!(old.ask("still"), "You said: still");

    // Killing the supervisor closes the listener but leaves sessions be.
    let mut downs = observe(h, &[second.id()]);
    assert!(h.kill(sup.id()));
    assert_eq!(
        downs.of(second.id()),
        ExitReason::linked(sup.id(), &ExitReason::Killed)
    );
    wait_until("the listener to close", WAIT, || {
        std::net::TcpStream::connect_timeout(&addr, WAIT).is_err()
    });
    assert_eq!(old.ask("last"), "You said: last");
    assert_eq!(new.ask("last"), "You said: last");
}
