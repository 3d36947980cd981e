//! Entry points shared by the cargo-fuzz targets (`dataplane/fuzz`) and the never-panics
//! property tests: each takes arbitrary bytes and must return without panicking.

mod amf;
mod client_session;
mod flv;
mod host_ini;
mod mpegts;
mod relay_links;
mod rtmfp;
mod rtmp;
mod session;
mod shared_object;
mod vod;

pub use amf::*;
pub use client_session::rtmp_client_session;
pub use flv::{flv_recording_seed, flv_recovery};
pub use host_ini::host_ini;
pub use mpegts::{mpegts_mux, mpegts_mux_held, mpegts_mux_messages, mpegts_seed};
pub use relay_links::relay_links;
pub use rtmfp::{
    rtmfp_chunks, rtmfp_flash_message, rtmfp_handshake, rtmfp_packet, rtmfp_reassembly, rtmfp_seeds,
};
pub use rtmp::*;
pub use session::rtmp_session;
pub use shared_object::{shared_object_file, shared_object_message};
pub use vod::{flv_index, iso_index};
