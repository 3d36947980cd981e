//! Walking an FLV file's tags without holding the file. The caller reads bytes at the
//! offset the reader asks for (a large block at a time, ideally) and hands them back; the
//! reader returns each tag whose header and wanted body prefix lie in what it was given,
//! and says where to read next when they do not. A tag's body beyond the wanted prefix is
//! never needed, so big frames are skipped without being read.
//!
//! A file that ends inside a tag (a recording cut short) ends cleanly before that tag: what
//! is complete is served.

use crate::proto::byte_window::window;

use super::{
    parse_file_header, parse_tag_header, FlvError, TagHeader, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN,
};

/// What the reader needs or found next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A tag: its header, the file offset of its body, and the first bytes of the body
    /// (as many as asked for, at most the whole body).
    Tag {
        header: TagHeader,
        body_at: u64,
        body: &'a [u8],
    },
    /// Read at least `len` bytes from file offset `at` and call again.
    Need { at: u64, len: usize },
    /// No more complete tags.
    End,
}

/// The walk's position in one file.
#[derive(Debug)]
pub(crate) struct TagReader {
    file_len: u64,
    /// Offset of the next tag header; `None` until the file header is read.
    next: Option<u64>,
}

impl TagReader {
    pub(crate) fn new(file_len: u64) -> Self {
        TagReader {
            file_len,
            next: None,
        }
    }

    /// The next step, given `buf`, the file's bytes from offset `at`. `want` says how many
    /// bytes of a tag's body the caller needs (it is capped at the body's size).
    pub(crate) fn next<'a>(
        &mut self,
        at: u64,
        buf: &'a [u8],
        want: impl Fn(&TagHeader) -> usize,
    ) -> Result<Step<'a>, FlvError> {
        let Some(pos) = self.next else {
            let Some(header) = window(at, buf, 0, super::FILE_HEADER_LEN) else {
                return Ok(self.need(0, super::FILE_HEADER_LEN));
            };
            let Some(header) = parse_file_header(header)? else {
                return Ok(self.need(0, super::FILE_HEADER_LEN));
            };
            // Skip the PreviousTagSize0 after the header.
            self.next = Some(u64::from(header.data_offset) + PREVIOUS_TAG_SIZE_LEN as u64);
            return self.next(at, buf, want);
        };
        if pos.saturating_add(TAG_HEADER_LEN as u64) > self.file_len {
            return Ok(Step::End);
        }
        let Some(header) = window(at, buf, pos, TAG_HEADER_LEN).and_then(parse_tag_header) else {
            return Ok(self.need(pos, TAG_HEADER_LEN));
        };
        let body_at = pos + TAG_HEADER_LEN as u64;
        let after = body_at + u64::from(header.data_size) + PREVIOUS_TAG_SIZE_LEN as u64;
        // The trailing PreviousTagSize may be missing at the very end of a file.
        if body_at + u64::from(header.data_size) > self.file_len {
            return Ok(Step::End);
        }
        let wanted = want(&header).min(header.data_size as usize);
        let Some(body) = window(at, buf, body_at, wanted) else {
            return Ok(self.need(pos, TAG_HEADER_LEN + wanted));
        };
        self.next = Some(after);
        Ok(Step::Tag {
            header,
            body_at,
            body,
        })
    }

    /// Asks for bytes the file has; bytes it has not mean there is nothing more to read.
    fn need(&self, at: u64, len: usize) -> Step<'static> {
        if at.saturating_add(len as u64) > self.file_len {
            Step::End
        } else {
            Step::Need { at, len }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An FLV file of the given tags (type, timestamp, body).
    pub(crate) fn flv_file(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut f = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
        for (t, ts, body) in tags {
            let size = body.len() as u32;
            f.push(*t);
            f.extend_from_slice(&size.to_be_bytes()[1..]);
            f.extend_from_slice(&ts.to_be_bytes()[1..]);
            f.push((ts >> 24) as u8);
            f.extend_from_slice(&[0, 0, 0]);
            f.extend_from_slice(body);
            f.extend_from_slice(&(size + 11).to_be_bytes());
        }
        f
    }

    /// Every tag of `file`, fed in blocks of `block` bytes from wherever the reader asks.
    pub(crate) fn walk(file: &[u8], block: usize, want: usize) -> Vec<(TagHeader, Vec<u8>)> {
        let mut r = TagReader::new(file.len() as u64);
        let (mut at, mut len) = (0u64, block);
        let mut tags = Vec::new();
        for _ in 0..100_000 {
            let start = (at as usize).min(file.len());
            let buf = &file[start..(start + len.max(block)).min(file.len())];
            match r.next(at, buf, |_| want).expect("valid file") {
                Step::Tag { header, body, .. } => tags.push((header, body.to_vec())),
                Step::Need { at: a, len: l } => (at, len) = (a, l),
                Step::End => return tags,
            }
        }
        panic!("the walk did not end");
    }

    #[test]
    fn reads_every_tag_in_any_block_size() {
        let file = flv_file(&[
            (18, 0, b"\x02\x00\x0aonMetaData"),
            (9, 0, &[0x17, 0, 0, 0, 0, 1]),
            (8, 0x0100_0001, &[0xaf, 1, 2, 3]),
        ]);
        for block in [1, 7, 11, 64, 4096] {
            let tags = walk(&file, block, 1000);
            assert_eq!(tags.len(), 3, "block {block}");
            assert_eq!(tags[1].1, vec![0x17, 0, 0, 0, 0, 1]);
            assert_eq!(tags[2].0.timestamp, 0x0100_0001);
        }
        // Only a prefix of each body when that is all the caller wants.
        let tags = walk(&file, 4096, 2);
        assert_eq!(tags[1].1, vec![0x17, 0]);
    }

    #[test]
    fn a_file_cut_inside_a_tag_ends_before_it() {
        let file = flv_file(&[(9, 0, &[0x17, 1, 0, 0, 0]), (9, 40, &[0x27, 1, 0, 0, 0, 9])]);
        for cut in 0..file.len() {
            let tags = walk(&file[..cut], 16, 1000);
            assert!(tags.len() <= 2);
        }
        assert_eq!(walk(&file[..file.len() - 4], 16, 1000).len(), 2);
        assert_eq!(walk(&file[..file.len() - 5], 16, 1000).len(), 1);
    }

    #[test]
    fn not_flv_is_an_error() {
        let mut r = TagReader::new(20);
        assert_eq!(
            r.next(0, b"GIF89a\0\0\0\0\0\0\0", |_| 0),
            Err(FlvError::Signature)
        );
    }
}
