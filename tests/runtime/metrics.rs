//! Scheduler metrics: exact counts for known workloads.

use std::time::Duration;

use credit_actors::{Actor, Addr, Config, Ctx, Reactor};
use credit_testkit::TraceSink;
use credit_testkit::WAIT;

/// Counts messages and stops itself after `stop_after`.
struct Counter {
    seen: u64,
    stop_after: u64,
}

impl Actor for Counter {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _msg: u64) {
        self.seen += 1;
        if self.seen == self.stop_after {
            ctx.stop();
        }
    }
}

fn counter(stop_after: u64) -> Counter {
    Counter {
        seen: 0,
        stop_after,
    }
}

#[test]
fn small_budget_counts_forced_yields_runs_and_messages_exactly() {
    let mut reactor = Reactor::with_config(Config {
        budget: 2,
        ..Config::default()
    })
    .unwrap();
    let a: Addr<Counter> = reactor.spawn(counter(10));
    for i in 0..10 {
        assert!(reactor.send(a, i));
    }
    reactor.run().unwrap();
    let m = reactor.metrics();
    let s = m.stats;
    // 10 messages in runs of 2: 5 runs, the first 4 end with mail waiting.
    assert_eq!(s.messages, 10);
    assert_eq!(s.actor_runs, 5);
    assert_eq!(s.forced_yields, 4);
    assert_eq!(s.spawned, 1);
    assert_eq!(s.exited, 1);
    if m.enabled {
        assert_eq!(m.run_ns.count, 5);
        assert_eq!(m.sched_delay_ns.count, 5);
        let t = m
            .types
            .iter()
            .find(|t| t.name.ends_with("Counter"))
            .expect("per-type entry");
        assert_eq!((t.spawned, t.runs, t.messages), (1, 5, 10));
        // One actor, queued once at a time.
        assert_eq!(m.queue_depth_max, 1);
        assert_eq!(m.polls, s.turns);
    }
}

#[test]
fn sends_to_dead_actors_are_counted() {
    let mut reactor = Reactor::new().unwrap();
    let a: Addr<Counter> = reactor.spawn(counter(1));
    assert!(reactor.send(a, 0));
    reactor.run().unwrap();
    assert!(!reactor.send(a, 1));
    assert!(!reactor.send(a, 2));
    assert_eq!(reactor.metrics().stats.dead_sends, 2);
}

#[test]
fn queue_depth_max_sees_every_spawned_actor() {
    let mut reactor = Reactor::new().unwrap();
    for _ in 0..7 {
        let a = reactor.spawn(counter(1));
        reactor.send(a, 0);
    }
    reactor.run().unwrap();
    let m = reactor.metrics();
    assert_eq!(m.stats.actor_runs, 7);
    if m.enabled {
        assert_eq!(m.queue_depth_max, 7);
        assert_eq!(m.run_ns.count, 7);
        assert_eq!(m.runs_per_turn.max, 7);
    }
}

#[test]
fn slow_runs_are_counted_against_the_threshold() {
    struct Sleeper;
    impl Actor for Sleeper {
        type Msg = ();
        fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _: ()) {
            std::thread::sleep(Duration::from_millis(2));
            ctx.stop();
        }
    }
    let mut reactor = Reactor::with_config(Config {
        slow_threshold: Duration::from_millis(1),
        ..Config::default()
    })
    .unwrap();
    let a = reactor.spawn(Sleeper);
    reactor.send(a, ());
    let b = reactor.spawn(counter(1));
    reactor.send(b, 0);
    reactor.run().unwrap();
    let m = reactor.metrics();
    if m.enabled {
        assert_eq!(m.slow_runs, 1);
        assert!(m.run_ns.max >= 2_000_000);
        assert_eq!(m.slow_threshold_ns, 1_000_000);
    }
}

#[test]
fn ctx_metrics_snapshot_from_inside_an_actor() {
    struct Asker(std::sync::mpsc::Sender<credit_actors::Metrics>);
    impl Actor for Asker {
        type Msg = ();
        fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _: ()) {
            let _ = self.0.send(ctx.metrics());
            ctx.stop();
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reactor = Reactor::new().unwrap();
    let a = reactor.spawn(Asker(tx));
    reactor.send(a, ());
    reactor.run().unwrap();
    let m = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(m.stats.spawned, 1);
    assert_eq!(m.enabled, cfg!(feature = "metrics"));
    // The interval line and summary render.
    assert!(m.interval_line(&m, 1.0).starts_with("turns=0 "));
    assert!(m.summary().contains("turns"));
}

// ----- trace -----------------------------------------------------------------

#[test]
fn trace_records_spawn_enqueue_runs_exit_and_links() {
    struct Parent;
    impl Actor for Parent {
        type Msg = ();
        fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
            let child = ctx.spawn_link(counter(3));
            for i in 0..3 {
                ctx.send(child, i);
            }
        }
        fn handle(&mut self, _: &mut Ctx<'_, Self>, _: ()) {}
        fn link_exit(
            &mut self,
            ctx: &mut Ctx<'_, Self>,
            _: credit_actors::ActorId,
            _: &credit_actors::ExitReason,
        ) -> credit_actors::LinkAction {
            ctx.stop();
            credit_actors::LinkAction::Stay
        }
    }
    let sink = TraceSink::default();
    let mut reactor = Reactor::new().unwrap();
    reactor.core().set_trace(Box::new(sink.clone()));
    let p = reactor.spawn(Parent);
    reactor.run().unwrap();
    let ev = sink.events();
    let parent = p.id().to_string();
    let child = ev
        .iter()
        .find(|e| e.0 == "S" && e.2.ends_with("Counter"))
        .expect("child spawned")
        .1
        .clone();
    assert_eq!(TraceSink::count(&ev, "S", &parent), 1);
    assert_eq!(TraceSink::count(&ev, "S", &child), 1);
    // The child is queued once at spawn; the three sends find it queued.
    assert_eq!(TraceSink::count(&ev, "Q", &child), 1);
    assert_eq!(TraceSink::count(&ev, "B", &child), 1);
    let end = ev.iter().find(|e| e.0 == "E" && e.1 == child).unwrap();
    assert_eq!(end.2, "3 0", "three messages in one run, none left waiting");
    assert_eq!(TraceSink::count(&ev, "X", &child), 1);
    assert_eq!(TraceSink::count(&ev, "X", &parent), 1);
    // The child's exit fires the link to the parent.
    assert!(ev
        .iter()
        .any(|e| e.0 == "L" && e.1 == child && e.2 == parent));
    // Every begin has its end.
    let b = ev.iter().filter(|e| e.0 == "B").count();
    let e = ev.iter().filter(|e| e.0 == "E").count();
    assert_eq!(b, e);
    assert_eq!(b as u64, reactor.stats().actor_runs);
}

/// A reactor-local extension defined outside the runtime crate, as socket
/// actors define theirs: one value per reactor, reached from any actor, its
/// counters in the metrics snapshot.
#[derive(Default)]
struct Hits {
    hits: u64,
}

impl credit_actors::Local for Hits {
    fn counters(&self) -> Option<credit_actors::Counters> {
        Some(credit_actors::Counters {
            group: "hits",
            values: vec![("hits", self.hits)],
            gauges: Vec::new(),
        })
    }
}

struct Hitter;

impl Actor for Hitter {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, n: u64) {
        ctx.local::<Hits>().hits += n;
        ctx.stop();
    }
}

#[test]
fn an_outside_extension_is_shared_by_the_reactors_actors_and_counted_in_metrics() {
    let mut reactor = Reactor::new().unwrap();
    let a = reactor.spawn(Hitter);
    let b = reactor.spawn(Hitter);
    reactor.send(a, 2);
    reactor.send(b, 3);
    reactor.run().unwrap();
    assert_eq!(reactor.local::<Hits>().hits, 5, "one value, both actors");
    let m = reactor.metrics();
    let group = m.group("hits").expect("the extension's counters");
    assert_eq!(group.get("hits"), Some(5));
    assert!(m
        .interval_line(&Default::default(), 1.0)
        .contains(" hits=5 "));
}
