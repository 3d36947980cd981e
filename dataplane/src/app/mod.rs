//! Clients and NetConnection/NetStream semantics, independent of the transport: RTMP today,
//! RTMFP and the RPC / shared-object features later drive the same types. What a client is
//! told goes through a `media::port::Port`.

pub(crate) mod access;
pub(crate) mod calls;
pub(crate) mod client;
pub(crate) mod gate;
pub(crate) mod incoming_calls;
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the instance owner (shared objects, scripts, calls to all clients) keeps these"
    )
)]
pub(crate) mod instance;
pub(crate) mod net_connection;
pub(crate) mod net_stream;
pub(crate) mod record_path;
pub(crate) mod request;
pub(crate) mod rpc;
pub(crate) mod shared_object;
pub(crate) mod shared_object_file;
pub(crate) mod shared_objects;
pub(crate) mod status;

pub(crate) use crate::media::StreamKey;
pub(crate) use client::Client;
pub(crate) use net_connection::NetConnection;
