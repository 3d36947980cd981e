//! Strata's data plane.
//!
//! Layers, bottom up (see ARCHITECTURE.md): `proto` (sans-IO codecs and state machines),
//! `media` (live streams, GOP cache, fan-out), `app` (NetConnection/NetStream semantics),
//! `engine` (io_uring workers, the only code that touches sockets).

pub mod app;
pub mod config;
pub mod control_socket;
pub mod engine;
pub mod media;
pub mod proto;

#[doc(hidden)]
pub mod fuzzing;
