//! The chat room behind a load balancer: a user joins once its PROXY
//! header names it, a health check's `LOCAL` connection is answered
//! without joining (no one hears of it), and a connection refused for its
//! header never reaches the room.

use std::sync::Arc;
use std::time::Duration;

use credit_actors::net::proxy::{parse_cidrs, ProxyPolicy};
use credit_actors::net::{ProxyHeader, SocketConfig};
use credit_chat::protocol::HEALTH_OK;
use credit_chat::ChatConfig;
use credit_testkit::Peer;

use crate::support::{Server, User};

fn server() -> Server {
    let policy = ProxyPolicy {
        timeout: Duration::from_millis(300),
        ..ProxyPolicy::new(parse_cidrs("127.0.0.1").unwrap())
    };
    Server::start_config(ChatConfig {
        conn: SocketConfig {
            proxy: Some(Arc::new(policy)),
            ..ChatConfig::default().conn
        },
        ..ChatConfig::default()
    })
}

/// A user behind the proxy, from `client`: sends the header and reads its
/// welcome.
fn join_via_proxy(s: &Server, client: &str) -> User {
    let mut peer = Peer::connect(s.addr);
    let header = ProxyHeader::proxy(
        client.parse().unwrap(),
        "198.51.100.1:5999".parse().unwrap(),
    );
    peer.write(&header.encode_v2());
    let you = peer.read_line();
    let name = you.strip_prefix("you are ").expect("you are").to_string();
    assert!(peer.read_line().starts_with("present:"));
    assert_eq!(peer.read_line(), format!("{name} arrived"));
    User { peer, name }
}

#[test]
fn health_checks_never_join_and_proxied_users_do() {
    let s = server();
    let mut a = join_via_proxy(&s, "203.0.113.7:50000");
    // Three health checks: each told it is up, then closed; nobody
    // arrives or leaves.
    for _ in 0..3 {
        let mut check = Peer::connect(s.addr);
        check.write(&ProxyHeader::local().encode_v2());
        assert_eq!(check.read_line(), HEALTH_OK);
        check.expect_eof();
    }
    // Nor does a connection without a header, or one that never sends it.
    let mut bare = Peer::connect(s.addr);
    bare.send_line("hello");
    bare.expect_eof();
    let mut silent = Peer::connect(s.addr);
    silent.expect_eof();
    // The next thing `a` hears is `b`, the second user.
    let b = join_via_proxy(&s, "203.0.113.8:50001");
    a.expect(&[&format!("{} arrived", b.name)]);
    s.wait_users(&[&a.name, &b.name]);
    a.say("hi");
    a.expect(&[&format!("{} says 'hi'", a.name)]);
}
