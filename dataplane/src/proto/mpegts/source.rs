//! What an RTMP audio or video message body (an FLV tag body, legacy or Enhanced RTMP)
//! holds for the muxer: a decoder configuration or a coded frame, its codec, whether it is
//! a key frame, and the composition offset. `media/tag.rs` classifies the same bodies for
//! fan-out; this reads the bytes behind the header, which fan-out never needs.
//!
//! Total on any input: a header too short for its kind is `Truncated`; what a transport
//! stream of ours does not carry (other codecs, E-RTMP multitrack and ModEx, end of
//! sequence, commands) is `Unit::Skip`.

use super::MuxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    H264,
    Hevc,
    Av1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudioCodec {
    Aac,
    Mp3,
    Opus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit<'a> {
    VideoConfig {
        codec: VideoCodec,
        record: &'a [u8],
    },
    Video {
        codec: VideoCodec,
        key: bool,
        /// Composition time offset (PTS - DTS) in milliseconds.
        cts: i32,
        data: &'a [u8],
    },
    AacConfig(&'a [u8]),
    /// Enhanced RTMP `Opus` sequence start: the `OpusHead`.
    OpusConfig(&'a [u8]),
    Audio {
        codec: AudioCodec,
        data: &'a [u8],
    },
    Skip,
}

fn si24(b: &[u8]) -> i32 {
    // Sign-extend a 24-bit big-endian value.
    (i32::from(b[0]) << 24 | i32::from(b[1]) << 16 | i32::from(b[2]) << 8) >> 8
}

fn is_key(frame_type: u8) -> bool {
    // Key frame, or a key frame a server generated.
    frame_type == 1 || frame_type == 4
}

pub(crate) fn video(payload: &[u8]) -> Result<Unit<'_>, MuxError> {
    let first = *payload.first().ok_or(MuxError::Truncated)?;
    if first & 0x80 == 0 {
        let codec = match first & 0x0f {
            7 => VideoCodec::H264,
            12 => VideoCodec::Hevc,
            _ => return Ok(Unit::Skip),
        };
        let head = payload.get(..5).ok_or(MuxError::Truncated)?;
        return Ok(match head[1] {
            0 => Unit::VideoConfig {
                codec,
                record: &payload[5..],
            },
            1 => Unit::Video {
                codec,
                key: is_key(first >> 4),
                cts: si24(&head[2..5]),
                data: &payload[5..],
            },
            _ => Unit::Skip,
        });
    }
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0f;
    if frame_type == 5 {
        return Ok(Unit::Skip); // a command frame: no FourCC, no picture
    }
    let fourcc = payload.get(1..5).ok_or(MuxError::Truncated)?;
    let codec = match fourcc {
        b"avc1" => VideoCodec::H264,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        _ => return Ok(Unit::Skip),
    };
    Ok(match packet_type {
        0 => Unit::VideoConfig {
            codec,
            record: &payload[5..],
        },
        // AV1's CodedFrames carry no composition time (its frames are not reordered).
        1 if codec == VideoCodec::Av1 => Unit::Video {
            codec,
            key: is_key(frame_type),
            cts: 0,
            data: &payload[5..],
        },
        1 => {
            let cts = payload.get(5..8).ok_or(MuxError::Truncated)?;
            Unit::Video {
                codec,
                key: is_key(frame_type),
                cts: si24(cts),
                data: &payload[8..],
            }
        }
        3 => Unit::Video {
            codec,
            key: is_key(frame_type),
            cts: 0,
            data: &payload[5..],
        },
        // SequenceEnd, Metadata, Multitrack, ModEx and reserved: not carried.
        _ => Unit::Skip,
    })
}

pub(crate) fn audio(payload: &[u8]) -> Result<Unit<'_>, MuxError> {
    let Some(&first) = payload.first() else {
        return Ok(Unit::Skip); // RTMP's "silence": nothing to carry
    };
    match first >> 4 {
        10 => {
            let head = payload.get(..2).ok_or(MuxError::Truncated)?;
            Ok(match head[1] {
                0 => Unit::AacConfig(&payload[2..]),
                _ => Unit::Audio {
                    codec: AudioCodec::Aac,
                    data: &payload[2..],
                },
            })
        }
        2 | 14 => Ok(Unit::Audio {
            codec: AudioCodec::Mp3,
            data: &payload[1..],
        }),
        9 => {
            let fourcc = payload.get(1..5).ok_or(MuxError::Truncated)?;
            let data = &payload[5..];
            Ok(match (fourcc, first & 0x0f) {
                (b"mp4a", 0) => Unit::AacConfig(data),
                (b"mp4a", 1) => Unit::Audio {
                    codec: AudioCodec::Aac,
                    data,
                },
                (b".mp3", 1) => Unit::Audio {
                    codec: AudioCodec::Mp3,
                    data,
                },
                (b"Opus", 0) => Unit::OpusConfig(data),
                (b"Opus", 1) => Unit::Audio {
                    codec: AudioCodec::Opus,
                    data,
                },
                _ => Unit::Skip,
            })
        }
        _ => Ok(Unit::Skip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn legacy_avc_with_negative_and_positive_offsets() {
        assert_eq!(
            video(&[0x17, 1, 0, 0, 80, 0xaa]),
            Ok(Unit::Video {
                codec: VideoCodec::H264,
                key: true,
                cts: 80,
                data: &[0xaa]
            })
        );
        assert_eq!(
            video(&[0x2c, 1, 0xff, 0xff, 0xfe]),
            Ok(Unit::Video {
                codec: VideoCodec::Hevc,
                key: false,
                cts: -2,
                data: &[]
            })
        );
        assert_eq!(
            video(&[0x17, 0, 0, 0, 0, 1, 2]),
            Ok(Unit::VideoConfig {
                codec: VideoCodec::H264,
                record: &[1, 2]
            })
        );
        assert_eq!(video(&[0x17, 2, 0, 0, 0]), Ok(Unit::Skip));
        assert_eq!(video(&[0x12, 0]), Ok(Unit::Skip));
        assert_eq!(video(&[0x17, 1]), Err(MuxError::Truncated));
    }

    #[test]
    fn enhanced_hevc() {
        let mut p = vec![0x80 | 1 << 4];
        p.extend_from_slice(b"hvc1");
        p.push(9);
        assert_eq!(
            video(&p),
            Ok(Unit::VideoConfig {
                codec: VideoCodec::Hevc,
                record: &[9]
            })
        );
        p[0] = 0x80 | 2 << 4 | 3;
        assert_eq!(
            video(&p),
            Ok(Unit::Video {
                codec: VideoCodec::Hevc,
                key: false,
                cts: 0,
                data: &[9]
            })
        );
        p[0] = 0x80 | 1 << 4 | 1;
        assert_eq!(video(&p), Err(MuxError::Truncated));
        p[0] = 0x80 | 1 << 4 | 6;
        assert_eq!(video(&p), Ok(Unit::Skip));
    }

    #[test]
    fn audio_kinds() {
        assert_eq!(
            audio(&[0xaf, 0, 0x12, 0x10]),
            Ok(Unit::AacConfig(&[0x12, 0x10]))
        );
        assert_eq!(
            audio(&[0xaf, 1, 7]),
            Ok(Unit::Audio {
                codec: AudioCodec::Aac,
                data: &[7]
            })
        );
        assert_eq!(
            audio(&[0x2f, 0xff, 0xfb]),
            Ok(Unit::Audio {
                codec: AudioCodec::Mp3,
                data: &[0xff, 0xfb]
            })
        );
        assert_eq!(audio(&[]), Ok(Unit::Skip));
        assert_eq!(audio(&[0xaf]), Err(MuxError::Truncated));
        assert_eq!(audio(&[0x6f, 1]), Ok(Unit::Skip));
    }

    #[test]
    fn enhanced_av1_and_opus() {
        let mut v = vec![0x80 | 1 << 4 | 1];
        v.extend_from_slice(b"av01");
        v.extend_from_slice(&[0x12, 0]);
        assert_eq!(
            video(&v),
            Ok(Unit::Video {
                codec: VideoCodec::Av1,
                key: true,
                cts: 0,
                data: &[0x12, 0]
            })
        );
        v[0] = 0x80 | 1 << 4;
        assert_eq!(
            video(&v),
            Ok(Unit::VideoConfig {
                codec: VideoCodec::Av1,
                record: &[0x12, 0]
            })
        );
        let mut a = vec![0x90];
        a.extend_from_slice(b"Opus");
        a.push(7);
        assert_eq!(audio(&a), Ok(Unit::OpusConfig(&[7])));
        a[0] = 0x91;
        assert_eq!(
            audio(&a),
            Ok(Unit::Audio {
                codec: AudioCodec::Opus,
                data: &[7]
            })
        );
    }

    proptest! {
        #[test]
        fn any_body_never_panics(p in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = video(&p);
            let _ = audio(&p);
        }
    }
}
