//! Requests: a message that carries a reply slot.
//!
//! A counter answers `Get` requests. Another actor asks it with
//! `ctx.request`, and gets the answer as one of its own messages; the main
//! thread asks through a `ReactorHandle` and blocks on the answer, as the
//! tutorial's `(c sendLine: 'hello') wait` does. A callee may also keep the
//! `Reply` and answer later (*detach* it): `Later` does, and `Add` answers
//! every detached request once the count passes a threshold.
//!
//! `cargo run --example 2_request_reply`

use std::time::Duration;

use credit_actors::{Actor, Addr, Config, Ctx, Reactor, Reply, RequestError};

/// A count, and the requests waiting for it to reach a threshold.
struct Counter {
    count: u64,
    waiting: Vec<(u64, Reply<u64>)>,
}

enum CounterMsg {
    Add(u64),
    /// Answered at once with the count.
    Get(Reply<u64>),
    /// Answered once the count reaches the threshold (detached until then).
    Later(u64, Reply<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: CounterMsg) {
        match msg {
            CounterMsg::Add(n) => {
                self.count += n;
                let count = self.count;
                let (due, still): (Vec<_>, Vec<_>) =
                    self.waiting.drain(..).partition(|(at, _)| count >= *at);
                self.waiting = still;
                for (_, reply) in due {
                    reply.resolve(ctx, count);
                }
            }
            CounterMsg::Get(reply) => reply.resolve(ctx, self.count),
            CounterMsg::Later(at, reply) if self.count >= at => reply.resolve(ctx, self.count),
            CounterMsg::Later(at, reply) => self.waiting.push((at, reply)),
        }
    }
}

/// Asks the counter, from inside the reactor.
struct Asker {
    counter: Addr<Counter>,
}

enum AskerMsg {
    Answer(Result<u64, RequestError>),
}

impl Actor for Asker {
    type Msg = AskerMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.send(self.counter, CounterMsg::Add(2));
        ctx.request(self.counter, CounterMsg::Get, AskerMsg::Answer);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: AskerMsg) {
        let AskerMsg::Answer(count) = msg;
        println!("an actor asked: count = {}", count.unwrap_or_default());
        ctx.stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (handle, reactor) = Reactor::start(Config::default(), |_| {})?;
    let counter = handle.spawn(|| Counter {
        count: 0,
        waiting: Vec::new(),
    })?;
    // Detached: answered only once the count reaches 10.
    let later = handle.request(counter, |r| CounterMsg::Later(10, r));
    handle.spawn(move || Asker { counter })?;
    let wait = Duration::from_secs(5);
    // The asker's first run (its `Add(2)` and its request) comes in the
    // turn that spawned it; this request reaches the reactor in a later one.
    let now = handle.request_wait(counter, CounterMsg::Get, wait)?;
    println!("the main thread asked: count = {now}");
    handle.send(counter, CounterMsg::Add(8));
    println!(
        "the detached request: count = {}",
        later.wait_timeout(wait)?
    );
    handle.shutdown();
    reactor.join().expect("reactor thread")?;
    Ok(())
}
