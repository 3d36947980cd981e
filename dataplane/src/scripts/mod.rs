//! Server-side application scripts (AMS's main.asc) in an embedded JavaScript engine
//! (QuickJS through rquickjs).
//!
//! Scripts never run on a worker: one script thread per process (`host.rs`) holds every
//! instance's context, and workers talk to it with messages only (`ToScripts` in,
//! `FromScripts` back through their mailboxes), so media never waits for a script. A
//! connect to a scripted application waits in the client's `Gate` (as for an auth hook)
//! until the script accepts or rejects it; a client's call to a method is answered by
//! request id like a manager's `on_call`. A script that runs past its time budget or
//! allocates past its memory budget is interrupted and its instance unloaded; its clients
//! get NetConnection.Connect.AppShutdown.

mod app_dir;
/// Public for the benchmarks (context start-up and call cost).
pub mod context;
mod file_api;
mod heap;
mod host;
mod so_event;
mod stream_length;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_channel::Sender;
use serde::Deserialize;
use serde_json::Value;

use crate::app::instance::InstanceKey;
use crate::config::Config;
use crate::proto::rtmp::shared_object::SoMessage;

pub(crate) use host::start;

/// At server shutdown, the onAppStop handlers start within this long (each then has the
/// time budget).
pub(crate) const STOP_TIME: Duration = Duration::from_secs(2);

/// `[scripts]`: where applications' scripts are and what each instance may take.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ScriptsConfig {
    /// `<dir>/<app>/main.asc` (or `main.js`, or `<app>.asc`). None: no scripts.
    pub(crate) dir: Option<PathBuf>,
    /// Applications whose default instance is loaded at start (and at reload), as AMS's
    /// application.xml `LoadOnStartup`; others load when their first client connects.
    pub(crate) load_on_startup: Vec<String>,
    /// The longest one entry into a script (an event, a call, a timer) may run.
    pub(crate) time_budget_ms: u64,
    /// The most an instance's heap may hold.
    pub(crate) memory_budget_mb: u64,
    /// How long a connect may wait for onConnect's decision (a script that returns
    /// nothing and never calls acceptConnection or rejectConnection): then it is rejected.
    pub(crate) pending_timeout_ms: u64,
    /// An instance with no client (and none waiting) for this long is stopped (onAppStop)
    /// and unloaded, as AMS unloads idle instances; 0: never. Instances loaded at start
    /// (`load_on_startup`) stay.
    pub(crate) idle_unload_ms: u64,
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        ScriptsConfig {
            dir: None,
            load_on_startup: Vec::new(),
            time_budget_ms: 1_000,
            memory_budget_mb: 64,
            pending_timeout_ms: 30_000,
            idle_unload_ms: 600_000,
        }
    }
}

impl ScriptsConfig {
    pub(crate) fn budget(&self) -> context::Budget {
        context::Budget {
            time: Duration::from_millis(self.time_budget_ms.max(1)),
            memory: usize::try_from(self.memory_budget_mb.max(1) * 1024 * 1024)
                .unwrap_or(usize::MAX),
        }
    }
}

/// A worker's message to the script thread.
#[derive(Debug)]
pub(crate) enum ToScripts {
    /// A client asks to connect to a scripted application; answer `FromScripts::Decided`.
    Connect {
        worker: usize,
        request: u64,
        instance: InstanceKey,
        /// What the script's Client object carries (id, ip, agent, referrer, ...).
        client: Value,
        client_id: u64,
        args: Vec<Value>,
    },
    /// An admitted client started (or stopped) publishing `name`: onPublish/onUnpublish.
    Stream {
        instance: InstanceKey,
        client: u64,
        name: String,
        publish: bool,
    },
    /// A client of a scripted instance left (connected or still waiting).
    Disconnect {
        instance: InstanceKey,
        client: u64,
    },
    /// A client called a method: answer `WorkerMsg::RpcAnswer { request }`.
    Call {
        worker: usize,
        request: u64,
        instance: InstanceKey,
        client: u64,
        method: String,
        args: Vec<Value>,
    },
    /// A client answered the script's `client.call` number `call`.
    CallResult {
        instance: InstanceKey,
        call: u64,
        ok: bool,
        value: Value,
    },
    /// The manager answered a script's `callManager` (request id from
    /// `Shared::next_auth_id`; the worker it was addressed to passes it on).
    ManagerAnswer {
        request: u64,
        outcome: control_protocol::RpcOutcome,
    },
    /// An update of a shared object the instance's script uses, from the object's owner.
    So {
        instance: InstanceKey,
        message: SoMessage,
    },
    /// A status of the instance's server-side stream `name`, for its `onStatus`.
    StreamStatus {
        instance: InstanceKey,
        name: String,
        code: String,
        details: String,
    },
    /// A status of the instance's NetConnection `nc` (`info`: code, level, description,
    /// and what else the far end said), for its `onStatus`.
    NcStatus {
        instance: InstanceKey,
        nc: u64,
        info: Value,
    },
    /// The far application calls `method` on the instance's NetConnection `nc`; the answer
    /// goes back to its worker as `ScriptNcAction::Answer` (`transaction` 0: none waits).
    NcCall {
        worker: usize,
        instance: InstanceKey,
        nc: u64,
        transaction: f64,
        method: String,
        args: Vec<Value>,
    },
    Reload(Arc<Config>),
    /// The server stops: every instance's onAppStop runs (each within the time budget, all
    /// within `STOP_TIME`), then `done` is told.
    Stop {
        done: Sender<()>,
    },
    /// `stratactl app reload APP`: the application's instances are unloaded, changed or not.
    ReloadApp(String),
}

/// What a script does to a shared object; the owner worker applies it with the script as
/// one more user of the object (`engine/worker/shared_objects.rs`, `SCRIPT_USER`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ScriptSoAction {
    Use,
    Release,
    /// Sets a slot (null removes it); every user sees it, as a change by the server.
    Set {
        key: String,
        #[serde(default)]
        value: Value,
    },
    Clear,
    Send {
        handler: String,
        #[serde(default)]
        args: Vec<Value>,
    },
}

/// What a script does to a server-side stream (`Stream.get(name)`); the instance's owner
/// worker plays it (`engine/worker/server_streams.rs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ScriptStreamAction {
    /// `play(source, start, len, reset)` (start and len in ms, as a client's play sends
    /// them; the script gives seconds, as AMS): start -1 the live stream `source` of the
    /// instance, -2 the file if there is one, else the live stream, 0+ the file from there.
    Play {
        source: String,
        start: f64,
        len: f64,
        reset: bool,
    },
    /// `play(false)`: the playlist ends.
    Stop,
    /// `record("record" | "append")` starts recording what the stream plays to the file
    /// a client's play of its name opens (`record` truncates it); `record(false)` stops.
    Record { mode: String },
    /// `send(handler, ...args)`: a data message in the stream.
    Send {
        handler: String,
        #[serde(default)]
        args: Vec<Value>,
    },
}

/// What a script does with a server-side `NetConnection` (numbered `nc` in its instance);
/// the instance's owner worker holds the connection (`engine/worker/script_connections.rs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ScriptNcAction {
    /// `connect(uri, p1, ..., pN)`: `rtmp://host[:port]/app[/instance]`, or `rtmp:/app`
    /// for this server.
    Connect {
        uri: String,
        #[serde(default)]
        args: Vec<Value>,
    },
    /// `call(method, resultObj, ...args)`; the answer comes back as a `CallResult` of
    /// `call` (0: nobody waits for it).
    Call {
        method: String,
        call: u64,
        #[serde(default)]
        args: Vec<Value>,
    },
    Close,
    /// The script's answer to the far application's call `transaction` (made by the host,
    /// not the script).
    Answer {
        transaction: f64,
        ok: bool,
        #[serde(default)]
        value: Value,
    },
}

/// The script thread's message to a worker.
#[derive(Debug)]
pub(crate) enum FromScripts {
    /// The script accepted or rejected connect `request`; `error` is what the client sees
    /// in NetConnection.Connect.Rejected's `application` field (null: none).
    Decided {
        request: u64,
        accept: bool,
        error: Value,
        reason: String,
        /// The accepted client's stream access (None: everything).
        access: Option<crate::app::access::Access>,
    },
    /// `client.call(method, resultObj, ...args)`; `call` 0: nobody waits for the answer.
    CallClient {
        instance: InstanceKey,
        client: u64,
        method: String,
        args: Vec<Value>,
        call: u64,
    },
    /// `application.disconnect(client)`.
    Disconnect { client: u64 },
    /// `client.setBandwidthLimit(_, clientToServer)`: Set Peer Bandwidth to the client.
    PeerBandwidth { client: u64, bytes: u32 },
    /// `application.broadcastMsg(method, ...args)`.
    Broadcast {
        instance: InstanceKey,
        method: String,
        args: Vec<Value>,
    },
    /// The instance was unloaded: its clients get NetConnection.Connect.AppShutdown.
    Shutdown {
        instance: InstanceKey,
        reason: String,
    },
    /// To the instance's owner: a script's shared-object operation.
    So {
        instance: InstanceKey,
        name: String,
        persistent: bool,
        action: ScriptSoAction,
    },
    /// To the instance's owner: a script's server-side stream operation.
    Stream {
        instance: InstanceKey,
        name: String,
        action: ScriptStreamAction,
    },
    /// To the instance's owner: a script's NetConnection operation.
    Nc {
        instance: InstanceKey,
        nc: u64,
        action: ScriptNcAction,
    },
    /// To the instance's owner: the script is gone; it uses no object any more (and its
    /// server-side streams end).
    SoLeave { instance: InstanceKey },
}

/// The workers' handle on the script thread.
pub(crate) struct Scripts {
    tx: Sender<ToScripts>,
    /// Applications with a main script, as the script thread last found them (at start
    /// and at each reload): a worker reads it once per connect.
    apps: RwLock<Vec<String>>,
}

impl Scripts {
    pub(crate) fn new(tx: Sender<ToScripts>) -> Self {
        Scripts {
            tx,
            apps: RwLock::new(Vec::new()),
        }
    }

    pub(crate) fn has_app(&self, app: &str) -> bool {
        self.apps
            .read()
            .map(|a| a.iter().any(|x| x == app))
            .unwrap_or(false)
    }

    pub(crate) fn set_apps(&self, apps: Vec<String>) {
        if let Ok(mut a) = self.apps.write() {
            *a = apps;
        }
    }

    pub(crate) fn send(&self, msg: ToScripts) {
        // The thread lives as long as the process; a send after it is gone is dropped.
        let _ = self.tx.send(msg);
    }

    /// At server shutdown: runs every instance's onAppStop and waits for them, at most
    /// `STOP_TIME` and one time budget (the last onAppStop started may run that long).
    pub(crate) fn stop(&self, config: &ScriptsConfig) {
        let (done, wait) = crossbeam_channel::bounded(1);
        self.send(ToScripts::Stop { done });
        let _ = wait.recv_timeout(STOP_TIME + config.budget().time + Duration::from_millis(500));
    }
}
