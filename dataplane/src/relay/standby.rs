//! Hot standby (beyond the seed; the application key `hot_standby`): besides the group the
//! stream comes from, the next group in the list keeps playing. Its messages do not reach
//! viewers; this buffer keeps what a switch to it needs at once: the latest metadata and
//! codec headers and every message since its latest key frame. On a failover the buffer
//! is replayed through `Rebase` (headers, then the key frame, then the rest of its GOP), so
//! viewers get a decodable picture about one frame interval after the current link is
//! lost instead of after a fresh connect, play and the next key frame.

use std::time::Duration;

use crate::media::frame::MediaMessage;
use crate::media::tag::FrameKind;

/// A pull with a hot standby checks its links this often (a pull without one, every
/// quarter of `idle_ms`).
pub(crate) const CHECK: Duration = Duration::from_millis(50);
/// The current link silent this long while the standby keeps sending: the current one is
/// left at once instead of after `idle_ms` (a frozen origin whose connection stays open).
/// Several frame intervals, so a stream's own jitter does not make the stream flap.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

/// Whether to leave a current link that has been `silent` for a standby that last sent
/// `standby_silent` ago (both as the pull's checks measure them).
pub(crate) fn leave_quiet_current(
    silent: Duration,
    standby_silent: Duration,
    idle: Duration,
) -> bool {
    silent >= QUIET.min(idle) && standby_silent < QUIET / 2
}

/// The longest GOP kept (messages): a standby whose key frames are rarer than this keeps
/// nothing until its next one, rather than growing without bound.
const MAX_GOP: usize = 2_048;

#[derive(Debug, Default)]
pub(crate) struct StandbyBuffer {
    /// Latest metadata and codec headers, at most one of each kind.
    headers: Vec<(FrameKind, MediaMessage, bool)>,
    /// From the latest key frame on; empty until the first.
    gop: Vec<(FrameKind, MediaMessage, bool)>,
}

impl StandbyBuffer {
    /// A message of the standby link (`keep`: as `LiveStream` would keep a data message).
    pub(crate) fn push(&mut self, kind: FrameKind, m: MediaMessage, keep: bool) {
        match kind {
            FrameKind::Metadata | FrameKind::AudioHeader | FrameKind::VideoHeader => {
                self.headers.retain(|(k, _, _)| *k != kind);
                self.headers.push((kind, m, keep));
            }
            FrameKind::VideoKey => {
                self.gop.clear();
                self.gop.push((kind, m, keep));
            }
            _ if self.gop.is_empty() => {}
            _ if self.gop.len() >= MAX_GOP => self.gop.clear(),
            _ => self.gop.push((kind, m, keep)),
        }
    }

    /// Whether a switch to this standby would show a picture at once.
    pub(crate) fn ready(&self) -> bool {
        !self.gop.is_empty()
    }

    /// Everything a switch replays, in order: headers, then the GOP from its key frame.
    /// The buffer is left empty.
    pub(crate) fn take(&mut self) -> Vec<(FrameKind, MediaMessage, bool)> {
        let mut out = std::mem::take(&mut self.headers);
        out.append(&mut self.gop);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::rebase::{Mapped, Rebase};
    use bytes::Bytes;

    fn m(ts: u32) -> MediaMessage {
        MediaMessage {
            timestamp: ts,
            type_id: 9,
            payload: Bytes::new(),
        }
    }

    /// The switch in memory: the current link (clock at 1 000) is lost mid-GOP; the
    /// standby (its clock at 50 000) has been playing. Replaying its buffer through the
    /// rebase hands viewers its headers and key frame right away, continuing after the
    /// last timestamp they got, then the rest of its GOP and its live messages, monotonic.
    #[test]
    fn a_quiet_current_is_left_only_for_a_standby_that_sends() {
        let ms = Duration::from_millis;
        let idle = ms(1_000);
        assert!(leave_quiet_current(ms(300), ms(0), idle));
        assert!(leave_quiet_current(ms(350), ms(100), idle));
        assert!(
            !leave_quiet_current(ms(250), ms(0), idle),
            "jitter, not silence"
        );
        assert!(
            !leave_quiet_current(ms(900), ms(900), idle),
            "both silent: the source paused"
        );
        // A shorter idle interval than QUIET applies as it is.
        assert!(leave_quiet_current(ms(200), ms(0), ms(200)));
    }

    #[test]
    fn a_switch_to_the_standby_starts_at_its_key_frame_at_once() {
        let mut rebase = Rebase::default();
        for (kind, ts) in [
            (FrameKind::VideoKey, 1_000),
            (FrameKind::VideoInter, 1_040),
            (FrameKind::VideoInter, 1_080),
        ] {
            assert!(matches!(rebase.map(kind, ts), Mapped::Pass(_)));
        }
        let mut standby = StandbyBuffer::default();
        assert!(!standby.ready());
        standby.push(FrameKind::VideoInter, m(49_900), true); // before any key frame
        standby.push(FrameKind::VideoHeader, m(49_950), true);
        standby.push(FrameKind::VideoKey, m(49_960), true);
        standby.push(FrameKind::Audio, m(49_970), true);
        standby.push(FrameKind::VideoInter, m(50_000), true);
        standby.push(FrameKind::VideoKey, m(50_040), true); // a newer GOP replaces it
        standby.push(FrameKind::VideoInter, m(50_080), true);
        assert!(standby.ready());

        // The current link drops: switch, replay.
        rebase.switch();
        let mut out = Vec::new();
        let mut held = 0;
        for (kind, msg, _) in standby.take() {
            match rebase.map(kind, msg.timestamp) {
                Mapped::Hold => held += 1,
                Mapped::Pass(ts) => out.push((kind, ts)),
                Mapped::Drop => panic!("a replayed {kind:?} was dropped"),
            }
        }
        assert_eq!(held, 1, "the video header waits for the key frame");
        assert_eq!(
            out,
            [(FrameKind::VideoKey, 1_081), (FrameKind::VideoInter, 1_121)]
        );
        assert!(!standby.ready(), "taken");
        // Its live messages follow on the same clock.
        assert_eq!(
            rebase.map(FrameKind::VideoInter, 50_120),
            Mapped::Pass(1_161)
        );
    }

    #[test]
    fn a_gop_longer_than_the_bound_is_dropped_not_grown() {
        let mut standby = StandbyBuffer::default();
        standby.push(FrameKind::VideoKey, m(0), true);
        for ts in 1..=(MAX_GOP as u32 + 10) {
            standby.push(FrameKind::VideoInter, m(ts), true);
        }
        assert!(!standby.ready());
        standby.push(FrameKind::VideoKey, m(99_999), true);
        assert_eq!(standby.take().len(), 1);
    }
}
