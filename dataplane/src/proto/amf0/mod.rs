//! AMF0 (Action Message Format 0): the encoding of RTMP commands and data messages.
//!
//! References (marker 0x07) are kept as indices, not resolved, so the decoded size is
//! bounded by the input; the 0x11 marker switches to AMF3 for one value, with fresh AMF3
//! reference tables but the message's nesting depth and decode budget.

mod decode;
mod encode;
mod marker;
mod read;
mod value;

#[cfg(test)]
mod tests;

pub(crate) use decode::MessageDecoder;
pub use decode::{decode, decode_all};
pub use encode::{encode, encode_all};
pub use value::Amf0Value;
