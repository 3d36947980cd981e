//! One stream's transport stream: RTMP messages in, TS packets out, one `Muxed` per audio
//! or video frame. The muxer holds what must stay the same across frames: the tracks and
//! their configurations, the continuity counter of every PID and the PMT's version. A
//! stream has one muxer and every output of the stream shares its bytes.
//!
//! Time: PTS and DTS are the RTMP timestamps (and composition offsets) at 90 kHz, plus
//! `TIME_OFFSET` so that the PCR, `PCR_DELAY` behind the video's DTS, never goes below
//! zero. The PCR rides on the video PID (the audio PID of an audio-only stream), once per
//! frame: well within the 100 ms the standard asks for at any usual frame rate.

use bytes::{Bytes, BytesMut};

use super::adts::{self, AdtsConfig};
use super::annex_b::{self, NalSyntax, ParameterSets};
use super::av1::{self, Av1Config};
use super::packet::{write_unit, write_unit_parts, UnitFlags};
use super::pes::{self, STREAM_ID_AUDIO, STREAM_ID_PRIVATE_1, STREAM_ID_VIDEO};
use super::psi::{self, stream_type, Elementary};
use super::source::{self, AudioCodec, Unit, VideoCodec};
use super::{avc_config, hevc_config, opus, MuxError, CLOCK_HZ, TIME_MASK, TS_PACKET_SIZE};
use crate::proto::rtmp::msg_type;

pub(crate) const VIDEO_PID: u16 = 0x100;
pub(crate) const AUDIO_PID: u16 = 0x101;
/// What every PTS and DTS gets added: 1.4 s, as ffmpeg's muxer starts its streams.
const TIME_OFFSET: u64 = 14 * CLOCK_HZ / 10;
/// How far the PCR runs behind the video's DTS: the decoder's buffering (ffmpeg's default
/// `max_delay`).
const PCR_DELAY: u64 = 7 * CLOCK_HZ / 10;
/// An audio-only stream repeats its tables this often (in media milliseconds), so that a
/// receiver joining finds them without a key frame to wait for.
const AUDIO_ONLY_TABLES_MS: u32 = 500;
/// Frames are written into one buffer of this size after another (each frame's bytes a
/// slice of it), not each into an allocation of its own: a stream allocates once per
/// ~256 KiB of TS (about a second of a 2 Mbit/s stream), and none at all once its outputs
/// have let go of an earlier buffer, which is then written again. Smaller blocks muxed
/// faster in criterion (`mpegts_100_streams_held_150ms`, mimalloc: 16 KiB 24 % under
/// 256 KiB) but showed nothing in stratad (`benches/multicast many-to-one-ab`), and its
/// profile had the muxer faulting in fresh pages for them: kept until that is measured.
const ARENA_BYTES: usize = 256 * 1024;

#[derive(Clone)]
struct VideoTrack {
    codec: VideoCodec,
    config: VideoConfig,
}

/// What a key frame needs of the sequence header, per codec family.
#[derive(Clone)]
enum VideoConfig {
    /// H.264 and HEVC: the parameter sets.
    Nal(ParameterSets),
    Av1(Av1Config),
}

#[derive(Clone)]
struct AudioTrack {
    codec: AudioCodec,
    /// AAC only: from the sequence header.
    adts: Option<AdtsConfig>,
    /// The PMT's descriptors for the stream (Opus: registration and channels).
    descriptors: Vec<u8>,
}

/// One frame's TS packets.
#[derive(Debug, Clone)]
pub(crate) struct Muxed {
    pub(crate) bytes: Bytes,
    /// The packets start with the PAT and PMT and a frame a decoder can start on (a video
    /// key frame; an audio frame of an audio-only stream): where an output may begin.
    pub(crate) key: bool,
    /// The RTMP timestamp (DTS) of the frame, in milliseconds.
    pub(crate) timestamp: u32,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    pat: u8,
    pmt: u8,
    video: u8,
    audio: u8,
}

#[derive(Default)]
pub(crate) struct TsMuxer {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    cc: Counters,
    pmt_version: u8,
    /// The tracks changed since the PMT was last written.
    pmt_changed: bool,
    /// When the tables were last written (media milliseconds), for audio-only streams.
    tables_at: Option<u32>,
    /// The next PES on each PID flags a discontinuity (a new source).
    video_discontinuity: bool,
    audio_discontinuity: bool,
    /// The next tables flag it too: their counters may jump as well.
    tables_discontinuity: bool,
    /// After a discontinuity nothing is muxed before a place to start: every output of
    /// the new source waits for one, and a frame they would drop must not carry away the
    /// flags (a receiver would see the counters jump unflagged).
    await_key: bool,
    /// Scratch for one PES (header room, then the elementary stream), kept between frames.
    pes: Vec<u8>,
    header: Vec<u8>,
    /// Where frames' packets are written (see `ARENA_BYTES`).
    arena: BytesMut,
    /// Its block size (0: `ARENA_BYTES`); other sizes for the benchmark that compares them.
    arena_bytes: usize,
}

impl TsMuxer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A muxer whose arena takes blocks of `bytes` (for `fuzzing::mpegts_mux_held`, which
    /// compares block sizes in one benchmark run).
    pub(crate) fn with_arena(bytes: usize) -> Self {
        TsMuxer {
            arena_bytes: bytes,
            ..Self::default()
        }
    }

    /// The source switched (a new publisher, a relay failover): its time base starts
    /// again. The next packets of each PID say so; the tracks stay until new sequence
    /// headers replace them.
    pub(crate) fn discontinuity(&mut self) {
        self.video_discontinuity = true;
        self.audio_discontinuity = true;
        self.tables_discontinuity = true;
        self.await_key = true;
    }

    /// What an output joining a stream already under way starts from: `frames` (the GOP
    /// cache: headers, a key frame and the frames since, every one already pushed here)
    /// muxed by a fork of this muxer (same tracks and PMT version) whose continuity
    /// counters end where this muxer's stand, so that the shared packets of the next
    /// frames continue them without a gap on the joining output's group. These bytes are
    /// the joining output's own; the other outputs never see them.
    ///
    /// Muxed twice: once to count each PID's packets, once from counters set back by that
    /// count (the muxer is deterministic, so the second pass ends exactly here). Once per
    /// output added, never per frame.
    pub(crate) fn catch_up<'a, I>(&self, frames: I) -> Vec<Muxed>
    where
        I: Iterator<Item = (u8, u32, &'a [u8])> + Clone,
    {
        let mut count = self.fork(Counters::default());
        for (type_id, timestamp, payload) in frames.clone() {
            // A frame the muxer refused when it was pushed is refused again: skipped.
            let _ = count.push(type_id, timestamp, payload);
        }
        let back = |now: u8, n: u8| now.wrapping_sub(n) & 0x0f;
        let start = Counters {
            pat: back(self.cc.pat, count.cc.pat),
            pmt: back(self.cc.pmt, count.cc.pmt),
            video: back(self.cc.video, count.cc.video),
            audio: back(self.cc.audio, count.cc.audio),
        };
        let mut fork = self.fork(start);
        frames
            .filter_map(|(type_id, timestamp, payload)| {
                fork.push(type_id, timestamp, payload).ok().flatten()
            })
            .collect()
    }

    /// A muxer with this one's tracks and PMT version, counting from `cc`, its first
    /// packets flagging a discontinuity (the group may have carried another stream).
    fn fork(&self, cc: Counters) -> TsMuxer {
        TsMuxer {
            video: self.video.clone(),
            audio: self.audio.clone(),
            cc,
            pmt_version: self.pmt_version,
            pmt_changed: false,
            tables_at: None,
            video_discontinuity: true,
            audio_discontinuity: true,
            tables_discontinuity: true,
            await_key: true,
            pes: Vec::new(),
            header: Vec::new(),
            arena: BytesMut::new(),
            arena_bytes: self.arena_bytes,
        }
    }

    /// One RTMP message. `Ok(None)`: nothing to send (a configuration, a frame before its
    /// configuration, data messages, codecs a TS of ours does not carry).
    pub(crate) fn push(
        &mut self,
        type_id: u8,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<Muxed>, MuxError> {
        let unit = match type_id {
            msg_type::VIDEO => source::video(payload)?,
            msg_type::AUDIO => source::audio(payload)?,
            _ => return Ok(None),
        };
        match unit {
            Unit::VideoConfig { codec, record } => {
                let config = match codec {
                    VideoCodec::H264 => VideoConfig::Nal(avc_config::parse(record)?),
                    VideoCodec::Hevc => VideoConfig::Nal(hevc_config::parse(record)?),
                    VideoCodec::Av1 => VideoConfig::Av1(av1::parse_config(record)?),
                };
                let descriptors = |v: &VideoTrack| match &v.config {
                    VideoConfig::Av1(c) => Some(c.descriptors.clone()),
                    VideoConfig::Nal(_) => None,
                };
                let track = VideoTrack { codec, config };
                if self.video.as_ref().map(|v| (v.codec, descriptors(v)))
                    != Some((codec, descriptors(&track)))
                {
                    self.pmt_changed = true;
                }
                self.video = Some(track);
                Ok(None)
            }
            Unit::AacConfig(config) => {
                let adts = adts::parse(config)?;
                self.set_audio(AudioCodec::Aac, Some(adts), Vec::new());
                Ok(None)
            }
            Unit::OpusConfig(head) => {
                let descriptors = opus::descriptors(head)?;
                self.set_audio(AudioCodec::Opus, None, descriptors);
                Ok(None)
            }
            Unit::Video {
                codec,
                key,
                cts,
                data,
            } => self.video_frame(codec, key, cts, timestamp, data),
            Unit::Audio { codec, data } => {
                // MP3 has no sequence header: its first frame declares the track.
                if codec == AudioCodec::Mp3 && self.audio.as_ref().map(|a| a.codec) != Some(codec) {
                    self.set_audio(codec, None, Vec::new());
                }
                self.audio_frame(codec, timestamp, data)
            }
            Unit::Skip => Ok(None),
        }
    }

    fn set_audio(&mut self, codec: AudioCodec, adts: Option<AdtsConfig>, descriptors: Vec<u8>) {
        if self.audio.as_ref().map(|a| (a.codec, &a.descriptors)) != Some((codec, &descriptors)) {
            self.pmt_changed = true;
        }
        self.audio = Some(AudioTrack {
            codec,
            adts,
            descriptors,
        });
    }

    fn video_frame(
        &mut self,
        codec: VideoCodec,
        key: bool,
        cts: i32,
        timestamp: u32,
        data: &[u8],
    ) -> Result<Option<Muxed>, MuxError> {
        let configured = self.video.as_ref().is_some_and(|v| v.codec == codec);
        if !configured || !self.may_start(key) {
            return Ok(None); // no configuration for this codec yet, or not a start
        }
        let dts = to_clock(timestamp);
        let pts = dts + (i64::from(cts.max(0)) as u64) * CLOCK_HZ / 1000;
        let syntax = match codec {
            VideoCodec::Hevc => NalSyntax::Hevc,
            _ => NalSyntax::H264,
        };
        // H.264 and HEVC: packetised straight from the frame's NAL units (one copy); AV1
        // is rewritten (emulation prevention), so gathered in the PES scratch first.
        let scan = match self.video.as_ref().map(|v| &v.config) {
            Some(VideoConfig::Nal(sets)) => Some(annex_b::scan(syntax, sets, key, data)?),
            Some(VideoConfig::Av1(config)) => {
                self.pes.clear();
                self.pes.resize(pes::MAX_HEADER_LEN, 0);
                av1::write_access_unit(&mut self.pes, config, key, data)?;
                None
            }
            None => return Ok(None),
        };
        let flags = |discontinuity| UnitFlags {
            pcr: Some(dts.saturating_sub(PCR_DELAY)),
            discontinuity,
            random_access: key,
        };
        if let Some(scan) = scan {
            self.header.clear();
            pes::write_header(&mut self.header, STREAM_ID_VIDEO, pts, Some(dts), scan.len);
            let len = self.header.len() + scan.len;
            self.start_frame(key, timestamp, len);
            let flags = flags(std::mem::take(&mut self.video_discontinuity));
            let Some(VideoConfig::Nal(sets)) = self.video.as_ref().map(|v| &v.config) else {
                return Ok(None);
            };
            let pieces = std::iter::once(&self.header[..])
                .chain(annex_b::access_unit(syntax, sets, scan, data));
            write_unit_parts(
                &mut self.arena,
                VIDEO_PID,
                &mut self.cc.video,
                flags,
                len,
                pieces,
            );
        } else {
            self.start_frame(key, timestamp, self.pes.len());
            let flags = flags(std::mem::take(&mut self.video_discontinuity));
            let at = self.write_pes_header(STREAM_ID_PRIVATE_1, pts, Some(dts));
            write_unit(
                &mut self.arena,
                VIDEO_PID,
                &mut self.cc.video,
                flags,
                &self.pes[at..],
            );
        }
        Ok(Some(Muxed {
            bytes: self.arena.split().freeze(),
            key,
            timestamp,
        }))
    }

    fn audio_frame(
        &mut self,
        codec: AudioCodec,
        timestamp: u32,
        data: &[u8],
    ) -> Result<Option<Muxed>, MuxError> {
        let Some(track) = self.audio.as_ref().filter(|a| a.codec == codec) else {
            return Ok(None); // no configuration for this codec yet
        };
        self.pes.clear();
        self.pes.resize(pes::MAX_HEADER_LEN, 0);
        let stream_id = match (track.codec, &track.adts) {
            (AudioCodec::Aac, Some(c)) => {
                adts::write_header(&mut self.pes, c, data.len())?;
                STREAM_ID_AUDIO
            }
            (AudioCodec::Aac, None) => return Ok(None),
            (AudioCodec::Mp3, _) => STREAM_ID_AUDIO,
            (AudioCodec::Opus, _) => {
                opus::write_control_header(&mut self.pes, data.len());
                STREAM_ID_PRIVATE_1
            }
        };
        self.pes.extend_from_slice(data);
        let audio_only = self.video.is_none();
        // An audio-only stream: its tables every so often make a place to start.
        let key = audio_only
            && (self.pmt_changed
                || match self.tables_at {
                    None => true,
                    Some(at) => timestamp.wrapping_sub(at) >= AUDIO_ONLY_TABLES_MS,
                });
        if !self.may_start(key) {
            return Ok(None);
        }
        let pts = to_clock(timestamp);
        self.start_frame(key, timestamp, self.pes.len());
        let flags = UnitFlags {
            pcr: audio_only.then(|| pts.saturating_sub(PCR_DELAY)),
            discontinuity: std::mem::take(&mut self.audio_discontinuity),
            random_access: key,
        };
        let at = self.write_pes_header(stream_id, pts, None);
        write_unit(
            &mut self.arena,
            AUDIO_PID,
            &mut self.cc.audio,
            flags,
            &self.pes[at..],
        );
        Ok(Some(Muxed {
            bytes: self.arena.split().freeze(),
            key,
            timestamp,
        }))
    }

    /// Whether a frame is muxed: not before a place to start after a discontinuity.
    fn may_start(&mut self, key: bool) -> bool {
        if key {
            self.await_key = false;
        }
        !self.await_key
    }

    /// Room in the arena for a frame's packets, and the tables first when it is a place
    /// to start or the tracks changed.
    /// `unit_len`: about the PES's length (a little over is fine).
    fn start_frame(&mut self, key: bool, timestamp: u32, unit_len: usize) {
        let packets = 2 + (pes::MAX_HEADER_LEN + unit_len) / (TS_PACKET_SIZE - 12) + 1;
        let need = packets * TS_PACKET_SIZE;
        if self.arena.capacity() < need {
            // Reuses the last buffer when every frame written in it has been let go of,
            // else takes a new one.
            let block = match self.arena_bytes {
                0 => ARENA_BYTES,
                n => n,
            };
            self.arena.reserve(need.max(block));
        }
        let out = &mut self.arena;
        if key || self.pmt_changed {
            if self.pmt_changed {
                self.pmt_version = (self.pmt_version + 1) & 0x1f;
                self.pmt_changed = false;
            }
            let discontinuity = std::mem::take(&mut self.tables_discontinuity);
            psi::write_pat(out, &mut self.cc.pat, discontinuity);
            let mut streams = [Elementary {
                stream_type: 0,
                pid: 0,
                descriptors: &[],
            }; 2];
            let mut n = 0;
            if let Some(v) = &self.video {
                streams[n] = match &v.config {
                    VideoConfig::Av1(c) => Elementary {
                        stream_type: stream_type::PRIVATE_PES,
                        pid: VIDEO_PID,
                        descriptors: &c.descriptors,
                    },
                    VideoConfig::Nal(_) => Elementary {
                        stream_type: match v.codec {
                            VideoCodec::Hevc => stream_type::HEVC,
                            _ => stream_type::H264,
                        },
                        pid: VIDEO_PID,
                        descriptors: &[],
                    },
                };
                n += 1;
            }
            if let Some(a) = &self.audio {
                streams[n] = Elementary {
                    stream_type: match a.codec {
                        AudioCodec::Aac => stream_type::AAC_ADTS,
                        AudioCodec::Mp3 => stream_type::MPEG1_AUDIO,
                        AudioCodec::Opus => stream_type::PRIVATE_PES,
                    },
                    pid: AUDIO_PID,
                    descriptors: &a.descriptors,
                };
                n += 1;
            }
            let pcr_pid = if self.video.is_some() {
                VIDEO_PID
            } else {
                AUDIO_PID
            };
            psi::write_pmt(
                out,
                &mut self.cc.pmt,
                discontinuity,
                self.pmt_version,
                pcr_pid,
                &streams[..n],
            );
            self.tables_at = Some(timestamp);
        }
    }

    /// Writes the PES header into the room left at the front of `self.pes`; returns where
    /// the PES packet starts in it.
    fn write_pes_header(&mut self, stream_id: u8, pts: u64, dts: Option<u64>) -> usize {
        let payload_len = self.pes.len() - pes::MAX_HEADER_LEN;
        self.header.clear();
        pes::write_header(&mut self.header, stream_id, pts, dts, payload_len);
        let at = pes::MAX_HEADER_LEN - self.header.len();
        self.pes[at..pes::MAX_HEADER_LEN].copy_from_slice(&self.header);
        at
    }
}

/// An RTMP timestamp (milliseconds) on the 90 kHz clock, with the offset.
fn to_clock(ms: u32) -> u64 {
    (u64::from(ms) * CLOCK_HZ / 1000 + TIME_OFFSET) & TIME_MASK
}

#[cfg(test)]
mod tests;
