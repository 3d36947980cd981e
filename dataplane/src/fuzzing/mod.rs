//! Entry points shared by the cargo-fuzz targets (`dataplane/fuzz`) and the never-panics
//! property tests: each takes arbitrary bytes and must return without panicking.

mod amf;
mod client_session;
mod rtmp;
mod session;
mod vod;

pub use amf::*;
pub use client_session::rtmp_client_session;
pub use rtmp::*;
pub use session::rtmp_session;
pub use vod::{flv_index, iso_index};
