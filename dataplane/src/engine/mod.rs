//! The io_uring engine: one worker per core, each with its own ring, listeners,
//! connections and streams. The only code in Strata that touches the media sockets.
//! `server` starts the workers and talks to them through their mailboxes; this module
//! exposes to it only what that needs, and knows nothing of the process around it.

mod buf_ring;
mod conn;
mod connect;
pub(crate) mod content_listing;
pub(crate) mod content_root;
pub(crate) mod cross;
mod file;
mod file_open;
mod file_read;
pub(crate) mod io;
pub(crate) mod listener;
pub(crate) mod mailbox;
mod owner;
pub(crate) mod registry;
mod shared_indexes;
mod slab;
mod so_disk;
pub(crate) mod stats;
mod timers;
mod token;
mod udp;
mod worker;
mod zerocopy;

pub(crate) use worker::{Shared, Worker};
