//! Hello: one actor, one message.
//!
//! An actor is a value implementing `Actor`: its message type and a
//! `handle` method. Spawn it on a reactor, send it a message, and run the
//! reactor: `run` returns once no actor is alive and nothing else can
//! happen.
//!
//! `cargo run --example 1_hello`

use credit_actors::{Actor, Ctx, Reactor};

/// Greets whoever it is told to, then stops.
struct Greeter;

impl Actor for Greeter {
    type Msg = String;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, name: String) {
        println!("Hello, {name}! (from actor {})", ctx.id());
        ctx.stop();
    }
}

fn main() -> std::io::Result<()> {
    let mut reactor = Reactor::new()?;
    let greeter = reactor.spawn(Greeter);
    reactor.send(greeter, "world".to_string());
    reactor.run()
}
