//! The worker's file reads (`engine::file_read`): their completions routed back to the
//! owner that started them. VOD (a file's indexer, a viewer's read-ahead: `vod.rs`) is the
//! owner today; a read for any other owner is logged and let go.

use tracing::debug;

use super::Worker;
use crate::engine::io::Completion;
use crate::engine::owner::Owner;
use crate::engine::token::Token;

impl Worker {
    pub(super) fn on_file_read(&mut self, token: Token, c: Completion) {
        let Some(done) = self.file_reads.complete(token, c) else {
            return;
        };
        if let Owner::Vod(reader) = done.owner {
            self.on_vod_read(reader, done.at, done.result);
            return;
        }
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
    use std::fs::File;
    use std::sync::Arc;

    #[test]
    fn the_loop_routes_file_reads_and_waits_for_them_at_shutdown() {
        let (mut w, _control) = worker();
        let path = std::env::temp_dir().join(format!("strata-worker-read-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 4096]).expect("write");
        let file = Arc::new(File::open(&path).expect("open"));
        let _ = std::fs::remove_file(&path);
        w.file_reads
            .start(&mut w.io, Arc::clone(&file), 0, 4096, Owner::Worker);
        w.file_reads
            .start(&mut w.io, file, 1024, 100, Owner::Worker);
        assert!(
            !w.outbound_idle(),
            "reads in flight keep the worker from exiting"
        );
        turn_until(&mut w, |w| w.file_reads.is_empty());
        assert!(w.outbound_idle());
    }
}
