//! Scheduler metrics: exact counts for known workloads.

mod common;

use std::time::Duration;

use common::{Server, WAIT};
use credit_actors::{Actor, Addr, Config, Ctx, Reactor};

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

/// N lines over one connection: N units delivered, every byte counted in
/// and out, and at least N session messages.
#[test]
fn n_lines_give_n_units_and_exact_byte_counts() {
    const N: usize = 500;
    let server = Server::start();
    let mut peer = server.connect();
    let mut bytes_in = 0;
    let mut bytes_out = 0;
    let mut batch = String::new();
    for i in 0..N {
        let line = format!("line {i}");
        bytes_in += line.len() + 1;
        bytes_out += common::PREFIX.len() + line.len() + 1;
        batch.push_str(&line);
        batch.push('\n');
    }
    peer.write(batch.as_bytes());
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: line {i}"));
    }
    drop(peer);
    server.wait_sessions(0);
    let m = server.handle.metrics().unwrap();
    if !m.enabled {
        return;
    }
    let k = m.sockets;
    assert_eq!(k.units, N as u64);
    assert_eq!(k.bytes_in, bytes_in as u64);
    assert_eq!(k.bytes_out, bytes_out as u64);
    assert!(k.reads >= 1);
    assert!(k.flushes >= 1);
    assert_eq!(k.high_water, 0);
    let session = m
        .types
        .iter()
        .find(|t| t.name.ends_with("EchoSession"))
        .expect("EchoSession entry");
    assert_eq!(session.spawned, 1);
    // N Data events and the Closed event, at least.
    assert!(session.messages > N as u64, "{session:?}");
    let conn = m
        .types
        .iter()
        .find(|t| t.name.ends_with("Connection"))
        .expect("Connection entry");
    // Per line a reply, plus the session's credit messages.
    assert!(conn.messages > N as u64, "{conn:?}");
    assert_eq!(m.run_ns.count, m.stats.actor_runs);
    assert!(m.busy_ratio() > 0.0 && m.busy_ratio() < 1.0);
    let _ = WAIT;
}

/// With a window of one line, a pipelined batch stalls on credit.
#[test]
fn window_of_one_counts_credit_stalls() {
    const N: usize = 50;
    let server = Server::start_config(credit_actors::echo::EchoConfig {
        window: 1,
        ..Default::default()
    });
    let mut peer = server.connect();
    let batch: String = (0..N).map(|i| format!("l{i}\n")).collect();
    peer.write(batch.as_bytes());
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: l{i}"));
    }
    let m = server.handle.metrics().unwrap();
    if m.enabled {
        assert_eq!(m.sockets.units, N as u64);
        assert!(m.sockets.credit_stalls >= 1, "{:?}", m.sockets);
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

/// A trace sink the test can read back.
#[cfg(feature = "trace")]
#[derive(Clone, Default)]
struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(feature = "trace")]
impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "trace")]
impl Sink {
    /// `(kind, id, rest)` of every event.
    fn events(&self) -> Vec<(String, String, String)> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let t = f.next().unwrap();
                assert!(t.parse::<u64>().is_ok(), "timestamp in {l:?}");
                let kind = f.next().unwrap().to_string();
                let id = f.next().unwrap_or("").to_string();
                let rest = f.next().unwrap_or("").to_string();
                (kind, id, rest)
            })
            .collect()
    }
}

#[cfg(feature = "trace")]
fn count(ev: &[(String, String, String)], kind: &str, id: &str) -> usize {
    ev.iter().filter(|e| e.0 == kind && e.1 == id).count()
}

#[cfg(feature = "trace")]
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
    let sink = Sink::default();
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
    assert_eq!(count(&ev, "S", &parent), 1);
    assert_eq!(count(&ev, "S", &child), 1);
    // The child is queued once at spawn; the three sends find it queued.
    assert_eq!(count(&ev, "Q", &child), 1);
    assert_eq!(count(&ev, "B", &child), 1);
    let end = ev.iter().find(|e| e.0 == "E" && e.1 == child).unwrap();
    assert_eq!(end.2, "3", "three messages in one run");
    assert_eq!(count(&ev, "X", &child), 1);
    assert_eq!(count(&ev, "X", &parent), 1);
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

#[cfg(feature = "trace")]
#[test]
fn trace_records_socket_reads_units_and_writes() {
    use credit_actors::echo::{EchoConfig, EchoService, ServiceMsg};
    use credit_actors::net::ListenSpec;
    const N: usize = 20;
    let sink = Sink::default();
    let s2 = sink.clone();
    let (handle, join) = Reactor::start(Config::default(), move |core| {
        core.set_trace(Box::new(s2));
    })
    .unwrap();
    let service = handle
        .spawn(|| {
            EchoService::new(EchoConfig {
                listen: ListenSpec::host_port("127.0.0.1", 0),
                ..EchoConfig::default()
            })
        })
        .unwrap();
    let addr = handle
        .request_wait(service, ServiceMsg::WhenReady, WAIT)
        .unwrap();
    let mut peer = common::Peer::connect(addr);
    let batch: String = (0..N).map(|i| format!("t{i}\n")).collect();
    peer.write(batch.as_bytes());
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: t{i}"));
    }
    let out_bytes: usize = (0..N).map(|i| format!("You said: t{i}\n").len()).sum();
    drop(peer);
    handle.shutdown();
    drop(handle);
    common::join_bounded(join).unwrap();
    let ev = sink.events();
    let units = ev.iter().filter(|e| e.0 == "U").count();
    assert_eq!(units, N);
    let conn = ev.iter().find(|e| e.0 == "U").unwrap().1.clone();
    let read: usize = ev
        .iter()
        .filter(|e| e.0 == "R" && e.1 == conn)
        .map(|e| e.2.parse::<usize>().unwrap())
        .sum();
    assert_eq!(read, batch.len());
    let written: usize = ev
        .iter()
        .filter(|e| e.0 == "W" && e.1 == conn)
        .map(|e| e.2.parse::<usize>().unwrap())
        .sum();
    assert_eq!(written, out_bytes);
    assert!(count(&ev, "O", &conn) >= N);
    // The session's window is the first credit operation.
    let first = ev.iter().find(|e| e.0 == "C" && e.1 == conn).unwrap();
    assert_eq!(first.2, credit_actors::echo::DEFAULT_WINDOW.to_string());
}
