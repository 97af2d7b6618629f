//! Under load and abuse: a flooding user does not starve another, and the
//! server's memory stays bounded while users who never read are dropped.

use std::sync::mpsc::channel;
use std::time::Duration;

use credit_chat::ChatConfig;
use credit_testkit::{recv, CountingAlloc};

use crate::support::{Server, User};

#[test]
fn a_user_gets_at_most_its_window_of_lines_handled_per_reactor_turn() {
    let server = Server::start();
    let (mut flood, _) = server.join();
    let (mut watcher, _) = server.join();
    flood.expect(&["user2 arrived"]);
    const LINES: usize = 300;
    let turns = || server.handle.stats().unwrap().turns;
    let before = turns();
    let batch: String = (0..LINES).map(|i| format!("l{i}\n")).collect();
    flood.peer.write(batch.as_bytes());
    for i in 0..LINES {
        assert_eq!(watcher.line(), format!("user1 says 'l{i}'"));
    }
    // Every turn the reactor polls, so whoever else has a line waiting is
    // served beside the flooder: the flooder gets at most its window of
    // lines handled per turn.
    let took = turns() - before;
    let window = u64::from(credit_chat::room::DEFAULT_WINDOW);
    assert!(
        took >= LINES as u64 / window,
        "{LINES} lines from one user in {took} turns"
    );
}

#[test]
fn a_flooding_user_does_not_starve_another() {
    let server = Server::start();
    let (mut flood, _) = server.join();
    let (mut other, _) = server.join();
    let (mut watcher, _) = server.join();
    flood.expect(&["user2 arrived", "user3 arrived"]);
    other.expect(&["user3 arrived"]);
    const FLOOD: usize = 20_000;
    let batch: String = (0..FLOOD).map(|i| format!("flood {i}\n")).collect();
    let writer = flood.peer.writer.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        (&writer).write_all(batch.as_bytes()).unwrap();
    });
    assert_eq!(watcher.line(), "user1 says 'flood 0'");
    other.say("me too");
    let mut before = 0;
    loop {
        let l = watcher.line();
        if l == "user2 says 'me too'" {
            break;
        }
        assert!(l.starts_with("user1 says 'flood "), "{l}");
        before += 1;
    }
    // The flooder is paced (1,000 lines a second, bursts of the window)
    // and handled a window at a time: the other line overtakes nearly all
    // of the flood.
    assert!(
        before < 200,
        "the other user waited behind {before} flood lines"
    );
    t.join().unwrap();
    drop((flood, other));
}

#[test]
fn a_flooder_is_paced_and_a_reader_keeps_up_without_being_dropped() {
    const RATE: u32 = 200;
    let server = Server::start_config(ChatConfig {
        rate: Some(RATE),
        ..ChatConfig::default()
    });
    let (mut flood, _) = server.join();
    let (mut watcher, _) = server.join();
    flood.expect(&["user2 arrived"]);
    // The flooder writes kilobyte lines as fast as its socket takes them,
    // and reads what comes back.
    let line = format!("{}\n", "f".repeat(1000));
    let writer = flood.peer.writer.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if (&writer).write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        })
    };
    let drain = std::thread::spawn(move || while let Ok(Some(_)) = flood.peer.try_read_line() {});
    let start = std::time::Instant::now();
    let mut got = 0u64;
    while start.elapsed() < Duration::from_millis(1500) {
        let l = watcher.line();
        assert!(l.starts_with("user1 says 'fff"), "{l}");
        got += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let window = u64::from(credit_chat::room::DEFAULT_WINDOW);
    let most = (f64::from(RATE) * secs) as u64 + 2 * window + 10;
    assert!(got <= most, "{got} lines in {secs:.2}s at {RATE}/s");
    assert!(got >= u64::from(RATE), "only {got} lines in {secs:.2}s");
    // The watcher is still there.
    assert!(server.users().iter().any(|(n, _)| n == "user2"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(watcher);
    drop(server);
    let _ = t.join();
    let _ = drain.join();
}

/// Live heap bytes on the reactor's thread.
fn live(server: &Server) -> i64 {
    let (tx, rx) = channel();
    assert!(server.handle.post(move |core| {
        core.trim_idle();
        let _ = tx.send(CountingAlloc::thread_live());
    }));
    recv(&rx)
}

#[test]
fn users_who_never_read_are_dropped_and_memory_stays_bounded() {
    const USERS: usize = 40;
    const SLOW: usize = 4;
    const BACKLOG: usize = 64 * 1024;
    let mut config = ChatConfig::default();
    config.conn.max_backlog = Some(BACKLOG);
    let server = Server::start_config(config);
    let base = live(&server);
    let mut users: Vec<User> = (0..USERS).map(|_| server.join().0).collect();
    // Everyone reads the arrivals after their own.
    for (i, u) in users.iter_mut().enumerate() {
        for j in i + 1..USERS {
            assert_eq!(u.line(), format!("user{} arrived", j + 1));
        }
    }
    let slow: Vec<User> = users.drain(..SLOW).collect();
    for u in &slow {
        // A small receive window, so the kernel holds little for them and
        // their backlog builds up on the server.
        socket2::SockRef::from(&u.peer.writer)
            .set_recv_buffer_size(4096)
            .unwrap();
    }
    // The others chat, reading everything; the slow ones read nothing,
    // until all of them are dropped as too slow.
    let line = "z".repeat(2000);
    let mut peak = 0;
    let mut left = 0;
    for round in 0.. {
        assert!(
            round < 20_000,
            "the users who never read were not all dropped"
        );
        let n = users.len();
        users[round % n].say(&line);
        for u in users.iter_mut() {
            loop {
                let l = u.line();
                if l.contains(" left (too slow)") {
                    continue;
                }
                assert!(l.ends_with(&format!(" says '{line}'")), "{l}");
                break;
            }
        }
        if round % 50 == 0 {
            peak = peak.max(live(&server) - base);
            left = USERS - server.users().len();
            if left == SLOW {
                break;
            }
        }
    }
    assert_eq!(left, SLOW, "the users who never read were not all dropped");
    // What the slow users could hold (their backlogs) plus what every
    // connection costs, with room to spare; a leak would grow with rounds.
    let bound = (SLOW * BACKLOG * 2 + USERS * 16 * 1024) as i64;
    assert!(peak < bound, "heap grew to {peak} B (bound {bound} B)");
    drop(slow);
    std::thread::sleep(Duration::from_millis(10));
}
