//! Entry points shared by the cargo-fuzz targets (`dataplane/fuzz`) and the never-panics
//! property tests: each takes arbitrary bytes and must return without panicking.

mod amf;
mod rtmp;

pub use amf::*;
pub use rtmp::*;
