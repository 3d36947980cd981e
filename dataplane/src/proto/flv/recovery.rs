//! Where a recording that did not end cleanly (killed, power cut, disk full) can continue:
//! the end of its last whole tag and that tag's timestamp, found from the file's tail. What
//! follows (a torn tag, zeros a power cut left) is cut off before `append` writes on.
//!
//! The tail is untrusted bytes. A tag boundary is accepted only where a PreviousTagSize
//! points back to a tag header that agrees with it (type, size, stream id), and that tag's
//! own PreviousTagSize does the same (or it is the first tag): two links, so that a
//! payload that happens to hold a plausible size is not taken for a boundary.

use super::{tag_type, FIRST_TAG_AT, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};

/// How much of a file's end recovery reads: the largest tag (a 24-bit body), a whole tag
/// before it for the second link, and headers. A larger torn tail is not recovered.
pub(crate) const TAIL_WINDOW: u64 = 2 * (0xFF_FFFF + 16) + 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Where the whole tags end: the file is cut here and written on from here.
    pub(crate) end: u64,
    /// The last whole tag's timestamp (0 with no tags).
    pub(crate) last_timestamp: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecoveryError {
    #[error("not an FLV file")]
    NotFlv,
    #[error("no whole tag found in the last {TAIL_WINDOW} bytes")]
    NoBoundary,
}

/// Whether `head` (the file's first bytes) is an FLV header whose tags start where the
/// recorder's do.
pub(crate) fn is_flv_header(head: &[u8]) -> bool {
    head.len() >= FIRST_TAG_AT
        && head.starts_with(b"FLV")
        && head.get(5..9) == Some(&[0, 0, 0, 9][..])
}

/// The last whole tag of a file `file_len` long whose last `tail.len()` bytes are `tail`
/// (the caller reads at most `TAIL_WINDOW`; `head` is its first bytes).
pub(crate) fn recover(head: &[u8], tail: &[u8], file_len: u64) -> Result<Recovered, RecoveryError> {
    if !is_flv_header(head) || file_len < FIRST_TAG_AT as u64 {
        return Err(RecoveryError::NotFlv);
    }
    let Some(tail_start) = file_len.checked_sub(tail.len() as u64) else {
        return Err(RecoveryError::NotFlv);
    };
    let window = Window {
        bytes: tail,
        start: tail_start,
    };
    let lowest = tail_start.max(FIRST_TAG_AT as u64);
    let mut end = file_len;
    while end >= lowest {
        if end == FIRST_TAG_AT as u64 {
            return Ok(Recovered {
                end,
                last_timestamp: 0,
            });
        }
        if let Some(tag) = window.tag_ending_at(end) {
            if tag.start == FIRST_TAG_AT as u64 || window.tag_ending_at(tag.start).is_some() {
                return Ok(Recovered {
                    end,
                    last_timestamp: tag.timestamp,
                });
            }
        }
        end -= 1;
    }
    Err(RecoveryError::NoBoundary)
}

struct Window<'a> {
    bytes: &'a [u8],
    /// The file offset of `bytes[0]`.
    start: u64,
}

struct TagAt {
    start: u64,
    timestamp: u32,
}

impl Window<'_> {
    fn at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let from = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        self.bytes.get(from..from.checked_add(len)?)
    }

    /// The tag that ends (its PreviousTagSize included) at `end`, if the size there points
    /// back to a header that agrees with it.
    fn tag_ending_at(&self, end: u64) -> Option<TagAt> {
        let size_at = end.checked_sub(PREVIOUS_TAG_SIZE_LEN as u64)?;
        let size = self.at(size_at, PREVIOUS_TAG_SIZE_LEN)?;
        let size = u32::from_be_bytes(size.try_into().ok()?);
        let body = size.checked_sub(TAG_HEADER_LEN as u32)?;
        let start = size_at.checked_sub(u64::from(size))?;
        if start < FIRST_TAG_AT as u64 {
            return None;
        }
        let h = self.at(start, TAG_HEADER_LEN)?;
        let declared = u32::from_be_bytes([0, h[1], h[2], h[3]]);
        let known_type = matches!(h[0], tag_type::AUDIO | tag_type::VIDEO | tag_type::SCRIPT);
        if !known_type || declared != body || h[8..11] != [0, 0, 0] {
            return None;
        }
        Some(TagAt {
            start,
            timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::writer::{file_header, metadata_tag, tag};
    use super::*;
    use proptest::prelude::*;

    fn file(timestamps: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        file_header(&mut out);
        out.extend_from_slice(&metadata_tag(0.0, 0.0));
        for (i, ts) in timestamps.iter().enumerate() {
            let body = vec![0x27u8; 50 + i * 7];
            tag(&mut out, tag_type::VIDEO, *ts, &body);
        }
        out
    }

    fn run(bytes: &[u8]) -> Result<Recovered, RecoveryError> {
        recover(bytes, bytes, bytes.len() as u64)
    }

    #[test]
    fn a_whole_file_ends_where_it_ends() {
        let f = file(&[0, 40, 80, 0x0100_0000]);
        assert_eq!(
            run(&f),
            Ok(Recovered {
                end: f.len() as u64,
                last_timestamp: 0x0100_0000
            })
        );
    }

    #[test]
    fn a_torn_last_tag_is_cut_at_every_length() {
        let whole = file(&[0, 40, 80]);
        let before_last = file(&[0, 40]).len();
        for cut in before_last..whole.len() {
            let torn = &whole[..cut];
            assert_eq!(
                run(torn),
                Ok(Recovered {
                    end: before_last as u64,
                    last_timestamp: 40
                }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn zeros_after_the_last_tag_are_cut() {
        let mut f = file(&[0, 40]);
        let end = f.len() as u64;
        f.extend_from_slice(&[0u8; 4096]);
        assert_eq!(
            run(&f),
            Ok(Recovered {
                end,
                last_timestamp: 40
            })
        );
    }

    #[test]
    fn a_header_only_file_continues_after_the_header() {
        let mut f = Vec::new();
        file_header(&mut f);
        assert_eq!(
            run(&f),
            Ok(Recovered {
                end: FIRST_TAG_AT as u64,
                last_timestamp: 0
            })
        );
        f.extend_from_slice(&[9, 0, 0]);
        assert_eq!(run(&f).map(|r| r.end), Ok(FIRST_TAG_AT as u64));
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(run(b"RIFF....WAVE"), Err(RecoveryError::NotFlv));
        assert_eq!(run(b""), Err(RecoveryError::NotFlv));
        // Only a window of the tail: the tags in it are found without the rest.
        let f = file(&[0, 40, 80]);
        let tail = &f[f.len() - 200..];
        assert_eq!(
            recover(&f, tail, f.len() as u64).map(|r| r.last_timestamp),
            Ok(80)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_tails_never_panic(head in proptest::collection::vec(any::<u8>(), 0..32),
                                       tail in proptest::collection::vec(any::<u8>(), 0..512),
                                       extra in 0u64..1000) {
            let len = tail.len() as u64 + extra;
            if let Ok(r) = recover(&head, &tail, len) {
                prop_assert!(r.end <= len);
            }
        }
    }
}
