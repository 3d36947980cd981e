//! The frames a worker made of its files' samples, shared by every viewer that sends the
//! same sample: a file's samples carry the file's own timestamps whoever plays them, so a
//! frame (and its RTMP encoding, made once per output format: `Frame::encoded`) serves all
//! of a file's viewers near the same position, as a live frame serves all of a stream's
//! viewers. Each viewer's queue then holds a handle to the same bytes.
//!
//! Direct-mapped by (file, sample): consecutive samples of a file never displace each
//! other within `SLOTS`, so viewers up to `SLOTS` samples apart (about 13 s of a 25 fps
//! H.264 + AAC file) share; a frame is replaced by the next one mapped to its slot.
//! Bounded by count and by payload bytes (a frame over the bound is sent, not kept).

use super::block_cache::FileId;
use crate::media::frame::FrameRef;

/// Frames kept per worker.
pub(crate) const SLOTS: usize = 1024;
/// Payload bytes kept per worker (their encodings are as large again).
pub(crate) const MAX_BYTES: usize = 32 << 20;

pub(crate) struct SampleFrames {
    slots: Vec<Option<(FileId, usize, FrameRef)>>,
    bytes: usize,
}

impl Default for SampleFrames {
    fn default() -> Self {
        SampleFrames {
            slots: vec![None; SLOTS],
            bytes: 0,
        }
    }
}

impl SampleFrames {
    fn slot(file: FileId, sample: usize) -> usize {
        // Files start at different slots so two files played together do not meet at
        // their beginnings.
        (sample as u64).wrapping_add(file.wrapping_mul(0x9e37_79b9)) as usize % SLOTS
    }

    /// The frame made of `sample` of `file`, if it is kept.
    pub(crate) fn get(&self, file: FileId, sample: usize) -> Option<FrameRef> {
        match &self.slots[Self::slot(file, sample)] {
            Some((f, s, frame)) if *f == file && *s == sample => Some(FrameRef::clone(frame)),
            _ => None,
        }
    }

    /// Keeps the frame made of `sample` of `file` for the next viewer to send it.
    pub(crate) fn put(&mut self, file: FileId, sample: usize, frame: &FrameRef) {
        let slot = &mut self.slots[Self::slot(file, sample)];
        let old = slot.as_ref().map_or(0, |(_, _, f)| f.payload.len());
        let bytes = self.bytes - old + frame.payload.len();
        if bytes > MAX_BYTES {
            return;
        }
        self.bytes = bytes;
        *slot = Some((file, sample, FrameRef::clone(frame)));
    }

    /// A file nobody plays any more: its frames go.
    pub(crate) fn forget(&mut self, file: FileId) {
        for slot in &mut self.slots {
            if let Some((f, _, frame)) = slot {
                if *f == file {
                    self.bytes -= frame.payload.len();
                    *slot = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Frame, MediaMessage};
    use crate::proto::rtmp::msg_type;
    use bytes::Bytes;
    use std::rc::Rc;

    fn frame(len: usize) -> FrameRef {
        Frame::new(MediaMessage {
            timestamp: 0,
            type_id: msg_type::AUDIO,
            payload: Bytes::from(vec![0xaf; len]),
        })
    }

    #[test]
    fn a_sample_frame_is_shared_until_its_slot_is_taken() {
        let mut c = SampleFrames::default();
        let f = frame(10);
        c.put(1, 5, &f);
        assert!(c.get(1, 5).is_some_and(|g| Rc::ptr_eq(&g, &f)));
        assert!(c.get(1, 6).is_none());
        assert!(c.get(2, 5).is_none(), "another file's sample");
        // A whole window of one file's samples is kept at once.
        for s in 5..5 + SLOTS {
            c.put(1, s, &frame(1));
        }
        assert!((5..5 + SLOTS).all(|s| c.get(1, s).is_some()));
        c.put(1, 5 + SLOTS, &frame(1));
        assert!(
            c.get(1, 5).is_none(),
            "displaced by the sample a window later"
        );
        c.forget(1);
        assert!(c.get(1, 6).is_none());
        assert_eq!(c.bytes, 0);
    }

    #[test]
    fn payload_bytes_are_bounded() {
        let mut c = SampleFrames::default();
        c.put(1, 0, &frame(MAX_BYTES - 10));
        c.put(1, 1, &frame(11));
        assert!(c.get(1, 1).is_none(), "over the bound: not kept");
        c.put(1, 1, &frame(10));
        assert!(c.get(1, 1).is_some());
        // Replacing a frame gives its bytes back.
        c.put(1, SLOTS, &frame(5));
        assert!(c.get(1, 0).is_none() && c.get(1, SLOTS).is_some());
        assert_eq!(c.bytes, 15);
    }
}
