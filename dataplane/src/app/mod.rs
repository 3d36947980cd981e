//! Clients and NetConnection/NetStream semantics, independent of the transport: RTMP today,
//! RTMFP and the RPC / shared-object features later drive the same types. What a client is
//! told goes through a `media::port::Port`.

pub mod calls;
pub mod client;
pub mod gate;
pub mod instance;
pub mod net_connection;
pub mod net_stream;
pub mod request;
pub mod status;

pub use crate::media::StreamKey;
pub use client::Client;
pub use net_connection::{Action, NetConnection};
