//! The script thread: every application instance's context, the scripts' timers, and the
//! routing of what scripts ask for to the workers that hold the clients.
//!
//! One thread for the process, not one per instance: an instance's script work is small
//! (connects, calls, timers), a context costs a few hundred KiB, and every entry is bounded
//! by the time budget, so one runaway instance delays the others by at most that budget
//! before it is unloaded. Workers never wait for this thread: they post and go on.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_protocol::{RpcClient, RpcOutcome, RpcRequest, CALL_FAILED};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{json, Value};
use tracing::{error, info, warn};

use super::app_dir;
use super::context::{self, Budget, Fatal, Op, Outcome, ScriptContext};
use super::{FromScripts, ScriptsConfig, ToScripts};
use crate::app::instance::InstanceKey;
use crate::app::net_connection::DEFAULT_INSTANCE;
use crate::engine::cross::{ControlInbound, WorkerMsg};
use crate::engine::Shared;

/// The longest the thread sleeps with no timer due (it wakes on every message anyway).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// The most messages taken in one loop turn (what queued while the last ran): the workers
/// are woken once per turn, and timers wait for at most this many entries.
const BATCH: usize = 64;

struct Instance {
    /// Tells this load apart from an earlier one of the same key (timers of an unloaded
    /// context must not fire into its successor).
    generation: u64,
    ctx: ScriptContext,
    /// Accepted clients and the worker of each.
    clients: HashMap<u64, usize>,
    /// Clients waiting for onConnect's decision: their worker, connect request and
    /// deadline (its timer's sequence in `Host::deadlines`).
    pending: HashMap<u64, (usize, u64, u64)>,
    /// Since when it has had no client and none waiting (None: it has some).
    idle_since: Option<Instant>,
}

struct Host {
    shared: Arc<Shared>,
    config: ScriptsConfig,
    instances: HashMap<InstanceKey, Instance>,
    generation: u64,
    /// Scripts' timers: (when, sequence), and what each is.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_of: HashMap<u64, (InstanceKey, u64, u64)>,
    timer_seq: u64,
    /// Scripts' calls to the manager by request id: the instance, its load and its call.
    manager_calls: HashMap<u64, (InstanceKey, u64, u64)>,
    /// Pending connects' deadlines by timer sequence: the instance, its load, the client.
    deadlines: HashMap<u64, (InstanceKey, u64, u64)>,
    last_idle_check: Instant,
    /// `[vod] root`, for `Stream.length` in contexts loaded from now on.
    content_root: Option<PathBuf>,
    /// Workers posted to in this loop turn, woken once at its end: in a connect storm a
    /// turn decides many connects, and a wake-up (an eventfd write, and a worker loop
    /// turn) per answer cost as much as the answers.
    to_wake: Vec<Cell<bool>>,
}

/// How often instances are checked for idleness.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// Starts the script thread for `shared` (whose `scripts` handle sends to `rx`).
pub(crate) fn start(
    shared: Arc<Shared>,
    rx: Receiver<ToScripts>,
    config: &crate::config::Config,
) -> Result<(), String> {
    let scripts = config.scripts.clone();
    let content_root = config.vod.root.clone();
    refresh_apps(&shared, &scripts);
    std::thread::Builder::new()
        .name("strata-scripts".into())
        .spawn(move || {
            // Built here: contexts are not Send, they live and die on this thread.
            let to_wake = (0..shared.mailboxes.len())
                .map(|_| Cell::new(false))
                .collect();
            let host = Host {
                shared,
                config: scripts,
                instances: HashMap::new(),
                generation: 0,
                timers: BinaryHeap::new(),
                timer_of: HashMap::new(),
                timer_seq: 0,
                manager_calls: HashMap::new(),
                deadlines: HashMap::new(),
                last_idle_check: Instant::now(),
                content_root,
                to_wake,
            };
            host.run(rx)
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the script thread: {e}"))
}

impl Host {
    fn run(mut self, rx: Receiver<ToScripts>) {
        self.load_on_startup();
        self.wake_workers();
        loop {
            let now = Instant::now();
            let wait = self.timers.peek().map_or(IDLE_WAIT, |Reverse((at, _))| {
                at.saturating_duration_since(now).min(IDLE_WAIT)
            });
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    self.on_message(msg);
                    // What queued meanwhile, in the same turn (50 clients connecting at
                    // once queue as many connects): one wake-up per worker for all.
                    for msg in rx.try_iter().take(BATCH - 1) {
                        self.on_message(msg);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.run_timers();
            self.unload_idle();
            self.wake_workers();
        }
    }

    /// Wakes the workers posted to since the last call.
    fn wake_workers(&self) {
        for (w, posted) in self.to_wake.iter().enumerate() {
            if posted.replace(false) {
                if let Some(m) = self.shared.mailboxes.get(w) {
                    m.wake();
                }
            }
        }
    }

    /// Stops and unloads instances idle for `idle_unload_ms` (not those loaded at start).
    fn unload_idle(&mut self) {
        let now = Instant::now();
        if self.config.idle_unload_ms == 0 || now - self.last_idle_check < IDLE_CHECK {
            return;
        }
        self.last_idle_check = now;
        let limit = Duration::from_millis(self.config.idle_unload_ms);
        let mut idle = Vec::new();
        for (key, i) in &mut self.instances {
            if !i.clients.is_empty() || !i.pending.is_empty() {
                i.idle_since = None;
                continue;
            }
            let since = *i.idle_since.get_or_insert(now);
            let kept =
                key.instance == DEFAULT_INSTANCE && self.config.load_on_startup.contains(&key.app);
            if !kept && now - since >= limit {
                idle.push(key.clone());
            }
        }
        for key in idle {
            info!(app = %key.app, instance = %key.instance, idle_ms = self.config.idle_unload_ms,
                "application instance idle: stopping it");
            self.event(&key, &json!({"type": "stop"}), "onAppStop");
            self.unload_as(&key, "idle, no client", true);
        }
    }

    /// Server shutdown: every instance's onAppStop, started within `STOP_TIME`.
    fn stop_all(&mut self) {
        let deadline = Instant::now() + super::STOP_TIME;
        let keys: Vec<InstanceKey> = self.instances.keys().cloned().collect();
        for key in keys {
            if Instant::now() >= deadline {
                warn!(app = %key.app, instance = %key.instance, "server stopping: no time left for onAppStop");
                continue;
            }
            self.event(&key, &json!({"type": "stop"}), "onAppStop");
        }
    }

    fn dir(&self) -> Option<PathBuf> {
        self.config.dir.clone()
    }

    fn refresh_apps(&self) {
        refresh_apps(&self.shared, &self.config);
    }

    fn load_on_startup(&mut self) {
        for app in self.config.load_on_startup.clone() {
            let key = InstanceKey::new(&app, DEFAULT_INSTANCE);
            if !self.instances.contains_key(&key) {
                if let Err(e) = self.load(&key) {
                    error!(app = %key.app, instance = %key.instance, error = %e, "application not loaded at start");
                }
            }
        }
    }

    /// Queues `msg` for `worker`, woken at the end of the loop turn (`wake_workers`).
    fn post(&self, worker: usize, msg: FromScripts) {
        self.post_msg(worker, WorkerMsg::Script(msg));
    }

    fn post_msg(&self, worker: usize, msg: WorkerMsg) {
        if let (Some(m), Some(posted)) =
            (self.shared.mailboxes.get(worker), self.to_wake.get(worker))
        {
            m.post(msg);
            posted.set(true);
        }
    }

    fn post_all(&self, msg: impl Fn() -> FromScripts) {
        for w in 0..self.shared.mailboxes.len() {
            self.post(w, msg());
        }
    }

    fn on_message(&mut self, msg: ToScripts) {
        match msg {
            ToScripts::Connect {
                worker,
                request,
                instance,
                client,
                client_id,
                args,
            } => self.connect(worker, request, instance, client, client_id, args),
            ToScripts::Disconnect { instance, client } => {
                let Some(i) = self.instances.get_mut(&instance) else {
                    return;
                };
                // A client still waiting for onConnect is forgotten too (no onDisconnect).
                let waited = i.pending.remove(&client);
                if let Some((_, _, seq)) = waited {
                    self.deadlines.remove(&seq);
                }
                if i.clients.remove(&client).is_some() || waited.is_some() {
                    let ev = json!({"type": "disconnect", "client": client});
                    self.event(&instance, &ev, "onDisconnect");
                }
            }
            ToScripts::Call {
                worker,
                request,
                instance,
                client,
                method,
                args,
            } => {
                let outcome = self.call(&instance, client, &method, args);
                self.post_msg(worker, WorkerMsg::RpcAnswer { request, outcome });
            }
            ToScripts::CallResult {
                instance,
                call,
                ok,
                value,
            } => {
                let ev = json!({"type": "result", "call": call, "ok": ok, "value": value});
                self.event(&instance, &ev, "a call's onResult");
            }
            ToScripts::Stream {
                instance,
                client,
                name,
                publish,
            } => {
                let kind = if publish { "publish" } else { "unpublish" };
                let ev = json!({"type": kind, "client": client, "name": name});
                self.event(
                    &instance,
                    &ev,
                    if publish { "onPublish" } else { "onUnpublish" },
                );
            }
            ToScripts::ManagerAnswer { request, outcome } => {
                let Some((key, generation, call)) = self.manager_calls.remove(&request) else {
                    return;
                };
                if self.instances.get(&key).map(|i| i.generation) != Some(generation) {
                    return;
                }
                let (ok, value) = match outcome {
                    RpcOutcome { error: Some(e), .. } => {
                        (false, json!({"code": e.code, "description": e.description}))
                    }
                    RpcOutcome { result, .. } => (true, result.unwrap_or(Value::Null)),
                };
                let ev = json!({"type": "result", "call": call, "ok": ok, "value": value});
                self.event(&key, &ev, "a manager call's onResult");
            }
            ToScripts::So { instance, message } => {
                let ev = super::so_event::event(&message);
                self.event(&instance, &ev, "a SharedObject's onSync");
            }
            ToScripts::StreamStatus {
                instance,
                name,
                code,
                details,
            } => {
                let ev =
                    json!({"type": "streamstatus", "name": name, "code": code, "details": details});
                self.event(&instance, &ev, "a Stream's onStatus");
            }
            ToScripts::NcStatus { instance, nc, info } => {
                let ev = json!({"type": "ncstatus", "nc": nc, "info": info});
                self.event(&instance, &ev, "a NetConnection's onStatus");
            }
            ToScripts::NcCall {
                worker,
                instance,
                nc,
                transaction,
                method,
                args,
            } => {
                let ev = json!({"type": "nccall", "nc": nc, "method": method, "args": args});
                let outcome = self.dispatch(&instance, &ev);
                let (ok, value) = match &outcome {
                    None => (
                        false,
                        json!({"level": "error", "code": CALL_FAILED,
                        "description": "The application is not loaded."}),
                    ),
                    Some(out) => match &out.error {
                        Some(e) => {
                            warn!(app = %instance.app, instance = %instance.instance, at = e.place(),
                                method, "script exception in a NetConnection method: {}", e.message);
                            (
                                false,
                                json!({"level": "error", "code": CALL_FAILED,
                                "description": e.message}),
                            )
                        }
                        None => (true, out.result.clone().unwrap_or(Value::Null)),
                    },
                };
                if let Some(out) = outcome {
                    self.apply(&instance, out.ops);
                }
                if transaction != 0.0 {
                    self.post(
                        worker,
                        FromScripts::Nc {
                            instance,
                            nc,
                            action: super::ScriptNcAction::Answer {
                                transaction,
                                ok,
                                value,
                            },
                        },
                    );
                }
            }
            ToScripts::Reload(config) => {
                self.content_root = config.vod.root.clone();
                self.reload(&config.scripts)
            }
            ToScripts::Stop { done } => {
                self.stop_all();
                // What the onAppStop handlers sent goes before the server goes on stopping.
                self.wake_workers();
                let _ = done.send(());
            }
            ToScripts::ReloadApp(app) => self.reload_app(&app),
        }
    }

    /// Loads `key`'s context and runs onAppStart.
    fn load(&mut self, key: &InstanceKey) -> Result<(), Fatal> {
        let dir = self
            .dir()
            .ok_or_else(|| Fatal::Load("no [scripts] dir".into()))?;
        let (folder, main) = app_dir::main_script(&dir, &key.app)
            .ok_or_else(|| Fatal::Load(format!("no main script for {}", key.app)))?;
        let started = Instant::now();
        let root = self.content_root.clone();
        let (ctx, ops) =
            ScriptContext::load_with(&key.app, &key.instance, &folder, &main, self.budget(), root)?;
        self.generation += 1;
        self.instances.insert(
            key.clone(),
            Instance {
                generation: self.generation,
                ctx,
                clients: HashMap::new(),
                pending: HashMap::new(),
                idle_since: None,
            },
        );
        info!(app = %key.app, instance = %key.instance, script = %main.display(),
            ms = started.elapsed().as_secs_f64() * 1000.0, "application instance loaded");
        self.apply(key, ops);
        self.event(key, &json!({"type": "start"}), "onAppStart");
        if self.instances.contains_key(key) {
            Ok(())
        } else {
            Err(Fatal::Load("unloaded by onAppStart".into()))
        }
    }

    fn budget(&self) -> Budget {
        self.config.budget()
    }

    fn connect(
        &mut self,
        worker: usize,
        request: u64,
        key: InstanceKey,
        client: Value,
        client_id: u64,
        args: Vec<Value>,
    ) {
        if !self.instances.contains_key(&key) {
            if let Err(e) = self.load(&key) {
                error!(app = %key.app, instance = %key.instance, error = %e, "application instance not loaded");
                return self.post(
                    worker,
                    FromScripts::Decided {
                        request,
                        accept: false,
                        error: Value::Null,
                        reason: "the application failed to load".into(),
                        access: None,
                    },
                );
            }
        }
        if let Some(i) = self.instances.get_mut(&key) {
            self.timer_seq += 1;
            i.pending
                .insert(client_id, (worker, request, self.timer_seq));
            let generation = i.generation;
            let at = Instant::now() + Duration::from_millis(self.config.pending_timeout_ms);
            self.timers.push(Reverse((at, self.timer_seq)));
            self.deadlines
                .insert(self.timer_seq, (key.clone(), generation, client_id));
        }
        let ev = json!({"type": "connect", "client": client, "args": args});
        self.event(&key, &ev, "onConnect");
    }

    /// A client's call to a script method: the method's result, or `_error` with what it
    /// threw.
    fn call(
        &mut self,
        key: &InstanceKey,
        client: u64,
        method: &str,
        args: Vec<Value>,
    ) -> RpcOutcome {
        let ev = json!({"type": "call", "client": client, "method": method, "args": args});
        match self.dispatch(key, &ev) {
            None => RpcOutcome::failed("The application is not loaded."),
            Some(out) => {
                if let Some(e) = &out.error {
                    warn!(app = %key.app, instance = %key.instance, at = e.place(), method,
                        "script exception: {}", e.message);
                    let outcome = RpcOutcome::error(CALL_FAILED, e.message.clone());
                    self.apply(key, out.ops);
                    return outcome;
                }
                let result = out.result.clone();
                self.apply(key, out.ops);
                match result {
                    Some(v) => RpcOutcome::result(v),
                    None => RpcOutcome {
                        result: None,
                        error: None,
                    },
                }
            }
        }
    }

    /// Gives `key`'s script event `ev` (`what` names it in logs) and carries out what it
    /// asked for.
    fn event(&mut self, key: &InstanceKey, ev: &Value, what: &str) {
        let Some(out) = self.dispatch(key, ev) else {
            return;
        };
        if let Some(e) = &out.error {
            warn!(app = %key.app, instance = %key.instance, at = e.place(), "script exception in {what}: {}", e.message);
        }
        self.apply(key, out.ops);
    }

    /// One entry into the script; a budget overrun unloads the instance (None).
    fn dispatch(&mut self, key: &InstanceKey, ev: &Value) -> Option<Outcome> {
        let i = self.instances.get_mut(key)?;
        match i.ctx.dispatch(ev) {
            Ok(out) => {
                if i.ctx.memory_used() >= self.config.budget().memory {
                    self.unload(key, &Fatal::Memory(self.config.budget().memory).to_string());
                    return None;
                }
                Some(out)
            }
            Err(f) => {
                self.unload(key, &f.to_string());
                None
            }
        }
    }

    fn apply(&mut self, key: &InstanceKey, ops: Vec<Op>) {
        for op in ops {
            let Some(i) = self.instances.get_mut(key) else {
                return;
            };
            match op {
                Op::Accept {
                    client,
                    read,
                    write,
                } => {
                    let access = crate::app::access::Access::parse(
                        read.as_deref().unwrap_or("/"),
                        write.as_deref().unwrap_or("/"),
                    );
                    if let Some((worker, request, seq)) = i.pending.remove(&client) {
                        self.deadlines.remove(&seq);
                        i.clients.insert(client, worker);
                        self.post(
                            worker,
                            FromScripts::Decided {
                                request,
                                accept: true,
                                error: Value::Null,
                                reason: "accepted by the script".into(),
                                access,
                            },
                        );
                    }
                }
                Op::Reject { client, error } => {
                    if let Some((worker, request, seq)) = i.pending.remove(&client) {
                        self.deadlines.remove(&seq);
                        self.post(
                            worker,
                            FromScripts::Decided {
                                request,
                                accept: false,
                                error,
                                reason: "rejected by the script".into(),
                                access: None,
                            },
                        );
                    }
                }
                Op::Bandwidth { client, bytes } => {
                    // In onConnect too, before the client is accepted.
                    let waiting = i.pending.get(&client).map(|(w, _, _)| w);
                    if let Some(&worker) = i.clients.get(&client).or(waiting) {
                        self.post(worker, FromScripts::PeerBandwidth { client, bytes });
                    }
                }
                Op::Disconnect { client } => {
                    if let Some(&worker) = i.clients.get(&client) {
                        self.post(worker, FromScripts::Disconnect { client });
                    }
                }
                Op::Broadcast { method, args } => self.post_all(|| FromScripts::Broadcast {
                    instance: key.clone(),
                    method: method.clone(),
                    args: args.clone(),
                }),
                Op::Call {
                    client,
                    method,
                    call,
                    args,
                } => {
                    if let Some(&worker) = i.clients.get(&client) {
                        self.post(
                            worker,
                            FromScripts::CallClient {
                                instance: key.clone(),
                                client,
                                method,
                                args,
                                call,
                            },
                        );
                    }
                }
                Op::Manager { method, call, args } => {
                    let generation = i.generation;
                    self.call_manager(key, generation, method, call, args);
                }
                Op::So {
                    name,
                    persistent,
                    action,
                } => {
                    let owner = key.owner(self.shared.mailboxes.len());
                    self.post(
                        owner,
                        FromScripts::So {
                            instance: key.clone(),
                            name,
                            persistent,
                            action,
                        },
                    );
                }
                Op::Stream { name, action } => {
                    let owner = key.owner(self.shared.mailboxes.len());
                    self.post(
                        owner,
                        FromScripts::Stream {
                            instance: key.clone(),
                            name,
                            action,
                        },
                    );
                }
                Op::Nc { nc, action } => {
                    let owner = key.owner(self.shared.mailboxes.len());
                    self.post(
                        owner,
                        FromScripts::Nc {
                            instance: key.clone(),
                            nc,
                            action,
                        },
                    );
                }
                Op::Timer { id, ms } => {
                    let generation = i.generation;
                    self.timer_seq += 1;
                    let at = Instant::now() + Duration::from_millis(ms.clamp(0.0, 1e12) as u64);
                    self.timers.push(Reverse((at, self.timer_seq)));
                    self.timer_of
                        .insert(self.timer_seq, (key.clone(), generation, id));
                }
            }
        }
    }

    /// Sends a script's call to the manager through the control thread, as a client's
    /// call to an application method goes (client id 0, address "script").
    fn call_manager(
        &mut self,
        key: &InstanceKey,
        generation: u64,
        method: String,
        call: u64,
        args: Vec<Value>,
    ) {
        let request = self.shared.next_auth_id.fetch_add(1, Ordering::Relaxed);
        if !self.shared.rpc_manager.load(Ordering::Relaxed) {
            if call != 0 {
                let ev = json!({"type": "result", "call": call, "ok": false,
                    "value": {"code": CALL_FAILED, "description": "No manager answers calls."}});
                self.event(key, &ev, "a manager call's onStatus");
            }
            return;
        }
        if call != 0 {
            self.manager_calls
                .insert(request, (key.clone(), generation, call));
        }
        let ask = RpcRequest {
            request,
            app: key.app.clone(),
            instance: key.instance.clone(),
            client: RpcClient {
                id: 0,
                addr: "script".into(),
                tc_url: None,
                object_encoding: 0.0,
            },
            method,
            args,
        };
        // The answer comes to the owner worker, which passes it on.
        let worker = key.owner(self.shared.mailboxes.len());
        self.shared.control.post(ControlInbound::Rpc {
            worker,
            request: ask,
        });
        self.shared.control.wake();
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, seq))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some((key, generation, client)) = self.deadlines.remove(&seq) {
                self.pending_expired(&key, generation, client);
                continue;
            }
            let Some((key, generation, id)) = self.timer_of.remove(&seq) else {
                continue;
            };
            if self.instances.get(&key).map(|i| i.generation) == Some(generation) {
                self.event(&key, &json!({"type": "timer", "id": id}), "a timer");
            }
        }
    }

    /// A connect still waiting for onConnect's decision at its deadline is rejected; the
    /// script forgets the client (as if it had left while waiting).
    fn pending_expired(&mut self, key: &InstanceKey, generation: u64, client: u64) {
        let Some(i) = self.instances.get_mut(key) else {
            return;
        };
        if i.generation != generation {
            return;
        }
        let Some((worker, request, _)) = i.pending.remove(&client) else {
            return;
        };
        let ms = self.config.pending_timeout_ms;
        warn!(app = %key.app, instance = %key.instance, client, ms,
            "the script left a connect undecided: rejected");
        self.post(
            worker,
            FromScripts::Decided {
                request,
                accept: false,
                error: Value::Null,
                reason: format!("the application did not accept or reject it within {ms} ms"),
                access: None,
            },
        );
        let ev = json!({"type": "disconnect", "client": client});
        self.event(key, &ev, "a pending client's end");
    }

    /// Unloads `key`: its waiting clients are refused, its clients on every worker get
    /// NetConnection.Connect.AppShutdown, and its context and timers go.
    fn unload(&mut self, key: &InstanceKey, reason: &str) {
        self.unload_as(key, reason, false);
    }

    /// `unload`; `expected` (an idle instance) logs at info, not as an error.
    fn unload_as(&mut self, key: &InstanceKey, reason: &str, expected: bool) {
        let Some(i) = self.instances.remove(key) else {
            return;
        };
        if expected {
            info!(app = %key.app, instance = %key.instance, reason, "application instance unloaded");
        } else {
            error!(app = %key.app, instance = %key.instance, clients = i.clients.len(), reason,
                "application instance unloaded");
        }
        for (_, (worker, request, seq)) in i.pending {
            self.deadlines.remove(&seq);
            self.post(
                worker,
                FromScripts::Decided {
                    request,
                    accept: false,
                    error: Value::Null,
                    reason: format!("the application was unloaded: {reason}"),
                    access: None,
                },
            );
        }
        self.post_all(|| FromScripts::Shutdown {
            instance: key.clone(),
            reason: reason.to_string(),
        });
        let owner = key.owner(self.shared.mailboxes.len());
        self.post(
            owner,
            FromScripts::SoLeave {
                instance: key.clone(),
            },
        );
        // Its timers find no instance of their generation and are dropped when due.
    }

    /// A new configuration: instances whose scripts changed on disk (or whose folder
    /// moved) are stopped and unloaded, so their next client loads the new scripts;
    /// other instances and their clients are untouched.
    /// Unloads `app`'s instances whatever changed; the next client (or load_on_startup)
    /// loads its scripts again.
    fn reload_app(&mut self, app: &str) {
        self.refresh_apps();
        let stale: Vec<InstanceKey> = self
            .instances
            .keys()
            .filter(|k| k.app == app)
            .cloned()
            .collect();
        for key in stale {
            self.event(&key, &json!({"type": "stop"}), "onAppStop");
            self.unload(&key, "its scripts were reloaded by the operator");
        }
        self.load_on_startup();
    }

    fn reload(&mut self, config: &ScriptsConfig) {
        let dir_changed = config.dir != self.config.dir;
        self.config = config.clone();
        self.refresh_apps();
        let stale: Vec<InstanceKey> = self
            .instances
            .iter()
            .filter(|(_, i)| dir_changed || context::changed(&i.ctx.files()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.event(&key, &json!({"type": "stop"}), "onAppStop");
            self.unload(&key, "its scripts were reloaded");
        }
        self.load_on_startup();
    }
}

/// Tells the workers which applications have a main script now.
fn refresh_apps(shared: &Shared, config: &ScriptsConfig) {
    let apps = config
        .dir
        .as_deref()
        .map(app_dir::scripted_apps)
        .unwrap_or_default();
    if let Some(s) = &shared.scripts {
        s.set_apps(apps);
    }
}
