//! One room across chat-servers (`--redis`): the chat-server binary,
//! several of them, and a real `redis-server` the test starts on loopback
//! (skipped, saying so, when it is missing). Every user sees every line in
//! one order, the roster and names span the servers, and Redis going away,
//! a server killed and a Redis that stops reading are each told as users
//! should hear them.

use std::collections::BTreeSet;
use std::process::Command;

use credit_chat::room::{ROOM_BACK, ROOM_UNAVAILABLE};
use credit_testkit::{Peer, ServerProc};

use crate::support::{join_at, RedisServer, Server, User, BIN};

/// A chat-server sharing the room through `redis`, as `name`, with a
/// roster TTL of 1 s unless `extra` sets one.
fn server(redis: &RedisServer, name: &str, extra: &[&str]) -> ServerProc {
    let spec = format!("127.0.0.1:{}", redis.port);
    let mut args = vec!["--redis", &spec, "--server-name", name];
    if !extra.contains(&"--roster-ttl") {
        args.extend(["--roster-ttl", "1"]);
    }
    args.extend_from_slice(extra);
    ServerProc::start(BIN, &args)
}

/// Servers `a` and `b` sharing the room through `redis`, each with `extra`.
fn two(redis: &RedisServer, extra: &[&str]) -> (ServerProc, ServerProc) {
    (server(redis, "a", extra), server(redis, "b", extra))
}

/// Users joining the servers at `addrs` in turn; each earlier user hears
/// each later one arrive.
fn users_at(addrs: &[std::net::SocketAddr]) -> Vec<User> {
    let mut users: Vec<User> = Vec::new();
    for &addr in addrs {
        let (u, present) = join_at(addr);
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(present, credit_chat::protocol::present(names));
        for earlier in &mut users {
            earlier.expect(&[&format!("{} arrived", u.name)]);
        }
        users.push(u);
    }
    users
}

fn kill(server: &ServerProc, sig: &str) {
    let pid = server.pid().to_string();
    assert!(Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success());
}

#[test]
fn every_user_on_every_server_sees_every_line_in_one_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two(&redis, &[]);
    let mut users = users_at(&[a.addr(), b.addr(), a.addr(), b.addr()]);
    const ROUNDS: usize = 25;
    for round in 0..ROUNDS {
        for u in &mut users {
            let line = format!("{} line {round}", u.name);
            u.say(&line);
        }
    }
    let total = ROUNDS * users.len();
    let seen: Vec<Vec<String>> = users
        .iter_mut()
        .map(|u| (0..total).map(|_| u.line()).collect())
        .collect();
    for (u, s) in users.iter().zip(&seen).skip(1) {
        assert_eq!(s, &seen[0], "{} saw another order", u.name);
    }
    for u in &users {
        let mine: Vec<&String> = seen[0]
            .iter()
            .filter(|l| l.starts_with(&format!("{} says", u.name)))
            .collect();
        let want: Vec<String> = (0..ROUNDS)
            .map(|r| format!("{0} says '{0} line {r}'", u.name))
            .collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "{}'s lines", u.name);
    }
}

#[test]
fn present_and_who_list_the_users_of_every_server() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two(&redis, &[]);
    // `users_at` checks each newcomer's `present:` line.
    let mut users = users_at(&[a.addr(), b.addr(), b.addr()]);
    let all = credit_chat::protocol::present(users.iter().map(|u| u.name.as_str()));
    for u in &mut users {
        u.say("/who");
        u.expect(&[&all]);
    }
}

#[test]
fn a_nick_race_between_two_servers_has_exactly_one_winner() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two(&redis, &[]);
    let mut users = users_at(&[a.addr(), b.addr()]);
    for round in 0..5 {
        let want = format!("zed{round}");
        for u in &mut users {
            u.say(&format!("/nick {want}"));
        }
        let taken = format!("error: the name {want} is taken");
        let renamed = |old: &str| format!("{old} is now known as {want}");
        let mut renames = BTreeSet::new();
        let mut losers = Vec::new();
        for (i, u) in users.iter_mut().enumerate() {
            // The winner hears its rename; the loser the rename and its
            // error, in either order.
            let first = u.line();
            if first == taken {
                losers.push(i);
                renames.insert(u.line());
            } else if first == renamed(&u.name) {
                renames.insert(first);
            } else {
                renames.insert(first);
                u.expect(&[&taken]);
                losers.push(i);
            }
        }
        assert_eq!(losers.len(), 1, "exactly one loser");
        let winner = 1 - losers[0];
        let want_rename = BTreeSet::from([renamed(&users[winner].name)]);
        assert_eq!(renames, want_rename, "one rename, seen by all");
        users[winner].name = want.clone();
        // Nothing else is pending: each hears only its own /who answer.
        let all = credit_chat::protocol::present(users.iter().map(|u| u.name.as_str()));
        for u in &mut users {
            u.say("/who");
            u.expect(&[&all]);
        }
    }
}

#[test]
fn redis_going_away_is_told_lines_are_refused_and_chat_resumes() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two(&redis, &[]);
    let mut users = users_at(&[a.addr(), b.addr()]);
    redis.kill();
    for u in &mut users {
        u.expect(&[ROOM_UNAVAILABLE]);
    }
    users[0].say("into the void");
    users[0].expect(&["error: room unavailable"]);
    users[1].say("/who");
    users[1].expect(&["error: room unavailable"]);
    // A newcomer meanwhile waits, told why.
    let mut newcomer = Peer::connect(a.addr());
    assert_eq!(newcomer.read_line(), ROOM_UNAVAILABLE);
    redis.restart();
    for u in &mut users {
        u.expect(&[ROOM_BACK]);
        assert!(u.line().starts_with("present:"));
    }
    // Said as soon as the room is back, while the servers are registering
    // their users again: refused by no one.
    users[1].say("right away");
    assert_eq!(newcomer.read_line(), ROOM_BACK);
    let you = newcomer.read_line();
    let name = you.strip_prefix("you are ").expect("you are").to_string();
    assert!(newcomer.read_line().starts_with("present:"));
    // The restarted Redis had lost the roster: the servers registered
    // their users again, announced as arrivals (those in another server's
    // snapshot already are not announced to its users). A name taken
    // meanwhile (by the newcomer) is replaced, and its user told.
    users[0].say("back again");
    let mut names: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
    names.push(name);
    let mut peers = users.iter_mut().map(|u| &mut u.peer).collect::<Vec<_>>();
    peers.push(&mut newcomer);
    for (i, peer) in peers.into_iter().enumerate() {
        // The newcomer may have entered after it.
        let (mut back, mut right_away) = (false, i == 2);
        while !(back && right_away) {
            let line = peer.read_line();
            if let Some(said) = line.strip_suffix(" says 'back again'") {
                assert_eq!(said, names[0]);
                back = true;
            } else if line.ends_with(" says 'right away'") {
                right_away = true;
            } else if let Some(new) = line.strip_prefix("you are ") {
                names[i] = new.to_string();
            } else {
                assert!(line.ends_with(" arrived"), "{line}");
            }
        }
    }
    users[1].say("/who");
    let who = users[1].line();
    let listed: BTreeSet<&str> = who
        .strip_prefix("present: ")
        .expect("present:")
        .split(' ')
        .collect();
    assert_eq!(listed, names.iter().map(String::as_str).collect());
}

#[test]
fn a_killed_servers_users_are_announced_left_by_the_others() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two(&redis, &[]);
    let mut users = users_at(&[a.addr(), b.addr(), b.addr()]);
    kill(&b, "-KILL");
    // Within the roster's TTL (1 s) and a refresh (a third of it), well
    // inside the read's wait.
    let mut left: BTreeSet<String> = BTreeSet::new();
    left.insert(users[0].line());
    left.insert(users[0].line());
    let want: BTreeSet<String> = users[1..]
        .iter()
        .map(|u| format!("{} left (server lost)", u.name))
        .collect();
    assert_eq!(left, want);
    users[0].say("/who");
    let alone = format!("present: {}", users[0].name);
    users[0].expect(&[&alone]);
}

#[test]
fn a_server_stopping_announces_its_users_left_at_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // A long TTL: the announcement cannot be the reaper's.
    let (a, b) = two(&redis, &["--roster-ttl", "60"]);
    let mut users = users_at(&[a.addr(), b.addr()]);
    b.sigterm();
    users[1].expect(&[credit_chat::protocol::SHUTTING_DOWN]);
    let name = users[1].name.clone();
    users[0].expect(&[&format!("{name} left")]);
}

#[test]
fn past_the_publish_budget_senders_are_told_the_room_is_busy() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Room for two 1,000-byte lines on their way, not three.
    let a = server(
        &redis,
        "a",
        &["--max-line", "1024", "--publish-budget", "2500"],
    );
    let mut users = users_at(&[a.addr(), a.addr(), a.addr()]);
    // Redis stops reading: the lines stay on their way.
    redis.signal("-STOP");
    let long = "x".repeat(1000);
    users[0].say(&long);
    users[1].say(&long);
    std::thread::sleep(std::time::Duration::from_millis(200));
    users[2].say(&long);
    users[2].expect(&["error: room busy"]);
    redis.signal("-CONT");
    // The two taken lines arrive, in the order they were sent.
    let first = format!("{} says '{long}'", users[0].name);
    let second = format!("{} says '{long}'", users[1].name);
    for u in &mut users {
        u.expect(&[&first, &second]);
    }
}

#[test]
fn a_users_own_line_comes_back_before_what_its_next_line_is_told() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two(&redis, &[]);
    let mut users = users_at(&[a.addr(), b.addr()]);
    let name = users[0].name.clone();
    let present = credit_chat::protocol::present(users.iter().map(|u| u.name.as_str()));
    for i in 0..100 {
        // Sent together: the second waits for the first's event.
        users[0].say(&format!("line {i}"));
        users[0].say("/who");
        users[0].expect(&[&format!("{name} says 'line {i}'"), &present]);
        users[1].expect(&[&format!("{name} says 'line {i}'")]);
    }
    users[0].say("/nick taken");
    users[0].say("/nick taken");
    users[0].expect(&[
        &format!("{name} is now known as taken"),
        "error: you are already taken",
    ]);
}

#[test]
fn events_that_do_not_hold_to_the_protocol_are_not_told() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = server(&redis, "a", &["--max-line", "100"]);
    let mut users = users_at(&[a.addr(), a.addr()]);
    let owner = redis.cli(&["HGET", "chat:names", &users[0].name]);
    assert!(owner.contains(' '), "owner {owner:?}");
    for forged in [
        format!("says {owner} red \u{1b}[31m alert"),
        format!("says {owner} two\nlines"),
        format!("says {owner} {}", "y".repeat(1000)),
        format!("arrived {owner} two words"),
        format!("nick {owner} {} x!y", users[0].name),
        "says nobody".to_string(),
        "\u{ff}\u{fe}".to_string(),
    ] {
        assert_eq!(redis.cli(&["PUBLISH", "chat:events", &forged]), "1");
    }
    users[1].say("still here");
    let line = format!("{} says 'still here'", users[1].name);
    for u in &mut users {
        u.expect(&[&line]);
    }
}

#[test]
fn a_newcomer_whose_registration_fails_is_registered_at_the_next_refresh() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = server(&redis, "a", &[]);
    let mut users = users_at(&[a.addr()]);
    // Redis refuses writes for a while: the newcomer's JOIN fails.
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let mut newcomer = Peer::connect(a.addr());
    std::thread::sleep(std::time::Duration::from_millis(300));
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let you = newcomer.read_line();
    let name = you.strip_prefix("you are ").expect("you are").to_string();
    assert!(newcomer.read_line().starts_with("present: "));
    assert_eq!(newcomer.read_line(), format!("{name} arrived"));
    users[0].expect(&[&format!("{name} arrived")]);
}

#[test]
fn a_failed_rooms_users_are_announced_left_by_its_successor() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Long TTLs: the announcement cannot be the reaper's.
    let mut cluster = credit_chat::room::ClusterConfig::new("127.0.0.1", redis.port);
    cluster.roster_ttl = std::time::Duration::from_secs(60);
    cluster.server = "inproc".into();
    let a = Server::start_config(credit_chat::ChatConfig {
        cluster: Some(cluster),
        ..credit_chat::ChatConfig::default()
    });
    let b = server(&redis, "b", &["--roster-ttl", "60"]);
    let mut users = users_at(&[a.addr, b.addr()]);
    let room = a.room();
    assert!(a.handle.terminate(
        room.id(),
        credit_actors::ExitReason::Failed("a test".into())
    ));
    users[0].expect(&[credit_chat::protocol::ROOM_FAILED]);
    let gone = format!("{} left (failed)", users[0].name);
    users[1].expect(&[&gone]);
    // The new room takes newcomers into the shared room.
    let (newcomer, present) = join_at(a.addr);
    assert_eq!(present, format!("present: {}", users[1].name));
    users[1].expect(&[&format!("{} arrived", newcomer.name)]);
}

#[test]
fn a_server_taken_for_lost_while_connected_registers_its_users_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (
        server(&redis, "a", &["--roster-ttl", "60"]),
        server(&redis, "b", &[]),
    );
    let mut users = users_at(&[a.addr(), b.addr()]);
    // a's liveness key gone: b's next beat reaps a's user while a is
    // still connected.
    let servers = redis.cli(&["SMEMBERS", "chat:servers"]);
    let sid = servers
        .lines()
        .find(|s| s.starts_with("a."))
        .expect("a's id");
    redis.cli(&["DEL", &format!("chat:alive:{sid}")]);
    let lost = format!("{} left (server lost)", users[0].name);
    for u in &mut users {
        u.expect(&[&lost]);
    }
    // Meanwhile a line may be refused, never left unanswered; once a has
    // registered its user again, lines go through.
    let name = users[0].name.clone();
    let said = format!("{name} says 'back?'");
    for attempt in 0.. {
        assert!(attempt < 50, "{name} never got back into the room");
        users[0].say("back?");
        let line = users[0].line();
        if line == said {
            break;
        }
        match line.as_str() {
            "error: room unavailable" => std::thread::sleep(std::time::Duration::from_millis(100)),
            l if l == format!("{name} arrived") => {
                users[0].expect(&[&said]);
                break;
            }
            l => panic!("unexpected {l:?}"),
        }
    }
    users[0].say("/who");
    let all = credit_chat::protocol::present([users[1].name.as_str(), &name]);
    users[0].expect(&[&all]);
}

#[test]
fn a_departure_during_an_outage_is_announced_when_redis_is_back() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two(&redis, &["--roster-ttl", "60"]);
    let mut users = users_at(&[a.addr(), b.addr()]);
    // Redis refuses the servers for a while (their connections cut, their
    // new ones not authenticated).
    redis.cli(&["CONFIG", "SET", "requirepass", "secret"]);
    for kind in ["normal", "pubsub"] {
        redis.cli(&[
            "-a",
            "secret",
            "--no-auth-warning",
            "CLIENT",
            "KILL",
            "TYPE",
            kind,
        ]);
    }
    for u in &mut users {
        u.expect(&[ROOM_UNAVAILABLE]);
    }
    // a's only user leaves meanwhile: its departure waits on a.
    let gone = users.remove(0);
    let name = gone.name.clone();
    drop(gone);
    std::thread::sleep(std::time::Duration::from_millis(200));
    redis.cli(&[
        "-a",
        "secret",
        "--no-auth-warning",
        "CONFIG",
        "SET",
        "requirepass",
        "",
    ]);
    users[0].expect(&[ROOM_BACK]);
    // Announced, or already gone from the roster b finds when it is back
    // (if a was back first).
    let left = format!("{name} left");
    let reset = format!("{name} left (reset)");
    loop {
        let line = users[0].line();
        if line == left || line == reset {
            break;
        }
        let present = line.strip_prefix("present:").expect(&line);
        if !present.split(' ').any(|n| n == name) {
            break;
        }
    }
    users[0].say("/who");
    let alone = credit_chat::protocol::present([users[0].name.as_str()]);
    users[0].expect(&[&alone]);
}
