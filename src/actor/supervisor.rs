//! An Erlang-style supervisor: an actor that starts children, watches them,
//! and restarts the ones that end, one for one.
//!
//! A [`Supervisor`] is built from [`ChildSpec`]s. Each spec has a name, a
//! [`Restart`] policy and a *start function*: a closure that spawns the
//! child on the supervisor's context and returns its [`ActorId`]. Children
//! may be of any type, which is why a spec holds a closure rather than a
//! behaviour. [`ChildSpec::actor`] covers the usual case: spawn what a
//! closure builds.
//!
//! - **Start.** On its first turn the supervisor starts every child, in the
//!   order the specs were given, and links to each one.
//! - **Watch.** Every exit of a child reaches the supervisor as a link notice
//!   (in this runtime links fire on every exit, normal ones included). The
//!   supervisor handles the notice and stays alive.
//! - **Restart, one for one.** Only the child that ended is restarted, by
//!   calling its start function again, so it gets a new [`ActorId`]:
//!   - a [`Restart::Permanent`] child always;
//!   - a [`Restart::Transient`] child only after an abnormal exit. Normal
//!     means [`ExitReason::Normal`], [`ExitReason::Shutdown`], or a link
//!     chain whose origin ended normally (a child that died because a peer
//!     it was linked to finished its work);
//!   - a [`Restart::Temporary`] child never.
//!
//!   Every restart is logged at `warn`.
//! - **Restart intensity.** At most `max_restarts` restarts within `period`
//!   (default 3 within 5 s, as in OTP). A restart beyond that is not made:
//!   the supervisor terminates itself with an [`ExitReason::Value`] that
//!   explains why (how many restarts, within what period, which child last
//!   ended and of what).
//! - **Termination.** Whenever the supervisor terminates (killed, stopped,
//!   intensity exceeded, a linked non-child peer ended, the reactor shut
//!   down), it terminates its live children, last started first, with
//!   [`ExitReason::Linked`] pointing at itself. This is done explicitly, not
//!   left to the links alone, so a child that handles link notices by
//!   staying alive (as `EchoService` does for its sockets) still goes.
//!
//! A link notice from an actor that is *not* a current child (for instance
//! the supervisor's own parent, linked to it) terminates the supervisor, as
//! the runtime does by default, and with it the children.
//!
//! [`SupervisorMsg::Children`] asks for the children's current ids; it is
//! a request with a [`Reply`], usable from an actor or another thread. A
//! child spec marked [`ChildSpec::registered`] has each incarnation
//! registered under the spec's name, so `whereis` finds the current one
//! without asking the supervisor.
//!
//! ```
//! use std::time::Duration;
//! use credit_actors::actor::{ChildSpec, Restart, Supervisor, SupervisorMsg};
//! use credit_actors::{Actor, Config, Ctx, Reactor};
//!
//! /// A worker that panics when told to.
//! struct Worker;
//! enum WorkerMsg { Crash }
//! impl Actor for Worker {
//!     type Msg = WorkerMsg;
//!     fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, msg: WorkerMsg) {
//!         match msg {
//!             WorkerMsg::Crash => panic!("told to crash"),
//!         }
//!     }
//! }
//!
//! let (handle, join) = Reactor::start(Config::default(), |_| {}).unwrap();
//! let sup = handle
//!     .spawn(|| {
//!         Supervisor::new()
//!             .intensity(3, Duration::from_secs(5))
//!             .child(ChildSpec::actor("worker", Restart::Permanent, || Worker))
//!     })
//!     .unwrap();
//! let children = handle
//!     .request_wait(sup, SupervisorMsg::Children, Duration::from_secs(5))
//!     .unwrap();
//! assert_eq!(&*children[0].name, "worker");
//! let first = children[0].id.expect("the worker is running");
//!
//! // Kill the worker: being Permanent, it is started again, with a new id.
//! handle.kill(first);
//! let restarted = loop {
//!     let now = handle
//!         .request_wait(sup, SupervisorMsg::Children, Duration::from_secs(5))
//!         .unwrap();
//!     match now[0].id {
//!         Some(id) if id != first => break now,
//!         _ => std::thread::sleep(Duration::from_millis(5)),
//!     }
//! };
//! assert_eq!(restarted[0].restarts, 1);
//!
//! handle.shutdown();
//! join.join().unwrap().unwrap();
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::actor::{Actor, ActorId, Ctx, ExitReason, LinkAction, Reply};

/// When a child is restarted after it terminates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always restarted, whatever the exit reason.
    Permanent,
    /// Restarted only after an abnormal exit (see the module docs for what
    /// counts as normal).
    Transient,
    /// Never restarted.
    Temporary,
}

impl Restart {
    /// True if a child with this policy is restarted after exiting with
    /// `reason`.
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => !is_normal_exit(reason),
            Restart::Temporary => false,
        }
    }
}

/// Normal for [`Restart::Transient`]: a normal exit, a reactor shutdown, or
/// a link chain that started with a normal exit.
fn is_normal_exit(reason: &ExitReason) -> bool {
    matches!(reason.root(), ExitReason::Normal | ExitReason::Shutdown)
}

/// The function that starts a child: it spawns the child on the
/// supervisor's context and returns its id. The supervisor links to the id
/// it returns (linking again is harmless if the function already did).
pub type StartFn = Box<dyn FnMut(&mut Ctx<'_, Supervisor>) -> ActorId>;

/// How to start one child, and when to restart it.
pub struct ChildSpec {
    name: Arc<str>,
    restart: Restart,
    start: StartFn,
    /// Register each incarnation under `name`.
    registered: bool,
}

impl ChildSpec {
    /// A child started by `start`, which spawns it and returns its id.
    /// Called again for every restart.
    ///
    /// `start` may record the typed handle it spawned somewhere (a shared
    /// cell), for callers that need to send the current child messages.
    pub fn new(
        name: impl Into<Arc<str>>,
        restart: Restart,
        start: impl FnMut(&mut Ctx<'_, Supervisor>) -> ActorId + 'static,
    ) -> ChildSpec {
        ChildSpec {
            name: name.into(),
            restart,
            start: Box::new(start),
            registered: false,
        }
    }

    /// Registers every incarnation of the child under the spec's name
    /// before anything else runs, so others reach the current one with
    /// `whereis` after any restart.
    pub fn registered(mut self) -> ChildSpec {
        self.registered = true;
        self
    }

    /// A child that is the actor `make` builds, spawned as is. `make` is
    /// called once per start and once per restart.
    pub fn actor<A: Actor>(
        name: impl Into<Arc<str>>,
        restart: Restart,
        mut make: impl FnMut() -> A + 'static,
    ) -> ChildSpec {
        ChildSpec::new(name, restart, move |ctx| ctx.spawn(make()).id())
    }

    /// The child's name (in logs, exit reasons and [`ChildInfo`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's restart policy.
    pub fn restart(&self) -> Restart {
        self.restart
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

/// One child as [`SupervisorMsg::Children`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// The spec's name.
    pub name: Arc<str>,
    /// The running child's id; `None` if it ended and was not restarted.
    pub id: Option<ActorId>,
    /// The spec's restart policy.
    pub restart: Restart,
    /// How many times this child has been restarted.
    pub restarts: u64,
}

/// Messages to a [`Supervisor`].
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Answered with every child, in start order, with its current id.
    Children(Reply<Vec<ChildInfo>>),
    /// Terminates the supervisor normally, and its children with it.
    Stop,
}

#[derive(Debug)]
struct Child {
    spec: ChildSpec,
    id: Option<ActorId>,
    restarts: u64,
}

impl Child {
    fn info(&self) -> ChildInfo {
        ChildInfo {
            name: self.spec.name.clone(),
            id: self.id,
            restart: self.spec.restart,
            restarts: self.restarts,
        }
    }
}

/// The supervisor actor. See the module docs.
#[derive(Debug)]
pub struct Supervisor {
    children: Vec<Child>,
    max_restarts: u32,
    period: Duration,
    /// When the restarts still inside `period` were made, oldest first.
    recent: VecDeque<Instant>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    /// OTP's default restart intensity: at most 3 restarts ...
    pub const DEFAULT_MAX_RESTARTS: u32 = 3;
    /// ... within 5 seconds.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

    /// A supervisor with no children yet and the default intensity.
    pub fn new() -> Supervisor {
        Supervisor {
            children: Vec::new(),
            max_restarts: Self::DEFAULT_MAX_RESTARTS,
            period: Self::DEFAULT_PERIOD,
            recent: VecDeque::new(),
        }
    }

    /// Allows at most `max_restarts` restarts within any `period`; one more
    /// terminates the supervisor. `max_restarts` 0: the first child exit
    /// that calls for a restart terminates it.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Supervisor {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Adds a child; children start in the order they were added.
    pub fn child(mut self, spec: ChildSpec) -> Supervisor {
        self.children.push(Child {
            spec,
            id: None,
            restarts: 0,
        });
        self
    }

    /// The children as they are now.
    pub fn children(&self) -> Vec<ChildInfo> {
        self.children.iter().map(Child::info).collect()
    }

    fn start_child(&mut self, ctx: &mut Ctx<'_, Self>, index: usize) -> ActorId {
        let id = (self.children[index].spec.start)(ctx);
        self.children[index].id = Some(id);
        let spec = &self.children[index].spec;
        if spec.registered && ctx.is_alive(id) {
            if let Err(e) = ctx.core().register_name(spec.name.clone(), id) {
                warn!(
                    "supervisor {}: child {} {id} not registered: {e}",
                    ctx.id(),
                    spec.name
                );
            }
        }
        // A dead id is reported at once (NoSuchActor) through the link, and
        // handled like any other exit.
        ctx.link(id);
        id
    }

    /// Counts a restart now; false if it would exceed the intensity.
    fn allow_restart(&mut self, now: Instant) -> bool {
        while let Some(&t) = self.recent.front() {
            if now.saturating_duration_since(t) >= self.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= self.max_restarts as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    fn child_exited(&mut self, ctx: &mut Ctx<'_, Self>, index: usize, reason: &ExitReason) {
        let old = self.children[index].id.take();
        let name = self.children[index].spec.name.clone();
        let policy = self.children[index].spec.restart;
        let old = old.map_or_else(|| "?".to_string(), |id| id.to_string());
        if !policy.restarts_after(reason) {
            info!(
                "supervisor {}: child {name} {old} ended ({reason}); not restarted ({policy:?})",
                ctx.id()
            );
            return;
        }
        if !self.allow_restart(crate::hooks::clock_now()) {
            let why = format!(
                "supervisor reached its restart intensity ({} restarts within {:?}): \
                 child {name} {old} ended ({reason})",
                self.max_restarts, self.period
            );
            error!("supervisor {}: {why}; terminating", ctx.id());
            ctx.exit(ExitReason::value(why));
            return;
        }
        self.children[index].restarts += 1;
        let new = self.start_child(ctx, index);
        warn!(
            "supervisor {}: child {name} {old} ended ({reason}); restarted as {new}",
            ctx.id()
        );
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        for index in 0..self.children.len() {
            self.start_child(ctx, index);
        }
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: SupervisorMsg) {
        match msg {
            SupervisorMsg::Children(reply) => reply.resolve(ctx, self.children()),
            SupervisorMsg::Stop => ctx.stop(),
        }
    }

    fn link_exit(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        reason: &ExitReason,
    ) -> LinkAction {
        match self.children.iter().position(|c| c.id == Some(peer)) {
            Some(index) => {
                self.child_exited(ctx, index, reason);
                LinkAction::Stay
            }
            None => LinkAction::Exit,
        }
    }

    fn stopped(&mut self, ctx: &mut Ctx<'_, Self>, reason: &ExitReason) {
        let me = ctx.id();
        let live: Vec<ActorId> = self.children.iter().rev().filter_map(|c| c.id).collect();
        // Being killed or shut down is how a supervision tree is stopped on
        // purpose (echo-server does it on SIGTERM): not a warning.
        let orderly = matches!(
            reason,
            ExitReason::Normal | ExitReason::Killed | ExitReason::Shutdown
        );
        if orderly {
            log::info!(
                "supervisor {me} terminating ({reason}); stopping {} children",
                live.len()
            );
        } else {
            warn!(
                "supervisor {me} terminating ({reason}); stopping {} children",
                live.len()
            );
        }
        let theirs = ExitReason::linked(me, reason);
        for id in live {
            ctx.terminate(id, theirs.clone());
        }
        for child in &mut self.children {
            child.id = None;
        }
    }
}
