//! Heap allocations per message in steady-state actor ping-pong.
//!
//! Its own test binary, with a counting global allocator, and a single test,
//! so nothing else allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::channel;
use std::time::Duration;

use credit_actors::{Actor, Addr, Ctx, Reactor};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARMUP: u64 = 10_000;
const MEASURED: u64 = 200_000;

/// Bounces a ball; the first player records the allocation counter when the
/// warm-up ends and when the measured stretch ends, then stops.
struct Player {
    /// Round trips still to play (first player only).
    left: Option<u64>,
    marks: Vec<u64>,
    out: Option<std::sync::mpsc::Sender<(u64, u64)>>,
}

enum Msg {
    Serve(Addr<Player>),
    Ball(Addr<Player>),
}

impl Actor for Player {
    type Msg = Msg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Msg) {
        let to = match msg {
            Msg::Serve(to) => to,
            Msg::Ball(from) => {
                if let Some(left) = self.left.as_mut() {
                    if *left == MEASURED {
                        self.marks.push(ALLOCS.load(Ordering::Relaxed));
                    }
                    if *left == 0 {
                        self.marks.push(ALLOCS.load(Ordering::Relaxed));
                        let (a, b) = (self.marks[0], self.marks[1]);
                        self.out.take().unwrap().send((a, b)).unwrap();
                        ctx.kill(from.id());
                        ctx.stop();
                        return;
                    }
                    *left -= 1;
                }
                from
            }
        };
        let me = ctx.me();
        ctx.send(to, Msg::Ball(me));
    }
}

#[test]
fn steady_state_ping_pong_allocates_almost_nothing() {
    // The counter works: a boxed value is one allocation.
    let before = ALLOCS.load(Ordering::Relaxed);
    let boxed = std::hint::black_box(Box::new(7u64));
    assert!(
        ALLOCS.load(Ordering::Relaxed) > before,
        "allocator not counting"
    );
    drop(boxed);

    let (tx, rx) = channel();
    let th = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let a = reactor.spawn(Player {
            left: Some(WARMUP + MEASURED),
            marks: Vec::with_capacity(2),
            out: Some(tx),
        });
        let b = reactor.spawn(Player {
            left: None,
            marks: Vec::new(),
            out: None,
        });
        reactor.send(a, Msg::Serve(b));
        reactor.run().unwrap();
        reactor.stats()
    });
    let (start, end) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ping-pong did not finish in time");
    let stats = th.join().unwrap();
    // Each measured round trip is two messages.
    let messages = 2 * MEASURED;
    let allocs = end - start;
    let per_message = allocs as f64 / messages as f64;
    eprintln!(
        "{allocs} allocations over {messages} messages: {per_message:.5} per message \
         ({} messages handled in all)",
        stats.messages
    );
    assert!(stats.messages >= messages);
    assert!(
        per_message < 0.01,
        "{per_message} allocations per message ({allocs} over {messages})"
    );
}
