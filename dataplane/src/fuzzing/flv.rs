//! Fuzz entry point for FLV recovery: the tail of a file `append` continues, which may be
//! anything (a crash, a power cut, a file that was never ours).

use crate::proto::flv::{self, recovery, writer};

/// The first byte says how much of the file lies before the bytes given (a window of a
/// longer file); the rest is both the file's head and its tail. Whatever is recovered must
/// lie inside the file, after its header, and be a boundary a second recovery agrees with.
pub fn flv_recovery(data: &[u8]) {
    let Some((&before, bytes)) = data.split_first() else {
        return;
    };
    let len = bytes.len() as u64;
    if before == 0 {
        if let Ok(r) = recovery::recover(bytes, bytes, len) {
            assert!(r.end <= len && r.end >= flv::FIRST_TAG_AT as u64);
            let cut = &bytes[..r.end as usize];
            assert_eq!(
                recovery::recover(cut, cut, r.end),
                Ok(r),
                "a recovered file recovers to itself"
            );
        }
    } else {
        let file_len = len + u64::from(before) * 1000;
        if let Ok(r) = recovery::recover(bytes, bytes, file_len) {
            assert!(r.end <= file_len);
        }
    }
}

/// A recording as the recorder writes it: header, metadata and a few tags, for seeds.
pub fn flv_recording_seed() -> Vec<u8> {
    let mut out = Vec::new();
    writer::file_header(&mut out);
    out.extend_from_slice(&writer::metadata_tag(1.5, 300.0));
    for (i, ts) in [0u32, 40, 80, 0x0100_0000].into_iter().enumerate() {
        let body = vec![0x17u8; 5 + i];
        writer::tag(&mut out, flv::tag_type::VIDEO, ts, &body);
        writer::tag(&mut out, flv::tag_type::AUDIO, ts, &[0xAF, 1, 2]);
    }
    out
}
