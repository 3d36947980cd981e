//! MPEG-2 transport stream (ISO/IEC 13818-1) muxing of what RTMP carries, sans-IO: RTMP
//! audio and video message bodies (FLV tag bodies, legacy and Enhanced RTMP) in, whole
//! 188-byte TS packets out. Used by the multicast outputs: a stream's frames are muxed once
//! and the bytes shared by every output of it.
//!
//! One concept per file: `crc` (the PSI checksum), `packet` (TS packets, adaptation field,
//! PCR), `psi` (PAT and PMT), `pes` (PES headers with PTS/DTS), `avc_config` and
//! `hevc_config` (decoder configuration records to Annex B parameter sets), `annex_b`
//! (length-prefixed NAL units to start codes), `av1` (AOM's AV1 carriage: descriptors
//! and OBUs in the start-code format), `opus` (the Opus mapping: descriptors and control
//! headers), `adts` (AAC AudioSpecificConfig to ADTS headers), `source` (what an RTMP message body holds, for the muxer), `muxer` (the
//! per-stream state: tracks, continuity counters, tables), `rtp` (RFC 2250 headers).
//!
//! Config records and frames come from publishers: every parser here is total (a bad
//! record or frame is an error value, never a panic; see the property tests and
//! `fuzzing::mpegts_mux`).

pub(crate) mod adts;
pub(crate) mod annex_b;
pub(crate) mod av1;
pub(crate) mod avc_config;
pub(crate) mod crc;
pub(crate) mod hevc_config;
pub(crate) mod muxer;
pub(crate) mod opus;
pub(crate) mod packet;
pub(crate) mod pes;
pub(crate) mod psi;
pub(crate) mod rtp;
pub(crate) mod source;

/// A transport stream packet's size.
pub(crate) const TS_PACKET_SIZE: usize = 188;
/// Every TS packet starts with this byte.
pub(crate) const SYNC_BYTE: u8 = 0x47;
/// The 90 kHz clock of PTS, DTS and (as its base) the PCR.
pub(crate) const CLOCK_HZ: u64 = 90_000;
/// PTS, DTS and the PCR base are 33-bit counters.
pub(crate) const TIME_MASK: u64 = (1 << 33) - 1;

/// Errors from the bytes a publisher sent: each makes the muxer drop one frame (or ignore
/// one configuration record), and says why for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MuxError {
    #[error("truncated or malformed decoder configuration record")]
    BadConfig,
    #[error("AAC configuration that ADTS cannot carry (object type {0})")]
    UnsupportedAac(u8),
    #[error("a NAL unit length runs past the end of the frame")]
    BadNalLength,
    #[error("truncated message header")]
    Truncated,
    #[error("an AAC frame too long for ADTS")]
    AacTooLong,
    #[error("an AV1 OBU size runs past the end of the frame")]
    BadObu,
    #[error(
        "an Opus channel layout TS cannot signal ({channels} channels, mapping family {family})"
    )]
    UnsupportedOpus { channels: u8, family: u8 },
}
