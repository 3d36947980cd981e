//! The worker's file reads (`engine::file_read`): started for an owner, their completions
//! routed back to it. VOD is the first owner (a file's indexer, a viewer's read-ahead); it
//! adds its `Owner` variant and its arm below. Until then an outcome is logged and let go.

use std::fs::File;
use std::sync::Arc;

use tracing::debug;

use super::Worker;
use crate::engine::io::Completion;
use crate::engine::owner::Owner;
use crate::engine::slab::SlabRef;
use crate::engine::token::Token;

impl Worker {
    /// Reads up to `len` bytes of `file` at `at` for `owner`; the bytes go to the owner
    /// from `on_file_read`.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "VOD indexers and viewers are the first callers; tests drive it now"
        )
    )]
    pub(crate) fn read_file(
        &mut self,
        file: Arc<File>,
        at: u64,
        len: usize,
        owner: Owner,
    ) -> SlabRef {
        self.file_reads.start(&mut self.io, file, at, len, owner)
    }

    pub(super) fn on_file_read(&mut self, token: Token, c: Completion) {
        let Some(done) = self.file_reads.complete(token, c) else {
            return;
        };
        match done.result {
            Ok(bytes) => debug!(worker = self.id, owner = ?done.owner, at = done.at,
                bytes = bytes.len(), "file read, but no owner takes file reads yet"),
            Err(e) => debug!(worker = self.id, owner = ?done.owner, at = done.at, error = %e,
                "file read failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::worker::testing::{turn_until, worker};

    #[test]
    fn the_loop_routes_file_reads_and_waits_for_them_at_shutdown() {
        let (mut w, _control) = worker();
        let path = std::env::temp_dir().join(format!("strata-worker-read-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 4096]).expect("write");
        let file = Arc::new(File::open(&path).expect("open"));
        let _ = std::fs::remove_file(&path);
        w.read_file(Arc::clone(&file), 0, 4096, Owner::Worker);
        w.read_file(file, 1024, 100, Owner::Worker);
        assert!(
            !w.outbound_idle(),
            "reads in flight keep the worker from exiting"
        );
        turn_until(&mut w, |w| w.file_reads.is_empty());
        assert!(w.outbound_idle());
    }
}
