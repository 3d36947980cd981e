//! A joining viewer's GOP in rounds. At a join it is handed metadata, the sequence headers
//! and the key frame at once (`send_snapshot`), so every joiner of a loop turn sees a first
//! picture before any joiner's backlog is copied; the rest of its GOP follows here, at most
//! `CATCH_UP_BYTES_PER_ROUND` per viewer per round, one round per loop turn, until it
//! reaches the live edge and joins the caught-up viewers (and the shared-buffer fan-out).
//! A viewer gets its next round only once the transport took nearly all of its last one
//! (`Port::unsent` below a round): in a join storm the loop turns far faster than 2,000
//! sockets drain, and without that every joiner's whole GOP would be queued within a few
//! turns, so that the sends of joiners whose play arrives a little later would again
//! wait behind everyone's GOP.
//!
//! While a viewer catches up, live frames do not reach it directly: they are in the GOP
//! behind what it has been given (the pending ones too, see `LiveStream::pending`), so the
//! order on the wire stays the stream's. If a key frame comes meanwhile, the cache keeps the
//! rest of the GOP the viewer is in (`GopCache::keep_from`), so it goes on through it into
//! the new key frame: in a join storm the last joiners' rounds are still queued when the
//! GOP ends, and dropping them to the next key frame would cost them a GOP of pictures. Only
//! a viewer still in that GOP when the one after ends too (or after a new header, which
//! drops the cache) starts again on a key frame, like a lagging viewer whose queue drops
//! to the next one.

use super::{LiveStream, Stopped};
use crate::media::port::Port;
use crate::media::viewer::{Delivered, Viewer};

/// What a catching-up viewer is handed per round. A round runs every loop turn; 64 KiB is
/// a few inter frames of 1080p video, so a 1 MB GOP takes ~16 rounds, and 2,000 joiners of
/// one turn queue at most ~128 MiB of (shared, refcounted) frames per round instead of a
/// whole GOP each, which keeps every joiner's first picture ahead of anyone's backlog.
pub(crate) const CATCH_UP_BYTES_PER_ROUND: usize = 64 << 10;

/// A viewer taking the rest of its GOP.
#[derive(Debug)]
pub(crate) struct CatchingUp {
    pub(crate) viewer: Viewer,
    /// The GOP position (`GopCache::gop_from`) of the next frame it gets.
    pub(crate) next: u64,
}

impl LiveStream {
    /// Whether some viewers still take their GOP in rounds (the caller runs `catch_up` every
    /// loop turn while so).
    pub fn is_catching_up(&self) -> bool {
        !self.catching_up.is_empty()
    }

    /// One round: each catching-up viewer whose last round is out gets up to
    /// `CATCH_UP_BYTES_PER_ROUND` more of its GOP; one that reaches the end of the GOP is
    /// caught up. True if some still catch up.
    pub fn catch_up<P: Port>(&mut self, port: &mut P, stopped: &mut Stopped) -> bool {
        self.catch_up_with(CATCH_UP_BYTES_PER_ROUND, port, stopped);
        self.is_catching_up()
    }

    /// A round with `budget` bytes per viewer (at least one frame each, to those with less
    /// than `budget` unsent; `usize::MAX`: the whole rest of the GOP to every one).
    pub(super) fn catch_up_with<P: Port>(
        &mut self,
        budget: usize,
        port: &mut P,
        stopped: &mut Stopped,
    ) {
        let mut i = 0;
        while i < self.catching_up.len() {
            let c = &mut self.catching_up[i];
            if port.unsent(c.viewer.client) >= budget {
                // Its last round (or its key frame) is still waiting for the transport: it
                // gets no more until that is out, so what is queued per joiner stays about a
                // round and a later joiner's key frame waits behind rounds, not whole GOPs.
                if self.gop.gop_from(c.next).0 != c.next {
                    // So slow that the GOP after its own ended too: it becomes a lagging viewer
                    // waiting for the next key frame, under the usual policy (dropped
                    // media, closed past the lag limit).
                    let mut c = self.catching_up.swap_remove(i);
                    c.viewer.need_key = true;
                    c.viewer.from_seq = self.next_seq;
                    self.viewers.push(c.viewer);
                } else {
                    i += 1;
                }
                continue;
            }
            let (start, gop) = self.gop.gop_from(c.next);
            if start != c.next {
                // The rest of its GOP was dropped: it starts again on a key frame.
                c.viewer.need_key = true;
            }
            let (mut next, mut bytes) = (start, 0usize);
            let mut outcome = Delivered::Sent;
            for f in gop {
                if bytes >= budget {
                    break;
                }
                outcome = c.viewer.deliver(&self.key, f, true, port);
                next += 1;
                bytes += f.payload.len();
                if matches!(outcome, Delivered::Closed | Delivered::Stopped) {
                    break;
                }
            }
            c.next = next;
            port.flush(c.viewer.client);
            if outcome == Delivered::Stopped {
                let c = self.catching_up.swap_remove(i);
                stopped.push((c.viewer.client, c.viewer.stream_id));
            } else if next >= self.gop.end() || outcome == Delivered::Closed {
                // At the live edge: every frame numbered before now is in the GOP it got
                // (or was never cached, as for any joiner), so live frames start here.
                let mut c = self.catching_up.swap_remove(i);
                c.viewer.from_seq = self.next_seq;
                self.viewers.push(c.viewer);
            } else {
                i += 1;
            }
        }
        let oldest_needed = self.catching_up.iter().map(|c| c.next).min();
        self.gop.keep_from(oldest_needed.unwrap_or(u64::MAX));
    }
}
