//! Indexing an ISO (MP4, F4V, M4V) file: walk the top-level boxes, read the `moov` box
//! whole, decode it with `mp4-atom`, and turn one video and one audio track's sample
//! tables (stts, ctts, stsc, stsz, stco/co64, stss) into the shared `MediaIndex`, with the
//! codec configuration as RTMP sequence headers. Sans-IO: the engine reads where
//! `IsoIndexer::feed` asks.

use bytes::Bytes;
use mp4_atom::{Codec, Decode, Moov, StszSamples, Trak};

use super::index::{Container, Feed, IndexError, MediaIndex, Sample, Track, MAX_SAMPLES};
use crate::media::tag::FrameKind;
use crate::proto::byte_window::window;

/// A `moov` larger than this is refused: sample tables of the longest real files are a few
/// megabytes, and the whole box is held while it is decoded.
const MAX_MOOV_BYTES: u64 = 64 << 20;
/// A top-level box header: size (4), type (4), and the 64-bit size when size is 1.
const BOX_HEADER_LEN: usize = 16;

pub(crate) struct IsoIndexer {
    file_len: u64,
    /// Offset of the next top-level box.
    next: u64,
}

impl IsoIndexer {
    pub(crate) fn new(file_len: u64) -> Self {
        IsoIndexer { file_len, next: 0 }
    }

    pub(crate) fn start(&self) -> Feed {
        Feed::Read {
            at: 0,
            len: BOX_HEADER_LEN,
        }
    }

    /// Takes `buf`, the file's bytes from offset `at`.
    pub(crate) fn feed(&mut self, at: u64, buf: &[u8]) -> Result<Feed, IndexError> {
        // Bounded: each round moves `next` forward by at least a box header, or returns.
        loop {
            let pos = self.next;
            if pos.saturating_add(8) > self.file_len {
                return Err(IndexError::NoMoov);
            }
            // Near the end of the file fewer than 16 bytes remain; a 32-bit box needs 8.
            let head_len = usize::try_from(self.file_len - pos)
                .map_or(BOX_HEADER_LEN, |left| left.min(BOX_HEADER_LEN));
            let Some(head) = window(at, buf, pos, head_len) else {
                return Ok(Feed::Read {
                    at: pos,
                    len: head_len,
                });
            };
            let size = box_size(head, self.file_len - pos).ok_or(IndexError::BoxHeader(pos))?;
            if head.get(4..8) == Some(b"moov") {
                if size > MAX_MOOV_BYTES {
                    return Err(IndexError::MoovTooLarge(size));
                }
                // `size` fits in usize: it is at most MAX_MOOV_BYTES.
                let Some(moov) = window(at, buf, pos, size as usize) else {
                    return Ok(Feed::Read {
                        at: pos,
                        len: size as usize,
                    });
                };
                return index_moov(moov, self.file_len).map(|i| Feed::Done(Box::new(i)));
            }
            self.next = pos + size;
        }
    }
}

/// A box's total size (header included), which must lie within what is left of the file.
/// `None` when the size is smaller than the header or runs past the end.
fn box_size(head: &[u8], left: u64) -> Option<u64> {
    let short = u64::from(u32::from_be_bytes(head.get(..4)?.try_into().ok()?));
    let (header_len, size) = match short {
        0 => (8u64, left),
        1 => {
            let large = head.get(8..16)?;
            (16, u64::from_be_bytes(large.try_into().ok()?))
        }
        n => (8, n),
    };
    (size >= header_len && size <= left).then_some(size)
}

fn index_moov(moov: &[u8], file_len: u64) -> Result<MediaIndex, IndexError> {
    let moov = Moov::decode(&mut &moov[..]).map_err(|e| IndexError::Moov(e.to_string()))?;
    let mut index = MediaIndex {
        container: Container::Iso,
        file_len,
        samples: Vec::new(),
        key_frames: Vec::new(),
        tracks: Vec::new(),
        metadata: None,
        video_header: None,
        audio_header: None,
        duration_ms: 0,
        width: 0,
        height: 0,
    };
    let mut samples = Vec::new();
    let (mut video_seen, mut audio_seen) = (false, false);
    for trak in &moov.trak {
        let Some(codec) = trak.mdia.minf.stbl.stsd.codecs.first() else {
            continue;
        };
        let Some((track, header, video)) = describe(codec) else {
            continue;
        };
        let (seen, slot) = if video {
            (&mut video_seen, &mut index.video_header)
        } else {
            (&mut audio_seen, &mut index.audio_header)
        };
        if *seen {
            continue; // one track of each kind
        }
        *seen = true;
        *slot = header;
        if let Some(v) = codec.visual() {
            index.width = u32::from(v.width);
            index.height = u32::from(v.height);
        }
        let track_no = index.tracks.len() as u8;
        index.tracks.push(track);
        track_samples(trak, track_no, video, file_len, &mut samples)?;
    }
    if index.tracks.is_empty() {
        return Err(IndexError::NoPlayableTrack);
    }
    // Send order: decode time, video before audio at the same time (stable sort keeps the
    // tracks' own order).
    samples.sort_by_key(|s: &Sample| s.timestamp);
    index.key_frames = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == FrameKind::VideoKey)
        .map(|(i, _)| i as u32)
        .collect();
    index.duration_ms = MediaIndex::duration_from_samples(&samples);
    index.samples = samples;
    Ok(index)
}

/// How a sample entry travels over RTMP: the track kind, its sequence header as an RTMP
/// payload (none for MP3, whose frames configure themselves: an empty audio message in its
/// place is a malformed tag to players), and whether it is video. `None` for codecs RTMP
/// does not carry.
fn describe(codec: &Codec) -> Option<(Track, Option<Bytes>, bool)> {
    let with = |prefix: &[u8], record: Vec<u8>| -> Option<Bytes> {
        Some([prefix, &record[..]].concat().into())
    };
    Some(match codec {
        Codec::Avc1(c) => (
            Track::Avc,
            with(&[0x17, 0, 0, 0, 0], record(&c.avcc)?),
            true,
        ),
        Codec::Avc3(c) => (
            Track::Avc,
            with(&[0x17, 0, 0, 0, 0], record(&c.avcc)?),
            true,
        ),
        Codec::Hvc1(c) => (Track::Hevc, with(b"\x90hvc1", record(&c.hvcc)?), true),
        Codec::Hev1(c) => (Track::Hevc, with(b"\x90hvc1", record(&c.hvcc)?), true),
        Codec::Av01(c) => (Track::Av1, with(b"\x90av01", record(&c.av1c)?), true),
        Codec::Mp4a(c) => {
            let config = &c.esds.es_desc.dec_config;
            // Object types 0x69 and 0x6B are MPEG-1/2 audio layer 3 in an mp4a entry.
            if matches!(config.object_type_indication, 0x69 | 0x6b) {
                (Track::Mp3, None, false)
            } else {
                let specific = config.dec_specific.as_ref()?;
                let asc = if specific.raw.is_empty() {
                    let (p, f, c) = (specific.profile, specific.freq_index, specific.chan_conf);
                    vec![p << 3 | f >> 1, (f & 1) << 7 | c << 3]
                } else {
                    specific.raw.clone()
                };
                (Track::Aac, with(&[0xaf, 0], asc), false)
            }
        }
        Codec::Mp3(_) => (Track::Mp3, None, false),
        Codec::Opus(c) => (Track::Opus, with(b"\x90Opus", opus_head(&c.dops)), false),
        _ => return None,
    })
}

/// A configuration box's body (its encoding without the 8-byte box header).
fn record(atom: &impl mp4_atom::Encode) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    atom.encode(&mut out).ok()?;
    out.get(8..).map(<[u8]>::to_vec)
}

/// Enhanced RTMP carries Opus's configuration as the Ogg `OpusHead` (RFC 7845 §5.1), which
/// holds what ISO's `dOps` holds, little-endian and with version 1.
fn opus_head(d: &mp4_atom::Dops) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(d.output_channel_count);
    h.extend_from_slice(&d.pre_skip.to_le_bytes());
    h.extend_from_slice(&d.input_sample_rate.to_le_bytes());
    h.extend_from_slice(&d.output_gain.to_le_bytes());
    match &d.channel_mapping {
        None => h.push(0),
        Some(m) => {
            h.extend_from_slice(&[m.family, m.stream_count, m.coupled_count]);
            h.extend_from_slice(&m.channel_mapping);
        }
    }
    h
}

/// Expands one track's sample tables into `out`. Every count is checked against the
/// sample count before anything is allocated for it.
fn track_samples(
    trak: &Trak,
    track: u8,
    video: bool,
    file_len: u64,
    out: &mut Vec<Sample>,
) -> Result<(), IndexError> {
    let id = trak.tkhd.track_id;
    let bad = |why| IndexError::SampleTable(id, why);
    let stbl = &trak.mdia.minf.stbl;
    let timescale = u64::from(trak.mdia.mdhd.timescale);
    if timescale == 0 {
        return Err(bad("timescale 0"));
    }
    let count = match &stbl.stsz.samples {
        StszSamples::Identical { count, .. } => *count as usize,
        StszSamples::Different { sizes } => sizes.len(),
    };
    if out.len().saturating_add(count) > MAX_SAMPLES {
        return Err(IndexError::TooManySamples);
    }
    let size_of = |i: usize| match &stbl.stsz.samples {
        StszSamples::Identical { size, .. } => Some(*size),
        StszSamples::Different { sizes } => sizes.get(i).copied(),
    };
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, Some(co64)) => co64.entries.clone(),
        (None, None) => return Err(bad("no chunk offsets")),
    };
    let to_ms = |t: u64| -> u32 {
        u32::try_from(u128::from(t) * 1000 / u128::from(timescale)).unwrap_or(u32::MAX)
    };

    // Decode times (stts) and composition offsets (ctts), run-length coded.
    let mut dts = Vec::with_capacity(count);
    let mut t: u64 = 0;
    'stts: for e in &stbl.stts.entries {
        for _ in 0..e.sample_count {
            if dts.len() == count {
                break 'stts;
            }
            dts.push(t);
            t = t.saturating_add(u64::from(e.sample_delta));
        }
    }
    let mut ctts = stbl
        .ctts
        .iter()
        .flat_map(|c| c.entries.iter())
        .flat_map(|e| std::iter::repeat_n(e.sample_offset, e.sample_count as usize))
        .take(count);
    let sync = stbl.stss.as_ref().map(|s| &s.entries[..]);

    // Chunks: stsc says how many samples each run of chunks holds; a chunk's samples lie
    // back to back from its offset.
    let mut sample = 0usize;
    for (i, entry) in stbl.stsc.entries.iter().enumerate() {
        let first = entry.first_chunk as usize;
        let last = stbl
            .stsc
            .entries
            .get(i + 1)
            .map_or(chunks.len(), |n| (n.first_chunk as usize).saturating_sub(1));
        if first == 0 || first > last.saturating_add(1) {
            return Err(bad("stsc out of order"));
        }
        for chunk in first..=last {
            let Some(&chunk_offset) = chunks.get(chunk - 1) else {
                break;
            };
            let mut offset = chunk_offset;
            for _ in 0..entry.samples_per_chunk {
                if sample == count {
                    break;
                }
                let size = size_of(sample).ok_or(bad("stsz too short"))?;
                if offset.saturating_add(u64::from(size)) > file_len {
                    return Err(bad("sample beyond the end of the file"));
                }
                let timestamp = to_ms(dts.get(sample).copied().unwrap_or(t));
                let composition = ctts.next().map_or(0, |c| {
                    let ms = i128::from(c) * 1000 / i128::from(timescale);
                    i32::try_from(ms).unwrap_or(0)
                });
                let number = u32::try_from(sample + 1).unwrap_or(u32::MAX);
                let kind = match (video, sync) {
                    (false, _) => FrameKind::Audio,
                    (true, None) => FrameKind::VideoKey,
                    (true, Some(s)) if s.binary_search(&number).is_ok() => FrameKind::VideoKey,
                    (true, Some(_)) => FrameKind::VideoInter,
                };
                out.push(Sample {
                    offset,
                    size,
                    timestamp,
                    composition,
                    kind,
                    track,
                });
                offset += u64::from(size);
                sample += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tag::{audio_codec, classify, video_codec, AudioCodec, VideoCodec};
    use crate::media::vod::content_path::FileFormat;
    use crate::media::vod::indexer::index_bytes;

    /// ffmpeg: 1 s of 64x48 testsrc at 25 fps, x264 with GOP 10 and B-frames, AAC 44.1 kHz.
    const AVC_AAC: &[u8] = include_bytes!("testdata/avc_aac.mp4");
    /// The same remuxed to FLV (`-c copy`).
    const AVC_AAC_FLV: &[u8] = include_bytes!("testdata/avc_aac.flv");
    /// ffmpeg: 0.5 s, x265 (hvc1) with GOP 5, Opus 48 kHz.
    const HEVC_OPUS: &[u8] = include_bytes!("testdata/hevc_opus.mp4");
    /// ffmpeg: 0.5 s of 64x48 at 25 fps, x264 with GOP 5, MP3 (libmp3lame) 44.1 kHz.
    const AVC_MP3: &[u8] = include_bytes!("testdata/avc_mp3.mp4");

    /// `videocodecid` and `audiocodecid` of the onMetaData a play of `index` starts with.
    fn metadata_codec_ids(index: &MediaIndex) -> (Option<f64>, Option<f64>) {
        let headers = crate::media::vod::play_status::header_messages(index, 0);
        let values = crate::proto::amf0::decode_all(&headers[0].payload).expect("AMF0");
        assert_eq!(values[0].as_str(), Some("onMetaData"));
        let id = |key| match values[1].get(key) {
            Some(crate::proto::amf0::Amf0Value::Number(n)) => Some(*n),
            _ => None,
        };
        (id("videocodecid"), id("audiocodecid"))
    }

    fn count(index: &MediaIndex, kinds: &[FrameKind]) -> usize {
        index
            .samples
            .iter()
            .filter(|s| kinds.contains(&s.kind))
            .count()
    }

    #[test]
    fn avc_and_aac_from_an_ffmpeg_file() {
        let i = index_bytes(FileFormat::Iso, AVC_AAC).expect("indexed");
        assert_eq!(i.tracks, vec![Track::Avc, Track::Aac]);
        assert_eq!((i.width, i.height), (64, 48));
        assert_eq!(count(&i, &[FrameKind::VideoKey, FrameKind::VideoInter]), 25);
        // 45 AAC packets in stsz (ffprobe decodes 44: the first is encoder priming).
        assert_eq!(count(&i, &[FrameKind::Audio]), 45);
        assert_eq!(i.key_frames.len(), 3);
        // The longer track decides: 45 AAC packets of 1024 samples at 44.1 kHz (1044 ms,
        // priming included) against 25 frames at 25 fps (1000 ms).
        assert_eq!(i.duration_ms, 1044);
        let video = i.video_header.as_deref().expect("avcC");
        assert_eq!(classify(9, video), FrameKind::VideoHeader);
        assert_eq!(video[5], 1, "AVCDecoderConfigurationRecord version 1");
        let audio = i.audio_header.as_deref().expect("AudioSpecificConfig");
        assert_eq!(classify(8, audio), FrameKind::AudioHeader);
        assert_eq!(audio[2] >> 3, 2, "AAC LC");
        assert!(i.samples.iter().any(|s| s.composition > 0), "B-frames");
        crate::fuzzing::iso_index(AVC_AAC);
        // A seek lands on a key frame at or before its target.
        let start = i.start_at(500);
        assert_eq!(i.samples[start].kind, FrameKind::VideoKey);
        assert_eq!(i.samples[start].timestamp, 400);
    }

    #[test]
    fn the_flv_remux_indexes_to_the_same_frames() {
        let iso = index_bytes(FileFormat::Iso, AVC_AAC).expect("mp4");
        let flv = index_bytes(FileFormat::Flv, AVC_AAC_FLV).expect("flv");
        crate::fuzzing::flv_index(AVC_AAC_FLV);
        assert!(flv.metadata.is_some());
        assert_eq!(flv.video_header, iso.video_header);
        let video = |i: &MediaIndex| -> Vec<(u32, u32)> {
            i.samples
                .iter()
                .filter(|s| matches!(s.kind, FrameKind::VideoKey | FrameKind::VideoInter))
                .map(|s| (s.timestamp, s.size))
                .collect()
        };
        // An FLV video tag is the MP4 sample behind a 5-byte AVC tag header.
        let from_iso: Vec<_> = video(&iso).iter().map(|&(t, n)| (t, n + 5)).collect();
        assert_eq!(video(&flv), from_iso);
        assert_eq!(flv.key_frames.len(), iso.key_frames.len());
        let audio = |i: &MediaIndex| count(i, &[FrameKind::Audio]);
        assert_eq!(audio(&flv), audio(&iso));
        // ffmpeg ends the FLV's video with an AVC end-of-sequence tag; it is sent too.
        assert_eq!(
            flv.samples.last().map(|s| s.kind),
            Some(FrameKind::VideoOther)
        );
    }

    #[test]
    fn hevc_and_opus_become_enhanced_rtmp() {
        let i = index_bytes(FileFormat::Iso, HEVC_OPUS).expect("indexed");
        assert_eq!(i.tracks, vec![Track::Hevc, Track::Opus]);
        let video = i.video_header.as_deref().expect("hvcC");
        assert_eq!(classify(9, video), FrameKind::VideoHeader);
        assert_eq!(video_codec(video), Some(VideoCodec::Hevc));
        let audio = i.audio_header.as_deref().expect("OpusHead");
        assert_eq!(classify(8, audio), FrameKind::AudioHeader);
        assert_eq!(audio_codec(audio), Some(AudioCodec::Opus));
        assert_eq!(&audio[5..13], b"OpusHead");
        assert_eq!(count(&i, &[FrameKind::VideoKey, FrameKind::VideoInter]), 13);
        assert!(i.key_frames.len() >= 3);
        // onMetaData names them by FourCC, read as a number.
        assert_eq!(
            metadata_codec_ids(&i),
            (
                Some(f64::from(u32::from_be_bytes(*b"hvc1"))),
                Some(f64::from(u32::from_be_bytes(*b"Opus")))
            )
        );
        crate::fuzzing::iso_index(HEVC_OPUS);
    }

    #[test]
    fn mp3_is_legacy_flv_audio_with_no_sequence_header() {
        let i = index_bytes(FileFormat::Iso, AVC_MP3).expect("indexed");
        assert_eq!(i.tracks, vec![Track::Avc, Track::Mp3]);
        // MP3 frames carry their own configuration: no header message at all (an empty
        // audio message would be a malformed tag).
        assert_eq!(i.audio_header, None);
        let headers = crate::media::vod::play_status::header_messages(&i, 0);
        assert_eq!(
            headers.iter().map(|m| m.type_id).collect::<Vec<_>>(),
            [18, 9],
            "onMetaData and the AVC header only"
        );
        assert_eq!(count(&i, &[FrameKind::VideoKey, FrameKind::VideoInter]), 13);
        assert_eq!(count(&i, &[FrameKind::Audio]), 21);
        assert_eq!(metadata_codec_ids(&i), (Some(7.0), Some(2.0)));
        let audio = i.samples.iter().find(|s| s.kind == FrameKind::Audio);
        let (prefix, len) = i.prefix(audio.expect("an MP3 sample"));
        assert_eq!(audio_codec(&prefix[..len]), Some(AudioCodec::Mp3));
        crate::fuzzing::iso_index(AVC_MP3);
    }

    #[test]
    fn broken_files_are_errors() {
        assert_eq!(index_bytes(FileFormat::Iso, b""), Err(IndexError::NoMoov));
        let mut no_moov = b"\0\0\0\x10ftypisom\0\0\0\0".to_vec();
        no_moov.extend_from_slice(b"\0\0\0\x08free");
        assert_eq!(
            index_bytes(FileFormat::Iso, &no_moov),
            Err(IndexError::NoMoov)
        );
        assert_eq!(
            index_bytes(FileFormat::Iso, b"\0\0\0\x04ftyp"),
            Err(IndexError::BoxHeader(0))
        );
        // A moov claiming more than the file holds.
        assert_eq!(
            index_bytes(FileFormat::Iso, b"\0\0\x10\0moov\0\0"),
            Err(IndexError::BoxHeader(0))
        );
        // Cut anywhere, the real file fails cleanly or indexes only what is there.
        for cut in (0..AVC_AAC.len()).step_by(97) {
            crate::fuzzing::iso_index(&AVC_AAC[..cut]);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_index_or_fail_cleanly(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            crate::fuzzing::iso_index(&data);
        }

        /// Corrupting the real file's sample tables never panics.
        #[test]
        fn corrupted_moov_never_panics(flips in proptest::collection::vec((0.0f64..1.0, proptest::prelude::any::<u8>()), 1..8)) {
            let mut file = AVC_AAC.to_vec();
            let moov = file.windows(4).position(|w| w == b"moov").expect("moov") - 4;
            for (at, byte) in flips {
                let len = file.len();
                let at = moov + ((len - moov) as f64 * at) as usize;
                file[at.min(len - 1)] = byte;
            }
            crate::fuzzing::iso_index(&file);
        }
    }
}
