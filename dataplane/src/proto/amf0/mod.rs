//! AMF0 (Action Message Format 0): the encoding of RTMP commands and data messages.

mod value;
pub use value::Amf0Value;
