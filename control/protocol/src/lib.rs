//! The control protocol between `stratad` and its managers (`stratactl`), over a Unix
//! socket: one JSON object per line, UTF-8, each side may send at any time.
//!
//! Version 1. A client sends `Request`s, each with an id it chooses; the server answers
//! each with exactly one `Response` carrying that id, in any order. After `subscribe` the
//! server also sends `Event` lines; after `auth_register` it sends `AuthRequest` lines,
//! which the client answers with `auth_reply` requests; after `rpc_register`, `RpcRequest`
//! lines answered with `rpc_reply` (see `rpc`). Unknown fields are ignored (so
//! later versions may add fields); an unknown method gets an `unknown_method` error.
//!
//! A crate of its own so that both processes share these types and neither links the
//! other: stratad stays free of the manager's HTTP server and client.

use serde::{Deserialize, Serialize};

mod rpc;
pub use rpc::{RpcClient, RpcError, RpcOutcome, RpcRequest, RpcRequestLine, CALL_FAILED};
mod shared_objects;
pub use shared_objects::{SoCall, SoInfo};
mod vod;
pub use vod::VodFileInfo;
mod multicast;
pub use multicast::{
    MulticastCall, MulticastListed, MulticastOutput, DEFAULT_PACKETS_PER_DATAGRAM,
};

pub const PROTOCOL_VERSION: u32 = 1;
/// Where stratad listens when `--control-socket` is not given.
pub const DEFAULT_SOCKET: &str = "/run/strata/stratad.sock";
/// A request line longer than this is refused (and the connection closed): the protocol has
/// no large requests, and an unbounded line is a memory attack.
pub const MAX_LINE: usize = 64 * 1024;

/// A line from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The protocol version the client speaks.
    #[serde(default = "version")]
    pub v: u32,
    pub id: u64,
    #[serde(flatten)]
    pub call: Call,
}

fn version() -> u32 {
    PROTOCOL_VERSION
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Call {
    Status,
    Streams,
    Clients,
    /// The upstream groups of every relay pull (intermediate and edge applications).
    Upstreams,
    /// The standing FCAddChild links of intermediate and edge applications to their
    /// upstream groups, each with the list of live streams it keeps (answered with
    /// `Reply::Upstreams`, stream `*`).
    UpstreamLinks,
    Kick {
        client: u64,
    },
    /// Disconnects the stream's publisher; viewers get UnpublishNotify.
    StopStream {
        stream: String,
    },
    /// Re-reads the configuration file stratad was started with.
    Reload,
    /// Unloads every instance of the scripted application `app` (onAppStop first; its
    /// clients get NetConnection.Connect.AppShutdown), whether its files changed or not;
    /// its next client (or `load_on_startup`) loads its scripts again.
    AppReload {
        app: String,
    },
    /// Starts the event stream on this connection.
    Subscribe,
    /// Makes this connection the one stratad asks on connect, publish and play.
    AuthRegister,
    AuthReply {
        request: u64,
        allow: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Makes this connection the one stratad asks for client calls to methods it does not
    /// have built in (`RpcRequest` lines; see `rpc`).
    RpcRegister,
    RpcReply {
        request: u64,
        #[serde(flatten)]
        outcome: RpcOutcome,
    },
    /// Calls `method` on client `client`; answered with `Reply::Answer` when the client
    /// answers, or with its timeout as an `error`.
    ClientCall {
        client: u64,
        method: String,
        #[serde(default)]
        args: Vec<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Calls `method` on every client of `app` (of `instance` only, if given) on every
    /// worker, transaction 0 (no answer); answered with `Reply::Done` saying how many.
    Broadcast {
        app: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        method: String,
        #[serde(default)]
        args: Vec<serde_json::Value>,
    },
    /// A remote shared object of an application instance: list, get, set, delete.
    So(SoCall),
    /// The files under the content root (of `app`, of its `instance` only if given),
    /// answered with `Reply::VodFiles`; `not_found` when stratad serves no files.
    Vod {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
    /// Multicast outputs: list, add, remove (`multicast` reply, or `done`).
    Multicast(MulticastCall),
}

/// A line from stratad: a response, an event or an auth request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerLine {
    Response(Response),
    Event(Event),
    Auth(AuthRequestLine),
    Rpc(RpcRequestLine),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Reply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One of: bad_request, unknown_method, unsupported_version, not_found, invalid_config,
    /// busy, internal.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Status(ServerStatus),
    Streams {
        streams: Vec<StreamInfo>,
    },
    Clients {
        clients: Vec<ClientInfo>,
    },
    Upstreams {
        upstreams: Vec<UpstreamInfo>,
    },
    SharedObjects {
        shared_objects: Vec<SoInfo>,
    },
    /// `truncated`: the walk stopped at its bound on files or depth, so more files exist.
    VodFiles {
        vod_files: Vec<VodFileInfo>,
        #[serde(default)]
        truncated: bool,
    },
    Done {
        done: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A client's answer to `client_call`.
    Answer {
        answer: RpcOutcome,
    },
    Multicast {
        multicast: Vec<MulticastListed>,
    },
}

/// One upstream group of one relay pull (a stream an intermediate or edge plays from its
/// host.ini groups).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamInfo {
    pub app: String,
    pub stream: String,
    pub worker: usize,
    /// The group's label in host.ini.
    pub group: String,
    pub primary: String,
    pub secondary: String,
    /// Where the next or current attempt goes.
    pub address: String,
    /// streaming, parked, linked, connecting, waiting (to retry) or idle.
    pub state: String,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// The stream comes from this group now.
    pub active: bool,
    /// Its place in the failover list (answer order; 0 is first), if it is in it.
    pub position: Option<usize>,
    /// Unix time of its last change of state.
    pub since: f64,
    /// A standing link (stream `*`): the active publishers its group lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub version: String,
    pub protocol: u32,
    pub pid: u32,
    pub uptime_s: f64,
    pub workers: Vec<WorkerStatus>,
    pub connections: u64,
    pub streams: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Over the last few seconds.
    pub bits_in_per_s: f64,
    pub bits_out_per_s: f64,
    pub dropped_frames: u64,
    /// Recordings started, and those that failed (disk full, unwritable path, too slow a
    /// disk). Absent from older servers.
    #[serde(default)]
    pub recordings_started: u64,
    #[serde(default)]
    pub recordings_failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub id: usize,
    pub connections: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Socket sends so far; bytes_out / sends is the mean send, which batching keeps large.
    /// Absent from older servers.
    #[serde(default)]
    pub sends: u64,
    /// Share of the last interval the worker spent handling work rather than waiting (0..1).
    pub load: f64,
    /// Shared-object messages from the worker's clients, and written to them. Absent from
    /// older servers.
    #[serde(default)]
    pub so_messages_in: u64,
    #[serde(default)]
    pub so_messages_out: u64,
    /// RTMFP sessions open on the worker (absent from older servers).
    #[serde(default)]
    pub rtmfp_sessions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub app: String,
    pub instance: String,
    pub name: String,
    pub publisher: Option<String>,
    pub publisher_client: Option<u64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub bitrate_in: f64,
    pub bitrate_out: f64,
    pub viewers: u64,
    /// Frames in the cached group of pictures.
    pub gop_frames: u64,
    /// Unix time (seconds) the current publish started.
    pub since: f64,
    /// The file the stream is being recorded to, if it is. Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// The stream's multicast outputs on the worker it enters. Absent from older servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multicast: Vec<MulticastOutputInfo>,
}

/// One multicast output of a stream, as `streams` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MulticastOutputInfo {
    /// "239.1.1.1:5000"
    pub group: String,
    pub rtp: bool,
    /// waiting_for_key, sending, backing_off
    pub state: String,
    pub datagrams: u64,
    pub bytes: u64,
    /// Bytes dropped (queue overflow, failed sends).
    pub dropped_bytes: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub protocol: String,
    pub app: Option<String>,
    pub worker: usize,
    pub publishing: Vec<String>,
    pub playing: Vec<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Milliseconds the client's send queue is behind the live edge.
    pub lag_ms: u64,
    pub since: f64,
    /// RTMFP clients: the peer id (hex SHA-256 of the client's certificate) and the
    /// session's smoothed round-trip time. Absent for RTMP and from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// connect, disconnect, publish_start, publish_stop, play_start, play_stop; so_use,
    /// so_release, so_change (a client's shared-object use, release, or batch of changes:
    /// `stream` then holds the object's name); multicast_start, multicast_stop,
    /// multicast_failed (an output: `addr` holds its group, `reason` why it stopped or the
    /// error with its errno).
    pub event: String,
    /// Unix time in seconds.
    pub ts: f64,
    pub client: u64,
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A client's transport: "rtmp" or "rtmfp" (absent for events of no client, and from
    /// older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequestLine {
    pub auth: AuthRequest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Answer with `auth_reply { request: this }`.
    pub request: u64,
    /// connect, publish or play.
    pub action: String,
    pub client: u64,
    pub addr: String,
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The query string of the stream name or tcUrl (`key=...`), without the `?`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tc_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_round_trip() {
        for line in [
            r#"{"v":1,"id":1,"method":"status"}"#,
            r#"{"v":1,"id":2,"method":"kick","params":{"client":17}}"#,
            r#"{"v":1,"id":3,"method":"stop_stream","params":{"stream":"live/_definst_/cam"}}"#,
            r#"{"v":1,"id":4,"method":"auth_reply","params":{"request":9,"allow":false,"reason":"bad key"}}"#,
            r#"{"v":1,"id":5,"method":"vod","params":{"app":"vod"}}"#,
            r#"{"v":1,"id":6,"method":"vod","params":{}}"#,
        ] {
            let r: Request = serde_json::from_str(line).expect(line);
            assert_eq!(serde_json::to_string(&r).expect("encode"), line);
        }
    }

    #[test]
    fn server_lines_are_told_apart() {
        let ev = r#"{"event":"connect","ts":1.5,"client":3,"addr":"127.0.0.1:5"}"#;
        assert!(matches!(
            serde_json::from_str::<ServerLine>(ev),
            Ok(ServerLine::Event(_))
        ));
        let auth = r#"{"auth":{"request":1,"action":"publish","client":3,"addr":"a","app":"live","stream":"cam"}}"#;
        assert!(matches!(
            serde_json::from_str::<ServerLine>(auth),
            Ok(ServerLine::Auth(_))
        ));
        let err = r#"{"id":4,"error":{"code":"not_found","message":"no client 4"}}"#;
        assert!(matches!(
            serde_json::from_str::<ServerLine>(err),
            Ok(ServerLine::Response(_))
        ));
    }
}
