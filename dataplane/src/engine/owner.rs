//! Who a timer, an outbound connect or a UDP socket reports to. Small and `Copy`: it rides
//! in every timer on the heap and is matched once per due timer or completion.
//!
//! An owner that joins the engine (a relay's upstream link, an RTMFP session, a live stream)
//! adds its variant here, carrying a generation-checked reference like `ConnRef`; the
//! compiler then lists every dispatch that must say what it does with it.

use super::conn::ConnRef;
use super::slab::SlabRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A client connection.
    Conn(ConnRef),
    /// A recording of a live stream (its entry in the worker's `Recordings`).
    Recording(SlabRef),
    /// A relay pull of this worker (see `worker/upstream.rs`): the connects and retries of
    /// its link to upstream group `group` (its index in host.ini), and its idle checks.
    Pull { pull: SlabRef, group: u16 },
    /// A push relay of this worker (see `worker/push.rs`): its connects and retries.
    Push(SlabRef),
    /// A standing FCAddChild link of an application to an upstream group (see
    /// `worker/registrations.rs`): its connects and retries.
    Registration(SlabRef),
    /// A server-side script's NetConnection (see `worker/script_connections.rs`): its
    /// connect and the hostname it resolves.
    ScriptNc(SlabRef),
    /// The worker itself: housekeeping, and what no narrower owner holds yet.
    Worker,
    /// A file read for VOD (see `worker/vod.rs`).
    Vod(VodReader),
    /// The RTMFP socket of listen address `n` (see `worker/rtmfp.rs`).
    Rtmfp(u16),
}

/// Who a VOD file read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VodReader {
    /// The index of a file being built (its id in the worker's VOD files).
    Index(u32),
    /// A NetStream playing a file: a sample larger than a shared block.
    Viewer(ConnRef, u32),
    /// A block of a file shared by its viewers (the worker's id of the file).
    Block(u64),
    /// A server-side stream's playlist (its id in the worker's `ServerStreams`); also the
    /// owner of its pacing timer.
    Server(u32),
}
