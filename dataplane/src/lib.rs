//! Strata's data plane.
//!
//! Layers, bottom up (see ARCHITECTURE.md): `proto` (sans-IO codecs and state machines),
//! `media` (live streams, GOP cache, fan-out), `app` (NetConnection/NetStream semantics),
//! `engine` (io_uring workers, the only code that touches the media sockets), `server`
//! (the process: start-up, threads, signals, reload and the control socket).

pub(crate) mod app;
pub mod config;
mod engine;
pub mod media;
mod multicast;
pub mod proto;
mod relay;
pub mod scripts;
pub mod server;

#[doc(hidden)]
pub mod fuzzing;
