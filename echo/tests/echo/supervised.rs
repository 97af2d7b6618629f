//! The echo service under a supervisor: a killed service listens again on
//! its port, and sessions outlive both it and the supervisor.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use credit_actors::actor::{ChildInfo, ChildSpec, Restart, Supervisor, SupervisorMsg};
use credit_actors::net::ListenSpec;
use credit_actors::{Addr, ExitReason, ReactorHandle};
use credit_echo::{EchoConfig, EchoService, ServiceMsg};
use credit_testkit::{wait_until, Downs, Peer, TestReactor, WAIT};

fn children(handle: &ReactorHandle, sup: Addr<Supervisor>) -> Vec<ChildInfo> {
    handle
        .request_wait(sup, SupervisorMsg::Children, WAIT)
        .expect("Children request")
}

#[test]
fn killed_echo_service_under_a_supervisor_listens_again_on_its_port_and_sessions_survive() {
    let rig = TestReactor::start();
    let h = &rig.handle;
    // What the start function shares: the port the first service bound
    // (port 0 asks for a free one; restarts reuse it). The current service
    // is found by the name each incarnation is registered under.
    let port = Arc::new(AtomicU16::new(0));
    let bound = port.clone();
    let sup = h
        .spawn(move || {
            Supervisor::new().child(
                ChildSpec::new("echo-service", Restart::Permanent, move |ctx| {
                    let config = EchoConfig {
                        listen: ListenSpec::host_port("127.0.0.1", bound.load(Ordering::SeqCst)),
                        ..EchoConfig::default()
                    };
                    ctx.spawn(EchoService::new(config)).id()
                })
                .registered(),
            )
        })
        .unwrap();
    let service = |n: usize| -> Addr<EchoService> {
        let mut found = None;
        wait_until(&format!("service incarnation {n}"), WAIT, || {
            found = h.whereis::<EchoService>("echo-service").unwrap();
            found.is_some_and(|s| {
                children(h, sup)[0].restarts as usize + 1 == n && h.is_alive(s.id())
            })
        });
        found.unwrap()
    };
    let first = service(1);
    let addr = h
        .request_wait(first, ServiceMsg::WhenReady, WAIT)
        .expect("listening");
    port.store(addr.port(), Ordering::SeqCst);
    let mut old = Peer::connect(addr);
    assert_eq!(old.ask("before"), "You said: before");

    // The service dies (and its listener with it); a new one takes its place.
    assert!(h.kill(first.id()));
    let second = service(2);
    assert_ne!(second, first);
    let again = h
        .request_wait(second, ServiceMsg::WhenReady, WAIT)
        .expect("listening again");
    assert_eq!(
        again, addr,
        "the restarted service listens where the first did"
    );
    let mut new = Peer::connect(addr);
    assert_eq!(new.ask("after"), "You said: after");
    // The session accepted by the first service was not linked to it.
    assert_eq!(old.ask("still"), "You said: still");

    // Killing the supervisor closes the listener but leaves sessions be.
    let mut downs = Downs::observe(h, &[(second.id(), 7)]);
    assert!(h.kill(sup.id()));
    assert_eq!(
        downs.reason_of(second.id()),
        ExitReason::linked(sup.id(), &ExitReason::Killed)
    );
    wait_until("the listener to close", WAIT, || {
        std::net::TcpStream::connect_timeout(&addr, WAIT).is_err()
    });
    assert_eq!(old.ask("last"), "You said: last");
    assert_eq!(new.ask("last"), "You said: last");
}
