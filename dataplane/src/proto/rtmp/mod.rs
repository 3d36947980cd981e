//! RTMP: handshake, chunk stream, protocol control messages and commands.

pub mod message;
pub use message::{csid, msg_type, Message};
pub mod chunk_decoder;
pub mod chunk_encoder;
pub mod control;
pub mod handshake;
