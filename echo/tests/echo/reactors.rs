//! The echo server on a group of reactors: sockets controlled from another
//! reactor, the two accept modes spreading connections, a stopping
//! reuseport listener handing its queue over, and the binary's
//! `--reactors`.

use std::net::SocketAddr;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use credit_actors::net::{
    AcceptMode, AcceptSlots, Handoff, ListenSpec, Listener, ListenerEvent, Socket, SocketEvent,
};
use credit_actors::{Actor, Addr, Config, Ctx, Reactors};
use credit_echo::{EchoConfig, EchoService, EchoSession, GroupAccept, ServiceMsg, SessionMsg};
use credit_testkit::{Busy, Peer, ServerProc, WAIT};

use crate::support::BIN;

/// Accepts on its own reactor and hands every connection to an echo
/// session it spawns on the next reactor: the socket stays here, its
/// controller lives there.
struct CrossService {
    ready: Option<Sender<SocketAddr>>,
}

enum CrossMsg {
    Listener(ListenerEvent),
    Socket(#[allow(dead_code)] SocketEvent),
    Session(Addr<Socket>, Addr<EchoSession>),
}

impl From<ListenerEvent> for CrossMsg {
    fn from(e: ListenerEvent) -> Self {
        CrossMsg::Listener(e)
    }
}
impl From<SocketEvent> for CrossMsg {
    fn from(e: SocketEvent) -> Self {
        CrossMsg::Socket(e)
    }
}

impl Actor for CrossService {
    type Msg = CrossMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let l = Listener::listen(ctx, ListenSpec::host_port("127.0.0.1", 0));
        l.issue_credit(ctx, 100);
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: CrossMsg) {
        match msg {
            CrossMsg::Listener(ListenerEvent::Ready(_, Ok(addr))) => {
                if let Some(tx) = self.ready.take() {
                    let _ = tx.send(addr);
                }
            }
            CrossMsg::Listener(ListenerEvent::Accepted(_, conn, _)) => {
                let there = (ctx.reactor() + 1) % ctx.reactors();
                assert!(ctx.spawn_on(there, EchoSession::new, move |session| {
                    CrossMsg::Session(conn, session)
                }));
            }
            CrossMsg::Session(conn, session) => {
                assert_ne!(conn.id().reactor(), session.id().reactor());
                ctx.send(session, SessionMsg::Connection(conn));
                conn.set_controller(ctx, session);
            }
            CrossMsg::Listener(_) | CrossMsg::Socket(_) => {}
        }
    }
}

#[test]
fn a_socket_is_served_by_a_controller_on_another_reactor() {
    let reactors = Reactors::start(2, Config::default(), |_| {}).unwrap();
    let (tx, rx) = channel();
    reactors
        .handle(0)
        .spawn(move || CrossService { ready: Some(tx) })
        .unwrap();
    let addr: SocketAddr = rx.recv_timeout(WAIT).unwrap();
    let mut peer = Peer::connect(addr);
    assert_eq!(peer.ask("hello"), "You said: hello");
    // Pipelined lines cross the lanes both ways (events there, replies and
    // credit back) and still come back in order.
    let lines: Vec<String> = (0..500).map(|i| format!("line {i}")).collect();
    peer.write(lines.join("\n").as_bytes());
    peer.write(b"\n");
    for l in &lines {
        assert_eq!(peer.read_line(), format!("You said: {l}"));
    }
    peer.shutdown_write();
    peer.expect_eof();
    let m = {
        reactors.shutdown();
        reactors.join().unwrap()
    };
    assert!(m[0].stats.peer_sends > 0 && m[1].stats.peer_sends > 0);
}

/// Starts one echo service per reactor, as `echo-server --reactors N`
/// does, and returns reactor 0's address.
fn echo_group(reactors: &Reactors, mode: AcceptMode) -> SocketAddr {
    echo_group_max(reactors, mode, None)
}

/// [`echo_group`] with `max_conns` for the whole group.
fn echo_group_max(reactors: &Reactors, mode: AcceptMode, max: Option<usize>) -> SocketAddr {
    let n = reactors.len();
    let mut handoff = Handoff::new(mode.placement(), n);
    if max.is_some() {
        handoff = handoff.with_slots(AcceptSlots::new(max));
    }
    let mut port = 0;
    let mut first = None;
    for i in 0..n {
        let config = EchoConfig {
            listen: ListenSpec::host_port("127.0.0.1", port)
                .reuse_port(mode == AcceptMode::ReusePort),
            group: Some(GroupAccept {
                handoff: handoff.clone(),
                listen: mode.listens(i),
            }),
            max_conns: max,
            ..EchoConfig::default()
        };
        let h = reactors.handle(i);
        let service = h.spawn(move || EchoService::new(config)).unwrap();
        if mode.listens(i) {
            let addr = h
                .request_wait(service, ServiceMsg::WhenReady, WAIT)
                .unwrap();
            port = addr.port();
            first.get_or_insert(addr);
        }
    }
    first.unwrap()
}

/// Live echo sessions on each reactor.
fn sessions(reactors: &Reactors) -> Vec<usize> {
    reactors
        .handles()
        .iter()
        .map(|h| h.stats().unwrap().live_actors as usize)
        .collect()
}

fn spread(mode: AcceptMode, conns: usize) -> Vec<usize> {
    let reactors = Reactors::start(2, Config::default(), |_| {}).unwrap();
    let addr = echo_group(&reactors, mode);
    let before = sessions(&reactors);
    let mut peers: Vec<Peer> = (0..conns).map(|_| Peer::connect(addr)).collect();
    for (i, p) in peers.iter_mut().enumerate() {
        assert_eq!(p.ask(&format!("hi {i}")), format!("You said: hi {i}"));
    }
    // Two actors per connection (socket and session), on one reactor.
    let after = sessions(&reactors);
    let per: Vec<usize> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| (a - b) / 2)
        .collect();
    drop(peers);
    reactors.shutdown();
    reactors.join().unwrap();
    per
}

#[test]
fn handoff_places_each_connection_on_the_least_loaded_reactor() {
    let per = spread(AcceptMode::Handoff, 40);
    assert_eq!(per.iter().sum::<usize>(), 40, "{per:?}");
    // Each connection is placed knowing the ones before it: an even split.
    assert!(per.iter().all(|&k| k.abs_diff(20) <= 1), "{per:?}");
}

#[test]
fn reuseport_listeners_each_take_connections() {
    let per = spread(AcceptMode::ReusePort, 40);
    assert_eq!(per.iter().sum::<usize>(), 40, "{per:?}");
    // The kernel's hash over 40 source ports: all on one listener has a
    // chance of 2^-39.
    assert!(per.iter().all(|&k| k > 0), "{per:?}");
}

/// Listens with SO_REUSEPORT and placement `Own`, issues no credit (so
/// connections wait in its queue), and stops when told.
struct Idler {
    handoff: Handoff,
    port: u16,
    listener: Option<Addr<Listener>>,
    ready: Option<Sender<SocketAddr>>,
}

enum IdlerMsg {
    Listener(ListenerEvent),
    Socket(#[allow(dead_code)] SocketEvent),
    Stop,
}
impl From<ListenerEvent> for IdlerMsg {
    fn from(e: ListenerEvent) -> Self {
        IdlerMsg::Listener(e)
    }
}
impl From<SocketEvent> for IdlerMsg {
    fn from(e: SocketEvent) -> Self {
        IdlerMsg::Socket(e)
    }
}

impl Actor for Idler {
    type Msg = IdlerMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let spec = ListenSpec::host_port("127.0.0.1", self.port).reuse_port(true);
        self.listener = Some(Listener::listen_handoff(
            ctx,
            spec,
            Default::default(),
            self.handoff.clone(),
        ));
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: IdlerMsg) {
        match msg {
            IdlerMsg::Listener(ListenerEvent::Ready(_, Ok(a))) => {
                if let Some(tx) = self.ready.take() {
                    let _ = tx.send(a);
                }
            }
            IdlerMsg::Stop => {
                if let Some(l) = self.listener.take() {
                    l.stop(ctx);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn a_stopping_reuseport_listener_hands_its_queue_to_the_other_reactors() {
    let reactors = Reactors::start(2, Config::default(), |_| {}).unwrap();
    let addr = echo_group(&reactors, AcceptMode::ReusePort);
    // Reactor 1 gets a second listener on the same port that never
    // accepts: whatever the kernel hashes to it waits in its queue.
    let handoff = Handoff::new(AcceptMode::ReusePort.placement(), 2);
    // Reactor 0's echo service is the only target besides the idler.
    let (tx, rx) = channel();
    let h1 = reactors.handle(1).clone();
    let port = addr.port();
    let hand = handoff.clone();
    let idler = h1
        .spawn(move || Idler {
            handoff: hand,
            port,
            listener: None,
            ready: Some(tx),
        })
        .unwrap();
    rx.recv_timeout(WAIT).unwrap();
    let h0 = reactors.handle(0).clone();
    let target = h0
        .spawn(move || {
            EchoService::new(EchoConfig {
                listen: ListenSpec::host_port("127.0.0.1", port).reuse_port(true),
                group: Some(GroupAccept {
                    handoff,
                    listen: false,
                }),
                ..EchoConfig::default()
            })
        })
        .unwrap();
    let _ = target;
    let mut peers: Vec<Peer> = (0..30).map(|_| Peer::connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(100));
    h1.send(idler, IdlerMsg::Stop);
    // Every connection is answered: those queued on the idler's listener
    // went to reactor 0's service instead of being reset.
    for (i, p) in peers.iter_mut().enumerate() {
        assert_eq!(p.ask(&format!("q {i}")), format!("You said: q {i}"));
    }
    reactors.shutdown();
    reactors.join().unwrap();
}

#[test]
fn binary_with_two_reactors_serves_both_modes_shows_each_reactor_and_exits_zero() {
    for mode in ["reuseport", "handoff"] {
        let mut server = ServerProc::start(
            BIN,
            &[
                "--reactors",
                "2",
                "--accept",
                mode,
                "--stats",
                "0.2",
                "--grace",
                "5",
            ],
        );
        let mut peers: Vec<Peer> = (0..8).map(|_| Peer::connect(server.addr())).collect();
        for (i, p) in peers.iter_mut().enumerate() {
            assert_eq!(
                p.ask(&format!("{mode} {i}")),
                format!("You said: {mode} {i}")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
        server.sigterm_settled();
        // The sessions still answer within the grace period.
        assert_eq!(peers[0].ask("still there"), "You said: still there");
        for mut p in peers {
            p.shutdown_write();
            p.expect_eof();
        }
        let (status, output) = server.finish(WAIT);
        assert_eq!(status.code(), Some(0), "{mode}: {output:?}");
        for r in ["r0", "r1"] {
            assert!(
                output.iter().any(|l| l.starts_with(&format!("stats {r} "))),
                "{mode}: no stats line for {r}: {output:?}"
            );
        }
        assert!(
            output.iter().any(|l| l.contains("reactor 1 exiting")),
            "{mode}: {output:?}"
        );
    }
}

#[test]
fn binary_refuses_a_bad_reactor_count_with_code_2() {
    for bad in ["0", "257", "many"] {
        let (status, output) =
            ServerProc::run_to_exit(BIN, &["--reactors", bad, "--port", "0"], WAIT);
        assert_eq!(status.code(), Some(2), "{bad}: {output:?}");
        assert!(
            output.iter().any(|l| l.contains("reactors")),
            "{bad}: {output:?}"
        );
    }
}

#[test]
fn both_modes_pass_over_a_reactor_kept_busy() {
    for mode in [AcceptMode::Handoff, AcceptMode::ReusePort] {
        let reactors = Reactors::start(2, Config::default(), |_| {}).unwrap();
        let addr = echo_group(&reactors, mode);
        let hog = reactors
            .handle(1)
            .spawn(|| Busy::new(Duration::from_millis(1)))
            .unwrap();
        // The busy share covers the last ~50 ms.
        std::thread::sleep(Duration::from_millis(200));
        let mut peers: Vec<Peer> = (0..20).map(|_| Peer::connect(addr)).collect();
        for (i, p) in peers.iter_mut().enumerate() {
            assert_eq!(p.ask(&format!("hi {i}")), format!("You said: hi {i}"));
        }
        let loads = reactors.handle(0).call(|core| core.loads(), WAIT).unwrap();
        assert_eq!(loads, vec![20, 0], "{mode:?}");
        reactors.handle(1).kill(hog.id());
        drop(peers);
        reactors.shutdown();
        reactors.join().unwrap();
    }
}

#[test]
fn max_conns_holds_for_the_whole_group_and_after_churn() {
    use std::io::Read;
    for mode in [AcceptMode::Handoff, AcceptMode::ReusePort] {
        let reactors = Reactors::start(2, Config::default(), |_| {}).unwrap();
        let addr = echo_group_max(&reactors, mode, Some(10));
        // Churn: connections come and go, on both reactors.
        for round in 0..20 {
            let mut p = Peer::connect(addr);
            assert_eq!(p.ask(&format!("c {round}")), format!("You said: c {round}"));
        }
        // Then 30 at once: 10 are served, 20 wait in the backlog.
        let mut socks: Vec<std::net::TcpStream> = (0..30)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        for s in socks.iter_mut() {
            use std::io::Write;
            s.write_all(b"x\n").unwrap();
            s.set_nonblocking(true).unwrap();
        }
        // After a while for replies to come: the sockets that have one.
        let answered = |socks: &mut [std::net::TcpStream]| -> Vec<usize> {
            std::thread::sleep(Duration::from_millis(400));
            let mut out = Vec::new();
            for (i, s) in socks.iter_mut().enumerate() {
                let mut buf = [0u8; 64];
                if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                    out.push(i);
                }
            }
            out
        };
        let served = answered(&mut socks);
        assert_eq!(
            served.len(),
            10,
            "{mode:?}: served {served:?} with a limit of 10"
        );
        // One served leaves: one of those waiting is served.
        drop(socks.remove(served[0]));
        let more = answered(&mut socks);
        assert_eq!(more.len(), 1, "{mode:?}: {more:?} served after one left");
        drop(socks);
        reactors.shutdown();
        reactors.join().unwrap();
    }
}

/// Connects out to an address nothing answers on, and reports the close.
struct Dialer(Sender<()>);

impl Actor for Dialer {
    type Msg = SocketEvent;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        // The broadcast address: the connect fails at once (no
        // `SO_BROADCAST`), before any address was registered.
        Socket::connect(ctx, "255.255.255.255", 1);
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: SocketEvent) {
        if let SocketEvent::Closed(..) = msg {
            let _ = self.0.send(());
            ctx.stop();
        }
    }
}

#[test]
fn a_failed_outgoing_connect_leaves_the_reactors_loads_alone() {
    let reactors = Reactors::start(2, Config::default(), |_| {}).unwrap();
    let addr = echo_group(&reactors, AcceptMode::Handoff);
    let mut peers: Vec<Peer> = (0..4).map(|_| Peer::connect(addr)).collect();
    for (i, p) in peers.iter_mut().enumerate() {
        assert_eq!(p.ask(&format!("hi {i}")), format!("You said: hi {i}"));
    }
    let before = reactors.handle(0).call(|core| core.loads(), WAIT).unwrap();
    assert_eq!(before.iter().sum::<usize>(), 4, "{before:?}");
    let (tx, rx) = channel();
    for r in 0..2 {
        for _ in 0..3 {
            let tx = tx.clone();
            reactors.handle(r).spawn(move || Dialer(tx)).unwrap();
        }
    }
    for _ in 0..6 {
        rx.recv_timeout(WAIT)
            .expect("each connect fails and is told");
    }
    let after = reactors.handle(0).call(|core| core.loads(), WAIT).unwrap();
    assert_eq!(before, after, "the failed connects changed the loads");
    drop(peers);
    reactors.shutdown();
    reactors.join().unwrap();
}
