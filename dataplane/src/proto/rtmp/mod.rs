//! RTMP: handshake, chunk stream, protocol control messages and commands.

pub mod chunk_decoder;
pub mod chunk_encoder;
pub mod chunk_framer;
pub mod control;
pub mod handshake;
pub(crate) mod message;
pub mod session;
pub mod shared_object;
pub use message::{csid, msg_type, Message};
