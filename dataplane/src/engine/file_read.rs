//! Reading files, a verb of the engine like connect: an io_uring `Read` at an offset into a
//! buffer the read owns, the outcome handed back to the owner that asked, errors named.
//! VOD is the user: a file's index is built from reads where the sans-IO indexer asks, and
//! each viewer reads its samples ahead of sending, a bounded amount at a time; the worker
//! never blocks on the disk.
//!
//! A regular file's read may go to the kernel's io-wq threads when the page cache does not
//! have it; the loop goes on meanwhile.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use io_uring::{opcode, types};

use super::io::{Completion, Io};
use super::slab::{Slab, SlabRef};
use super::token::{OpKind, Token};

/// Most bytes one read asks for: the largest thing read whole, an ISO file's `moov` (64
/// MiB, see `iso_index`); an FLV tag is at most 16 MiB. Readers ask for what they need.
pub(crate) const MAX_READ_BYTES: usize = 64 << 20;

/// Why a read failed, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FileReadError {
    #[error("I/O error reading the file")]
    Io,
    #[error("cancelled")]
    Cancelled,
    #[error("{}", io::Error::from_raw_os_error(*.0))]
    Other(i32),
}

impl FileReadError {
    fn from_errno(errno: i32) -> Self {
        match errno {
            libc::EIO => FileReadError::Io,
            libc::ECANCELED | libc::EINTR => FileReadError::Cancelled,
            _ => FileReadError::Other(errno),
        }
    }
}

/// A read in flight: the file stays open and the buffer stays put until its completion.
/// The buffer is not zeroed first: the kernel writes it, and only the bytes it says it
/// wrote are kept.
struct Pending<O> {
    file: Arc<File>,
    at: u64,
    buf: BytesMut,
    owner: O,
}

/// How a read ended: the bytes read (fewer than asked at the end of the file).
pub(crate) struct FileRead<O> {
    pub(crate) owner: O,
    pub(crate) at: u64,
    pub(crate) result: Result<Bytes, FileReadError>,
}

/// A worker's file reads in flight, by the slot their token names.
pub(crate) struct FileReads<O> {
    pending: Slab<Pending<O>>,
}

impl<O> Default for FileReads<O> {
    fn default() -> Self {
        FileReads {
            pending: Slab::default(),
        }
    }
}

impl<O: Copy> FileReads<O> {
    /// Starts reading up to `len` bytes (at most `MAX_READ_BYTES`) of `file` at `at`.
    pub(crate) fn start(
        &mut self,
        io: &mut Io,
        file: Arc<File>,
        at: u64,
        len: usize,
        owner: O,
    ) -> SlabRef {
        let len = len.min(MAX_READ_BYTES);
        let mut pending = Pending {
            file,
            at,
            buf: BytesMut::with_capacity(len),
            owner,
        };
        let fd = types::Fd(pending.file.as_raw_fd());
        // The heap buffer does not move when the entry moves into the slab.
        let ptr = pending.buf.as_mut_ptr();
        let r = self.pending.insert(pending);
        let e = opcode::Read::new(fd, ptr, len as u32)
            .offset(at)
            .build()
            .user_data(Token::new(OpKind::FileRead, r.slot, r.generation).to_user_data());
        // SAFETY: the buffer and the file live in the slab entry until this read's
        // completion arrives (`complete` removes it); nothing else touches the buffer.
        unsafe { io.push(e) };
        r
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The outcome of the read a `FileRead` completion belongs to; `None` for a stale token.
    pub(crate) fn complete(&mut self, token: Token, c: Completion) -> Option<FileRead<O>> {
        let mut p = self.pending.remove(SlabRef::of(token))?;
        let result = match usize::try_from(c.result) {
            Ok(n) if n <= p.buf.capacity() => {
                // SAFETY: the read wrote these `n` bytes (at most the length it was given,
                // the buffer's capacity), so they are initialised.
                unsafe { p.buf.set_len(n) };
                Ok(p.buf.freeze())
            }
            Ok(_) => Err(FileReadError::Other(libc::EOVERFLOW)),
            Err(_) => Err(FileReadError::from_errno(-c.result)),
        };
        Some(FileRead {
            owner: p.owner,
            at: p.at,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_read(io: &mut Io, ops: &mut FileReads<u32>) -> FileRead<u32> {
        io.wait_for(OpKind::FileRead, |token, c| ops.complete(token, c))
    }

    #[test]
    fn reads_at_an_offset_and_short_at_the_end() {
        let path = std::env::temp_dir().join(format!("strata-file-read-{}", std::process::id()));
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = Arc::new(File::open(&path).expect("open"));
        let _ = std::fs::remove_file(&path);

        let mut io = Io::new().expect("io_uring is required for the engine");
        let mut reads = FileReads::default();
        reads.start(&mut io, Arc::clone(&file), 1_000, 100, 7);
        let done = wait_read(&mut io, &mut reads);
        assert_eq!((done.owner, done.at), (7, 1_000));
        assert_eq!(done.result.expect("read"), &data[1_000..1_100]);
        assert!(reads.is_empty());

        reads.start(&mut io, Arc::clone(&file), 9_990, 100, 8);
        assert_eq!(
            wait_read(&mut io, &mut reads).result.expect("read"),
            &data[9_990..]
        );
        reads.start(&mut io, file, 20_000, 100, 9);
        assert_eq!(
            wait_read(&mut io, &mut reads).result.expect("read"),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn errors_are_named() {
        assert_eq!(FileReadError::from_errno(libc::EIO), FileReadError::Io);
        assert_eq!(
            FileReadError::from_errno(libc::ECANCELED),
            FileReadError::Cancelled
        );
        assert_eq!(
            FileReadError::from_errno(libc::EBADF).to_string(),
            io::Error::from_raw_os_error(libc::EBADF).to_string()
        );
    }
}
