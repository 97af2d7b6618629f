//! The Redis client against a real `redis-server` started by the test on
//! loopback (skipped, saying so, when the binary is missing; `.ci/run`
//! installs it): subscribe and publish, a bulk string split across reads,
//! the server closing the connection, and reconnecting to a restarted
//! server.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use credit_actors::{Actor, Addr, Config, Ctx, Reactor, ReactorHandle};
use credit_chat::redis::{Frame, RedisClient, RedisConfig, RedisEvent, RedisMsg};
use credit_testkit::WAIT;

use crate::support::RedisServer;

/// Forwards a client's events to the test thread.
struct Sink(Sender<RedisEvent>);

impl Actor for Sink {
    type Msg = RedisEvent;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, e: RedisEvent) {
        let _ = self.0.send(e);
    }
}

struct Fixture {
    redis: RedisServer,
    handle: ReactorHandle,
    join: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Fixture {
    fn start() -> Option<Fixture> {
        let redis = RedisServer::start()?;
        let (handle, join) = Reactor::start(Config::default(), |_| {}).unwrap();
        Some(Fixture {
            redis,
            handle,
            join: Some(join),
        })
    }

    /// A client and the receiver of its events, once it is up.
    fn client(&self, name: &str) -> (Addr<RedisClient>, Receiver<RedisEvent>) {
        let mut config = RedisConfig::new("127.0.0.1", self.redis.port);
        config.name = Some(name.to_string());
        let (client, rx) = client_of(&self.handle, config);
        expect_up(&rx);
        (client, rx)
    }

    /// A subscriber to `channel` and a publisher, both up, once Redis
    /// counts the subscription: (subscriber, its events, publisher, its
    /// events).
    fn subscribed(
        &self,
        channel: &'static str,
    ) -> (
        Addr<RedisClient>,
        Receiver<RedisEvent>,
        Addr<RedisClient>,
        Receiver<RedisEvent>,
    ) {
        let (sub, events) = self.client("sub");
        let (publ, pub_events) = self.client("pub");
        self.handle.send(
            sub,
            RedisMsg::Subscribe(Bytes::from_static(channel.as_bytes())),
        );
        self.wait_subscribers(publ, channel, 1);
        (sub, events, publ, pub_events)
    }

    fn command(&self, client: Addr<RedisClient>, words: &[&str]) -> Result<Frame, String> {
        let words: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        self.handle
            .request_wait(client, move |r| RedisMsg::Command(words, Some(r)), WAIT)
            .map_err(|e| e.to_string())
    }

    /// Waits until `channel` has `n` subscribers.
    fn wait_subscribers(&self, client: Addr<RedisClient>, channel: &str, n: i64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let reply = self.command(client, &["PUBSUB", "NUMSUB", channel]);
            if let Ok(Frame::Array(Some(items))) = &reply {
                if items.get(1) == Some(&Frame::Integer(n)) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{channel}: {reply:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(j) = self.join.take() {
            let _ = credit_testkit::join_bounded(j);
        }
    }
}

fn next(rx: &Receiver<RedisEvent>) -> RedisEvent {
    rx.recv_timeout(WAIT).expect("an event from the client")
}

fn expect_up(rx: &Receiver<RedisEvent>) {
    match next(rx) {
        RedisEvent::Up(_) => {}
        e => panic!("expected Up, got {e:?}"),
    }
}

fn expect_message(rx: &Receiver<RedisEvent>, channel: &str) -> Bytes {
    match next(rx) {
        RedisEvent::Message {
            channel: c,
            payload,
        } => {
            assert_eq!(c, channel.as_bytes());
            payload
        }
        e => panic!("expected a message, got {e:?}"),
    }
}

#[test]
fn subscribe_and_publish() {
    let Some(f) = Fixture::start() else { return };
    let (_sub, events, publ, _) = f.subscribed("room");
    for text in ["hello", "", "two\r\nlines"] {
        let n = f.command(publ, &["PUBLISH", "room", text]).unwrap();
        assert_eq!(n, Frame::Integer(1), "one subscriber heard it");
        assert_eq!(expect_message(&events, "room"), text.as_bytes());
    }
    assert_eq!(
        f.command(publ, &["PING"]).unwrap(),
        Frame::Simple(Bytes::from_static(b"PONG"))
    );
    let err = f.command(publ, &["NOSUCHCOMMAND"]).unwrap();
    assert!(matches!(err, Frame::Error(_)), "{err:?}");
    // The names it gave itself.
    let Frame::Bulk(Some(list)) = f.command(publ, &["CLIENT", "LIST"]).unwrap() else {
        panic!("CLIENT LIST");
    };
    let list = String::from_utf8_lossy(&list);
    assert!(
        list.contains("name=sub ") && list.contains("name=pub "),
        "{list}"
    );
}

#[test]
fn a_bulk_string_split_across_reads_arrives_whole() {
    let Some(f) = Fixture::start() else { return };
    let (_sub, events, publ, _) = f.subscribed("big");
    // 1 MiB, many reads' worth, with CRLFs and every byte value inside.
    let payload: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let text = String::from_utf8_lossy(&payload).into_owned();
    let n = f.command(publ, &["PUBLISH", "big", &text]).unwrap();
    assert_eq!(n, Frame::Integer(1));
    assert_eq!(expect_message(&events, "big"), text.as_bytes());
    // And the connection reads on after it.
    f.command(publ, &["PUBLISH", "big", "after"]).unwrap();
    assert_eq!(expect_message(&events, "big"), &b"after"[..]);
}

#[test]
fn a_closed_connection_is_told_refuses_commands_and_reconnects_subscribed() {
    let Some(mut f) = Fixture::start() else {
        return;
    };
    let (_sub, events, publ, pub_events) = f.subscribed("room");

    // The server closes the subscriber's connection: it is told, and
    // comes back subscribed.
    let killed = f
        .command(publ, &["CLIENT", "KILL", "TYPE", "pubsub"])
        .unwrap();
    assert_eq!(killed, Frame::Integer(1));
    assert!(matches!(next(&events), RedisEvent::Down(..)));
    expect_up(&events);
    f.wait_subscribers(publ, "room", 1);
    f.command(publ, &["PUBLISH", "room", "back"]).unwrap();
    assert_eq!(expect_message(&events, "room"), &b"back"[..]);

    // The server goes away: both are told once, commands are refused
    // meanwhile, and both come back when it does.
    f.redis.kill();
    assert!(matches!(next(&events), RedisEvent::Down(..)));
    assert!(matches!(next(&pub_events), RedisEvent::Down(..)));
    let refused = f.command(publ, &["PING"]).unwrap_err();
    assert!(refused.contains("redis unavailable"), "{refused}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        events.try_recv().is_err(),
        "one Down per outage, however many retries"
    );
    f.redis.restart();
    expect_up(&events);
    expect_up(&pub_events);
    f.wait_subscribers(publ, "room", 1);
    f.command(publ, &["PUBLISH", "room", "again"]).unwrap();
    assert_eq!(expect_message(&events, "room"), &b"again"[..]);
}

/// A client of `port` with these settings, and its events.
fn client_of(
    handle: &ReactorHandle,
    mut config: RedisConfig,
) -> (Addr<RedisClient>, Receiver<RedisEvent>) {
    let (tx, rx) = channel();
    let sink = handle.spawn(move || Sink(tx)).unwrap();
    config.backoff_max = Duration::from_millis(200);
    let client = handle
        .spawn(move || RedisClient::new(config, sink.recipient()))
        .unwrap();
    (client, rx)
}

#[test]
fn a_refused_password_is_an_outage_not_a_connection() {
    let Some(mut f) = Fixture::start() else {
        return;
    };
    // The same port, now with a password.
    f.redis.kill();
    let child = Command::new("redis-server")
        .args(["--port", &f.redis.port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "secret",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    f.redis.child = Some(child);
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", f.redis.port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut wrong = RedisConfig::new("127.0.0.1", f.redis.port);
    wrong.auth = Some((None, "wrong".into()));
    let (_, events) = client_of(&f.handle, wrong);
    match next(&events) {
        RedisEvent::Down(_, why) => assert!(why.contains("AUTH refused"), "{why}"),
        e => panic!("expected Down, got {e:?}"),
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(events.try_recv().is_err(), "never up, told once");
    let mut right = RedisConfig::new("127.0.0.1", f.redis.port);
    right.auth = Some((None, "secret".into()));
    let (client, events) = client_of(&f.handle, right);
    expect_up(&events);
    assert_eq!(
        f.command(client, &["PING"]).unwrap(),
        Frame::Simple(Bytes::from_static(b"PONG"))
    );
}

#[test]
fn a_subscriber_takes_no_commands_and_subscribing_goes_through_subscribe() {
    let Some(f) = Fixture::start() else { return };
    let (sub, _events) = f.client("sub");
    let (publ, _) = f.client("pub");
    let refused = f.command(publ, &["SUBSCRIBE", "x"]).unwrap_err();
    assert!(refused.contains("RedisMsg::Subscribe"), "{refused}");
    f.handle
        .send(sub, RedisMsg::Subscribe(Bytes::from_static(b"room")));
    f.wait_subscribers(publ, "room", 1);
    let refused = f.command(sub, &["PING"]).unwrap_err();
    assert!(refused.contains("subscriber"), "{refused}");
}

#[test]
fn a_server_that_answers_and_closes_at_once_is_seen_closing() {
    // A fake Redis: answers the handshake's PING, then closes. (The
    // runtime test `data_and_fin_that_come_with_the_connect_are_both_seen`
    // holds the case where the FIN comes with the connect's readiness.)
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let Ok(mut s) = stream else { continue };
            let _ = std::io::Write::write_all(&mut s, b"+PONG\r\n");
        }
    });
    let (handle, join) = Reactor::start(Config::default(), |_| {}).unwrap();
    let (_, events) = client_of(&handle, RedisConfig::new("127.0.0.1", port));
    // Up (the PING was answered), then Down: never Up on a dead socket.
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !seen.iter().any(|e| matches!(e, RedisEvent::Down(..))) {
        assert!(Instant::now() < deadline, "no Down: {seen:?}");
        if let Ok(e) = events.recv_timeout(Duration::from_millis(100)) {
            seen.push(e);
        }
    }
    assert!(
        matches!(seen.as_slice(), [RedisEvent::Up(_), RedisEvent::Down(..)]),
        "{seen:?}"
    );
    handle.shutdown();
    let _ = credit_testkit::join_bounded(join);
}

#[test]
fn a_redis_that_stops_answering_is_an_outage() {
    let Some(f) = Fixture::start() else { return };
    let (_sub, events, publ, pub_events) = f.subscribed("room");
    // Frozen, connections open: found by the idle PING's missing reply.
    f.redis.signal("-STOP");
    // Within the wait: the idle check comes every 2 s, the reply
    // deadline is 5 s.
    assert!(matches!(next(&events), RedisEvent::Down(..)));
    assert!(matches!(next(&pub_events), RedisEvent::Down(..)));
    f.redis.signal("-CONT");
    expect_up(&events);
    expect_up(&pub_events);
    f.wait_subscribers(publ, "room", 1);
    f.command(publ, &["PUBLISH", "room", "awake"]).unwrap();
    assert_eq!(expect_message(&events, "room"), &b"awake"[..]);
}
