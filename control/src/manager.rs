//! `stratactl serve`: the long-running manager. It keeps one connection to stratad
//! (reconnecting with capped exponential backoff), subscribes to events, answers auth
//! requests through the configured HTTP hooks, and serves the admin API and /metrics.
//!
//! Admin and metrics requests each use a short connection of their own, so a slow scrape
//! never holds up auth replies on the long-lived one.

use crate::admin_api;
use crate::hooks::{self, HookOutcome};
use crate::line_reader::{is_timeout, Line, LineReader};
use crate::manager_config::{HookConfig, ReconnectConfig};
use crate::metrics::ManagerCounters;
use crate::protocol::{
    AuthRequest, Call, Request, RpcOutcome, RpcRequest, ServerLine, PROTOCOL_VERSION,
};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often blocked loops look at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// HTTP threads: the API is for operators and a scraper, a few at a time.
const HTTP_THREADS: usize = 4;
/// How long a write to stratad may block before the connection is deemed stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ManagerOptions {
    pub socket: PathBuf,
    pub http: String,
    pub hooks: HookConfig,
    pub reconnect: ReconnectConfig,
}

/// State shared by the connection thread, the hook threads and the HTTP threads.
pub(crate) struct Shared {
    pub(crate) opts: ManagerOptions,
    stop: AtomicBool,
    pub(crate) connected: AtomicBool,
    counters: Mutex<Counters>,
    /// The live connection's write half, with its generation: a reply to an auth request
    /// of an earlier connection is dropped (its request ids meant nothing to the new one).
    writer: Mutex<Option<(u64, UnixStream)>>,
    pending_hooks: AtomicUsize,
    agent: ureq::Agent,
}

#[derive(Default)]
struct Counters {
    events: BTreeMap<String, u64>,
    auth: BTreeMap<(String, bool), u64>,
    auth_defaulted: u64,
    reconnects: u64,
    calls: BTreeMap<&'static str, u64>,
}

impl Shared {
    pub(crate) fn counters(&self) -> ManagerCounters {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        ManagerCounters {
            events: c.events.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            auth: c
                .auth
                .iter()
                .map(|((a, allow), n)| (a.clone(), *allow, *n))
                .collect(),
            auth_defaulted: c.auth_defaulted,
            reconnects: c.reconnects,
            calls: c.calls.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A running manager; `shutdown` (or drop) stops and joins its threads.
pub struct Manager {
    shared: Arc<Shared>,
    http: Arc<tiny_http::Server>,
    http_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl Manager {
    pub fn start(opts: ManagerOptions) -> io::Result<Manager> {
        let http = tiny_http::Server::http(opts.http.as_str()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("cannot serve HTTP on {}: {e}", opts.http),
            )
        })?;
        let http_addr = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("HTTP listener has no IP address"))?;
        let http = Arc::new(http);
        let shared = Arc::new(Shared {
            agent: hooks::agent(opts.hooks.timeout()),
            opts,
            stop: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            counters: Mutex::new(Counters::default()),
            writer: Mutex::new(None),
            pending_hooks: AtomicUsize::new(0),
        });
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(spawn("stratactl-conn", move || connection_loop(&s))?);
        for i in 0..HTTP_THREADS {
            let (s, h) = (shared.clone(), http.clone());
            threads.push(spawn(&format!("stratactl-http{i}"), move || {
                while !s.stopping() {
                    match h.recv_timeout(POLL) {
                        Ok(Some(req)) => admin_api::handle(&s, req),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("HTTP: {e}");
                            std::thread::sleep(POLL);
                        }
                    }
                }
            })?);
        }
        tracing::info!(
            "serving the admin API on http://{http_addr}/api/v1/ and metrics on http://{http_addr}/metrics"
        );
        Ok(Manager {
            shared,
            http,
            http_addr,
            threads,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// True while the long-lived connection to stratad is up.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    pub fn counters(&self) -> ManagerCounters {
        self.shared.counters()
    }

    /// Blocks until the process is stopped (the manager has no end of its own).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.http.unblock();
        if let Some((_, s)) = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}

/// Sleeps `d` in slices, returning early when stopping.
fn sleep_unless_stopping(shared: &Shared, d: Duration) {
    let mut left = d;
    while !left.is_zero() && !shared.stopping() {
        let step = left.min(POLL);
        std::thread::sleep(step);
        left -= step;
    }
}

fn connection_loop(shared: &Arc<Shared>) {
    let socket = &shared.opts.socket;
    let initial = Duration::from_millis(shared.opts.reconnect.initial_ms);
    let max = Duration::from_millis(shared.opts.reconnect.max_ms);
    let mut backoff = initial;
    let mut generation = 0u64;
    while !shared.stopping() {
        match UnixStream::connect(socket) {
            Ok(stream) => {
                generation += 1;
                backoff = initial;
                shared.count(|c| c.reconnects += 1);
                tracing::info!("connected to stratad at {}", socket.display());
                let why = session(shared, stream, generation);
                shared.connected.store(false, Ordering::Relaxed);
                *shared.writer.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if shared.stopping() {
                    break;
                }
                tracing::warn!(
                    "lost stratad at {}: {why}; reconnecting in {:.1}s",
                    socket.display(),
                    backoff.as_secs_f64()
                );
            }
            Err(e) => {
                let err = crate::client::connect_error(socket, e);
                tracing::warn!("{err}; retrying in {:.1}s", backoff.as_secs_f64());
            }
        }
        sleep_unless_stopping(shared, backoff);
        backoff = (backoff * 2).min(max);
    }
}

/// Serves one connection until it drops; returns why it ended.
fn session(shared: &Arc<Shared>, stream: UnixStream, generation: u64) -> String {
    let setup = (|| -> io::Result<(UnixStream, UnixStream)> {
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok((stream, writer))
    })();
    let (reader, mut writer) = match setup {
        Ok(pair) => pair,
        Err(e) => return e.to_string(),
    };
    let mut hello = vec![(1, Call::Subscribe)];
    if shared.opts.hooks.any() {
        hello.push((2, Call::AuthRegister));
    }
    if shared.opts.hooks.any_call() {
        hello.push((3, Call::RpcRegister));
    }
    for (id, call) in hello {
        if let Err(e) = write_request(&mut writer, id, call) {
            return format!("cannot subscribe: {e}");
        }
    }
    *shared.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, writer));
    shared.connected.store(true, Ordering::Relaxed);

    let mut reader = LineReader::new(reader);
    let mut malformed = 0u64;
    loop {
        if shared.stopping() {
            return "stopping".into();
        }
        let line = match reader.read_line() {
            Ok(Line::Text(t)) => t,
            Ok(Line::Closed) => return "stratad closed the connection".into(),
            Ok(Line::TooLong) => {
                return "stratad sent a line longer than the protocol allows".into()
            }
            Ok(Line::NotUtf8) => {
                malformed += 1;
                tracing::warn!("ignoring a line from stratad that is not UTF-8");
                continue;
            }
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return e.to_string(),
        };
        match serde_json::from_str::<ServerLine>(&line) {
            Ok(ServerLine::Event(e)) => {
                tracing::info!("event: {}", crate::table::event(&e));
                shared.count(|c| *c.events.entry(e.event.clone()).or_default() += 1);
            }
            Ok(ServerLine::Auth(a)) => on_auth_request(shared, generation, a.auth),
            Ok(ServerLine::Rpc(r)) => on_rpc_request(shared, generation, r.rpc),
            Ok(ServerLine::Response(r)) => {
                if let Some(e) = r.error {
                    let what = match r.id {
                        2 => "auth_register",
                        3 => "rpc_register",
                        _ => "subscribe",
                    };
                    tracing::warn!("stratad refused {what}: {} ({})", e.message, e.code);
                }
            }
            Err(e) => {
                malformed += 1;
                let shown: String = line.chars().take(200).collect();
                tracing::warn!(
                    "ignoring a malformed line from stratad ({e}; {malformed} so far): {shown}"
                );
            }
        }
    }
}

fn write_request(writer: &mut UnixStream, id: u64, call: Call) -> io::Result<()> {
    let mut line = serde_json::to_vec(&Request {
        v: PROTOCOL_VERSION,
        id,
        call,
    })
    .map_err(io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line)
}

/// Ids for auth replies: distinct from the hello requests' 1 and 2.
static NEXT_REPLY_ID: AtomicUsize = AtomicUsize::new(1000);

fn send_auth_reply(
    shared: &Shared,
    generation: u64,
    request: u64,
    allow: bool,
    reason: Option<String>,
) {
    let reply = Call::AuthReply {
        request,
        allow,
        reason,
    };
    send_on_live(shared, generation, reply);
}

/// Sends `call` on the long-lived connection, if it is still generation `generation`'s
/// (a reply to a request of an earlier connection meant nothing to the new one).
fn send_on_live(shared: &Shared, generation: u64, call: Call) {
    let mut guard = shared.writer.lock().unwrap_or_else(|p| p.into_inner());
    let Some((live, writer)) = guard.as_mut() else {
        return;
    };
    if *live != generation {
        return;
    }
    let id = NEXT_REPLY_ID.fetch_add(1, Ordering::Relaxed) as u64;
    if let Err(e) = write_request(writer, id, call) {
        tracing::warn!("cannot send a reply to stratad: {e}");
        let _ = writer.shutdown(std::net::Shutdown::Both);
    }
}

/// Answers one auth request without blocking the connection thread: the hook call runs on
/// a thread of its own (bounded by `max_pending`), and a watcher replies with the default
/// if the hook has not answered within the timeout.
fn on_auth_request(shared: &Arc<Shared>, generation: u64, req: AuthRequest) {
    let hooks = &shared.opts.hooks;
    let Some(url) = hooks.url_for(&req.action).map(str::to_owned) else {
        record(shared, &req, true, false);
        send_auth_reply(shared, generation, req.request, true, None);
        return;
    };
    let default = hooks.default.allows();
    let max = hooks.max_pending;
    if shared.pending_hooks.fetch_add(1, Ordering::AcqRel) >= max {
        shared.pending_hooks.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(
            "{max} hook calls already pending; {} {} gets the default",
            req.action,
            describe(&req)
        );
        record(shared, &req, default, true);
        send_auth_reply(
            shared,
            generation,
            req.request,
            default,
            Some("manager busy".into()),
        );
        return;
    }
    let shared_arc = shared.clone();
    let (tx, rx) = mpsc::channel();
    let caller_shared = shared_arc.clone();
    let caller_req = req.clone();
    let agent = shared.agent.clone();
    let caller = spawn("stratactl-hook", move || {
        let out = hooks::call(&agent, &url, &caller_req);
        caller_shared.pending_hooks.fetch_sub(1, Ordering::AcqRel);
        let _ = tx.send(out);
    });
    if caller.is_err() {
        shared.pending_hooks.fetch_sub(1, Ordering::AcqRel);
    }
    let timeout = hooks.timeout();
    let watcher = spawn("stratactl-hook-wait", move || {
        let shared = &*shared_arc;
        let (allow, reason, defaulted) = match rx.recv_timeout(timeout) {
            Ok(HookOutcome::Allowed { .. }) => (true, None, false),
            Ok(HookOutcome::Denied { status }) => {
                (false, Some(format!("hook answered {status}")), false)
            }
            Ok(HookOutcome::Failed { reason }) => {
                tracing::warn!(
                    "hook for {} {} failed: {reason}; applying the default",
                    req.action,
                    describe(&req)
                );
                (default, Some(format!("hook failed: {reason}")), true)
            }
            Err(_) => {
                tracing::warn!(
                    "hook for {} {} did not answer within {} ms; applying the default",
                    req.action,
                    describe(&req),
                    timeout.as_millis()
                );
                (default, Some("hook timed out".into()), true)
            }
        };
        tracing::info!(
            "auth {} {}: {}",
            req.action,
            describe(&req),
            if allow { "allowed" } else { "denied" }
        );
        record(shared, &req, allow, defaulted);
        send_auth_reply(shared, generation, req.request, allow, reason);
    });
    if watcher.is_err() {
        tracing::warn!("cannot start a hook thread; stratad will apply its own default");
    }
}

fn describe(req: &AuthRequest) -> String {
    match &req.stream {
        Some(s) => format!(
            "{}/{} from {} (client {})",
            req.app, s, req.addr, req.client
        ),
        None => format!("{} from {} (client {})", req.app, req.addr, req.client),
    }
}

fn record(shared: &Shared, req: &AuthRequest, allow: bool, defaulted: bool) {
    shared.count(|c| {
        *c.auth.entry((req.action.clone(), allow)).or_default() += 1;
        if defaulted {
            c.auth_defaulted += 1;
        }
    });
}

/// Answers one client call through the `on_call` hook without blocking the connection
/// thread: the hook runs on a thread of its own (bounded by `max_pending`, shared with the
/// auth hooks; past it the call fails at once), whose agent bounds the whole HTTP call by
/// the hook timeout. The calls and broadcasts the hook's reply asks for go out afterwards,
/// each on a short control connection of its own.
fn on_rpc_request(shared: &Arc<Shared>, generation: u64, req: RpcRequest) {
    let hooks = &shared.opts.hooks;
    let Some(url) = hooks.call_url_for(&req.app).map(str::to_owned) else {
        let why = format!("No handler for {} in application {}.", req.method, req.app);
        send_on_live(
            shared,
            generation,
            rpc_reply(shared, &req, RpcOutcome::failed(why)),
        );
        return;
    };
    let max = hooks.max_pending;
    if shared.pending_hooks.fetch_add(1, Ordering::AcqRel) >= max {
        shared.pending_hooks.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(
            "{max} hook calls already pending; call {} of client {} fails",
            req.method,
            req.client.id
        );
        let outcome = RpcOutcome::failed("Manager busy.");
        send_on_live(shared, generation, rpc_reply(shared, &req, outcome));
        return;
    }
    let s = shared.clone();
    let started = spawn("stratactl-rpc", move || {
        let reply = crate::rpc_hook::call(&s.agent, &url, &req);
        s.pending_hooks.fetch_sub(1, Ordering::AcqRel);
        if let Some(e) = &reply.outcome.error {
            tracing::info!(
                "call {} of client {} ({}/{}): {} {}",
                req.method,
                req.client.id,
                req.app,
                req.instance,
                e.code,
                e.description
            );
        }
        send_on_live(&s, generation, rpc_reply(&s, &req, reply.outcome));
        for ask in reply.asks {
            let what = format!("{ask:?}");
            let timeout = match &ask {
                Call::ClientCall { timeout_ms, .. } => {
                    Duration::from_millis(timeout_ms.unwrap_or(5_000)) + Duration::from_secs(2)
                }
                _ => crate::client::DEFAULT_TIMEOUT,
            };
            let done = crate::client::ControlClient::connect_with_timeout(&s.opts.socket, timeout)
                .and_then(|mut c| c.request(ask));
            match done {
                Ok(reply) => tracing::debug!("hook asked {what}: {reply:?}"),
                Err(e) => tracing::warn!("hook asked {what}: {e}"),
            }
        }
    });
    if started.is_err() {
        shared.pending_hooks.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!("cannot start a hook thread; stratad ends the call at its timeout");
    }
}

/// Counts the call's outcome and makes the reply that carries it.
fn rpc_reply(shared: &Shared, req: &RpcRequest, outcome: RpcOutcome) -> Call {
    // stratad closes a connection that sends a line past the limit: a hook's huge result
    // fails this call rather than the connection every auth and call goes through.
    let size = serde_json::to_string(&outcome).map_or(0, |l| l.len());
    let outcome = if size + 200 > crate::protocol::MAX_LINE {
        tracing::warn!(
            "hook result for {} of client {} is {size} bytes of JSON, over the line limit; the call fails",
            req.method,
            req.client.id
        );
        RpcOutcome::failed("The handler's result is too large.")
    } else {
        outcome
    };
    let kind = match &outcome.error {
        None => "result",
        Some(e) if e.code == crate::protocol::CALL_FAILED => "failed",
        Some(_) => "error",
    };
    shared.count(|c| *c.calls.entry(kind).or_default() += 1);
    Call::RpcReply {
        request: req.request,
        outcome,
    }
}
