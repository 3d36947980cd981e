//! Fuzz entry points for the VOD file indexers: files are untrusted input.

use crate::media::tag::classify;
use crate::media::vod::content_path::FileFormat;
use crate::media::vod::index::MediaIndex;
use crate::media::vod::indexer::index_bytes;

/// Indexes `data` as an FLV file and checks the index against it.
pub fn flv_index(data: &[u8]) {
    if let Ok(index) = index_bytes(FileFormat::Flv, data) {
        check(&index, data);
    }
}

/// Indexes `data` as an ISO (MP4) file and checks the index against it.
pub fn iso_index(data: &[u8]) {
    if let Ok(index) = index_bytes(FileFormat::Iso, data) {
        check(&index, data);
    }
}

/// What every index must satisfy, whatever file it came from: samples inside the file and
/// in time order, key frames pointing at key frames, starts within the samples, and each
/// sample's RTMP message classified as the index says it is.
fn check(index: &MediaIndex, data: &[u8]) {
    let mut last = 0;
    for s in &index.samples {
        let end = s.offset.checked_add(u64::from(s.size)).expect("sample end");
        assert!(end <= data.len() as u64, "sample past the end of the file");
        assert!(s.timestamp >= last, "samples out of time order");
        last = s.timestamp;
        let bytes = &data[s.offset as usize..end as usize];
        let (type_id, payload) = index.message(s, bytes);
        assert_eq!(classify(type_id, &payload), s.kind, "sample misclassified");
    }
    for &k in &index.key_frames {
        let sample = index
            .samples
            .get(k as usize)
            .expect("key frame index in range");
        assert_eq!(sample.kind, crate::media::FrameKind::VideoKey);
    }
    for ms in [0, 1, index.duration_ms / 2, index.duration_ms, u32::MAX] {
        assert!(index.start_at(ms) <= index.samples.len());
    }
}
