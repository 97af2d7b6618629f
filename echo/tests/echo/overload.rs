//! A well-behaved client keeps getting every reply while clients that
//! write and never read fill the server's buffer memory budget.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use credit_echo::EchoConfig;
use credit_testkit::WAIT;

use crate::support::{Server, PREFIX};

/// Hostile connections: each writes lines without reading, until told to
/// stop or its socket fails (the server closed it).
fn hostile(server: &Server, n: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let addr = server.addr;
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..n {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            s.set_recv_buffer_size(4096).expect("rcvbuf");
            s.connect_timeout(&addr.into(), WAIT).expect("connect");
            s.set_nonblocking(true).expect("nonblocking");
            conns.push(Some(std::net::TcpStream::from(s)));
        }
        let chunk = "x".repeat(99).to_string() + "\n";
        let chunk = chunk.repeat(64);
        while !stop.load(Ordering::Relaxed) {
            for c in conns.iter_mut() {
                if let Some(s) = c {
                    match s.write(chunk.as_bytes()) {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => *c = None,
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

#[test]
fn a_client_that_reads_gets_every_reply_while_others_fill_the_budget() {
    // High mark 1 MiB: forty connections that never read pass it.
    let server = Server::start_budget(EchoConfig::default(), Some(2 << 20));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = hostile(&server, 40, stop.clone());
    let mut good = server.connect();
    let mut pressed_while_answering = 0;
    for i in 0..400 {
        let line = format!("good {i}");
        assert_eq!(good.ask(&line), format!("{PREFIX}{line}"));
        let (tx, rx) = channel();
        assert!(server.handle.post(move |core| {
            let _ = tx.send(credit_actors::net::buffer_memory(core));
        }));
        let m = rx.recv_timeout(WAIT).expect("buffer memory");
        if m.pressed {
            pressed_while_answering += 1;
        }
        assert!(m.total <= 2 << 20 || m.overload_closes > 0, "{m:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    flood.join().expect("flood thread");
    assert!(
        pressed_while_answering > 0,
        "the hostile clients never filled the budget"
    );
}
