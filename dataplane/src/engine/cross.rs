//! What workers tell each other. A media message crosses to each worker with viewers once,
//! as refcounted bytes; that worker fans it out locally.

use std::sync::Arc;

use control_protocol::{
    AuthRequest, ClientInfo, Event, RpcOutcome, RpcRequest, SoCall, SoInfo, StreamInfo,
};

use super::worker::shared_objects::{SoTarget, SoUser};
use crate::app::instance::InstanceKey;
use crate::app::StreamKey;
use crate::config::Config;
use crate::proto::rtmp::shared_object::SoMessage;

pub(crate) use crate::media::frame::MediaMessage;

#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// An RTMFP datagram that reached another worker's socket for a session of this worker
    /// (its id names this worker): forwarded one hop, then handled as if received here on
    /// the socket of listen address `endpoint`.
    RtmfpDatagram {
        endpoint: u16,
        from: std::net::SocketAddr,
        payload: bytes::Bytes,
    },
    /// To the publisher's worker: `worker` now has viewers of `key`.
    Subscribe {
        key: StreamKey,
        worker: usize,
    },
    /// To the publisher's worker: `worker` has no viewers of `key` left.
    Unsubscribe {
        key: StreamKey,
        worker: usize,
    },
    /// To a viewers' worker: `key` is live, here is what a new viewer needs first.
    StreamStarted {
        key: StreamKey,
        publish_id: u64,
        snapshot: Vec<MediaMessage>,
    },
    Media {
        key: StreamKey,
        publish_id: u64,
        message: MediaMessage,
    },
    StreamStopped {
        key: StreamKey,
        publish_id: u64,
    },
    /// To every worker: `key` went live (or stopped) in an application with child servers,
    /// which are told with addStream (removeStream).
    TierStream {
        key: StreamKey,
        live: bool,
    },
    /// From the control thread: answer with `ControlInbound::Answer { query, .. }`.
    Query {
        query: u64,
        ask: Query,
    },
    /// From the control thread: a validated new configuration.
    Reload(Arc<Config>),
    /// From worker 0's standing links to every worker: `name` appeared in (`live`) or left
    /// the upstream groups' lists of `app` (`relay::catalog`).
    UpstreamCatalog {
        app: String,
        name: String,
        live: bool,
    },
    /// To a worker from its resolver thread: the address of an upstream hostname.
    Resolved {
        owner: crate::engine::owner::Owner,
        result: Result<std::net::SocketAddr, String>,
    },
    /// From the control thread: the manager's answer to an auth request.
    AuthDecision {
        request: u64,
        allow: bool,
        reason: Option<String>,
    },
    /// From the control thread: the answer to a client's call (`ControlInbound::Rpc`).
    RpcAnswer {
        request: u64,
        outcome: RpcOutcome,
    },
    /// From the script thread (see `crate::scripts`).
    Script(crate::scripts::FromScripts),
    /// To an instance's owner: a client's shared-object message.
    SoRequest {
        instance: InstanceKey,
        user: SoUser,
        /// For log lines.
        client: u64,
        message: SoMessage,
    },
    /// To an instance's owner: a client that used shared objects is gone.
    SoLeave {
        instance: InstanceKey,
        user: SoUser,
    },
    /// From an instance's owner: an update for local users of one object, once per worker.
    SoDeliver {
        instance: InstanceKey,
        target: SoTarget,
        message: Arc<SoMessage>,
    },
    /// From the control thread: an operator added a multicast output; the worker where a
    /// matching stream enters opens it.
    MulticastAdd(crate::multicast::spec::MulticastSpec),
    /// From the control thread: an operator removed the output of `stream` to `group`.
    MulticastRemove {
        stream: String,
        group: std::net::SocketAddr,
    },
    Shutdown,
}

/// What the control thread asks every worker: the subset of the control socket's `Call`s
/// that workers answer, kept as its own type (not `Call` itself) so that a worker's match is
/// exhaustive over what it can be asked, with no arm for methods the control thread handles.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    Streams,
    Clients,
    Upstreams,
    UpstreamLinks,
    Kick {
        client: u64,
    },
    /// `stream` as the operator wrote it: `app/name` or `app/instance/name`.
    StopStream {
        stream: String,
    },
    /// Call `method` on client `client` (the worker that has it answers
    /// `Answer::Called(Some(..))` once the client answered or the call timed out; the
    /// others `Answer::Called(None)` at once).
    CallClient {
        client: u64,
        method: String,
        args: Vec<serde_json::Value>,
        timeout_ms: u64,
    },
    /// Call `method` on every client of `app` (`instance`), expecting no answer.
    Broadcast {
        app: String,
        instance: Option<String>,
        method: String,
        args: Vec<serde_json::Value>,
    },
    /// Asked of the instance's owner only: an operator's shared-object request.
    So(SoCall),
    /// The files whose index the worker holds, with their durations (`stratactl vod`).
    VodDurations,
}

#[derive(Debug)]
pub(crate) enum Answer {
    Streams(Vec<StreamInfo>),
    Clients(Vec<ClientInfo>),
    Upstreams(Vec<control_protocol::UpstreamInfo>),
    Found(bool),
    Called(Option<RpcOutcome>),
    /// How many clients a broadcast reached.
    Count(u64),
    /// The objects asked about, or why not.
    SharedObjects(Result<Vec<SoInfo>, String>),
    /// Indexed files by canonical path, with their durations in milliseconds.
    VodDurations(Vec<(std::path::PathBuf, u32)>),
}

/// What workers tell the control thread.
#[derive(Debug)]
pub(crate) enum ControlInbound {
    Answer {
        query: u64,
        answer: Answer,
    },
    Event(Event),
    Auth {
        worker: usize,
        request: AuthRequest,
    },
    /// A client called an application method: for the manager's `on_call` hook.
    Rpc {
        worker: usize,
        request: RpcRequest,
    },
    /// SIGHUP: re-read the configuration file, as `reload` does.
    ReloadSignal,
}
