//! Indexing an FLV file: one walk over its tag headers (bodies skipped, but for the first
//! bytes that say what a tag is, and whole sequence headers and metadata), sans-IO like the
//! tag reader it drives. The engine reads where `FlvIndexer::feed` asks, in large blocks.

use bytes::Bytes;

use super::index::{Container, Feed, IndexError, MediaIndex, Sample, MAX_SAMPLES};
use crate::media::data_frame::is_metadata;
use crate::media::tag::{classify, FrameKind};
use crate::proto::flv::reader::{Step, TagReader};
use crate::proto::flv::TagHeader;
use crate::proto::rtmp::msg_type;

/// Enough of a tag's body to classify it: E-RTMP headers with a ModEx block or two and a
/// FourCC fit well within it.
const CLASSIFY_BYTES: usize = 64;
/// Sequence headers and metadata are kept whole, up to this (real ones are a few hundred
/// bytes; a larger "header" is not kept, so a hostile file cannot make every viewer's
/// start cost megabytes).
const MAX_HEADER_BYTES: usize = 1 << 20;

pub(crate) struct FlvIndexer {
    reader: TagReader,
    file_len: u64,
    samples: Vec<Sample>,
    key_frames: Vec<u32>,
    metadata: Option<Bytes>,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    /// Timestamps kept monotonic: a file whose clock steps back plays on in order.
    last_timestamp: u32,
}

impl FlvIndexer {
    pub(crate) fn new(file_len: u64) -> Self {
        FlvIndexer {
            reader: TagReader::new(file_len),
            file_len,
            samples: Vec::new(),
            key_frames: Vec::new(),
            metadata: None,
            video_header: None,
            audio_header: None,
            last_timestamp: 0,
        }
    }

    /// The first read to make.
    pub(crate) fn start(&self) -> Feed {
        Feed::Read {
            at: 0,
            len: crate::proto::flv::FILE_HEADER_LEN,
        }
    }

    /// Takes `buf`, the file's bytes from offset `at`, and indexes every tag in it.
    pub(crate) fn feed(&mut self, at: u64, buf: &[u8]) -> Result<Feed, IndexError> {
        loop {
            match self.reader.next(at, buf, wanted)? {
                Step::Tag {
                    header,
                    body_at,
                    body,
                } => self.add(header, body_at, body)?,
                Step::Need { at, len } => return Ok(Feed::Read { at, len }),
                Step::End => return self.finish().map(|i| Feed::Done(Box::new(i))),
            }
        }
    }

    fn add(&mut self, header: TagHeader, body_at: u64, body: &[u8]) -> Result<(), IndexError> {
        if header.filtered
            || !matches!(
                header.tag_type,
                msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0
            )
        {
            return Ok(());
        }
        let kind = classify(header.tag_type, body);
        let whole = body.len() == header.data_size as usize;
        if kind == FrameKind::Metadata && is_metadata(body) {
            // The file's onMetaData is the index's (sent first), not a sample.
            if whole && self.metadata.is_none() {
                self.metadata = Some(Bytes::copy_from_slice(body));
            }
            return Ok(());
        }
        let slot = match kind {
            FrameKind::VideoHeader => Some(&mut self.video_header),
            FrameKind::AudioHeader => Some(&mut self.audio_header),
            _ => None,
        };
        if let Some(slot) = slot {
            if !whole {
                return Ok(());
            }
            if slot.is_none() {
                *slot = Some(Bytes::copy_from_slice(body));
                return Ok(());
            }
            // A later header (a resolution change) is sent in its place among the samples.
        }
        if self.samples.len() >= MAX_SAMPLES {
            return Err(IndexError::TooManySamples);
        }
        let timestamp = header.timestamp.max(self.last_timestamp);
        self.last_timestamp = timestamp;
        if kind == FrameKind::VideoKey {
            self.key_frames.push(self.samples.len() as u32);
        }
        self.samples.push(Sample {
            offset: body_at,
            size: header.data_size,
            timestamp,
            composition: 0,
            kind,
            track: 0,
        });
        Ok(())
    }

    fn finish(&mut self) -> Result<MediaIndex, IndexError> {
        if self.samples.is_empty() {
            return Err(IndexError::Empty);
        }
        let samples = std::mem::take(&mut self.samples);
        Ok(MediaIndex {
            container: Container::Flv,
            file_len: self.file_len,
            duration_ms: MediaIndex::duration_from_samples(&samples),
            samples,
            key_frames: std::mem::take(&mut self.key_frames),
            tracks: Vec::new(),
            metadata: self.metadata.take(),
            video_header: self.video_header.take(),
            audio_header: self.audio_header.take(),
            width: 0,
            height: 0,
        })
    }
}

/// How much of a tag's body the indexer reads: whole data tags and (possible) sequence
/// headers, the first bytes of everything else.
fn wanted(header: &TagHeader) -> usize {
    let size = header.data_size as usize;
    let header_sized = size <= MAX_HEADER_BYTES;
    match header.tag_type {
        msg_type::DATA_AMF0 if header_sized => size,
        // Sequence headers are small; a small video or audio tag is read whole so that it
        // can be kept if it is one (reading a few hundred bytes more costs nothing).
        msg_type::VIDEO | msg_type::AUDIO if size <= 4096 => size,
        _ => CLASSIFY_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::vod::content_path::FileFormat;
    use crate::media::vod::indexer::index_bytes;
    use crate::proto::amf0::{self, Amf0Value};
    use crate::proto::flv::reader::tests::flv_file;
    use crate::proto::flv::FlvError;

    fn index_flv(file: &[u8]) -> Result<MediaIndex, IndexError> {
        index_bytes(FileFormat::Flv, file)
    }

    fn on_meta_data() -> Vec<u8> {
        let mut out = Vec::new();
        amf0::encode_all(
            &[
                Amf0Value::string("onMetaData"),
                Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(1.0))]),
            ],
            &mut out,
        );
        out
    }

    #[test]
    fn indexes_headers_key_frames_and_samples() {
        let meta = on_meta_data();
        let big_key = [&[0x17u8, 1, 0, 0, 0][..], &[0u8; 10_000]].concat();
        let file = flv_file(&[
            (18, 0, &meta),
            (9, 0, &[0x17, 0, 0, 0, 0, 1, 0x64]),
            (8, 0, &[0xaf, 0, 0x12, 0x10]),
            (9, 0, &big_key),
            (8, 0, &[0xaf, 1, 1]),
            (9, 40, &[0x27, 1, 0, 0, 0, 2]),
            (8, 23, &[0xaf, 1, 2]),
            (9, 80, &[0x27, 1, 0, 0, 0, 3]),
            (9, 1000, &[0x17, 1, 0, 0, 0, 4]),
        ]);
        let i = index_flv(&file).expect("indexed");
        assert_eq!(i.metadata.as_deref(), Some(&meta[..]));
        assert_eq!(
            i.video_header.as_deref(),
            Some(&[0x17, 0, 0, 0, 0, 1, 0x64][..])
        );
        assert_eq!(i.audio_header.as_deref(), Some(&[0xaf, 0, 0x12, 0x10][..]));
        assert_eq!(i.samples.len(), 6);
        assert_eq!(i.key_frames, vec![0, 5]);
        let key = i.samples[0];
        assert_eq!((key.size, key.kind), (10_005, FrameKind::VideoKey));
        assert_eq!(&file[key.offset as usize..][..2], &[0x17, 1]);
        assert_eq!(i.start_at(999), 0);
        assert_eq!(i.start_at(1000), 5);
        assert_eq!(i.duration_ms, 1000 + 920);
    }

    #[test]
    fn backwards_timestamps_are_kept_monotonic_and_junk_is_skipped() {
        let file = flv_file(&[
            (9, 100, &[0x17, 1, 0, 0, 0]),
            (9, 50, &[0x27, 1, 0, 0, 0]),
            (7, 60, &[1, 2, 3]),
            (0x28, 70, &[0xaf, 1]),
        ]);
        let i = index_flv(&file).expect("indexed");
        assert_eq!(i.samples.len(), 2);
        assert_eq!(i.samples[1].timestamp, 100);
    }

    #[test]
    fn empty_and_foreign_files_are_errors() {
        assert_eq!(index_flv(&flv_file(&[])), Err(IndexError::Empty));
        assert_eq!(
            index_flv(b"\0\0\0\x18ftypmp42"),
            Err(IndexError::Flv(FlvError::Signature))
        );
        assert_eq!(index_flv(b""), Err(IndexError::Empty));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_index_or_fail_cleanly(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut file = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
            file.extend_from_slice(&data);
            if let Ok(i) = index_flv(&file) {
                for s in &i.samples {
                    proptest::prop_assert!(s.offset + u64::from(s.size) <= file.len() as u64);
                }
            }
            let _ = index_flv(&data);
        }
    }
}
