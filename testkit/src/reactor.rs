//! A reactor on its own thread for one test.

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use credit_actors::{Config, Reactor, ReactorHandle};

use crate::WAIT;

/// A reactor running on its own thread. Dropping it shuts the reactor down
/// and joins the thread (bounded); a failed run fails the test unless it is
/// already failing.
#[derive(Debug)]
pub struct TestReactor {
    /// The handle other threads use.
    pub handle: ReactorHandle,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl TestReactor {
    /// A reactor with the default configuration.
    pub fn start() -> TestReactor {
        TestReactor::start_with(Config::default())
    }

    /// A reactor with `config`.
    pub fn start_with(config: Config) -> TestReactor {
        let (handle, join) = Reactor::start(config, |_| {}).expect("start reactor");
        TestReactor {
            handle,
            join: Some(join),
        }
    }

    /// Shuts the reactor down and joins its thread, failing the test if the
    /// run failed or took longer than [`WAIT`] to end.
    pub fn finish(mut self) {
        self.stop(true);
    }

    fn stop(&mut self, strict: bool) {
        self.handle.shutdown();
        let Some(join) = self.join.take() else {
            return;
        };
        let deadline = Instant::now() + WAIT;
        while !join.is_finished() {
            if Instant::now() >= deadline {
                if strict && !std::thread::panicking() {
                    panic!("reactor thread did not stop within {WAIT:?}");
                }
                // Do not hang the test binary.
                eprintln!("reactor thread did not stop within {WAIT:?}");
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let result = join.join();
        if !std::thread::panicking() {
            result
                .expect("reactor thread panicked")
                .expect("reactor run failed");
        }
    }
}

impl Drop for TestReactor {
    fn drop(&mut self) {
        self.stop(false);
    }
}
