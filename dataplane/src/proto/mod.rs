//! Sans-IO protocol cores: bytes and time in, values, events and bytes out.
//! Nothing here opens a socket, spawns a thread or reads a clock.

pub mod amf0;
pub mod amf3;
mod amf_error;
pub(crate) mod amf_json;
pub(crate) mod byte_window;
pub use amf_error::AmfError;
pub mod command;
pub(crate) mod flv;
pub(crate) mod mpegts;
pub mod rtmfp;
pub mod rtmp;
