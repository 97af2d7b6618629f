//! Names for actors: register, whereis, release on exit, and supervised
//! children found by name after every restart.

use std::time::Duration;

use credit_actors::actor::{ChildInfo, ChildSpec, Restart, Supervisor, SupervisorMsg};
use credit_actors::{Addr, NameError, ReactorHandle};
use credit_testkit::{Downs, Probe, ProbeMsg, TestReactor, WAIT};

fn children(handle: &ReactorHandle, sup: Addr<Supervisor>) -> Vec<ChildInfo> {
    handle
        .request_wait(sup, SupervisorMsg::Children, WAIT)
        .expect("Children request")
}

#[test]
fn a_registered_name_finds_its_actor_until_the_actor_exits() {
    let reactor = TestReactor::start();
    let h = &reactor.handle;
    let p = h.spawn(Probe::new).unwrap();
    let registered = h
        .call(move |core| core.register_name("probe", p.id()), WAIT)
        .unwrap();
    assert_eq!(registered, Ok(()));
    assert_eq!(h.whereis::<Probe>("probe").unwrap(), Some(p));
    assert_eq!(
        h.call(move |core| core.name_of(p.id()), WAIT)
            .unwrap()
            .as_deref(),
        Some("probe")
    );
    let mut downs = Downs::observe(h, &[(p.id(), 1)]);
    assert!(h.send(p, ProbeMsg::Stop));
    downs.of(p.id());
    assert_eq!(
        h.whereis::<Probe>("probe").unwrap(),
        None,
        "released on exit"
    );
    // The name is free for another actor.
    let q = h.spawn(Probe::new).unwrap();
    let again = h
        .call(move |core| core.register_name("probe", q.id()), WAIT)
        .unwrap();
    assert_eq!(again, Ok(()));
    assert_eq!(h.whereis::<Probe>("probe").unwrap(), Some(q));
}

#[test]
fn one_actor_per_name_and_one_name_per_actor() {
    let reactor = TestReactor::start();
    let h = &reactor.handle;
    let a = h.spawn(Probe::new).unwrap();
    let b = h.spawn(Probe::new).unwrap();
    let dead = h.spawn(Probe::new).unwrap();
    assert!(h.kill(dead.id()));
    let results = h
        .call(
            move |core| {
                [
                    core.register_name("a", a.id()),
                    core.register_name("a", b.id()),
                    core.register_name("other", a.id()),
                    core.register_name("ghost", dead.id()),
                ]
            },
            WAIT,
        )
        .unwrap();
    assert_eq!(
        results,
        [
            Ok(()),
            Err(NameError::Taken(a.id())),
            Err(NameError::AlreadyNamed("a".into())),
            Err(NameError::DeadActor(dead.id())),
        ]
    );
    let (released, twice) = h
        .call(
            |core| (core.unregister_name("a"), core.unregister_name("a")),
            WAIT,
        )
        .unwrap();
    assert!(released);
    assert!(!twice);
    assert_eq!(h.whereis::<Probe>("a").unwrap(), None);
}

#[test]
fn whereis_with_another_type_finds_nothing() {
    let reactor = TestReactor::start();
    let h = &reactor.handle;
    let p = h.spawn(Probe::new).unwrap();
    h.call(move |core| core.register_name("p", p.id()), WAIT)
        .unwrap()
        .unwrap();
    assert_eq!(h.whereis::<Supervisor>("p").unwrap(), None);
    assert_eq!(h.whereis::<Probe>("p").unwrap(), Some(p));
    assert_eq!(h.whereis::<Probe>("nobody").unwrap(), None);
}

#[test]
fn a_registered_child_is_found_by_name_after_each_restart_without_polling() {
    let reactor = TestReactor::start();
    let h = &reactor.handle;
    let sup = h
        .spawn(|| {
            Supervisor::new()
                .intensity(10, Duration::from_secs(10))
                .child(ChildSpec::actor("worker", Restart::Permanent, Probe::new).registered())
        })
        .unwrap();
    // The supervisor answers after its `started` hook: the child exists
    // and holds the name.
    let first = children(h, sup)[0].id.expect("started");
    assert_eq!(
        h.whereis::<Probe>("worker").unwrap().map(|a| a.id()),
        Some(first)
    );
    let mut previous = first;
    for round in 1..=3 {
        assert!(h.kill(previous));
        // The kill, the exit's link notice to the supervisor and this
        // request reach the supervisor in that order, so its answer comes
        // after the restart.
        let now = children(h, sup)[0].clone();
        assert_eq!(now.restarts, round);
        let id = now.id.expect("restarted");
        assert_ne!(id, previous);
        assert_eq!(
            h.whereis::<Probe>("worker").unwrap().map(|a| a.id()),
            Some(id),
            "the name follows the new incarnation"
        );
        previous = id;
    }
}
