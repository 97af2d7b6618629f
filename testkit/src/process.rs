//! A server binary as a child process.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{procfs, WAIT};

/// The log line a server prints once it listens, followed by the address.
const READY_MARK: &str = "accepting connections on";

/// A running server binary with both output streams collected line by line.
/// Killed (and reaped) on drop if still running.
#[derive(Debug)]
pub struct ServerProc {
    child: Child,
    addr: Option<SocketAddr>,
    /// When the address was logged.
    ready_at: Option<Instant>,
    /// Every output line so far, from stdout and stderr.
    output: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
}

impl ServerProc {
    /// Starts `bin` with exactly `args`.
    pub fn spawn(bin: &str, args: &[&str]) -> ServerProc {
        ServerProc::spawn_cmd(Command::new(bin), args)
    }

    /// Starts `cmd` with `args` added, `RUST_LOG` removed and both output
    /// streams piped.
    pub fn spawn_cmd(mut cmd: Command, args: &[&str]) -> ServerProc {
        let mut child = cmd
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for stream in [out, err] {
            let tx = tx.clone();
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    output.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        ServerProc {
            child,
            addr: None,
            ready_at: None,
            output,
            lines,
        }
    }

    /// Starts `bin` on 127.0.0.1 with a free port (`--bind 127.0.0.1 --port
    /// 0 --log-level info`, then `extra`) and waits for the log line naming
    /// the address it listens on.
    pub fn start(bin: &str, extra: &[&str]) -> ServerProc {
        ServerProc::start_cmd(Command::new(bin), extra)
    }

    /// [`ServerProc::start`] with a prepared command (environment, limits).
    pub fn start_cmd(cmd: Command, extra: &[&str]) -> ServerProc {
        let mut args = vec!["--bind", "127.0.0.1", "--port", "0", "--log-level", "info"];
        args.extend_from_slice(extra);
        let mut server = ServerProc::spawn_cmd(cmd, &args);
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = server.lines.recv_timeout(left) else {
                panic!("no '{READY_MARK}' line; output: {:?}", server.output());
            };
            if let Some(i) = line.find(READY_MARK) {
                let rest = line[i + READY_MARK.len()..].trim();
                let addr: SocketAddr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
                assert!(addr.ip().is_loopback(), "{addr}");
                assert_ne!(addr.port(), 0);
                server.addr = Some(addr);
                server.ready_at = Some(Instant::now());
                return server;
            }
        }
    }

    /// Runs `bin` with `args` to completion (bounded): its status and output.
    pub fn run_to_exit(bin: &str, args: &[&str], timeout: Duration) -> (ExitStatus, Vec<String>) {
        ServerProc::spawn(bin, args).finish(timeout)
    }

    /// The address it listens on (after [`ServerProc::start`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("server address")
    }

    /// Every output line so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until start-up has had time to settle: half a second after the
    /// address was logged.
    pub fn settle(&self) {
        let settle = Duration::from_millis(500);
        let since = self.ready_at.expect("not started").elapsed();
        if since < settle {
            std::thread::sleep(settle - since);
        }
    }

    /// SIGTERM once start-up has settled.
    pub fn sigterm_settled(&self) {
        self.settle();
        self.sigterm();
    }

    /// Sends SIGTERM now.
    pub fn sigterm(&self) {
        // SAFETY: kill(2) with a pid this process spawned and has not reaped
        // (the `Child` is still held), and a valid signal number.
        let r = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(r, 0, "kill(SIGTERM) failed");
    }

    /// Waits for the child to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {timeout:?}; output: {:?}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for exit and for both output streams to be read to the end.
    pub fn finish(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let status = self.wait_exit(timeout);
        // The reader threads end at EOF; drain what they still send.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        (status, self.output())
    }

    /// The exit status if the child has exited, without waiting.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Panics (with the output) if the child has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("the server died: {status}; output: {:?}", self.output());
        }
    }

    /// Open file descriptors of the server now.
    pub fn fds(&self) -> usize {
        procfs::fds(self.pid())
    }

    /// Waits (bounded) until the server holds at most `n` descriptors.
    pub fn wait_fds(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.fds();
            if now <= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server still holds {now} descriptors, {n} at the start (leak)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// User plus system CPU time of the server, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        procfs::cpu_ticks(self.pid())
    }

    /// A kilobyte field of the server's `/proc/PID/status`, e.g. `VmRSS`.
    pub fn status_kb(&self, field: &str) -> u64 {
        procfs::status_kb(self.pid(), field)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
