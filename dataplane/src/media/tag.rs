//! What a live message is, read from its RTMP type id and the first bytes of its payload (an
//! FLV tag body): enough for the GOP cache and the send queues to decide what to keep, what to
//! drop and where a viewer may resume. Nothing here decodes codec bitstreams.
//!
//! Sources: the legacy FLV specification (v10, Annex E) and Veovera's Enhanced RTMP v2
//! (`docs/enhanced/enhanced-rtmp-v2.md`, "Enhanced Audio" and "Enhanced Video"): the ExHeader
//! bit, packet types, the ModEx and Multitrack prefixes, and the FourCC codec ids.
//!
//! Every function is total: empty, truncated or nonsensical payloads give a conservative
//! answer (`VideoOther`, `Audio`, `None`), never a panic, because payloads come straight from
//! publishers.

use crate::proto::rtmp::msg_type;

/// What a live message means to fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A data message (`onMetaData`, cue points, ...): type 18, or 15 (AMF3 data).
    Metadata,
    /// Audio decoder configuration (AAC AudioSpecificConfig, E-RTMP SequenceStart).
    AudioHeader,
    /// Coded audio, and audio messages that carry no frame (silence, sequence end).
    Audio,
    /// Video decoder configuration (AVC/HEVC/AV1/VP9 configuration record).
    VideoHeader,
    /// A frame a decoder can start on (key frame, generated key frame).
    VideoKey,
    /// A frame that needs the frames before it (inter, disposable inter).
    VideoInter,
    /// Video that is not a picture: end of sequence, commands, E-RTMP video metadata, and
    /// anything unknown or truncated.
    VideoOther,
}

impl FrameKind {
    /// Audio or video that a viewer can do without (dropped under lag); metadata and sequence
    /// headers are not: without them nothing after decodes.
    pub(crate) fn is_droppable(self) -> bool {
        matches!(
            self,
            FrameKind::Audio | FrameKind::VideoKey | FrameKind::VideoInter | FrameKind::VideoOther
        )
    }

    /// Any video message, header included.
    pub(crate) fn is_video(self) -> bool {
        matches!(
            self,
            FrameKind::VideoHeader
                | FrameKind::VideoKey
                | FrameKind::VideoInter
                | FrameKind::VideoOther
        )
    }
}

/// Video codec of a video message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
    /// A legacy FLV codec id (0..=15) or an E-RTMP FourCC (big-endian ASCII, e.g. `vp08`).
    Other(u32),
}

/// Audio codec of an audio message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudioCodec {
    Aac,
    Mp3,
    Opus,
    /// A legacy FLV sound format (0..=15) or an E-RTMP FourCC (e.g. `fLaC`, `ac-3`).
    Other(u32),
}

/// Legacy FLV video frame types (high nibble of the first byte) and E-RTMP's VideoFrameType
/// (bits 4-6 when the ExHeader bit is set): the same values.
mod frame_type {
    pub(crate) const KEY: u8 = 1;
    pub(crate) const INTER: u8 = 2;
    pub(crate) const DISPOSABLE_INTER: u8 = 3;
    /// "Reserved for server use": a key frame a server synthesised (e.g. after a seek).
    pub(crate) const GENERATED_KEY: u8 = 4;
    /// Video info/command frame: no picture.
    pub(crate) const COMMAND: u8 = 5;
}

/// Legacy FLV video codec ids (low nibble of the first byte).
mod legacy_video_codec {
    pub(crate) const AVC: u8 = 7;
    /// Not in Adobe's specification: HEVC as Chinese CDNs' encoders (and SRS, nginx forks)
    /// send it, with the AVC packet layout. Enhanced RTMP's `hvc1` replaces it.
    pub(crate) const HEVC: u8 = 12;
}

/// Legacy AVCPacketType (the second byte when the codec is AVC, or legacy HEVC).
mod avc_packet_type {
    pub(crate) const SEQUENCE_HEADER: u8 = 0;
    pub(crate) const NALU: u8 = 1;
}

/// E-RTMP VideoPacketType (low nibble of the first byte under the ExHeader bit).
mod video_packet_type {
    pub(crate) const SEQUENCE_START: u8 = 0;
    pub(crate) const CODED_FRAMES: u8 = 1;
    pub(crate) const CODED_FRAMES_X: u8 = 3;
    /// An AMF-encoded video metadata (`colorInfo`): frame type bits are ignored for it.
    pub(crate) const METADATA: u8 = 4;
    pub(crate) const MPEG2TS_SEQUENCE_START: u8 = 5;
    pub(crate) const MULTITRACK: u8 = 6;
    pub(crate) const MOD_EX: u8 = 7;
}

/// Legacy FLV SoundFormat (high nibble of the first audio byte).
mod sound_format {
    pub(crate) const MP3: u8 = 2;
    /// E-RTMP: the low nibble is an AudioPacketType and a FourCC follows.
    pub(crate) const EX_HEADER: u8 = 9;
    pub(crate) const AAC: u8 = 10;
    pub(crate) const MP3_8K: u8 = 14;
}

/// Legacy AACPacketType (second byte when the sound format is AAC).
const AAC_SEQUENCE_HEADER: u8 = 0;

/// E-RTMP AudioPacketType.
mod audio_packet_type {
    pub(crate) const SEQUENCE_START: u8 = 0;
    pub(crate) const MULTITRACK: u8 = 5;
    pub(crate) const MOD_EX: u8 = 7;
}

const fn fourcc(s: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*s)
}

const FOURCC_AVC: u32 = fourcc(b"avc1");
const FOURCC_HEVC: u32 = fourcc(b"hvc1");
const FOURCC_AV1: u32 = fourcc(b"av01");
const FOURCC_VP9: u32 = fourcc(b"vp09");
const FOURCC_AAC: u32 = fourcc(b"mp4a");
const FOURCC_MP3: u32 = fourcc(b".mp3");
const FOURCC_OPUS: u32 = fourcc(b"Opus");

/// Classifies one live message. Callers pass the media-carrying types (8 audio, 9 video, 18
/// and 15 data, 22 aggregate); any other type id is not live media and comes back as
/// `VideoOther`, the kind nothing caches or resumes on.
pub fn classify(type_id: u8, payload: &[u8]) -> FrameKind {
    match type_id {
        msg_type::AUDIO => classify_audio(payload),
        msg_type::VIDEO => classify_video(payload),
        // Data messages: AMF0 (18), or AMF3 (15, whose payload starts with a 0x00 format
        // byte). Which data message it is (onMetaData or a cue point) is the app's business.
        msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => FrameKind::Metadata,
        msg_type::AGGREGATE => classify_aggregate(payload),
        _ => FrameKind::VideoOther,
    }
}

/// Video codec of a video message body, `None` when the payload is empty or too short to say
/// (or an E-RTMP command frame, which carries no FourCC).
pub(crate) fn video_codec(payload: &[u8]) -> Option<VideoCodec> {
    let first = *payload.first()?;
    if first & EX_HEADER_BIT == 0 {
        return Some(match first & 0x0f {
            legacy_video_codec::AVC => VideoCodec::Avc,
            legacy_video_codec::HEVC => VideoCodec::Hevc,
            other => VideoCodec::Other(u32::from(other)),
        });
    }
    let ex = ex_video_header(payload)?;
    let code = read_fourcc(payload, ex.fourcc_at?)?;
    Some(match code {
        FOURCC_AVC => VideoCodec::Avc,
        FOURCC_HEVC => VideoCodec::Hevc,
        FOURCC_AV1 => VideoCodec::Av1,
        FOURCC_VP9 => VideoCodec::Vp9,
        other => VideoCodec::Other(other),
    })
}

/// Audio codec of an audio message body, `None` when the payload is empty or too short.
pub(crate) fn audio_codec(payload: &[u8]) -> Option<AudioCodec> {
    let first = *payload.first()?;
    Some(match first >> 4 {
        sound_format::AAC => AudioCodec::Aac,
        sound_format::MP3 | sound_format::MP3_8K => AudioCodec::Mp3,
        sound_format::EX_HEADER => {
            let ex = ex_audio_header(payload)?;
            match read_fourcc(payload, ex.fourcc_at)? {
                FOURCC_AAC => AudioCodec::Aac,
                FOURCC_MP3 => AudioCodec::Mp3,
                FOURCC_OPUS => AudioCodec::Opus,
                other => AudioCodec::Other(other),
            }
        }
        other => AudioCodec::Other(u32::from(other)),
    })
}

/// E-RTMP: the top bit of a video message's first byte says "enhanced header".
const EX_HEADER_BIT: u8 = 0x80;

fn classify_video(payload: &[u8]) -> FrameKind {
    let Some(&first) = payload.first() else {
        return FrameKind::VideoOther;
    };
    if first & EX_HEADER_BIT != 0 {
        return classify_ex_video(payload);
    }
    let frame = first >> 4;
    let codec = first & 0x0f;
    if frame == frame_type::COMMAND {
        return FrameKind::VideoOther;
    }
    if codec == legacy_video_codec::AVC || codec == legacy_video_codec::HEVC {
        // AVC-style packets: the packet type decides before the frame type does.
        match payload.get(1) {
            Some(&avc_packet_type::SEQUENCE_HEADER) => FrameKind::VideoHeader,
            Some(&avc_packet_type::NALU) => picture_kind(frame),
            // End of sequence, unknown packet types, truncated.
            _ => FrameKind::VideoOther,
        }
    } else {
        // Sorenson H.263, screen video, VP6: no sequence headers, every message a picture.
        picture_kind(frame)
    }
}

fn picture_kind(frame: u8) -> FrameKind {
    match frame {
        frame_type::KEY | frame_type::GENERATED_KEY => FrameKind::VideoKey,
        frame_type::INTER | frame_type::DISPOSABLE_INTER => FrameKind::VideoInter,
        _ => FrameKind::VideoOther,
    }
}

/// What an E-RTMP ExVideoTagHeader says, once ModEx and Multitrack prefixes are walked.
struct ExVideoHeader {
    frame: u8,
    packet_type: u8,
    /// Where the FourCC starts; `None` for command frames, which carry none.
    fourcc_at: Option<usize>,
}

/// Walks an ExVideoTagHeader (the caller checked the ExHeader bit). `None` when truncated.
fn ex_video_header(payload: &[u8]) -> Option<ExVideoHeader> {
    let first = *payload.first()?;
    let frame = (first >> 4) & 0x07;
    let (mut packet_type, mut at) =
        skip_mod_ex(payload, first & 0x0f, 1, video_packet_type::MOD_EX)?;
    if packet_type != video_packet_type::METADATA && frame == frame_type::COMMAND {
        // A command frame: one VideoCommand byte, no FourCC, no body.
        return Some(ExVideoHeader {
            frame,
            packet_type,
            fourcc_at: None,
        });
    }
    if packet_type == video_packet_type::MULTITRACK {
        // High nibble: AvMultitrackType; low nibble: the packet type of every track. The
        // FourCC follows either way (for ManyTracksManyCodecs it is the first track's).
        packet_type = payload.get(at)? & 0x0f;
        at += 1;
    }
    Some(ExVideoHeader {
        frame,
        packet_type,
        fourcc_at: Some(at),
    })
}

fn classify_ex_video(payload: &[u8]) -> FrameKind {
    let Some(ex) = ex_video_header(payload) else {
        return FrameKind::VideoOther;
    };
    if ex.fourcc_at.is_none() {
        return FrameKind::VideoOther;
    }
    match ex.packet_type {
        video_packet_type::SEQUENCE_START | video_packet_type::MPEG2TS_SEQUENCE_START => {
            FrameKind::VideoHeader
        }
        video_packet_type::CODED_FRAMES | video_packet_type::CODED_FRAMES_X => {
            picture_kind(ex.frame)
        }
        // SequenceEnd, Metadata (colorInfo), reserved values.
        _ => FrameKind::VideoOther,
    }
}

fn classify_audio(payload: &[u8]) -> FrameKind {
    // An empty audio message is RTMP's "audio silence" signal: audio, not a header.
    let Some(&first) = payload.first() else {
        return FrameKind::Audio;
    };
    match first >> 4 {
        sound_format::AAC => match payload.get(1) {
            Some(&AAC_SEQUENCE_HEADER) => FrameKind::AudioHeader,
            _ => FrameKind::Audio,
        },
        sound_format::EX_HEADER => match ex_audio_header(payload) {
            Some(ex) if ex.packet_type == audio_packet_type::SEQUENCE_START => {
                FrameKind::AudioHeader
            }
            // CodedFrames, SequenceEnd, MultichannelConfig, truncated.
            _ => FrameKind::Audio,
        },
        _ => FrameKind::Audio,
    }
}

struct ExAudioHeader {
    packet_type: u8,
    fourcc_at: usize,
}

/// Walks an ExAudioTagHeader (sound format 9). `None` when truncated.
fn ex_audio_header(payload: &[u8]) -> Option<ExAudioHeader> {
    let first = *payload.first()?;
    let (mut packet_type, mut at) =
        skip_mod_ex(payload, first & 0x0f, 1, audio_packet_type::MOD_EX)?;
    if packet_type == audio_packet_type::MULTITRACK {
        packet_type = payload.get(at)? & 0x0f;
        at += 1;
    }
    Some(ExAudioHeader {
        packet_type,
        fourcc_at: at,
    })
}

/// Skips E-RTMP ModEx blocks: while the packet type is ModEx, a size (UI8 + 1, or UI16 + 1
/// when the UI8 form says 256), that many bytes, then a byte whose low nibble is the next
/// packet type. Returns the final packet type and the offset after it; `None` if truncated.
/// Terminates: every round advances `at` by at least two bytes or fails.
fn skip_mod_ex(
    payload: &[u8],
    mut packet_type: u8,
    mut at: usize,
    mod_ex: u8,
) -> Option<(u8, usize)> {
    while packet_type == mod_ex {
        let mut size = usize::from(*payload.get(at)?) + 1;
        at += 1;
        if size == 256 {
            let wide = payload.get(at..at.checked_add(2)?)?;
            size = usize::from(u16::from_be_bytes([wide[0], wide[1]])) + 1;
            at += 2;
        }
        at = at.checked_add(size)?;
        // High nibble: the ModEx type (TimestampOffsetNano); we need only the packet type.
        packet_type = payload.get(at)? & 0x0f;
        at += 1;
    }
    Some((packet_type, at))
}

fn read_fourcc(payload: &[u8], at: usize) -> Option<u32> {
    let bytes = payload.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// FLV tag header inside an aggregate message: type (1), data size (3), timestamp (3),
/// timestamp extension (1), stream id (3).
const FLV_TAG_HEADER_LEN: usize = 11;

/// An aggregate message (type 22) is a run of FLV tags; it is classified by its first tag,
/// which is what a viewer resuming on it would decode first. A truncated first tag is
/// classified on the bytes that are there.
fn classify_aggregate(payload: &[u8]) -> FrameKind {
    let Some(header) = payload.get(..FLV_TAG_HEADER_LEN) else {
        return FrameKind::VideoOther;
    };
    let size = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    let body = &payload[FLV_TAG_HEADER_LEN..];
    let body = body.get(..size).unwrap_or(body);
    match header[0] & 0x1f {
        // The low five bits are the tag type (bit 5 is FLV's "filter" / encrypted flag).
        t @ (msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0) => classify(t, body),
        _ => FrameKind::VideoOther,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AUDIO: u8 = msg_type::AUDIO;
    const VIDEO: u8 = msg_type::VIDEO;

    #[test]
    fn avc_packets() {
        assert_eq!(classify(VIDEO, &[0x17, 0, 0, 0, 0]), FrameKind::VideoHeader);
        assert_eq!(classify(VIDEO, &[0x17, 1, 0, 0, 0]), FrameKind::VideoKey);
        assert_eq!(classify(VIDEO, &[0x27, 1, 0, 0, 0]), FrameKind::VideoInter);
        assert_eq!(classify(VIDEO, &[0x17, 2, 0, 0, 0]), FrameKind::VideoOther);
        assert_eq!(classify(VIDEO, &[0x47, 1]), FrameKind::VideoKey);
        assert_eq!(classify(VIDEO, &[0x57, 0]), FrameKind::VideoOther);
        assert_eq!(video_codec(&[0x17, 1]), Some(VideoCodec::Avc));
    }

    #[test]
    fn legacy_hevc_codec_id_12() {
        assert_eq!(classify(VIDEO, &[0x1c, 0]), FrameKind::VideoHeader);
        assert_eq!(classify(VIDEO, &[0x1c, 1]), FrameKind::VideoKey);
        assert_eq!(classify(VIDEO, &[0x2c, 1]), FrameKind::VideoInter);
        assert_eq!(video_codec(&[0x2c, 1]), Some(VideoCodec::Hevc));
    }

    #[test]
    fn old_codecs_have_no_packet_type() {
        // VP6 (4) and Sorenson H.263 (2).
        assert_eq!(classify(VIDEO, &[0x14]), FrameKind::VideoKey);
        assert_eq!(classify(VIDEO, &[0x32]), FrameKind::VideoInter);
        assert_eq!(video_codec(&[0x14]), Some(VideoCodec::Other(4)));
    }

    fn ex_video(frame: u8, packet_type: u8, fourcc: &[u8; 4]) -> Vec<u8> {
        let mut v = vec![0x80 | frame << 4 | packet_type];
        v.extend_from_slice(fourcc);
        v.extend_from_slice(&[0, 0, 0, 0xAA]);
        v
    }

    #[test]
    fn enhanced_video() {
        assert_eq!(
            classify(VIDEO, &ex_video(1, 0, b"hvc1")),
            FrameKind::VideoHeader
        );
        assert_eq!(
            classify(VIDEO, &ex_video(1, 1, b"hvc1")),
            FrameKind::VideoKey
        );
        assert_eq!(
            classify(VIDEO, &ex_video(1, 3, b"av01")),
            FrameKind::VideoKey
        );
        assert_eq!(
            classify(VIDEO, &ex_video(2, 3, b"vp09")),
            FrameKind::VideoInter
        );
        assert_eq!(
            classify(VIDEO, &ex_video(1, 2, b"hvc1")),
            FrameKind::VideoOther
        );
        assert_eq!(
            classify(VIDEO, &ex_video(1, 4, b"hvc1")),
            FrameKind::VideoOther
        );
        assert_eq!(
            classify(VIDEO, &ex_video(1, 5, b"av01")),
            FrameKind::VideoHeader
        );
        assert_eq!(
            video_codec(&ex_video(1, 1, b"hvc1")),
            Some(VideoCodec::Hevc)
        );
        assert_eq!(video_codec(&ex_video(1, 1, b"av01")), Some(VideoCodec::Av1));
        assert_eq!(video_codec(&ex_video(1, 1, b"vp09")), Some(VideoCodec::Vp9));
        assert_eq!(video_codec(&ex_video(1, 1, b"avc1")), Some(VideoCodec::Avc));
        assert_eq!(
            video_codec(&ex_video(1, 1, b"vp08")),
            Some(VideoCodec::Other(u32::from_be_bytes(*b"vp08")))
        );
    }

    #[test]
    fn enhanced_video_command_has_no_fourcc() {
        // Frame type 5 (command), packet type CodedFrames, then a VideoCommand byte.
        let payload = [0x80 | 5 << 4 | 1, 0];
        assert_eq!(classify(VIDEO, &payload), FrameKind::VideoOther);
        assert_eq!(video_codec(&payload), None);
    }

    #[test]
    fn enhanced_video_mod_ex_and_multitrack() {
        // ModEx: size byte 2 (3 bytes of data), data, then (ModEx type 0 | packet type 1).
        let mut p = vec![0x80 | 1 << 4 | 7, 2, 0, 0, 5, 0x01];
        p.extend_from_slice(b"hvc1");
        assert_eq!(classify(VIDEO, &p), FrameKind::VideoKey);
        assert_eq!(video_codec(&p), Some(VideoCodec::Hevc));
        // Multitrack: OneTrack (0) with packet type SequenceStart, FourCC, track id.
        let mut p = vec![0x80 | 1 << 4 | 6, 0x00];
        p.extend_from_slice(b"av01");
        p.push(0);
        assert_eq!(classify(VIDEO, &p), FrameKind::VideoHeader);
        assert_eq!(video_codec(&p), Some(VideoCodec::Av1));
        // A 16-bit ModEx size (UI8 255 means "read UI16").
        let mut p = vec![0x80 | 2 << 4 | 7, 255, 0, 3];
        p.extend_from_slice(&[0; 4]);
        p.push(0x03);
        p.extend_from_slice(b"vp09");
        assert_eq!(classify(VIDEO, &p), FrameKind::VideoInter);
        assert_eq!(video_codec(&p), Some(VideoCodec::Vp9));
    }

    #[test]
    fn aac_and_mp3() {
        assert_eq!(
            classify(AUDIO, &[0xaf, 0, 0x12, 0x10]),
            FrameKind::AudioHeader
        );
        assert_eq!(classify(AUDIO, &[0xaf, 1, 0x21]), FrameKind::Audio);
        assert_eq!(classify(AUDIO, &[0xaf]), FrameKind::Audio);
        assert_eq!(classify(AUDIO, &[0x2f, 0xff, 0xfb]), FrameKind::Audio);
        assert_eq!(audio_codec(&[0xaf, 1]), Some(AudioCodec::Aac));
        assert_eq!(audio_codec(&[0x2f]), Some(AudioCodec::Mp3));
        assert_eq!(audio_codec(&[0x6f]), Some(AudioCodec::Other(6)));
    }

    #[test]
    fn enhanced_audio() {
        let mut opus_head = vec![0x90];
        opus_head.extend_from_slice(b"Opus");
        assert_eq!(classify(AUDIO, &opus_head), FrameKind::AudioHeader);
        assert_eq!(audio_codec(&opus_head), Some(AudioCodec::Opus));
        let mut frame = vec![0x91];
        frame.extend_from_slice(b"mp4a");
        frame.push(0x21);
        assert_eq!(classify(AUDIO, &frame), FrameKind::Audio);
        assert_eq!(audio_codec(&frame), Some(AudioCodec::Aac));
        let mut multi = vec![0x95, 0x00];
        multi.extend_from_slice(b".mp3");
        assert_eq!(classify(AUDIO, &multi), FrameKind::AudioHeader);
        assert_eq!(audio_codec(&multi), Some(AudioCodec::Mp3));
        let mut flac = vec![0x91];
        flac.extend_from_slice(b"fLaC");
        assert_eq!(
            audio_codec(&flac),
            Some(AudioCodec::Other(u32::from_be_bytes(*b"fLaC")))
        );
    }

    #[test]
    fn data_messages_are_metadata() {
        assert_eq!(
            classify(msg_type::DATA_AMF0, &[2, 0, 10]),
            FrameKind::Metadata
        );
        assert_eq!(
            classify(msg_type::DATA_AMF3, &[0, 2, 0, 10]),
            FrameKind::Metadata
        );
        assert_eq!(classify(msg_type::DATA_AMF0, &[]), FrameKind::Metadata);
    }

    #[test]
    fn aggregate_classified_by_first_tag() {
        let mut p = vec![9, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0x17, 1, 0, 0, 0]);
        p.extend_from_slice(&[0, 0, 0, 16]); // previous tag size
        assert_eq!(classify(msg_type::AGGREGATE, &p), FrameKind::VideoKey);
        assert_eq!(
            classify(msg_type::AGGREGATE, &p[..5]),
            FrameKind::VideoOther
        );
    }

    #[test]
    fn empty_and_truncated_never_panic() {
        assert_eq!(classify(VIDEO, &[]), FrameKind::VideoOther);
        assert_eq!(classify(AUDIO, &[]), FrameKind::Audio);
        assert_eq!(classify(VIDEO, &[0x17]), FrameKind::VideoOther);
        assert_eq!(classify(VIDEO, &[0x80 | 1 << 4 | 7]), FrameKind::VideoOther);
        assert_eq!(
            classify(VIDEO, &[0x80 | 1 << 4 | 7, 255, 0]),
            FrameKind::VideoOther
        );
        assert_eq!(classify(VIDEO, &[0x80 | 1 << 4 | 6]), FrameKind::VideoOther);
        assert_eq!(classify(AUDIO, &[0x97, 0]), FrameKind::Audio);
        assert_eq!(video_codec(&[]), None);
        assert_eq!(video_codec(&[0x91, b'h', b'v']), None);
        assert_eq!(audio_codec(&[]), None);
        assert_eq!(audio_codec(&[0x90, b'O']), None);
        assert_eq!(
            classify(msg_type::COMMAND_AMF0, &[2]),
            FrameKind::VideoOther
        );
    }

    proptest! {
        #[test]
        fn any_payload_is_classified(type_id in 0u8..32, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = classify(type_id, &payload);
            let _ = video_codec(&payload);
            let _ = audio_codec(&payload);
        }

        #[test]
        fn enhanced_headers_with_mod_ex_chains(head in proptest::collection::vec(prop_oneof![Just(0x97u8), Just(0x87u8), Just(0xffu8), Just(0x00u8), any::<u8>()], 0..300)) {
            let _ = classify(VIDEO, &head);
            let _ = classify(AUDIO, &head);
            let _ = video_codec(&head);
            let _ = audio_codec(&head);
        }
    }
}
