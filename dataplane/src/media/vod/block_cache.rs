//! A worker's read blocks of the files it plays, shared by all their viewers: a file is
//! read in aligned blocks, each read once however many viewers need it, and a sample's
//! bytes are a slice of its block (a refcounted `Bytes`, no copy). Bounded by a count of
//! blocks, the least recently used let go first (a block a viewer's queue still holds a
//! slice of lives on until that is sent). Sans-IO: the engine reads what a lookup names
//! and inserts it.

use bytes::{Bytes, BytesMut};

/// Bytes of a block: samples lie in file order, so one read serves many (about a second
/// of a 2 Mbit/s file).
pub(crate) const BLOCK_BYTES: u64 = 256 * 1024;
/// Blocks kept per worker (4 MiB: about 15 s of a 2 Mbit/s file; the frames made of a
/// block's samples keep it alive while they are kept: `sample_frames`).
pub(crate) const MAX_BLOCKS: usize = 16;

/// A file as the caches know it: a number the worker gives each file it opens, never
/// reused (a pointer could be, by the next file's index).
pub(crate) type FileId = u64;

/// Where a sample's bytes are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Its bytes.
    Found(Bytes),
    /// The block at this offset is needed: read it (`BLOCK_BYTES`, fewer at the end of the
    /// file) and `insert` it.
    Missing(u64),
    /// Larger than a block: read it whole, for this one viewer.
    TooLarge,
    /// The file ends before the sample does (it shrank after it was indexed).
    Short,
}

struct Block {
    file: FileId,
    at: u64,
    bytes: Bytes,
    /// When it was last used (the cache's own count), for letting go the oldest.
    used: u64,
}

#[derive(Default)]
pub(crate) struct BlockCache {
    blocks: Vec<Block>,
    uses: u64,
}

impl BlockCache {
    /// The block a byte of a file lies in.
    pub(crate) fn block_of(offset: u64) -> u64 {
        offset - offset % BLOCK_BYTES
    }

    /// The bytes `at..at + size` of `file`.
    pub(crate) fn get(&mut self, file: FileId, at: u64, size: u32) -> Lookup {
        if u64::from(size) > BLOCK_BYTES {
            return Lookup::TooLarge;
        }
        // Offsets come from the file's index (checked to lie in the file when it was built),
        // but the arithmetic does not rely on it.
        let Some(end) = at.checked_add(u64::from(size)) else {
            return Lookup::Short;
        };
        let first = Self::block_of(at);
        let last = Self::block_of(end.saturating_sub(1).max(at));
        let Some(a) = self.find(file, first) else {
            return Lookup::Missing(first);
        };
        let from = (at - first) as usize;
        if first == last {
            let to = (end - first) as usize;
            return match a.get(from..to) {
                Some(_) => Lookup::Found(a.slice(from..to)),
                None => Lookup::Short,
            };
        }
        // Across two blocks: the first must be whole, and the sample is copied once (the
        // frame made of it is shared by the viewers).
        if (a.len() as u64) < BLOCK_BYTES {
            return Lookup::Short;
        }
        let Some(b) = self.find(file, last) else {
            return Lookup::Missing(last);
        };
        let to = (end - last) as usize;
        let (Some(head), Some(tail)) = (a.get(from..), b.get(..to)) else {
            return Lookup::Short;
        };
        let mut joined = BytesMut::with_capacity(size as usize);
        joined.extend_from_slice(head);
        joined.extend_from_slice(tail);
        Lookup::Found(joined.freeze())
    }

    /// A block read from `file` at `at`.
    pub(crate) fn insert(&mut self, file: FileId, at: u64, bytes: Bytes) {
        self.uses += 1;
        let used = self.uses;
        if let Some(b) = self
            .blocks
            .iter_mut()
            .find(|b| b.file == file && b.at == at)
        {
            b.bytes = bytes;
            b.used = used;
            return;
        }
        let block = Block {
            file,
            at,
            bytes,
            used,
        };
        if self.blocks.len() < MAX_BLOCKS {
            self.blocks.push(block);
        } else if let Some(oldest) = self.blocks.iter_mut().min_by_key(|b| b.used) {
            *oldest = block;
        }
    }

    /// A file nobody plays any more: its blocks go.
    pub(crate) fn forget(&mut self, file: FileId) {
        self.blocks.retain(|b| b.file != file);
    }

    fn find(&mut self, file: FileId, at: u64) -> Option<Bytes> {
        self.uses += 1;
        let used = self.uses;
        let b = self
            .blocks
            .iter_mut()
            .find(|b| b.file == file && b.at == at)?;
        b.used = used;
        Some(b.bytes.clone())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose byte `i` is `i % 251`.
    fn block(at: u64, len: u64) -> Bytes {
        (at..at + len).map(|i| (i % 251) as u8).collect()
    }

    fn expect(at: u64, size: u32) -> Bytes {
        block(at, u64::from(size))
    }

    #[test]
    fn samples_are_slices_of_the_block_they_lie_in() {
        let mut c = BlockCache::default();
        assert_eq!(c.get(1, 1_000, 100), Lookup::Missing(0));
        c.insert(1, 0, block(0, BLOCK_BYTES));
        let Lookup::Found(bytes) = c.get(1, 1_000, 100) else {
            panic!("cached");
        };
        assert_eq!(bytes, expect(1_000, 100));
        // The same memory as the block: no copy.
        let Lookup::Found(again) = c.get(1, 1_000, 100) else {
            panic!("cached");
        };
        assert_eq!(bytes.as_ptr(), again.as_ptr());
        // Another file's block at the same offset is another block.
        assert_eq!(c.get(2, 1_000, 100), Lookup::Missing(0));
    }

    #[test]
    fn a_sample_across_two_blocks_needs_both() {
        let mut c = BlockCache::default();
        let at = BLOCK_BYTES - 10;
        c.insert(1, 0, block(0, BLOCK_BYTES));
        assert_eq!(c.get(1, at, 100), Lookup::Missing(BLOCK_BYTES));
        c.insert(1, BLOCK_BYTES, block(BLOCK_BYTES, 500));
        assert_eq!(c.get(1, at, 100), Lookup::Found(expect(at, 100)));
        // Ending exactly at a block's end stays in that block.
        assert_eq!(c.get(1, at, 10), Lookup::Found(expect(at, 10)));
    }

    #[test]
    fn the_end_of_the_file_and_large_samples() {
        let mut c = BlockCache::default();
        c.insert(1, 0, block(0, 5_000));
        assert_eq!(c.get(1, 4_900, 100), Lookup::Found(expect(4_900, 100)));
        assert_eq!(c.get(1, 4_900, 101), Lookup::Short);
        assert_eq!(c.get(1, BLOCK_BYTES - 1, 2), Lookup::Short);
        assert_eq!(c.get(1, 0, BLOCK_BYTES as u32 + 1), Lookup::TooLarge);
        assert_eq!(c.get(1, 0, 0), Lookup::Found(Bytes::new()));
    }

    proptest::proptest! {
        /// Whatever is asked of a file of any length, read block by block as the cache
        /// says: the bytes found are exactly the file's, and a sample in the file is always
        /// found after at most two reads.
        #[test]
        fn lookups_give_the_file_s_bytes_or_say_what_to_read(
            file_len in 0u64..3 * BLOCK_BYTES,
            asks in proptest::collection::vec((0u64..4 * BLOCK_BYTES, 0u32..BLOCK_BYTES as u32 + 10), 1..40),
        ) {
            let mut c = BlockCache::default();
            for (at, size) in asks {
                let mut reads = 0;
                let found = loop {
                    match c.get(7, at, size) {
                        Lookup::Missing(block) => {
                            proptest::prop_assert!(block % BLOCK_BYTES == 0 && reads < 2);
                            let len = BLOCK_BYTES.min(file_len.saturating_sub(block));
                            c.insert(7, block, super::tests::block(block, len));
                            reads += 1;
                        }
                        other => break other,
                    }
                };
                let inside = at + u64::from(size) <= file_len;
                match found {
                    Lookup::Found(bytes) => {
                        proptest::prop_assert!(inside);
                        proptest::prop_assert_eq!(bytes, expect(at, size));
                    }
                    Lookup::TooLarge => proptest::prop_assert!(u64::from(size) > BLOCK_BYTES),
                    Lookup::Short => proptest::prop_assert!(!inside),
                    Lookup::Missing(_) => unreachable!(),
                }
            }
            proptest::prop_assert_eq!(c.get(7, u64::MAX - 1, 10), Lookup::Short);
        }
    }

    #[test]
    fn bounded_the_least_recently_used_block_goes() {
        let mut c = BlockCache::default();
        for n in 0..MAX_BLOCKS as u64 {
            c.insert(1, n * BLOCK_BYTES, block(n * BLOCK_BYTES, 10));
        }
        // Block 0 used again: block 1 is now the oldest.
        assert!(matches!(c.get(1, 0, 1), Lookup::Found(_)));
        c.insert(2, 0, block(0, 10));
        assert_eq!(c.len(), MAX_BLOCKS);
        assert!(matches!(c.get(1, 0, 1), Lookup::Found(_)));
        assert_eq!(c.get(1, BLOCK_BYTES, 1), Lookup::Missing(BLOCK_BYTES));
        c.forget(1);
        assert_eq!(c.len(), 1);
    }
}
