//! Opening files beneath a directory, a verb of the engine like reading them: an io_uring
//! `OpenAt2` relative to the directory's descriptor with `RESOLVE_BENEATH`, so the kernel
//! refuses any path (`..`, an absolute path, a symbolic link, at open time) that leads out
//! of that directory. The check and the open are one step: no link swapped in between can
//! redirect it. The worker's loop goes on while the kernel walks the path (a cold
//! directory lookup waits for the disk on the kernel's io-wq threads, not on the worker).
//!
//! VOD is the user: a play's file under the content root.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use io_uring::{opcode, types};

use super::io::{Completion, Io};
use super::slab::{Slab, SlabRef};
use super::token::{OpKind, Token};

/// An open in flight: the path and the `open_how` stay put until its completion (the
/// kernel reads them when it takes the entry; kept to the end all the same), and so does
/// the directory.
struct Pending<O> {
    _dir: Arc<OwnedFd>,
    _path: CString,
    _how: Box<types::OpenHow>,
    owner: O,
}

/// How an open ended: the file, or the errno (`EXDEV` when the path leads out of the
/// directory, `ENOENT` when it is not there).
pub(crate) struct FileOpened<O> {
    pub(crate) owner: O,
    pub(crate) result: Result<File, i32>,
}

/// A worker's file opens in flight, by the slot their token names.
pub(crate) struct FileOpens<O> {
    pending: Slab<Pending<O>>,
}

impl<O> Default for FileOpens<O> {
    fn default() -> Self {
        FileOpens {
            pending: Slab::default(),
        }
    }
}

impl<O> FileOpens<O> {
    /// Starts opening `path` (relative) beneath `dir` for reading.
    pub(crate) fn start(&mut self, io: &mut Io, dir: &Arc<OwnedFd>, path: CString, owner: O) {
        let how = Box::new(
            types::OpenHow::new()
                .flags((libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY) as u64)
                .resolve(libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS),
        );
        let fd = types::Fd(dir.as_raw_fd());
        let (path_ptr, how_ptr) = (path.as_ptr(), &*how as *const types::OpenHow);
        let r = self.pending.insert(Pending {
            _dir: Arc::clone(dir),
            _path: path,
            _how: how,
            owner,
        });
        let e = opcode::OpenAt2::new(fd, path_ptr, how_ptr)
            .build()
            .user_data(Token::new(OpKind::FileOpen, r.slot, r.generation).to_user_data());
        // SAFETY: the path, the open_how (both on the heap, not moved by the slab) and the
        // directory live in the slab entry until this open's completion (`complete`).
        unsafe { io.push(e) };
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The outcome of the open a `FileOpen` completion belongs to; `None` for a stale token.
    pub(crate) fn complete(&mut self, token: Token, c: Completion) -> Option<FileOpened<O>> {
        let p = self.pending.remove(SlabRef::of(token))?;
        let result = if c.result >= 0 {
            // SAFETY: a successful open's result is a new descriptor that nothing else owns.
            Ok(File::from(unsafe { OwnedFd::from_raw_fd(c.result) }))
        } else {
            Err(-c.result)
        };
        Some(FileOpened {
            owner: p.owner,
            result,
        })
    }
}

/// Opens `dir` as the base of later opens (`O_PATH`: no read access needed on it).
pub(crate) fn open_dir(dir: &std::path::Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    Ok(OwnedFd::from(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn wait_open(io: &mut Io, ops: &mut FileOpens<u32>) -> FileOpened<u32> {
        io.wait_for(OpKind::FileOpen, |token, c| ops.complete(token, c))
    }

    #[test]
    fn opens_beneath_the_directory_and_nothing_out_of_it() {
        let base = std::env::temp_dir().join(format!("strata-file-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).expect("dirs");
        std::fs::write(root.join("sub/in.flv"), b"inside").expect("write");
        std::fs::write(base.join("secret"), b"outside").expect("write");
        std::os::unix::fs::symlink(base.join("secret"), root.join("out")).expect("link out");
        std::os::unix::fs::symlink("sub/in.flv", root.join("in")).expect("link in");
        let dir = Arc::new(open_dir(&root).expect("root"));

        let mut io = Io::new().expect("io_uring is required for the engine");
        let mut opens = FileOpens::default();
        let mut open = |path: &str, owner: u32| {
            let path = CString::new(path).expect("no NUL");
            opens.start(&mut io, &dir, path, owner);
            let done = wait_open(&mut io, &mut opens);
            assert_eq!(done.owner, owner);
            done.result
        };
        let mut text = String::new();
        open("sub/in.flv", 1)
            .expect("inside")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "inside");
        assert!(open("in", 2).is_ok(), "a link that stays inside");
        assert_eq!(open("out", 3).err(), Some(libc::EXDEV), "a link out");
        assert_eq!(open("../secret", 4).err(), Some(libc::EXDEV), "'..' out");
        assert_eq!(open("/etc/passwd", 5).err(), Some(libc::EXDEV), "absolute");
        assert_eq!(open("none.flv", 6).err(), Some(libc::ENOENT));
        assert!(opens.is_empty());
        let _ = std::fs::remove_dir_all(&base);
    }
}
