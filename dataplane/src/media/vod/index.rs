//! A media file's index, built once per file and shared (`Arc`) by every viewer of it:
//! where each sample is, when it plays, what it is, and the headers a viewer must have
//! before any of it. Whatever the container (FLV or ISO), a sample becomes one RTMP
//! message whose payload is an FLV tag body: FLV files store exactly that; an ISO sample
//! gets the few bytes of tag header its track's codec needs in front (`Track::prefix`).

use bytes::Bytes;

use crate::media::tag::FrameKind;
use crate::proto::rtmp::msg_type;

/// Index memory is bounded: a file claiming more samples than this (about 30 hours of 30 fps
/// video with AAC audio) is refused rather than indexed.
pub(crate) const MAX_SAMPLES: usize = 8_000_000;

/// Why a file cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum IndexError {
    #[error(transparent)]
    Flv(#[from] crate::proto::flv::FlvError),
    #[error("more than {MAX_SAMPLES} samples")]
    TooManySamples,
    #[error("no audio or video")]
    Empty,
    #[error("no moov box (fragmented or not an ISO file)")]
    NoMoov,
    #[error("moov box of {0} bytes is over the limit")]
    MoovTooLarge(u64),
    #[error("bad box header at offset {0}")]
    BoxHeader(u64),
    #[error("moov does not decode: {0}")]
    Moov(String),
    #[error("bad sample table in track {0}: {1}")]
    SampleTable(u32, &'static str),
    #[error("no track RTMP can carry (H.264, HEVC, AV1, AAC, MP3, Opus)")]
    NoPlayableTrack,
}

/// What an indexer needs next: it is fed the file's bytes from where it asks.
#[derive(Debug, PartialEq)]
pub(crate) enum Feed {
    /// Read at least `len` bytes at file offset `at` (more is better) and feed them.
    Read {
        at: u64,
        len: usize,
    },
    Done(Box<MediaIndex>),
}

/// One sample (FLV: one tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// File offset of the bytes sent (FLV: the tag body; ISO: the sample data).
    pub(crate) offset: u64,
    pub(crate) size: u32,
    /// Decode time in milliseconds from the start of the file.
    pub(crate) timestamp: u32,
    /// Composition offset in milliseconds (ISO video; FLV carries it in the body).
    pub(crate) composition: i32,
    pub(crate) kind: FrameKind,
    /// The ISO track (index into `MediaIndex::tracks`); 0 for FLV.
    pub(crate) track: u8,
}

impl Sample {
    /// The RTMP message type this sample is sent as.
    pub(crate) fn type_id(&self) -> u8 {
        match self.kind {
            FrameKind::Metadata => msg_type::DATA_AMF0,
            FrameKind::Audio | FrameKind::AudioHeader => msg_type::AUDIO,
            _ => msg_type::VIDEO,
        }
    }
}

/// How an ISO track's samples become FLV tag bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    /// Legacy FLV AVC: frame type and codec id, AVCPacketType 1, composition time.
    Avc,
    /// Enhanced RTMP `hvc1`: CodedFrames with composition time.
    Hevc,
    /// Enhanced RTMP `av01`: CodedFrames (no composition time in the tag).
    Av1,
    /// Legacy FLV AAC: sound format 10, AACPacketType 1.
    Aac,
    /// Legacy FLV MP3 (sound format 2, 44 kHz, 16-bit, stereo flags).
    Mp3,
    /// Enhanced RTMP audio `Opus`: CodedFrames.
    Opus,
}

/// Longest tag prefix any track needs (E-RTMP: one byte, FourCC, SI24 composition time).
pub(crate) const MAX_PREFIX: usize = 8;

impl Track {
    /// Whether the track is video.
    pub(crate) fn is_video(self) -> bool {
        matches!(self, Track::Avc | Track::Hevc | Track::Av1)
    }

    /// The track's codec as onMetaData's `videocodecid` / `audiocodecid` say it: the legacy
    /// FLV codec id, or for Enhanced RTMP codecs their FourCC read as a big-endian number
    /// (Enhanced RTMP v2, "Metadata Frame").
    pub(crate) fn metadata_codec_id(self) -> u32 {
        match self {
            Track::Avc => 7,
            Track::Hevc => u32::from_be_bytes(*b"hvc1"),
            Track::Av1 => u32::from_be_bytes(*b"av01"),
            Track::Aac => 10,
            Track::Mp3 => 2,
            Track::Opus => u32::from_be_bytes(*b"Opus"),
        }
    }

    /// The FLV tag body bytes that go in front of `sample`'s data.
    pub(crate) fn prefix(self, sample: &Sample) -> ([u8; MAX_PREFIX], usize) {
        let mut p = [0u8; MAX_PREFIX];
        let frame: u8 = if sample.kind == FrameKind::VideoKey {
            1
        } else {
            2
        };
        let cts = sample.composition.to_be_bytes();
        let len = match self {
            Track::Avc => {
                p[..5].copy_from_slice(&[frame << 4 | 7, 1, cts[1], cts[2], cts[3]]);
                5
            }
            Track::Hevc => {
                p[0] = 0x80 | frame << 4 | 1;
                p[1..5].copy_from_slice(b"hvc1");
                p[5..8].copy_from_slice(&cts[1..]);
                8
            }
            Track::Av1 => {
                p[0] = 0x80 | frame << 4 | 1;
                p[1..5].copy_from_slice(b"av01");
                5
            }
            Track::Aac => {
                p[..2].copy_from_slice(&[0xaf, 1]);
                2
            }
            Track::Mp3 => {
                p[0] = 0x2f;
                1
            }
            Track::Opus => {
                p[0] = 0x90 | 1;
                p[1..5].copy_from_slice(b"Opus");
                5
            }
        };
        (p, len)
    }
}

/// Which container the samples are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    Flv,
    Iso,
}

/// Everything a viewer of a file needs besides the sample bytes themselves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaIndex {
    pub(crate) container: Container,
    pub(crate) file_len: u64,
    /// Every sample in send order (decode time; ties keep file order).
    pub(crate) samples: Vec<Sample>,
    /// Indices into `samples` of the video key frames, in order: where a play or a seek
    /// may start.
    pub(crate) key_frames: Vec<u32>,
    /// ISO tracks, by `Sample::track`.
    pub(crate) tracks: Vec<Track>,
    /// The file's own onMetaData (FLV), if it has one (the server sends its own otherwise).
    pub(crate) metadata: Option<Bytes>,
    /// Sequence headers as RTMP payloads, sent before the first sample of any play or seek.
    pub(crate) video_header: Option<Bytes>,
    pub(crate) audio_header: Option<Bytes>,
    pub(crate) duration_ms: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl MediaIndex {
    /// Where a play or seek to `ms` starts: the last video key frame at or before it (the
    /// first key frame when `ms` is before it), or for a file without key frames the first
    /// sample at or after `ms`.
    pub(crate) fn start_at(&self, ms: u32) -> usize {
        if self.key_frames.is_empty() {
            return self.samples.partition_point(|s| s.timestamp < ms);
        }
        let after = self
            .key_frames
            .partition_point(|&k| self.sample_time(k) <= ms);
        self.key_frames[after.saturating_sub(1)] as usize
    }

    fn sample_time(&self, index: u32) -> u32 {
        self.samples
            .get(index as usize)
            .map_or(u32::MAX, |s| s.timestamp)
    }

    /// The tag prefix of `sample` (empty for FLV, whose bodies are complete in the file).
    pub(crate) fn prefix(&self, sample: &Sample) -> ([u8; MAX_PREFIX], usize) {
        match self.tracks.get(usize::from(sample.track)) {
            Some(track) if self.container == Container::Iso => track.prefix(sample),
            _ => ([0; MAX_PREFIX], 0),
        }
    }

    /// The RTMP message (type and payload) for `sample`, given its bytes from the file.
    pub(crate) fn message(&self, sample: &Sample, data: &[u8]) -> (u8, Bytes) {
        (sample.type_id(), self.with_prefix(sample, data))
    }

    /// The RTMP payload of `sample` from its bytes as read: those same bytes when the file
    /// holds the payload whole (FLV), so viewers share the read; a copy behind the tag
    /// prefix otherwise (ISO).
    pub(crate) fn payload(&self, sample: &Sample, data: Bytes) -> Bytes {
        if self.prefix(sample).1 == 0 {
            return data;
        }
        self.with_prefix(sample, &data)
    }

    fn with_prefix(&self, sample: &Sample, data: &[u8]) -> Bytes {
        let (prefix, len) = self.prefix(sample);
        let mut payload = Vec::with_capacity(len + data.len());
        payload.extend_from_slice(&prefix[..len]);
        payload.extend_from_slice(data);
        payload.into()
    }

    /// Duration from the samples: the last decode time plus one frame's worth (the gap
    /// before it), so a 10-frame file at 25 fps lasts 400 ms, not 360.
    pub(crate) fn duration_from_samples(samples: &[Sample]) -> u32 {
        let mut last = [None::<u32>; 2];
        let mut gap = [0u32; 2];
        for s in samples {
            let track = usize::from(s.kind.is_video());
            if matches!(
                s.kind,
                FrameKind::Metadata | FrameKind::VideoHeader | FrameKind::AudioHeader
            ) {
                continue;
            }
            if let Some(prev) = last[track] {
                gap[track] = s.timestamp.saturating_sub(prev);
            }
            last[track] = Some(s.timestamp);
        }
        (0..2)
            .filter_map(|t| last[t].map(|l| l.saturating_add(gap[t])))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
impl MediaIndex {
    /// An FLV index of just these samples (no headers, no file): for tests of what reads
    /// indexes.
    pub(crate) fn from_samples(samples: Vec<Sample>) -> MediaIndex {
        let key_frames = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == FrameKind::VideoKey)
            .map(|(i, _)| i as u32)
            .collect();
        MediaIndex {
            container: Container::Flv,
            file_len: 0,
            duration_ms: MediaIndex::duration_from_samples(&samples),
            samples,
            key_frames,
            tracks: vec![],
            metadata: None,
            video_header: None,
            audio_header: None,
            width: 0,
            height: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(timestamp: u32, kind: FrameKind) -> Sample {
        Sample {
            offset: 0,
            size: 1,
            timestamp,
            composition: 0,
            kind,
            track: 0,
        }
    }

    fn index(samples: Vec<Sample>) -> MediaIndex {
        MediaIndex::from_samples(samples)
    }

    #[test]
    fn seeks_start_on_the_key_frame_at_or_before() {
        use FrameKind::*;
        let i = index(vec![
            sample(0, VideoKey),
            sample(0, Audio),
            sample(40, VideoInter),
            sample(1000, VideoKey),
            sample(1040, VideoInter),
            sample(2000, VideoKey),
        ]);
        assert_eq!(i.start_at(0), 0);
        assert_eq!(i.start_at(999), 0);
        assert_eq!(i.start_at(1000), 3);
        assert_eq!(i.start_at(1999), 3);
        assert_eq!(i.start_at(u32::MAX), 5);
        assert_eq!(i.duration_ms, 2000 + 960);
    }

    #[test]
    fn audio_only_starts_at_the_first_sample_not_before() {
        let i = index((0..10).map(|n| sample(n * 23, FrameKind::Audio)).collect());
        assert_eq!(i.start_at(0), 0);
        assert_eq!(i.start_at(24), 2);
        assert_eq!(i.start_at(10_000), 10);
        assert_eq!(i.duration_ms, 230);
    }

    #[test]
    fn iso_prefixes_are_tag_headers() {
        let mut s = sample(0, FrameKind::VideoKey);
        s.composition = 80;
        assert_eq!(Track::Avc.prefix(&s), ([0x17, 1, 0, 0, 80, 0, 0, 0], 5));
        let (p, n) = Track::Hevc.prefix(&s);
        assert_eq!(&p[..n], &[0x91, b'h', b'v', b'c', b'1', 0, 0, 80]);
        assert_eq!(crate::media::tag::classify(9, &p[..n]), FrameKind::VideoKey);
        s.kind = FrameKind::VideoInter;
        s.composition = -40;
        assert_eq!(&Track::Avc.prefix(&s).0[..5], &[0x27, 1, 0xff, 0xff, 0xd8]);
        let (p, n) = Track::Av1.prefix(&s);
        assert_eq!(
            crate::media::tag::classify(9, &p[..n]),
            FrameKind::VideoInter
        );
        let a = sample(0, FrameKind::Audio);
        let (p, n) = Track::Opus.prefix(&a);
        assert_eq!(crate::media::tag::classify(8, &p[..n]), FrameKind::Audio);
        assert_eq!(&Track::Aac.prefix(&a).0[..2], &[0xaf, 1]);
    }
}
