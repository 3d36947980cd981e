//! Helpers for the end-to-end tests: starting stratad, running real clients.
//!
//! One concept per file: [`server`] (stratad with a free port, captured log, kill-on-Drop),
//! [`tools`] (ffmpeg/ffprobe/rtmpdump children), [`sample_media`] and [`publisher`] (what is
//! published), [`media_probe`] (what ffprobe sees), [`recorder`] (a viewer that must keep
//! receiving), [`live_fixture`] (server + publisher + viewer), [`rtmp_client`] (our own blocking
//! RTMP client), [`raw_chunk`] (hostile bytes), [`scratch_dir`] (per-test files),
//! [`flv_tags`] (an FLV's tags), [`flv_source`] (an FLV file's tags published by our client),
//! [`vod_fixture`] (files to play and a server for them), [`json_hook`] (a JSON webhook),
//! [`pyrtmp`] (python-librtmp and stratactl binaries), [`tiers`] (origins, edges and a viewer
//! timed across a failover), [`netns`] (a network namespace for multicast tests),
//! [`delay_proxy`] (a link with latency between two hosts), [`lossy_udp_relay`] (a UDP link
//! that drops datagrams), [`rtmfp_cli`] (our RTMFP client as a process).

pub mod delay_proxy;
pub mod flv_source;
pub mod flv_tags;
pub mod json_hook;
pub mod live_fixture;
pub mod lossy_udp_relay;
pub mod media_probe;
pub mod netns;
pub mod publisher;
pub mod pyrtmp;
pub mod raw_chunk;
pub mod recorder;
pub mod rtmfp_cli;
pub mod rtmp_client;
pub mod sample_media;
pub mod scratch_dir;
pub mod server;
pub mod tiers;
pub mod tools;
pub mod vod_fixture;

/// Every wait in the suite is bounded; these are the common bounds.
pub mod bounds {
    use std::time::Duration;
    /// A publisher's stream becomes playable.
    pub const STREAM_UP: Duration = Duration::from_secs(15);
    /// A status message or media message arrives.
    pub const MESSAGE: Duration = Duration::from_secs(10);
}
