//! AMF3: the encoding Flash Player uses when a NetConnection says `objectEncoding = 3`.
//!
//! Decoding resolves the string, object and traits reference tables into a plain tree;
//! encoding uses string and traits references but never object references (a decoded tree
//! has no identity to refer to).

mod decode;
mod encode;
pub(crate) mod limits;
mod marker;
mod read;
mod value;

#[cfg(test)]
pub(crate) mod tests;

pub use decode::Amf3Decoder;
pub use encode::Amf3Encoder;
pub use value::{Amf3Traits, Amf3Value};

use crate::proto::AmfError;

/// Decodes one value with fresh reference tables; advances `input` past it.
pub fn decode(input: &mut &[u8]) -> Result<Amf3Value, AmfError> {
    Amf3Decoder::new().decode(input)
}

/// Encodes one value with fresh reference tables.
pub fn encode(value: &Amf3Value, out: &mut Vec<u8>) {
    Amf3Encoder::new().encode(value, out);
}
