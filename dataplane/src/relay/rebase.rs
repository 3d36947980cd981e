//! Timestamps across an upstream switch. Each upstream has its own timeline (two origins
//! fed by one encoder with a backup URL start their clocks apart), so after a failover the
//! new link's timestamps are moved to continue where the viewers' left off: monotonic, no
//! jump back, no duplicate picture. After a switch no picture or sound passes until the new
//! link's first key frame, so every viewer's decoder restarts cleanly; the metadata and codec
//! headers that come before it are held and go out just before it, at its timestamp (a new
//! link's catch-up burst has them at the start of its GOP, seconds older than the key frame
//! would say, which a viewer's queue would take for lag).

use crate::media::tag::FrameKind;

/// What becomes of one message of the current link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// Waiting for the key frame: not for viewers.
    Drop,
    /// Metadata or a codec header before the key frame: kept by the caller (the latest of
    /// each kind) and sent just before the key frame, at the timestamp `Pass` gives it.
    Hold,
    /// For viewers, at this timestamp.
    Pass(u32),
}

#[derive(Debug, Default)]
pub(crate) struct Rebase {
    /// The last timestamp handed to viewers.
    last_out: Option<u32>,
    /// Added to the current link's timestamps.
    offset: i64,
    /// A switch happened: waiting for the new link's first key frame.
    need_key: bool,
}

impl Rebase {
    /// The stream now comes from another link.
    pub(crate) fn switch(&mut self) {
        self.need_key = true;
    }

    /// What becomes of a message of `kind` at `ts` on the current link.
    pub(crate) fn map(&mut self, kind: FrameKind, ts: u32) -> Mapped {
        if self.need_key {
            match kind {
                FrameKind::VideoKey => {
                    // The key frame lands just after the last message viewers got (the
                    // first link keeps its own clock).
                    let target = self.last_out.map_or(i64::from(ts), |l| i64::from(l) + 1);
                    self.offset = target - i64::from(ts);
                    self.need_key = false;
                }
                FrameKind::Metadata | FrameKind::AudioHeader | FrameKind::VideoHeader => {
                    return Mapped::Hold;
                }
                _ => return Mapped::Drop,
            }
        }
        let mapped = (i64::from(ts) + self.offset).clamp(0, i64::from(u32::MAX)) as u32;
        // Audio a little older than the key frame must not go backwards either.
        let out = self.last_out.map_or(mapped, |l| mapped.max(l));
        self.last_out = Some(out);
        Mapped::Pass(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_first_link_keeps_its_timestamps() {
        let mut r = Rebase::default();
        assert_eq!(r.map(FrameKind::VideoKey, 5_000), Mapped::Pass(5_000));
        assert_eq!(r.map(FrameKind::Audio, 5_020), Mapped::Pass(5_020));
    }

    #[test]
    fn headers_wait_for_the_key_frame_of_a_new_link() {
        let mut r = Rebase::default();
        r.switch();
        assert_eq!(r.map(FrameKind::Metadata, 0), Mapped::Hold);
        assert_eq!(r.map(FrameKind::VideoHeader, 0), Mapped::Hold);
        assert_eq!(r.map(FrameKind::Audio, 1_990), Mapped::Drop);
        assert_eq!(r.map(FrameKind::VideoKey, 2_023), Mapped::Pass(2_023));
    }

    #[test]
    fn a_switch_continues_after_the_last_timestamp_from_a_key_frame() {
        let mut r = Rebase::default();
        r.map(FrameKind::VideoKey, 1_000);
        r.map(FrameKind::VideoInter, 1_040);
        r.switch();
        // The new origin's clock is elsewhere; its catch-up burst starts with headers.
        assert_eq!(r.map(FrameKind::Metadata, 90_000), Mapped::Hold);
        assert_eq!(r.map(FrameKind::VideoInter, 89_960), Mapped::Drop);
        assert_eq!(r.map(FrameKind::Audio, 89_990), Mapped::Drop);
        assert_eq!(r.map(FrameKind::VideoKey, 90_000), Mapped::Pass(1_041));
        assert_eq!(r.map(FrameKind::Audio, 89_995), Mapped::Pass(1_041));
        assert_eq!(r.map(FrameKind::VideoInter, 90_040), Mapped::Pass(1_081));
        // A switch to a clock behind ours works the same way.
        r.switch();
        assert_eq!(r.map(FrameKind::VideoKey, 10), Mapped::Pass(1_082));
    }

    proptest! {
        /// Whatever the links send and whenever they switch, viewers' timestamps never go
        /// backwards, and after a switch nothing but held headers comes before a key frame.
        #[test]
        fn monotonic_across_any_switches(
            steps in proptest::collection::vec((0u8..7, any::<u32>(), any::<bool>()), 0..200)
        ) {
            let kinds = [
                FrameKind::Metadata,
                FrameKind::AudioHeader,
                FrameKind::Audio,
                FrameKind::VideoHeader,
                FrameKind::VideoKey,
                FrameKind::VideoInter,
                FrameKind::VideoInter,
            ];
            let mut r = Rebase::default();
            let mut last = None;
            let mut switched = false;
            for (k, ts, switch) in steps {
                if switch {
                    r.switch();
                    switched = true;
                }
                let kind = kinds[usize::from(k)];
                match r.map(kind, ts) {
                    Mapped::Pass(out) => {
                        if let Some(l) = last {
                            prop_assert!(out >= l);
                        }
                        prop_assert!(!switched || kind == FrameKind::VideoKey);
                        switched = false;
                        last = Some(out);
                    }
                    Mapped::Hold => prop_assert!(switched),
                    Mapped::Drop => prop_assert!(switched),
                }
            }
        }
    }
}
