//! Building a file's index, whatever its container: the engine starts one per file (the
//! first viewer of a file waits for it; later viewers share the result), reads where it
//! asks and feeds it the bytes.

use super::content_path::FileFormat;
use super::flv_index::FlvIndexer;
use super::index::{Feed, IndexError, MediaIndex};
use super::iso_index::IsoIndexer;

pub(crate) enum Indexer {
    Flv(FlvIndexer),
    Iso(IsoIndexer),
}

impl Indexer {
    pub(crate) fn new(format: FileFormat, file_len: u64) -> Self {
        match format {
            FileFormat::Flv => Indexer::Flv(FlvIndexer::new(file_len)),
            FileFormat::Iso => Indexer::Iso(IsoIndexer::new(file_len)),
        }
    }

    /// The first read to make.
    pub(crate) fn start(&self) -> Feed {
        match self {
            Indexer::Flv(i) => i.start(),
            Indexer::Iso(i) => i.start(),
        }
    }

    /// Takes `buf`, the file's bytes from offset `at`.
    pub(crate) fn feed(&mut self, at: u64, buf: &[u8]) -> Result<Feed, IndexError> {
        match self {
            Indexer::Flv(i) => i.feed(at, buf),
            Indexer::Iso(i) => i.feed(at, buf),
        }
    }
}

/// Indexes a whole in-memory file (tests and the fuzz targets).
pub(crate) fn index_bytes(format: FileFormat, file: &[u8]) -> Result<MediaIndex, IndexError> {
    let mut indexer = Indexer::new(format, file.len() as u64);
    let mut next = indexer.start();
    // Each feed moves past at least one tag or box header, or ends: bounded by the file.
    loop {
        match next {
            Feed::Done(index) => return Ok(*index),
            Feed::Read { at, .. } => {
                let start = usize::try_from(at).unwrap_or(usize::MAX).min(file.len());
                next = indexer.feed(at, &file[start..])?;
            }
        }
    }
}
