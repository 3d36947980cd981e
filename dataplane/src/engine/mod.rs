//! The io_uring engine: one worker per core, each with its own ring, listeners,
//! connections and streams. The only code in Strata that touches the media sockets.
//! `server` starts the workers and talks to them through their mailboxes; this module
//! exposes to it only what that needs, and knows nothing of the process around it.

mod buf_ring;
mod conn;
pub(crate) mod cross;
pub(crate) mod io;
pub(crate) mod listener;
mod live;
pub(crate) mod mailbox;
pub(crate) mod registry;
pub(crate) mod stats;
mod timers;
mod token;
// Per-worker UDP sockets are not wired into the worker loop yet (issue 8's engine work
// does that); until then only its own tests use it.
#[cfg_attr(not(test), allow(dead_code))]
mod udp;
mod worker;
mod zerocopy;

pub(crate) use worker::{Shared, Worker};
