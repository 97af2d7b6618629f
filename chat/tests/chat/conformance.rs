//! Every line of the protocol, with real sockets: arrivals, what is said,
//! commands and their errors, bad input, the ways of leaving, failures,
//! shutdown and the user limit.

use std::io::Write;
use std::time::Duration;

use credit_actors::ExitReason;
use credit_chat::protocol::{ROOM_FAILED, SHUTTING_DOWN};
use credit_chat::{ChatConfig, RoomMsg};
use credit_testkit::{Peer, WAIT};

use credit_testkit::wait_for_value as wait_for;

use crate::support::{flood_until_dropped, Server, User};

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

fn config(f: impl FnOnce(&mut ChatConfig)) -> ChatConfig {
    let mut c = ChatConfig::default();
    f(&mut c);
    c
}

/// True if `user` receives nothing within [`QUIET`].
fn silent(user: &mut User) -> bool {
    user.peer
        .reader
        .get_ref()
        .set_read_timeout(Some(QUIET))
        .unwrap();
    let got = user.peer.try_read_line();
    user.peer
        .reader
        .get_ref()
        .set_read_timeout(Some(WAIT))
        .unwrap();
    matches!(got, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn newcomers_learn_their_name_and_who_is_present_in_order_of_arrival() {
    let server = Server::start();
    let (mut a, present) = server.join();
    assert_eq!((a.name.as_str(), present.as_str()), ("user1", "present:"));
    let (mut b, present) = server.join();
    assert_eq!(
        (b.name.as_str(), present.as_str()),
        ("user2", "present: user1")
    );
    a.expect(&["user2 arrived"]);
    let (_c, present) = server.join();
    assert_eq!(present, "present: user1 user2");
    a.expect(&["user3 arrived"]);
    b.expect(&["user3 arrived"]);
}

#[test]
fn a_line_goes_to_everyone_quoted_and_in_the_room_s_one_order() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (mut b, _) = server.join();
    a.expect(&["user2 arrived"]);
    a.say("it's 'quoted'");
    b.say("telnet line\r");
    a.say("");
    let mut seen = Vec::new();
    for u in [&mut a, &mut b] {
        seen.push((0..3).map(|_| u.line()).collect::<Vec<_>>());
    }
    assert_eq!(seen[0], seen[1], "both see one order");
    for want in [
        "user1 says 'it''s ''quoted'''",
        "user2 says 'telnet line'",
        "user1 says ''",
    ] {
        assert!(
            seen[0].iter().any(|l| l == want),
            "{want:?} in {:?}",
            seen[0]
        );
    }
    // A sender's lines keep their order.
    let mine: Vec<&String> = seen[0].iter().filter(|l| l.starts_with("user1")).collect();
    assert_eq!(mine, ["user1 says 'it''s ''quoted'''", "user1 says ''"]);
}

#[test]
fn commands_and_their_errors() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (mut b, _) = server.join();
    a.expect(&["user2 arrived"]);

    b.say("/nick bob");
    a.expect(&["user2 is now known as bob"]);
    b.expect(&["user2 is now known as bob"]);

    // Errors go to the sender alone.
    b.say("/nick user1");
    b.expect(&["error: the name user1 is taken"]);
    b.say("/nick bob");
    b.expect(&["error: you are already bob"]);
    b.say("/nick no way");
    b.expect(&["error: a name is 1 to 32 letters, digits, '_' or '-'"]);
    b.say(&format!("/nick {}", "n".repeat(33)));
    b.expect(&["error: a name is 1 to 32 letters, digits, '_' or '-'"]);
    b.say("/nick");
    b.expect(&["error: usage: /nick NAME"]);
    b.say("/dance wildly");
    b.expect(&["error: unknown command /dance"]);
    b.say("/who");
    b.expect(&["present: user1 bob"]);
    assert!(silent(&mut a), "errors and /who reached another user");

    // `//` says a line that starts with `/`.
    b.say("//who");
    a.expect(&["bob says '/who'"]);
    b.expect(&["bob says '/who'"]);

    // A freed name can be taken; user numbers go on counting.
    b.say("/nick user9");
    a.expect(&["bob is now known as user9"]);
    b.expect(&["bob is now known as user9"]);
    let (c, present) = server.join();
    assert_eq!(
        (c.name.as_str(), present.as_str()),
        ("user3", "present: user1 user9")
    );
}

#[test]
fn bad_input_gets_an_error_to_the_sender_alone_and_the_connection_goes_on() {
    let server = Server::start_config(config(|c| c.conn.max_unit = 64));
    let (mut a, _) = server.join();
    let (mut b, _) = server.join();
    a.expect(&["user2 arrived"]);

    b.say(&"x".repeat(100));
    b.expect(&["error: line longer than 64 bytes"]);
    b.peer.write(b"caf\xc3 au lait\n");
    b.expect(&["error: line is not valid UTF-8"]);
    b.peer.write(b"red \x1b[31malert\n");
    b.expect(&["error: control characters are not allowed (tab is)"]);
    assert!(silent(&mut a), "bad input was broadcast");
    b.say("fine again");
    a.expect(&["user2 says 'fine again'"]);
    b.expect(&["user2 says 'fine again'"]);
}

#[test]
fn an_orderly_close_and_quit_leave_plainly() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (b, _) = server.join();
    let (mut c, _) = server.join();
    a.expect(&["user2 arrived", "user3 arrived"]);

    b.peer.shutdown_write();
    a.expect(&["user2 left"]);
    c.expect(&["user2 left"]);

    c.say("/quit");
    a.expect(&["user3 left"]);
    c.peer.expect_eof();
    server.wait_users(&["user1"]);
}

#[test]
fn a_reset_leaves_with_its_reason() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (b, _) = server.join();
    a.expect(&["user2 arrived"]);
    socket2::SockRef::from(&b.peer.writer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(b);
    a.expect(&["user2 left (reset)"]);
}

#[test]
fn a_silent_user_leaves_as_idle() {
    let server = Server::start_config(config(|c| {
        c.conn.idle_timeout = Some(Duration::from_millis(300))
    }));
    let (mut a, _) = server.join();
    let (_b, _) = server.join();
    a.expect(&["user2 arrived"]);
    // `a` keeps talking; `b` says nothing and is let go.
    for i in 0.. {
        assert!(i < 100, "the silent user never left");
        a.say(&format!("still here {i}"));
        let l = a.line();
        if l == "user2 left (idle)" {
            break;
        }
        assert_eq!(l, format!("user1 says 'still here {i}'"));
        std::thread::sleep(Duration::from_millis(50));
    }
    server.wait_users(&["user1"]);
}

#[test]
fn a_user_who_does_not_read_is_dropped_as_too_slow_and_the_others_go_on() {
    let server = Server::start_config(config(|c| c.conn.max_backlog = Some(16 * 1024)));
    let (mut a, _) = server.join();
    let (slow, _) = server.join();
    let (mut c, _) = server.join();
    a.expect(&["user2 arrived", "user3 arrived"]);
    // `slow` never reads: its kernel buffers fill, then its backlog.
    flood_until_dropped(&mut a, &mut c, &slow.name, |_| {});
    server.wait_users(&["user1", "user3"]);
    a.say("after");
    c.expect(&["user1 says 'after'"]);
    drop(slow);
}

#[test]
fn an_agent_that_fails_takes_its_user_alone() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (mut b, _) = server.join();
    a.expect(&["user2 arrived"]);
    let agent = server.agent_of("user2");
    assert!(server
        .handle
        .terminate(agent, ExitReason::Failed("a test".into())));
    a.expect(&["user2 left (failed)"]);
    b.peer.expect_eof();
    a.say("still fine");
    a.expect(&["user1 says 'still fine'"]);
}

#[test]
fn a_failed_room_tells_everyone_and_a_new_room_takes_newcomers() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (mut b, _) = server.join();
    a.expect(&["user2 arrived"]);
    let room = server.room();
    assert!(server
        .handle
        .terminate(room.id(), ExitReason::Failed("a test".into())));
    for u in [&mut a, &mut b] {
        u.expect(&[ROOM_FAILED]);
        u.peer.expect_eof();
    }
    // The supervisor's new room: empty, and names count on.
    let fresh = wait_for(|| {
        let r = server.room();
        (r != room).then_some(r)
    });
    assert_ne!(fresh, room);
    let (c, present) = server.join();
    assert_eq!((c.name.as_str(), present.as_str()), ("user3", "present:"));
}

#[test]
fn shutdown_tells_everyone_then_closes() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (mut b, _) = server.join();
    a.expect(&["user2 arrived"]);
    let told = server
        .handle
        .request_wait(server.room(), RoomMsg::Shutdown, WAIT)
        .unwrap();
    assert_eq!(told, 2);
    for u in [&mut a, &mut b] {
        u.expect(&[SHUTTING_DOWN]);
        u.peer.expect_eof();
    }
}

/// A newcomer that the server does not let in (nothing arrives for a
/// while); its reads are bounded by [`WAIT`] again afterwards.
fn kept_waiting(server: &Server) -> Peer {
    let mut waiting = Peer::connect(server.addr);
    waiting
        .reader
        .get_ref()
        .set_read_timeout(Some(QUIET))
        .unwrap();
    assert!(waiting.try_read_line().is_err(), "a third user got in");
    waiting
        .reader
        .get_ref()
        .set_read_timeout(Some(WAIT))
        .unwrap();
    waiting
}

#[test]
fn max_users_holds_newcomers_back_until_someone_leaves() {
    let server = Server::start_config(config(|c| c.max_users = Some(2)));
    let (mut a, _) = server.join();
    let (b, _) = server.join();
    a.expect(&["user2 arrived"]);
    let mut waiting = kept_waiting(&server);
    b.peer.shutdown_write();
    a.expect(&["user2 left"]);
    assert_eq!(waiting.read_line(), "you are user3");
    assert_eq!(waiting.read_line(), "present: user1");
    let _ = waiting.writer.flush();
}

#[test]
fn errors_come_after_what_the_sender_said_before() {
    let server = Server::start();
    let (mut a, _) = server.join();
    a.peer.write(b"hello\n/bogus\n/nick b!b\nx\n\xff\n");
    a.expect(&[
        "user1 says 'hello'",
        "error: unknown command /bogus",
        "error: a name is 1 to 32 letters, digits, '_' or '-'",
        "user1 says 'x'",
        "error: line is not valid UTF-8",
    ]);
}

#[test]
fn a_user_who_leaves_still_gets_its_own_last_lines() {
    let server = Server::start();
    let (mut a, _) = server.join();
    let (mut b, _) = server.join();
    a.expect(&["user2 arrived"]);
    // One write: the line and the quit reach the room in one turn.
    b.peer.write(b"hello\n/quit\n");
    b.expect(&["user2 says 'hello'"]);
    b.peer.expect_eof();
    a.expect(&["user2 says 'hello'", "user2 left"]);

    let (mut c, _) = server.join();
    a.expect(&["user3 arrived"]);
    c.peer.write(b"last words\n");
    c.peer.shutdown_write();
    c.expect(&["user3 says 'last words'"]);
    c.peer.expect_eof();
    a.expect(&["user3 says 'last words'", "user3 left"]);
}

#[test]
fn max_users_holds_across_a_restart_of_the_service() {
    let server = Server::start_config(config(|c| c.max_users = Some(2)));
    let (mut a, _) = server.join();
    let (b, _) = server.join();
    a.expect(&["user2 arrived"]);
    // The accepting side fails and its supervisor starts another: the two
    // users stay, and still count.
    let service = server.service();
    assert!(server
        .handle
        .terminate(service.id(), ExitReason::Failed("a test".into())));
    let fresh = wait_for(|| {
        let s = server.service();
        (s != service).then_some(s)
    });
    let users = wait_for(|| {
        let n = server
            .handle
            .request_wait(fresh, credit_chat::ServiceMsg::Users, WAIT)
            .ok()?;
        (n == 2).then_some(n)
    });
    assert_eq!(users, 2);
    let mut waiting = kept_waiting(&server);
    b.peer.shutdown_write();
    a.expect(&["user2 left"]);
    assert_eq!(waiting.read_line(), "you are user3");
}
