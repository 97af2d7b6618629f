//! Every echo-bench scenario, run briefly against our own echo service (and
//! the chat scenario against our chat server), finishes with every reply
//! verified and no error counted.

use std::net::SocketAddr;
use std::time::Duration;

use credit_actors::net::ListenSpec;
use credit_bench::loadgen::{self, Config, Scenario};
use credit_echo::{EchoConfig, EchoService, ServiceMsg};
use credit_testkit::{TestReactor, WAIT};

/// Our echo service on its own reactor, on 127.0.0.1 with a free port.
struct Server {
    addr: SocketAddr,
    _reactor: TestReactor,
}

impl Server {
    fn start() -> Server {
        let reactor = TestReactor::start();
        let service = reactor
            .handle
            .spawn(|| {
                EchoService::new(EchoConfig {
                    listen: ListenSpec::host_port("127.0.0.1", 0),
                    ..EchoConfig::default()
                })
            })
            .expect("spawn the echo service");
        let addr = reactor
            .handle
            .request_wait(service, ServiceMsg::WhenReady, WAIT)
            .expect("the echo service did not report its address");
        Server {
            addr,
            _reactor: reactor,
        }
    }
}

fn run_briefly(server: &Server, scenario: Scenario, tweak: impl FnOnce(&mut Config)) {
    let mut cfg = Config::for_scenario(scenario);
    cfg.addr = server.addr;
    cfg.duration = Duration::from_millis(300);
    cfg.progress = false;
    cfg.conns = 8;
    tweak(&mut cfg);
    let report = loadgen::run(scenario, &cfg).unwrap_or_else(|e| panic!("{scenario}: {e}"));
    assert!(
        report.is_clean(),
        "{scenario}: errors {:?}, first: {:?}",
        report.errors,
        report.first_error
    );
    assert!(report.lines_answered > 0, "{scenario}: nothing answered");
}

#[test]
fn pipeline_scenario_runs_clean_against_our_server() {
    let server = Server::start();
    run_briefly(&server, Scenario::Pipeline, |c| c.depth = 16);
}

#[test]
fn pingpong_scenario_runs_clean_against_our_server() {
    let server = Server::start();
    run_briefly(&server, Scenario::PingPong, |_| {});
}

#[test]
fn churn_scenario_runs_clean_against_our_server() {
    let server = Server::start();
    run_briefly(&server, Scenario::Churn, |c| c.workers = 4);
}

#[test]
fn c10k_scenario_serves_every_idle_connection() {
    let server = Server::start();
    let mut cfg = Config::for_scenario(Scenario::C10k);
    cfg.addr = server.addr;
    cfg.conns = 300;
    cfg.progress = false;
    let report = loadgen::run(Scenario::C10k, &cfg).expect("c10k run");
    assert!(report.is_clean(), "c10k: {:?}", report.errors);
    let c10k = report.c10k.expect("c10k figures");
    assert_eq!(c10k.served, 300);
}

#[test]
fn bigline_scenario_runs_clean_against_our_server() {
    let server = Server::start();
    run_briefly(&server, Scenario::BigLine, |c| {
        c.conns = 2;
        c.line_bytes = 60 * 1024;
    });
}

#[test]
fn chat_scenario_runs_clean_against_our_chat_server() {
    use credit_bench::loadgen::chat::{self, ChatConfig};

    let (_reactor, addr) = chat_server(credit_chat::ChatConfig::default());
    let cfg = ChatConfig {
        addr,
        users: 30,
        senders: 5,
        interval: Duration::from_millis(5),
        duration: Duration::from_millis(500),
        progress: false,
        ..ChatConfig::default()
    };
    let report = chat::run(&cfg).expect("chat run");
    assert!(report.is_clean(), "{report}");
    assert!(report.said > 0, "nothing said");
    assert_eq!(report.delivered, report.said * 30, "{report}");
    assert!(report.latency.is_some());
}

#[test]
fn chat_scenario_counts_silent_users_the_room_drops() {
    use credit_bench::loadgen::chat::{self, ChatConfig};

    let mut config = credit_chat::ChatConfig::default();
    config.conn.max_backlog = Some(64 * 1024);
    let (_reactor, addr) = chat_server(config);
    let cfg = ChatConfig {
        addr,
        users: 20,
        senders: 4,
        silent: 2,
        interval: Duration::from_millis(1),
        line_bytes: 1000,
        duration: Duration::from_secs(2),
        progress: false,
        ..ChatConfig::default()
    };
    let report = chat::run(&cfg).expect("chat run");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.dropped, 2, "{report}");
    assert_eq!(report.delivered, report.said * 18, "{report}");
}

/// At a rate and after a warm-up, every line of the window reaches every
/// user once, and only the window's deliveries are in the latencies, both
/// corrected and uncorrected.
#[test]
fn chat_scenario_at_a_rate_counts_only_the_window() {
    use credit_bench::loadgen::chat::{self, ChatConfig};

    let (_reactor, addr) = chat_server(credit_chat::ChatConfig::default());
    let (senders, rate) = (5usize, 200.0);
    let cfg = ChatConfig {
        addr,
        users: 20,
        senders,
        // What `--rate 200` sets: each sender every `senders / rate` s.
        interval: Duration::from_secs_f64(senders as f64 / rate),
        rate: Some(rate),
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(1),
        progress: false,
        ..ChatConfig::default()
    };
    let report = chat::run(&cfg).expect("chat run");
    assert!(report.is_clean(), "{report}");
    // 200 lines are due in the window, give or take the schedule's edges.
    assert!((195..=205).contains(&report.said), "{report}");
    assert_eq!(report.rate.scheduled, report.said);
    let corrected = report.histogram.as_ref().expect("latency");
    let uncorrected = report.uncorrected_histogram.as_ref().expect("uncorrected");
    assert_eq!(corrected.len(), report.said * 20, "{report}");
    assert_eq!(uncorrected.len(), report.said * 20, "{report}");
    // The warm-up's lines were delivered too, and counted nowhere else.
    assert!(report.delivered > corrected.len(), "{report}");
    // A line cannot arrive before it was sent, nor be sent before it was due.
    assert!(corrected.max() >= uncorrected.max());
    assert!(corrected.mean() >= uncorrected.mean());
}

/// Our chat server on its own reactor, listening on 127.0.0.1 with a free
/// port: the reactor (kept alive by the caller) and the address.
fn chat_server(config: credit_chat::ChatConfig) -> (TestReactor, SocketAddr) {
    use credit_chat::{ChatService, SERVICE};

    let reactor = TestReactor::start();
    reactor
        .handle
        .spawn(move || {
            credit_chat::supervisor(credit_chat::ChatConfig {
                listen: ListenSpec::host_port("127.0.0.1", 0),
                ..config
            })
        })
        .expect("spawn the chat server");
    let service = credit_testkit::wait_for_value(|| {
        reactor
            .handle
            .whereis::<ChatService>(SERVICE)
            .ok()
            .flatten()
    });
    let addr = reactor
        .handle
        .request_wait(service, credit_chat::ServiceMsg::WhenReady, WAIT)
        .expect("the chat service did not report its address");
    (reactor, addr)
}
