//! NetConnection and NetStream semantics, independent of the transport: RTMP today, RTMFP
//! and the RPC / shared-object features later drive the same types.

pub mod net_connection;
pub mod request;
pub mod status;

pub use crate::media::StreamKey;
pub use net_connection::{Action, NetConnection};
