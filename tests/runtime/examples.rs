//! Every numbered example runs to completion and prints what it promises.
//! `cargo test` builds the examples before the tests, next to this binary.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `target/<profile>/examples/<name>`, bounded; its stdout.
fn run(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/runtime-<hash> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path: PathBuf = dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "example {name} not built at {}",
        path.display()
    );
    let mut child = Command::new(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("example {name} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert!(
        out.status.success(),
        "example {name} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn hello_greets_once() {
    let out = run("1_hello");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("Hello, world! (from actor <0.0>)"), "{out}");
}

#[test]
fn request_reply_answers_the_actor_the_thread_and_the_detached_request() {
    let out = run("2_request_reply");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "an actor asked: count = 2",
            "the main thread asked: count = 2",
            "the detached request: count = 10",
        ]
    );
}

#[test]
fn links_and_monitors_report_the_chain_and_the_survivor() {
    let out = run("3_links_and_monitors");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], "watcher: a (monitor 1) ended: killed");
    // b and c die of a's exit: both reasons name a, the chain's origin.
    let mut rest = lines[1..3].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        [
            "watcher: b (monitor 2) ended: linked peer <0.0> terminated: killed",
            "watcher: c (monitor 3) ended: linked peer <0.0> terminated: killed",
        ]
    );
    assert_eq!(
        lines[3],
        "survivor: linked <0.0> ended (exit: done); staying alive"
    );
}

#[test]
fn supervision_restarts_the_worker_under_its_name_until_the_intensity() {
    let out = run("4_supervision");
    for round in 0..3 {
        assert!(
            out.contains(&format!(
                "round {round}: worker <1.{round}> (restarts: {round})"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("round {round}: it did 1 piece(s) of work")),
            "{out}"
        );
    }
    assert!(
        out.contains(
            "supervisor ended: exit: supervisor reached its restart intensity (2 restarts"
        ),
        "{out}"
    );
}

#[test]
fn line_server_answers_the_client_in_upper_case() {
    let out = run("5_line_server");
    assert!(out.starts_with("listening on 127.0.0.1:"), "{out}");
    for (sent, got) in [
        ("hello", "HELLO"),
        ("credit flows", "CREDIT FLOWS"),
        ("bye", "BYE"),
    ] {
        assert!(out.contains(&format!("client sends: {sent}\n")), "{out}");
        assert!(out.contains(&format!("client got:   {got}\n")), "{out}");
    }
}
