//! The buffer memory budget: its accounting, parking above the high mark
//! and waking below the low mark, and closing the largest holder at the
//! limit. Counts and states, never timings.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use credit_actors::net::{
    self, BufferMemory, CloseReason, Delimiter, ListenSpec, Listener, ListenerEvent, Socket,
    SocketConfig, SocketEvent,
};
use credit_actors::Addr;
use credit_testkit::{wait_until, Event, ProbeHandle, TestReactor, WAIT};

/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// A probe listening on 127.0.0.1:0 with a buffer limit of `limit` bytes.
fn rig(limit: usize) -> (TestReactor, ProbeHandle, SocketAddr) {
    let rig = TestReactor::start();
    let probe = ProbeHandle::spawn(&rig.handle);
    probe.with(move |ctx| net::set_buffer_limit(ctx.core(), Some(limit)));
    probe.with(|ctx| {
        let l = Listener::listen_with(
            ctx,
            ListenSpec::host_port("127.0.0.1", 0),
            SocketConfig::default(),
        );
        l.issue_credit(ctx, 100);
    });
    let addr = probe.wait_for("Ready", WAIT, |log| {
        log.iter().find_map(|e| match e {
            Event::Listener(ListenerEvent::Ready(_, Ok(a))) => Some(*a),
            _ => None,
        })
    });
    (rig, probe, addr)
}

/// A peer that never reads, with a small receive buffer (what the server
/// sends it stays in the server), and its socket, in line mode with
/// credit.
fn silent_peer(probe: &ProbeHandle, addr: SocketAddr) -> (TcpStream, Addr<Socket>) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let n = probe.accepted().len();
    s.connect_timeout(&addr.into(), WAIT).unwrap();
    let peer: TcpStream = s.into();
    peer.set_write_timeout(Some(WAIT)).unwrap();
    let sock = probe.wait_for("accepted", WAIT, |log| {
        log.iter()
            .filter_map(|e| match e {
                Event::Listener(ListenerEvent::Accepted(_, s, _)) => Some(*s),
                _ => None,
            })
            .nth(n)
    });
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.issue_credit(ctx, 1000);
    });
    (peer, sock)
}

fn memory(probe: &ProbeHandle) -> BufferMemory {
    probe.with(|ctx| net::buffer_memory(ctx.core()))
}

/// The sum of the sockets' own figures, once every socket can be looked
/// at (none has mail waiting), and the budget's total for the sockets.
fn recount(probe: &ProbeHandle, socks: &[Addr<Socket>]) -> (usize, usize) {
    let socks = socks.to_vec();
    let mut last = None;
    for _ in 0..100 {
        let socks = socks.clone();
        let r = probe.with(move |ctx| {
            let mut sum = 0;
            for s in &socks {
                // A socket that ended holds nothing.
                if !ctx.core().is_alive(s.id()) {
                    continue;
                }
                sum += s.buffered(ctx)?;
            }
            Some((sum, net::buffer_memory(ctx.core()).sockets))
        });
        if let Some(r) = r {
            return r;
        }
        last = r;
        std::thread::sleep(Duration::from_millis(5));
    }
    last.expect("the sockets never settled")
}

fn closed_reason(probe: &ProbeHandle, sock: Addr<Socket>) -> Option<CloseReason> {
    probe.peek(|log| {
        log.iter().find_map(|e| match e {
            Event::Socket(SocketEvent::Closed(s, r)) if *s == sock => Some(r.clone()),
            _ => None,
        })
    })
}

/// Pushes 64 KiB chunks to `sock` until `done` says so (bounded).
fn push_until(probe: &ProbeHandle, sock: Addr<Socket>, mut done: impl FnMut() -> bool) {
    let chunk = Bytes::from(vec![b'o'; 64 * 1024]);
    for _ in 0..2000 {
        if done() {
            return;
        }
        let c = chunk.clone();
        probe.with(move |ctx| sock.send(ctx, c));
    }
    panic!("pushing never got there");
}

#[test]
fn the_accounted_total_is_the_sum_of_the_buffers_after_every_step() {
    let (_rig, probe, addr) = rig(64 << 20);
    let (mut a, sa) = silent_peer(&probe, addr);
    let (mut b, sb) = silent_peer(&probe, addr);
    let socks = [sa, sb];
    let step = |what: &str| {
        let (sum, accounted) = recount(&probe, &socks);
        assert_eq!(sum, accounted, "after {what}");
        sum
    };
    assert_eq!(step("accepting"), 0);

    // Whole lines: read, cut, delivered; the buffers go back.
    a.write_all(b"one\ntwo\n").unwrap();
    probe.wait_data_count(2);
    assert_eq!(step("whole lines"), 0);

    // A partial line keeps a read buffer.
    b.write_all(b"half a li").unwrap();
    wait_until("partial held", WAIT, || recount(&probe, &socks).0 > 0);
    let partial = step("a partial line");
    assert!(partial >= 9);

    // Output the peer does not read stays queued.
    push_until(&probe, sa, || {
        probe
            .with(move |ctx| sa.buffered(ctx))
            .is_some_and(|b| b > 256 * 1024)
    });
    let queued = step("queued output");
    assert!(queued > partial + 256 * 1024);

    // The line completes: the partial buffer goes back.
    b.write_all(b"ne\n").unwrap();
    probe.wait_data_count(3);
    let after = step("the line completed");
    assert!(after < queued);

    // A connection that ends holds nothing.
    drop(a);
    probe.with(move |ctx| sa.stop(ctx));
    wait_until("a gone", WAIT, || {
        probe.with(move |ctx| !ctx.core().is_alive(sa.id()))
    });
    step("a connection ended");
    let m = memory(&probe);
    assert_eq!(m.total, m.sockets + m.pools);
    assert!(m.peak >= queued);
    drop(b);
}

#[test]
fn reading_stops_above_the_high_mark_and_resumes_below_the_low_mark() {
    // High mark 512 KiB, low 256 KiB.
    let (_rig, probe, addr) = rig(1 << 20);
    let (a, sa) = silent_peer(&probe, addr);
    let (mut b, sb) = silent_peer(&probe, addr);
    // Both peers leave output unread until the budget is pressed; b's
    // share is small, a's large.
    push_until(&probe, sb, || {
        probe
            .with(move |ctx| sb.buffered(ctx))
            .is_some_and(|n| n > 192 * 1024)
    });
    push_until(&probe, sa, || memory(&probe).pressed);
    let m = memory(&probe);
    assert!(m.total > 512 * 1024 && m.high_events == 1, "{m:?}");

    // b holds unsent output: it stops reading, and its lines wait in the
    // kernel. The listener stops accepting: a newcomer waits in the
    // backlog.
    let before = probe.data_count();
    b.write_all(b"1\n2\n3\n").unwrap();
    let accepted = probe.accepted().len();
    let newcomer = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), before, "read while over the high mark");
    assert_eq!(
        probe.accepted().len(),
        accepted,
        "accepted while over the high mark"
    );
    assert!(memory(&probe).parked >= 2, "{:?}", memory(&probe));

    // a goes: the total falls under the low mark, and b reads again (its
    // own output still unread).
    drop(a);
    probe.with(move |ctx| sa.stop(ctx));
    wait_until("a gone", WAIT, || {
        probe.with(move |ctx| !ctx.core().is_alive(sa.id()))
    });
    probe.wait_data_count(before + 3);
    let m = memory(&probe);
    assert!(!m.pressed && m.total < 256 * 1024, "{m:?}");
    assert!(closed_reason(&probe, sb).is_none());
    // The newcomer is accepted now.
    wait_until("the newcomer accepted", WAIT, || {
        probe.accepted().len() > accepted
    });
    drop((b, newcomer));
}

#[test]
fn at_the_limit_the_connection_holding_the_most_is_closed() {
    let (_rig, probe, addr) = rig(1 << 20);
    let (big, sbig) = silent_peer(&probe, addr);
    let (small, ssmall) = silent_peer(&probe, addr);
    // The big one holds over half the limit, then the small one grows
    // until the limit is reached.
    push_until(&probe, sbig, || {
        probe
            .with(move |ctx| sbig.buffered(ctx))
            .is_some_and(|n| n > 600 * 1024)
    });
    push_until(&probe, ssmall, || closed_reason(&probe, sbig).is_some());
    assert_eq!(closed_reason(&probe, sbig), Some(CloseReason::Overload));
    std::thread::sleep(QUIET);
    assert_eq!(
        closed_reason(&probe, ssmall),
        None,
        "the smaller one closed"
    );
    let m = memory(&probe);
    assert_eq!(m.overload_closes, 1, "{m:?}");
    assert!(m.total < 1 << 20, "{m:?}");
    drop((big, small));
}

#[test]
fn a_shared_buffer_is_not_charged_to_each_socket_that_holds_it() {
    let (_rig, probe, addr) = rig(64 << 20);
    let (a, sa) = silent_peer(&probe, addr);
    let (b, sb) = silent_peer(&probe, addr);
    // Fill both peers' kernel buffers, so what follows stays queued.
    for s in [sa, sb] {
        push_until(&probe, s, || {
            probe
                .with(move |ctx| s.buffered(ctx))
                .is_some_and(|n| n > 128 * 1024)
        });
    }
    let (before, accounted) = recount(&probe, &[sa, sb]);
    assert_eq!(before, accounted);
    // One 512 KiB buffer sent to both, as a broadcast: not charged.
    let shared = Bytes::from(vec![b's'; 512 * 1024]);
    let s2 = shared.clone();
    probe.with(move |ctx| {
        sa.send_shared(ctx, s2.clone());
        sb.send_shared(ctx, s2);
    });
    let (after_shared, accounted) = recount(&probe, &[sa, sb]);
    assert_eq!(after_shared, accounted);
    assert!(
        after_shared < before + 64 * 1024,
        "shared pieces charged: {before} -> {after_shared}"
    );
    // The same buffer as a plain send is charged.
    probe.with(move |ctx| sa.send(ctx, shared));
    let (after_plain, accounted) = recount(&probe, &[sa, sb]);
    assert_eq!(after_plain, accounted);
    assert!(
        after_plain >= after_shared + 512 * 1024,
        "a plain send not charged: {after_shared} -> {after_plain}"
    );
    drop((a, b));
}

#[test]
fn pressed_for_five_seconds_the_largest_holders_close_and_accepting_resumes() {
    // High mark 512 KiB, low 256 KiB: three peers that never read hold
    // about 200 KiB each, over the high mark and under the limit, and
    // then nothing moves.
    let (_rig, probe, addr) = rig(1 << 20);
    let peers: Vec<_> = (0..3).map(|_| silent_peer(&probe, addr)).collect();
    for &(_, s) in &peers {
        push_until(&probe, s, || {
            probe
                .with(move |ctx| s.buffered(ctx))
                .is_some_and(|n| n > 200 * 1024)
        });
    }
    let m = memory(&probe);
    assert!(m.pressed && m.total < 1 << 20, "{m:?}");
    let accepted = probe.accepted().len();
    let newcomer = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    std::thread::sleep(QUIET);
    assert_eq!(probe.accepted().len(), accepted, "accepted while pressed");
    // Within the relief period (5 s, looked at once a second), the
    // largest holders close until the total is under the low mark, and
    // the newcomer gets in.
    wait_until("the newcomer accepted", Duration::from_secs(10), || {
        probe.accepted().len() > accepted
    });
    let m = memory(&probe);
    assert!(!m.pressed && m.total < 256 * 1024, "{m:?}");
    let closed = peers
        .iter()
        .filter(|&&(_, s)| closed_reason(&probe, s) == Some(CloseReason::Overload))
        .count();
    assert!(closed >= 2, "{closed} holders closed: {m:?}");
    drop((peers, newcomer));
}
