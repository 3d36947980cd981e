//! File writes and syncs, a verb of the engine like connect: an io_uring `Write` at an
//! offset or an `Fsync` (data only), and the outcome handed back to the owner that asked.
//! The bytes of a write are held here until its completion, so the kernel never reads
//! freed memory; the owner keeps the file open while it has an operation in flight.
//!
//! Regular files complete their writes in the kernel's worker threads (io-wq) when they
//! would block: the worker's loop never waits on the disk.

use std::os::fd::RawFd;

use bytes::Bytes;
use io_uring::{opcode, types};

use super::io::{Completion, Io};
use super::slab::{Slab, SlabRef};
use super::token::{OpKind, Token};

struct Pending<O> {
    owner: O,
    /// The write's bytes (empty for a sync), alive until the completion.
    _bytes: Bytes,
}

/// How a file operation ended: bytes written (0 for a sync), or the errno.
pub(crate) struct FileDone<O> {
    pub(crate) owner: O,
    pub(crate) result: Result<usize, i32>,
}

/// A worker's file operations in flight, by the slot their token names.
pub(crate) struct FileOps<O> {
    pending: Slab<Pending<O>>,
}

impl<O> Default for FileOps<O> {
    fn default() -> Self {
        FileOps {
            pending: Slab::default(),
        }
    }
}

impl<O: Copy> FileOps<O> {
    /// Writes `bytes` at `offset` of `fd`; the outcome comes back through `complete`.
    pub(crate) fn write(&mut self, io: &mut Io, fd: RawFd, offset: u64, bytes: Bytes, owner: O) {
        // A write is at most 2 GiB by the ring's u32 length; the caller's are far smaller,
        // and a short write is resumed by the owner.
        let len = bytes.len().min(u32::MAX as usize) as u32;
        let ptr = bytes.as_ptr();
        let r = self.pending.insert(Pending {
            owner,
            _bytes: bytes,
        });
        let e = opcode::Write::new(types::Fd(fd), ptr, len)
            .offset(offset)
            .build()
            .user_data(Token::new(OpKind::File, r.slot, r.generation).to_user_data());
        // SAFETY: the bytes are held in `pending` until the completion arrives; the owner
        // keeps `fd` open until then.
        unsafe { io.push(e) };
    }

    /// `fdatasync(fd)` through the ring.
    pub(crate) fn sync(&mut self, io: &mut Io, fd: RawFd, owner: O) {
        let r = self.pending.insert(Pending {
            owner,
            _bytes: Bytes::new(),
        });
        let e = opcode::Fsync::new(types::Fd(fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(Token::new(OpKind::File, r.slot, r.generation).to_user_data());
        // SAFETY: no buffers; the owner keeps `fd` open until the completion.
        unsafe { io.push(e) };
    }

    /// The outcome of the operation a `File` completion belongs to; `None` for a stale
    /// token.
    pub(crate) fn complete(&mut self, token: Token, c: Completion) -> Option<FileDone<O>> {
        let p = self.pending.remove(SlabRef::of(token))?;
        let result = if c.result >= 0 {
            Ok(c.result as usize)
        } else {
            Err(-c.result)
        };
        Some(FileDone {
            owner: p.owner,
            result,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// Submits and reaps until the operation in flight completes.
    fn wait_done(io: &mut Io, ops: &mut FileOps<u32>) -> FileDone<u32> {
        io.wait_for(OpKind::File, |token, c| ops.complete(token, c))
    }

    #[test]
    fn writes_land_at_their_offsets_and_syncs_complete_through_the_ring() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        let dir = std::env::temp_dir().join(format!("strata-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("out.bin");
        let file = std::fs::File::create(&path).expect("create");
        let fd = file.as_raw_fd();
        let mut ops = FileOps::default();

        ops.write(&mut io, fd, 0, Bytes::from_static(b"hello world"), 7);
        let done = wait_done(&mut io, &mut ops);
        assert_eq!((done.owner, done.result), (7, Ok(11)));
        ops.write(&mut io, fd, 6, Bytes::from_static(b"ring!"), 8);
        assert_eq!(wait_done(&mut io, &mut ops).result, Ok(5));
        ops.sync(&mut io, fd, 9);
        let done = wait_done(&mut io, &mut ops);
        assert_eq!((done.owner, done.result), (9, Ok(0)));
        assert!(ops.is_empty());
        assert_eq!(std::fs::read(&path).expect("read"), b"hello ring!");

        // An error comes back as its errno: a descriptor opened read-only.
        let read_only = std::fs::File::open(&path).expect("open");
        ops.write(
            &mut io,
            read_only.as_raw_fd(),
            0,
            Bytes::from_static(b"x"),
            10,
        );
        assert_eq!(wait_done(&mut io, &mut ops).result, Err(libc::EBADF));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
