//! The control socket: a thread of its own, off the media path, serving the versioned
//! JSON-lines protocol of `control_protocol` to managers (`stratactl`). Workers are asked
//! through their mailboxes and answer when they get to it; a slow or absent answer never
//! blocks a worker, and a flood of requests is refused with `busy` past a bound.

mod client;
mod multicast;
mod peer;
mod status;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_protocol::{
    AuthRequestLine, Call, ClientInfo, ErrorBody, Reply, Request, Response, RpcOutcome,
    RpcRequestLine, SoCall, SoInfo, StreamInfo, MAX_LINE, PROTOCOL_VERSION,
};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::reload::RunningConfig;
use crate::app::instance::InstanceKey;
use crate::config::AuthDefault;
use crate::engine::content_listing;
use crate::engine::content_root::ContentRoot;
use crate::engine::cross::{Answer, ControlInbound, Query, WorkerMsg};
use crate::engine::mailbox::MailboxReceiver;
use crate::engine::Shared;
use client::{Client, ReadOutcome};
use status::Sampler;

/// Worker answers are awaited this long; then the reply goes out with what arrived.
const QUERY_DEADLINE: Duration = Duration::from_secs(1);
/// Queries waiting for workers at once; past this, requests get `busy`. Bounds the work a
/// request flood can push onto the workers.
const MAX_PENDING_QUERIES: usize = 64;
/// A client that neither asks anything nor subscribes for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CLIENTS: usize = 256;
const POLL_INTERVAL_MS: i32 = 200;
/// How long `client_call` waits for the client when the request names no timeout, and
/// the most it may name.
const CALL_TIMEOUT_MS: u64 = 5_000;
const MAX_CALL_TIMEOUT_MS: u64 = 60_000;
/// Client calls the manager has not answered after this long are forgotten here.
const RPC_FORGET: Duration = Duration::from_secs(120);

pub(super) struct Settings {
    pub(super) socket: PathBuf,
    /// The socket path was given explicitly: failing to create it is fatal.
    pub(super) explicit: bool,
}

enum PendingKind {
    Streams(HashMap<(String, String, String), StreamInfo>),
    Clients(Vec<ClientInfo>),
    Found {
        found: bool,
        what: String,
    },
    /// `client_call`: the answer of the worker that has the client.
    Called {
        client: u64,
        answer: Option<RpcOutcome>,
    },
    /// `broadcast`: clients reached so far.
    Count(u64),
    Upstreams(Vec<control_protocol::UpstreamInfo>),
    /// Asked of one worker (the instance's owner).
    SharedObjects(Option<Result<Vec<SoInfo>, String>>),
    /// `vod`: the files listed, then the durations of those a worker has indexed.
    Vod {
        listing: content_listing::Listing,
        durations: HashMap<PathBuf, u32>,
    },
}

struct PendingQuery {
    client: u64,
    id: u64,
    remaining: usize,
    deadline: Instant,
    kind: PendingKind,
}

pub(super) struct ControlServer {
    listener: Option<UnixListener>,
    path: Option<PathBuf>,
    socket_gid: Option<u32>,
    inbound: MailboxReceiver<ControlInbound>,
    shared: Arc<Shared>,
    /// This thread performs every reload, for `reload` requests and SIGHUP alike.
    config: RunningConfig,
    clients: HashMap<u64, Client>,
    next_client: u64,
    pending: HashMap<u64, PendingQuery>,
    next_query: u64,
    auth_owner: Option<u64>,
    /// Auth request id → the worker waiting for the answer.
    auth_waiting: HashMap<u64, usize>,
    /// The connection that answers client calls (`rpc_register`), and the calls it has
    /// not answered yet: request id → the worker waiting.
    rpc_owner: Option<u64>,
    /// (Each with when it was sent: a call the manager never answers is forgotten after
    /// `RPC_FORGET`, the worker having failed it at its own deadline long before.)
    rpc_waiting: HashMap<u64, (usize, Instant)>,
    sampler: Sampler,
    stop: Arc<AtomicBool>,
    /// Multicast outputs operators added (see `multicast.rs`).
    multicast_added: Vec<crate::multicast::spec::MulticastSpec>,
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another stratad is serving this socket",
            ));
        }
        // A stale socket from a process that did not exit cleanly.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

impl ControlServer {
    pub(super) fn new(
        settings: Settings,
        shared: Arc<Shared>,
        config: RunningConfig,
        inbound: MailboxReceiver<ControlInbound>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        let (listener, path) = match bind(&settings.socket) {
            Ok(l) => {
                info!(socket = %settings.socket.display(), "control socket ready");
                (Some(l), Some(settings.socket.clone()))
            }
            Err(e) if !settings.explicit => {
                warn!(
                    socket = %settings.socket.display(),
                    error = %e,
                    "control socket disabled (pass --control-socket PATH to serve it elsewhere)"
                );
                (None, None)
            }
            Err(e) => {
                return Err(format!(
                    "cannot serve the control socket at {}: {e}",
                    settings.socket.display()
                ))
            }
        };
        let socket_gid = path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.gid());
        let workers = shared.mailboxes.len();
        Ok(ControlServer {
            listener,
            path,
            socket_gid,
            inbound,
            shared,
            config,
            clients: HashMap::new(),
            next_client: 1,
            pending: HashMap::new(),
            next_query: 1,
            auth_owner: None,
            auth_waiting: HashMap::new(),
            rpc_owner: None,
            rpc_waiting: HashMap::new(),
            sampler: Sampler::new(workers),
            stop,
            multicast_added: Vec::new(),
        })
    }

    pub(super) fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            self.poll_once();
            self.expire();
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }

    fn poll_once(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.clients.len() + 2);
        let pollin = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        fds.push(pollin(self.inbound.fd()));
        if let Some(l) = &self.listener {
            fds.push(pollin(l.as_raw_fd()));
        }
        let base = fds.len();
        let tokens: Vec<u64> = self.clients.keys().copied().collect();
        for t in &tokens {
            if let Some(c) = self.clients.get(t) {
                let mut events = libc::POLLIN;
                if c.wants_write() {
                    events |= libc::POLLOUT;
                }
                fds.push(libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events,
                    revents: 0,
                });
            }
        }
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                POLL_INTERVAL_MS,
            )
        };
        if n <= 0 {
            return;
        }
        if fds[0].revents != 0 {
            let mut counter = 0u64;
            // SAFETY: reads the 8-byte eventfd counter into a live u64; poll said it is readable.
            unsafe { libc::read(self.inbound.fd(), std::ptr::addr_of_mut!(counter).cast(), 8) };
            while let Some(msg) = self.inbound.try_recv() {
                self.on_inbound(msg);
            }
        }
        if self.listener.is_some() && fds[1].revents != 0 {
            self.accept();
        }
        for (i, t) in tokens.iter().enumerate() {
            let Some(pfd) = fds.get(base + i) else {
                continue;
            };
            if pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.read_client(*t);
            }
        }
        self.flush_clients();
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let Some(cred) = peer::credentials(&stream) else {
                        continue;
                    };
                    if !peer::allowed(cred, self.socket_gid) {
                        warn!(uid = cred.uid, pid = cred.pid, "control socket: client refused (not root, stratad's user or the socket's group)");
                        continue;
                    }
                    if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                        warn!(uid = cred.uid, "control socket: too many clients; refused");
                        continue;
                    }
                    let token = self.next_client;
                    self.next_client += 1;
                    debug!(
                        uid = cred.uid,
                        pid = cred.pid,
                        token,
                        "control client connected"
                    );
                    self.clients.insert(token, Client::new(stream, cred.uid));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    break;
                }
            }
        }
    }

    fn read_client(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        match c.read_lines() {
            ReadOutcome::Closed => self.drop_client(token),
            ReadOutcome::LineTooLong => {
                warn!(token, "control client sent an over-long line; closed");
                self.respond_error(token, 0, "bad_request", "line too long");
                let _ = self.clients.get_mut(&token).map(Client::flush);
                self.drop_client(token);
            }
            ReadOutcome::Lines(lines) => {
                for line in lines.iter().filter(|l| !l.is_empty()) {
                    if let Some(c) = self.clients.get_mut(&token) {
                        c.last_request = Instant::now();
                    }
                    self.on_line(token, line);
                }
            }
        }
    }

    fn drop_client(&mut self, token: u64) {
        if self.clients.remove(&token).is_some() {
            debug!(token, "control client gone");
        }
        if self.auth_owner == Some(token) {
            self.auth_owner = None;
            self.shared.auth_manager.store(false, Ordering::Relaxed);
            info!("auth manager gone: the configured default applies");
            // Whoever waits gets the default now rather than at their timeout.
            let allow = self.config.current().auth.default == AuthDefault::Allow;
            for (request, worker) in std::mem::take(&mut self.auth_waiting) {
                self.post(
                    worker,
                    WorkerMsg::AuthDecision {
                        request,
                        allow,
                        reason: Some("the manager went away; default applied".into()),
                    },
                );
            }
        }
        if self.rpc_owner == Some(token) {
            self.rpc_owner = None;
            self.shared.rpc_manager.store(false, Ordering::Relaxed);
            info!("RPC manager gone: client calls to application methods fail");
            for (request, (worker, _)) in std::mem::take(&mut self.rpc_waiting) {
                let outcome = RpcOutcome::failed("The manager went away.");
                self.post(worker, WorkerMsg::RpcAnswer { request, outcome });
            }
        }
    }

    fn flush_clients(&mut self) {
        let mut dead = Vec::new();
        for (t, c) in &mut self.clients {
            if c.wants_write() && c.flush().is_err() {
                dead.push(*t);
            }
        }
        for t in dead {
            self.drop_client(t);
        }
    }

    fn send(&mut self, token: u64, line: &str) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        if !c.send_line(line) {
            warn!(token, "control client is not reading its replies; closed");
            self.drop_client(token);
        }
    }

    fn respond(&mut self, token: u64, id: u64, result: Reply) {
        let line = serde_json::to_string(&Response {
            id,
            result: Some(result),
            error: None,
        })
        .unwrap_or_default();
        self.send(token, &line);
    }

    fn respond_done(&mut self, token: u64, id: u64) {
        self.respond(
            token,
            id,
            Reply::Done {
                done: true,
                message: None,
            },
        );
    }

    fn respond_error(&mut self, token: u64, id: u64, code: &str, message: &str) {
        let error = ErrorBody {
            code: code.into(),
            message: message.into(),
        };
        let line = serde_json::to_string(&Response {
            id,
            result: None,
            error: Some(error),
        })
        .unwrap_or_default();
        self.send(token, &line);
    }

    fn on_line(&mut self, token: u64, line: &str) {
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return self.respond_error(token, 0, "bad_request", &format!("not JSON: {e}"))
            }
        };
        let id = value.get("id").and_then(Value::as_u64).unwrap_or(0);
        if let Some(v) = value.get("v").and_then(Value::as_u64) {
            if v > u64::from(PROTOCOL_VERSION) {
                let msg = format!(
                    "protocol version {v} requested; this stratad speaks {PROTOCOL_VERSION}"
                );
                return self.respond_error(token, id, "unsupported_version", &msg);
            }
        }
        let request: Request = match serde_json::from_value(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                let method = value
                    .get("method")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let known = method.as_deref().is_some_and(|m| {
                    [
                        "status",
                        "streams",
                        "clients",
                        "kick",
                        "stop_stream",
                        "reload",
                        "subscribe",
                        "auth_register",
                        "auth_reply",
                        "rpc_register",
                        "rpc_reply",
                        "client_call",
                        "broadcast",
                        "vod",
                        "multicast",
                    ]
                    .contains(&m)
                });
                return match method {
                    Some(m) if !known => self.respond_error(
                        token,
                        id,
                        "unknown_method",
                        &format!("unknown method {m:?}"),
                    ),
                    _ => self.respond_error(token, id, "bad_request", &e.to_string()),
                };
            }
        };
        self.on_request(token, request);
    }

    /// `vod`: the content root's playable files, walked here (bounded; see
    /// `engine/content_listing.rs`), with the durations of those a worker has indexed.
    fn list_files(&mut self, token: u64, id: u64, app: Option<String>, instance: Option<String>) {
        let Some(root) = self.config.current().vod.root.clone() else {
            let why = "stratad serves no files (no vod.root or --content-root)";
            return self.respond_error(token, id, "not_found", why);
        };
        let root = match ContentRoot::new(&root) {
            Ok(r) => r,
            Err(e) => return self.respond_error(token, id, "not_found", &e.to_string()),
        };
        let listing = content_listing::list(&root, app.as_deref(), instance.as_deref());
        let kind = PendingKind::Vod {
            listing,
            durations: HashMap::new(),
        };
        self.ask_workers(token, id, Query::VodDurations, kind);
    }

    fn on_request(&mut self, token: u64, request: Request) {
        let id = request.id;
        match request.call {
            Call::Status => {
                let status = self.sampler.status(&self.shared);
                self.respond(token, id, Reply::Status(status));
            }
            Call::Streams => self.ask_workers(
                token,
                id,
                Query::Streams,
                PendingKind::Streams(HashMap::new()),
            ),
            Call::Clients => {
                self.ask_workers(token, id, Query::Clients, PendingKind::Clients(Vec::new()))
            }
            Call::Upstreams => self.ask_workers(
                token,
                id,
                Query::Upstreams,
                PendingKind::Upstreams(Vec::new()),
            ),
            Call::UpstreamLinks => self.ask_workers(
                token,
                id,
                Query::UpstreamLinks,
                PendingKind::Upstreams(Vec::new()),
            ),
            Call::Kick { client } => {
                let kind = PendingKind::Found {
                    found: false,
                    what: format!("no client {client}"),
                };
                self.ask_workers(token, id, Query::Kick { client }, kind)
            }
            Call::StopStream { stream } => {
                // Instance and name may hold `/` (`live/dir/cam`): workers match the path
                // against each stream's parts rather than this side parsing it.
                let stream = stream.trim_matches('/').to_string();
                if !stream.contains('/') {
                    return self.respond_error(
                        token,
                        id,
                        "bad_request",
                        "stream must be app/name or app/instance/name",
                    );
                }
                let kind = PendingKind::Found {
                    found: false,
                    what: format!("no stream {stream} is published"),
                };
                self.ask_workers(token, id, Query::StopStream { stream }, kind)
            }
            Call::So(call) => {
                if let SoCall::Set { value, .. } = &call {
                    if let Err(e) = crate::proto::amf_json::from_json(value) {
                        let why = format!("value: {e}");
                        return self.respond_error(token, id, "bad_request", &why);
                    }
                }
                self.ask_shared_objects(token, id, call)
            }
            Call::Vod { app, instance } => self.list_files(token, id, app, instance),
            Call::Multicast(call) => self.multicast(token, id, call),
            Call::AppReload { app } => match self.shared.scripts.as_ref() {
                Some(scripts) if scripts.has_app(&app) => {
                    scripts.send(crate::scripts::ToScripts::ReloadApp(app.clone()));
                    let message = format!("the scripts of {app} are reloaded");
                    self.respond(
                        token,
                        id,
                        Reply::Done {
                            done: true,
                            message: Some(message),
                        },
                    )
                }
                _ => {
                    let why = format!("{app} is not a scripted application");
                    self.respond_error(token, id, "not_found", &why)
                }
            },
            Call::Reload => match self.config.reload(&self.shared) {
                Ok(message) => self.respond(
                    token,
                    id,
                    Reply::Done {
                        done: true,
                        message: Some(message),
                    },
                ),
                Err(message) => self.respond_error(token, id, "invalid_config", &message),
            },
            Call::Subscribe => {
                if let Some(c) = self.clients.get_mut(&token) {
                    c.subscribed = true;
                }
                self.respond_done(token, id);
            }
            Call::AuthRegister => {
                self.auth_owner = Some(token);
                self.shared.auth_manager.store(true, Ordering::Relaxed);
                if let Some(c) = self.clients.get(&token) {
                    info!(uid = c.uid, "auth manager registered");
                }
                self.respond_done(token, id);
            }
            Call::AuthReply {
                request,
                allow,
                reason,
            } => match self.auth_waiting.remove(&request) {
                Some(worker) => {
                    self.post(
                        worker,
                        WorkerMsg::AuthDecision {
                            request,
                            allow,
                            reason,
                        },
                    );
                    self.respond_done(token, id);
                }
                None => self.respond_error(
                    token,
                    id,
                    "not_found",
                    &format!("no auth request {request} is waiting (answered or timed out)"),
                ),
            },
            Call::RpcRegister => {
                self.rpc_owner = Some(token);
                self.shared.rpc_manager.store(true, Ordering::Relaxed);
                if let Some(c) = self.clients.get(&token) {
                    info!(uid = c.uid, "RPC manager registered");
                }
                self.respond_done(token, id);
            }
            Call::RpcReply { request, outcome } => match self.rpc_waiting.remove(&request) {
                Some((worker, _)) => {
                    self.post(worker, WorkerMsg::RpcAnswer { request, outcome });
                    self.respond_done(token, id);
                }
                None => self.respond_error(
                    token,
                    id,
                    "not_found",
                    &format!("no client call {request} is waiting (answered or timed out)"),
                ),
            },
            Call::ClientCall {
                client,
                method,
                args,
                timeout_ms,
            } => {
                if let Err(e) = crate::app::rpc::args_from_json(&args) {
                    return self.respond_error(token, id, "bad_request", &format!("args: {e}"));
                }
                let timeout_ms = timeout_ms
                    .unwrap_or(CALL_TIMEOUT_MS)
                    .clamp(1, MAX_CALL_TIMEOUT_MS);
                let ask = Query::CallClient {
                    client,
                    method,
                    args,
                    timeout_ms,
                };
                let kind = PendingKind::Called {
                    client,
                    answer: None,
                };
                // The worker's own deadline answers first; this one covers a worker that
                // cannot.
                let deadline = Duration::from_millis(timeout_ms) + QUERY_DEADLINE;
                self.ask_workers_for(token, id, ask, kind, deadline)
            }
            Call::Broadcast {
                app,
                instance,
                method,
                args,
            } => {
                if let Err(e) = crate::app::rpc::args_from_json(&args) {
                    return self.respond_error(token, id, "bad_request", &format!("args: {e}"));
                }
                let ask = Query::Broadcast {
                    app,
                    instance,
                    method,
                    args,
                };
                self.ask_workers(token, id, ask, PendingKind::Count(0))
            }
        }
    }

    fn post(&self, worker: usize, msg: WorkerMsg) {
        if let Some(m) = self.shared.mailboxes.get(worker) {
            m.post(msg);
            m.wake();
        }
    }

    /// A shared-object request goes to the instance's owner worker only.
    fn ask_shared_objects(&mut self, token: u64, id: u64, call: SoCall) {
        let (SoCall::List { app, instance }
        | SoCall::Get { app, instance, .. }
        | SoCall::Set { app, instance, .. }
        | SoCall::Delete { app, instance, .. }) = &call;
        let owner = InstanceKey::new(app, instance).owner(self.shared.mailboxes.len());
        self.ask(
            token,
            id,
            &[owner],
            Query::So(call),
            PendingKind::SharedObjects(None),
            QUERY_DEADLINE,
        );
    }

    fn ask_workers(&mut self, token: u64, id: u64, ask: Query, kind: PendingKind) {
        self.ask_workers_for(token, id, ask, kind, QUERY_DEADLINE);
    }

    /// Asks every worker; the reply goes out when all answered or after `wait`.
    fn ask_workers_for(
        &mut self,
        token: u64,
        id: u64,
        ask: Query,
        kind: PendingKind,
        wait: Duration,
    ) {
        let all: Vec<usize> = (0..self.shared.mailboxes.len()).collect();
        self.ask(token, id, &all, ask, kind, wait);
    }

    /// Asks `workers`; the reply goes out when all of them answered or after `wait`.
    fn ask(
        &mut self,
        token: u64,
        id: u64,
        workers: &[usize],
        ask: Query,
        kind: PendingKind,
        wait: Duration,
    ) {
        if self.pending.len() >= MAX_PENDING_QUERIES {
            return self.respond_error(
                token,
                id,
                "busy",
                "too many requests in progress; try again",
            );
        }
        let query = self.next_query;
        self.next_query += 1;
        for &w in workers {
            self.post(
                w,
                WorkerMsg::Query {
                    query,
                    ask: ask.clone(),
                },
            );
        }
        self.pending.insert(
            query,
            PendingQuery {
                client: token,
                id,
                remaining: workers.len(),
                deadline: Instant::now() + wait,
                kind,
            },
        );
    }

    fn on_inbound(&mut self, msg: ControlInbound) {
        match msg {
            ControlInbound::Answer { query, answer } => {
                let Some(p) = self.pending.get_mut(&query) else {
                    return;
                };
                p.remaining = p.remaining.saturating_sub(1);
                match (&mut p.kind, answer) {
                    (PendingKind::Streams(acc), Answer::Streams(list)) => {
                        for s in list {
                            merge_stream(acc, s);
                        }
                    }
                    (PendingKind::Clients(acc), Answer::Clients(list)) => acc.extend(list),
                    (PendingKind::Upstreams(acc), Answer::Upstreams(list)) => acc.extend(list),
                    (PendingKind::Found { found, .. }, Answer::Found(f)) => *found |= f,
                    // Only the worker that has the client answers with something.
                    (PendingKind::Called { answer, .. }, Answer::Called(a @ Some(_))) => {
                        *answer = a;
                    }
                    (PendingKind::Count(n), Answer::Count(m)) => *n += m,
                    (PendingKind::SharedObjects(acc), Answer::SharedObjects(r)) => *acc = Some(r),
                    (PendingKind::Vod { durations, .. }, Answer::VodDurations(d)) => {
                        durations.extend(d)
                    }
                    _ => {}
                }
                if p.remaining == 0 {
                    self.finish(query);
                }
            }
            ControlInbound::Event(event) => {
                let line = serde_json::to_string(&event).unwrap_or_default();
                let subscribers: Vec<u64> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| c.subscribed)
                    .map(|(t, _)| *t)
                    .collect();
                for t in subscribers {
                    self.send(t, &line);
                }
            }
            ControlInbound::Auth { worker, request } => {
                let id = request.request;
                match self.auth_owner {
                    Some(owner) => {
                        let line = serde_json::to_string(&AuthRequestLine { auth: request })
                            .unwrap_or_default();
                        self.auth_waiting.insert(id, worker);
                        self.send(owner, &line);
                    }
                    None => {
                        let allow = self.config.current().auth.default == AuthDefault::Allow;
                        self.post(
                            worker,
                            WorkerMsg::AuthDecision {
                                request: id,
                                allow,
                                reason: Some("no manager is registered; default applied".into()),
                            },
                        );
                    }
                }
            }
            ControlInbound::Rpc { worker, request } => {
                let id = request.request;
                let Some(owner) = self.rpc_owner else {
                    let outcome = RpcOutcome::failed("No manager answers calls.");
                    return self.post(
                        worker,
                        WorkerMsg::RpcAnswer {
                            request: id,
                            outcome,
                        },
                    );
                };
                let client = request.client.id;
                let line =
                    serde_json::to_string(&RpcRequestLine { rpc: request }).unwrap_or_default();
                // A line past the protocol's limit would make the manager drop the whole
                // connection (auth included): this call fails alone.
                if line.len() > MAX_LINE {
                    warn!(
                        client,
                        bytes = line.len(),
                        "client call too large for the manager; failed"
                    );
                    let outcome = RpcOutcome::failed("The call's arguments are too large.");
                    return self.post(
                        worker,
                        WorkerMsg::RpcAnswer {
                            request: id,
                            outcome,
                        },
                    );
                }
                self.rpc_waiting.insert(id, (worker, Instant::now()));
                self.send(owner, &line);
            }
            ControlInbound::ReloadSignal => match self.config.reload(&self.shared) {
                Ok(message) => info!(%message, "configuration reloaded (SIGHUP)"),
                Err(message) => warn!(%message, "reload refused; the running configuration stays"),
            },
        }
    }

    fn finish(&mut self, query: u64) {
        let Some(p) = self.pending.remove(&query) else {
            return;
        };
        match p.kind {
            PendingKind::Streams(map) => {
                let mut streams: Vec<StreamInfo> = map.into_values().collect();
                streams.sort_by(|a, b| {
                    (&a.app, &a.instance, &a.name).cmp(&(&b.app, &b.instance, &b.name))
                });
                self.respond(p.client, p.id, Reply::Streams { streams });
            }
            PendingKind::Clients(mut clients) => {
                clients.sort_by_key(|c| c.id);
                self.respond(p.client, p.id, Reply::Clients { clients });
            }
            PendingKind::Upstreams(mut upstreams) => {
                upstreams.sort_by(|a, b| {
                    (&a.app, &a.stream, a.worker, &a.group)
                        .cmp(&(&b.app, &b.stream, b.worker, &b.group))
                });
                self.respond(p.client, p.id, Reply::Upstreams { upstreams });
            }
            PendingKind::Found { found: true, .. } => self.respond_done(p.client, p.id),
            PendingKind::Found { found: false, what } => {
                self.respond_error(p.client, p.id, "not_found", &what)
            }
            PendingKind::Called {
                answer: Some(answer),
                client,
            } => {
                let reply = Reply::Answer { answer };
                let size = serde_json::to_string(&reply).map_or(0, |l| l.len());
                if size > MAX_LINE {
                    let msg = format!(
                        "client {client} answered {size} bytes of JSON, over the line limit"
                    );
                    return self.respond_error(p.client, p.id, "too_large", &msg);
                }
                self.respond(p.client, p.id, reply)
            }
            PendingKind::Called { client, .. } if p.remaining > 0 => {
                let msg = format!("client {client} did not answer in time");
                self.respond_error(p.client, p.id, "timeout", &msg)
            }
            PendingKind::Called { client, .. } => {
                self.respond_error(p.client, p.id, "not_found", &format!("no client {client}"))
            }
            PendingKind::Vod {
                mut listing,
                durations,
            } => {
                for (f, path) in listing.files.iter_mut().zip(&listing.paths) {
                    f.duration_s = durations.get(path).map(|ms| f64::from(*ms) / 1000.0);
                }
                let reply = Reply::VodFiles {
                    vod_files: listing.files,
                    truncated: listing.truncated,
                };
                self.respond(p.client, p.id, reply);
            }
            PendingKind::Count(n) => self.respond(
                p.client,
                p.id,
                Reply::Done {
                    done: true,
                    message: Some(format!("sent to {n} clients")),
                },
            ),
            PendingKind::SharedObjects(Some(Ok(shared_objects))) => {
                self.respond(p.client, p.id, Reply::SharedObjects { shared_objects })
            }
            PendingKind::SharedObjects(Some(Err(why))) => {
                self.respond_error(p.client, p.id, "not_found", &why)
            }
            PendingKind::SharedObjects(None) => self.respond_error(
                p.client,
                p.id,
                "internal",
                "the owner worker did not answer",
            ),
        }
    }

    /// Deadlines: worker answers that are late, clients that say nothing, rate samples.
    fn expire(&mut self) {
        let now = Instant::now();
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(q, _)| *q)
            .collect();
        for q in late {
            self.finish(q);
        }
        let idle: Vec<u64> = self
            .clients
            .iter()
            .filter(|(t, c)| {
                !c.subscribed
                    && self.auth_owner != Some(**t)
                    && now.duration_since(c.last_request) > IDLE_TIMEOUT
            })
            .map(|(t, _)| *t)
            .collect();
        for t in idle {
            debug!(token = t, "control client idle; closed");
            self.respond_error(t, 0, "timeout", "no request within 30 s");
            let _ = self.clients.get_mut(&t).map(Client::flush);
            self.drop_client(t);
        }
        self.rpc_waiting
            .retain(|_, (_, sent)| now.duration_since(*sent) < RPC_FORGET);
        self.sampler.tick(&self.shared.stats, now);
    }
}

/// Streams from different workers are the same stream: the publisher's worker knows the
/// source, every worker knows its own viewers.
fn merge_stream(acc: &mut HashMap<(String, String, String), StreamInfo>, s: StreamInfo) {
    let key = (s.app.clone(), s.instance.clone(), s.name.clone());
    match acc.get_mut(&key) {
        None => {
            acc.insert(key, s);
        }
        Some(a) => {
            a.viewers += s.viewers;
            a.bitrate_out += s.bitrate_out;
            a.bitrate_in += s.bitrate_in;
            if s.publisher.is_some() {
                a.publisher = s.publisher;
                a.publisher_client = s.publisher_client;
                a.since = s.since;
            }
            a.video_codec = a.video_codec.take().or(s.video_codec);
            a.audio_codec = a.audio_codec.take().or(s.audio_codec);
            a.gop_frames = a.gop_frames.max(s.gop_frames);
            // Only the publisher's worker records.
            a.recording = a.recording.take().or(s.recording);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(viewers: u64, publisher: bool, recording: Option<&str>) -> StreamInfo {
        StreamInfo {
            app: "live".into(),
            instance: "_definst_".into(),
            name: "cam".into(),
            publisher: publisher.then(|| "127.0.0.1:5000".into()),
            publisher_client: publisher.then_some(1),
            video_codec: None,
            audio_codec: None,
            bitrate_in: 0.0,
            bitrate_out: 0.0,
            viewers,
            gop_frames: 0,
            since: 0.0,
            recording: recording.map(String::from),
            multicast: Vec::new(),
        }
    }

    /// Whichever worker answers first, the merged stream has the publisher's recording
    /// and every worker's viewers.
    #[test]
    fn the_publishers_recording_survives_the_merge_in_any_order() {
        let publisher = || info(1, true, Some("/srv/live/_definst_/cam.flv"));
        let other = || info(2, false, None);
        for answers in [[publisher(), other()], [other(), publisher()]] {
            let mut acc = HashMap::new();
            for s in answers {
                merge_stream(&mut acc, s);
            }
            let merged = acc.into_values().next().expect("one stream");
            assert_eq!(merged.viewers, 3);
            assert_eq!(
                merged.recording.as_deref(),
                Some("/srv/live/_definst_/cam.flv")
            );
        }
    }
}
