//! AMF3: the encoding Flash Player uses when a NetConnection says `objectEncoding = 3`.

mod value;
pub use value::{Amf3Traits, Amf3Value};
