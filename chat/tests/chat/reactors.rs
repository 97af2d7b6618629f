//! The chat server on two reactors: users on both, one room order, slow
//! users dropped, memory bounded, SIGTERM.

use std::time::Duration;

use credit_testkit::{Peer, ServerProc, WAIT};

use crate::support::{flood_until_dropped, join_at, User, BIN};

/// Connects a user and reads its welcome.
fn join(server: &ServerProc) -> User {
    join_at(server.addr()).0
}

/// Reads lines until `n` `says` lines, skipping arrivals.
fn says(user: &mut User, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let l = user.line();
        if l.contains(" says ") {
            out.push(l);
        } else {
            assert!(l.ends_with(" arrived"), "{}: unexpected {l:?}", user.name);
        }
    }
    out
}

#[test]
fn users_on_both_reactors_see_one_room_order() {
    for mode in ["handoff", "reuseport"] {
        let mut server = ServerProc::start(BIN, &["--reactors", "2", "--accept", mode]);
        let mut users: Vec<User> = (0..4).map(|_| join(&server)).collect();
        // Each user sends 50 lines, interleaved with the others.
        for k in 0..50 {
            for u in users.iter_mut() {
                let text = format!("{} line {k}", u.name);
                u.say(&text);
            }
        }
        let seen: Vec<Vec<String>> = users.iter_mut().map(|u| says(u, 200)).collect();
        for (u, s) in users.iter().zip(&seen) {
            assert_eq!(s, &seen[0], "{mode}: {} saw another order", u.name);
        }
        // Each sender's own lines in its send order.
        for u in &users {
            let mine: Vec<&String> = seen[0]
                .iter()
                .filter(|l| l.starts_with(&format!("{} says", u.name)))
                .collect();
            assert_eq!(mine.len(), 50, "{mode}");
            for (k, l) in mine.iter().enumerate() {
                assert!(l.ends_with(&format!("line {k}'")), "{mode}: {l}");
            }
        }
        // `/who` lists everyone, whichever reactor they are on.
        users[3].say("/who");
        let who = users[3].line();
        for u in &users {
            assert!(who.contains(&u.name), "{mode}: {who}");
        }
        server.sigterm_settled();
        for u in users.iter_mut() {
            assert_eq!(u.line(), "server shutting down", "{mode}");
            u.peer.expect_eof();
        }
        let (status, output) = server.finish(WAIT);
        assert_eq!(status.code(), Some(0), "{mode}: {output:?}");
    }
}

#[test]
fn a_slow_user_on_the_other_reactor_is_dropped_and_memory_stays_bounded() {
    let server = ServerProc::start(
        BIN,
        &[
            "--reactors",
            "2",
            "--accept",
            "handoff",
            "--max-backlog",
            "16384",
            "--max-rate",
            "0",
        ],
    );
    // Handoff alternates: user1 and user3 on one reactor, user2 on the other.
    let mut a = join(&server);
    let slow = join(&server);
    let mut c = join(&server);
    a.expect(&["user2 arrived", "user3 arrived"]);
    let mut rss_max = 0;
    flood_until_dropped(&mut a, &mut c, &slow.name, |sent| {
        if sent % 100 == 0 {
            rss_max = rss_max.max(server.status_kb("VmRSS"));
        }
    });
    a.say("after");
    c.expect(&["user1 says 'after'"]);
    // The slow user's backlog is 16 KiB; whatever its kernel buffers and
    // the lanes held, the server stays small.
    assert!(rss_max < 64 * 1024, "RSS reached {rss_max} KiB");
    drop(slow);
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn at_sigterm_every_user_on_every_reactor_hears_the_room_last() {
    use std::io::Read;
    // More users per reactor than a run's budget of messages, so that an
    // order resting on one run per batch would show.
    const USERS: usize = 300;
    let mut server = ServerProc::start(BIN, &["--reactors", "2", "--accept", "handoff"]);
    let mut socks: Vec<std::net::TcpStream> = (0..USERS)
        .map(|_| std::net::TcpStream::connect(server.addr()).unwrap())
        .collect();
    // Everyone has joined once the last one has its welcome.
    let mut last = Peer::connect(server.addr());
    assert!(last.read_line().starts_with("you are"));
    server.sigterm_settled();
    for (i, s) in socks.iter_mut().enumerate() {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert!(
            all.ends_with("server shutting down\n"),
            "user {i} heard: {:?}",
            &all[all.len().saturating_sub(80)..]
        );
    }
    let (status, output) = server.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{output:?}");
}

#[test]
fn max_users_holds_for_the_whole_group() {
    use std::io::Read;
    for mode in ["handoff", "reuseport"] {
        let server = ServerProc::start(
            BIN,
            &["--reactors", "2", "--accept", mode, "--max-users", "4"],
        );
        // Churn first: users come and go on both reactors.
        for _ in 0..10 {
            let u = join(&server);
            drop(u);
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut socks: Vec<std::net::TcpStream> = (0..8)
            .map(|_| {
                let s = std::net::TcpStream::connect(server.addr()).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        // The sockets whose first bytes so far are a welcome.
        let welcomed = |socks: &mut [std::net::TcpStream]| -> Vec<usize> {
            std::thread::sleep(Duration::from_millis(400));
            let mut out = Vec::new();
            for (i, s) in socks.iter_mut().enumerate() {
                let mut buf = [0u8; 4096];
                if let Ok(n) = s.read(&mut buf) {
                    if buf[..n].starts_with(b"you are") {
                        out.push(i);
                    }
                }
            }
            out
        };
        let first = welcomed(&mut socks);
        assert_eq!(
            first.len(),
            4,
            "{mode}: welcomed {first:?} with a limit of 4"
        );
        drop(socks.remove(first[0]));
        let next = welcomed(&mut socks);
        assert_eq!(next.len(), 1, "{mode}: {next:?} welcomed after one left");
    }
}
