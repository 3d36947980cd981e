//! One application instance's script context: a QuickJS runtime of its own (so its
//! memory limit and interrupt are its own), the AMS API from `prelude.js`, and the main
//! script with what it `load`s. The host gives it one event at a time as JSON and gets
//! back the event's result, the script's exception if one escaped, and the operations the
//! script asked for; the script never touches a socket or another instance.

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::{Context, Ctx, Exception, Function, Runtime};
use serde::Deserialize;
use serde_json::Value;
use tracing::info;

use super::app_dir;

const PRELUDE: &str = include_str!("prelude.js");

/// How much one instance may take: each entry into the script (an event, a timer, the
/// loading) gets `time`; the runtime's heap is capped at `memory` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub time: Duration,
    pub memory: usize,
}

/// What the script asked for while it ran (see prelude.js for who asks what).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    Accept {
        client: u64,
        /// The client's readAccess and writeAccess when accepted.
        #[serde(default)]
        read: Option<String>,
        #[serde(default)]
        write: Option<String>,
    },
    Reject {
        client: u64,
        #[serde(default)]
        error: Value,
    },
    Disconnect {
        client: u64,
    },
    /// `client.setBandwidthLimit`: the client is asked to send at most `bytes` a window.
    Bandwidth {
        client: u64,
        bytes: u32,
    },
    Broadcast {
        method: String,
        #[serde(default)]
        args: Vec<Value>,
    },
    /// `call` 0: nobody waits for the answer.
    Call {
        client: u64,
        method: String,
        call: u64,
        #[serde(default)]
        args: Vec<Value>,
    },
    Timer {
        id: u64,
        ms: f64,
    },
    /// `application.callManager(method, resultObj, ...args)`: the manager's `on_call`
    /// webhook answers; `call` 0: nobody waits for the answer.
    Manager {
        method: String,
        call: u64,
        #[serde(default)]
        args: Vec<Value>,
    },
    /// A `SharedObject` operation (see `ScriptSoAction`).
    So {
        name: String,
        #[serde(default)]
        persistent: bool,
        #[serde(flatten)]
        action: super::ScriptSoAction,
    },
    /// A server-side `NetConnection` operation (see `ScriptNcAction`).
    Nc {
        nc: u64,
        #[serde(flatten)]
        action: super::ScriptNcAction,
    },
    /// A server-side `Stream` operation (see `ScriptStreamAction`).
    Stream {
        name: String,
        #[serde(flatten)]
        action: super::ScriptStreamAction,
    },
}

/// An exception that escaped the script: its message and where it was thrown.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScriptError {
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) stack: String,
}

impl ScriptError {
    /// `file:line` of the innermost frame QuickJS reports, or `?`.
    pub(crate) fn place(&self) -> &str {
        // Frames read `at name (file:line:col)`; a syntax error's first is `at file:line:col`.
        self.stack
            .lines()
            .filter_map(|l| l.trim().strip_prefix("at "))
            .map(|f| match f.rsplit_once('(') {
                Some((_, p)) => p.trim_end_matches(')'),
                None => f,
            })
            .next()
            .unwrap_or("?")
    }
}

/// What one event did.
#[derive(Debug, Default, Deserialize)]
pub struct Outcome {
    #[serde(default)]
    pub(crate) result: Option<Value>,
    #[serde(default)]
    pub(crate) error: Option<ScriptError>,
    #[serde(default)]
    pub(crate) ops: Vec<Op>,
}

/// Why the instance cannot go on: it must be unloaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fatal {
    #[error("the script ran longer than its budget of {0} ms")]
    Time(u128),
    #[error("the script went over its memory budget of {0} bytes")]
    Memory(usize),
    #[error("the script failed to load: {0}")]
    Load(String),
    #[error("the script engine failed: {0}")]
    Engine(String),
}

pub struct ScriptContext {
    // Field order: the context goes before its runtime.
    ctx: Context,
    /// Held, not read: the runtime lives (and its heap with it) as long as the context.
    #[allow(dead_code)]
    rt: Runtime,
    budget: Budget,
    /// Nanoseconds after `base` when the running entry must stop; 0 when none runs.
    deadline: Arc<AtomicU64>,
    interrupted: Arc<AtomicBool>,
    /// The heap refused an allocation for the budget during the running entry.
    over_memory: Rc<std::cell::Cell<bool>>,
    /// Bytes the heap holds, as its allocator counts them.
    heap_used: Rc<std::cell::Cell<usize>>,
    base: Instant,
    /// Every file loaded, with a hash of its text, so a reload can tell what changed.
    files: Rc<RefCell<Vec<(PathBuf, u64)>>>,
}

fn hash_of(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The hashes of `files` as they are on disk now (a missing file hashes as empty).
pub(crate) fn changed(files: &[(PathBuf, u64)]) -> bool {
    files
        .iter()
        .any(|(p, h)| hash_of(&std::fs::read_to_string(p).unwrap_or_default()) != *h)
}

impl ScriptContext {
    /// A context for `app`/`instance` running the main script `main` of `folder`; runs
    /// the top-level code (not onAppStart: the host sends `start` next).
    pub fn load(
        app: &str,
        instance: &str,
        folder: &Path,
        main: &Path,
        budget: Budget,
    ) -> Result<(Self, Vec<Op>), Fatal> {
        Self::load_with(app, instance, folder, main, budget, None)
    }

    /// `load`, with `[vod] root` for `Stream.length` (None: every length is 0).
    pub(crate) fn load_with(
        app: &str,
        instance: &str,
        folder: &Path,
        main: &Path,
        budget: Budget,
        content_root: Option<PathBuf>,
    ) -> Result<(Self, Vec<Op>), Fatal> {
        let engine = |e: rquickjs::Error| Fatal::Engine(e.to_string());
        // The heap keeps the memory budget itself (see heap.rs), not QuickJS's limit.
        let over_memory = Rc::new(std::cell::Cell::new(false));
        let heap_used = Rc::new(std::cell::Cell::new(0));
        let heap = super::heap::BudgetedHeap::new(
            budget.memory,
            Rc::clone(&heap_used),
            Rc::clone(&over_memory),
        );
        let rt = Runtime::new_with_alloc(heap).map_err(engine)?;
        let deadline = Arc::new(AtomicU64::new(0));
        let interrupted = Arc::new(AtomicBool::new(false));
        let base = Instant::now();
        {
            let (deadline, interrupted) = (Arc::clone(&deadline), Arc::clone(&interrupted));
            rt.set_interrupt_handler(Some(Box::new(move || {
                let d = deadline.load(Ordering::Relaxed);
                let over = d != 0 && base.elapsed().as_nanos() as u64 > d;
                if over {
                    interrupted.store(true, Ordering::Relaxed);
                }
                over
            })));
        }
        let ctx = Context::full(&rt).map_err(engine)?;
        let mut this = ScriptContext {
            ctx,
            rt,
            budget,
            deadline,
            interrupted,
            over_memory,
            heap_used,
            base,
            files: Rc::new(RefCell::new(Vec::new())),
        };
        let folder = folder.to_path_buf();
        let main_name = main
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (app_s, inst_s) = (app.to_string(), instance.to_string());
        let files = Rc::clone(&this.files);
        let ops = this.enter(move |ctx| {
            super::file_api::install(ctx, &folder, budget.memory)?;
            let lengths = RefCell::new(super::stream_length::StreamLengths::new(
                content_root,
                &app_s,
                &inst_s,
            ));
            let length = Function::new(ctx.clone(), move |name: String| {
                lengths.borrow_mut().length(&name)
            })?;
            ctx.globals().set("__stream_length", length)?;
            install(ctx, &app_s, &inst_s, folder, files)?;
            let mut opts = rquickjs::context::EvalOptions::default();
            opts.filename = Some("strata:prelude.js".into());
            let prelude: Function = ctx.eval_with_options(PRELUDE, opts)?;
            prelude.call::<_, ()>((ctx.globals(), app_s.as_str(), inst_s.as_str()))?;
            let load: Function = ctx.globals().get("load")?;
            load.call::<_, ()>((main_name.as_str(),))?;
            let drain: Function = ctx.globals().get("__drain")?;
            drain.call::<_, String>(())
        });
        let ops = match ops {
            Ok(json) => serde_json::from_str(&json).map_err(|e| Fatal::Engine(e.to_string()))?,
            Err(Entry::Fatal(f)) => return Err(f),
            Err(Entry::Thrown(e)) => {
                return Err(Fatal::Load(format!("{} at {}", e.message, e.place())))
            }
        };
        Ok((this, ops))
    }

    /// The files this context loaded, with their hashes.
    pub(crate) fn files(&self) -> Vec<(PathBuf, u64)> {
        self.files.borrow().clone()
    }

    /// Gives the script one event (see prelude.js's `onEvent` for the shapes).
    pub fn dispatch(&mut self, event: &Value) -> Result<Outcome, Fatal> {
        let json = event.to_string();
        let out = self.enter(|ctx| {
            let f: Function = ctx.globals().get("__dispatch")?;
            f.call::<_, String>((json.as_str(),))
        });
        let out: Outcome = match out {
            Ok(s) => serde_json::from_str(&s).map_err(|e| Fatal::Engine(e.to_string()))?,
            Err(Entry::Fatal(f)) => return Err(f),
            // __dispatch catches what the script throws; what escapes it is the engine's.
            Err(Entry::Thrown(e)) => return Err(Fatal::Engine(e.message)),
        };
        // A heap that refused an allocation is at its budget, whether or not the script
        // caught the error: an instance that hoards and catches would otherwise go on
        // refusing every later allocation, its own and the server's events' alike.
        let thrown_oom = out
            .error
            .as_ref()
            .is_some_and(|e| is_out_of_memory(&e.message));
        if thrown_oom || self.over_memory.get() {
            return Err(Fatal::Memory(self.budget.memory));
        }
        Ok(out)
    }

    /// Runs `f` in the context under the time budget, and tells a budget overrun from an
    /// exception.
    fn enter<R>(
        &mut self,
        f: impl for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<R>,
    ) -> Result<R, Entry> {
        let until = self.base.elapsed() + self.budget.time;
        self.deadline
            .store(until.as_nanos().max(1) as u64, Ordering::Relaxed);
        self.interrupted.store(false, Ordering::Relaxed);
        self.over_memory.set(false);
        let r = self.ctx.with(|ctx| match f(&ctx) {
            Ok(v) => Ok(v),
            Err(rquickjs::Error::Exception) => Err(thrown(&ctx)),
            Err(e) => Err(ScriptError {
                message: e.to_string(),
                stack: String::new(),
            }),
        });
        self.deadline.store(0, Ordering::Relaxed);
        match r {
            Ok(v) => Ok(v),
            Err(_) if self.interrupted.load(Ordering::Relaxed) => {
                Err(Entry::Fatal(Fatal::Time(self.budget.time.as_millis())))
            }
            Err(e) if is_out_of_memory(&e.message) || self.over_memory.get() => {
                Err(Entry::Fatal(Fatal::Memory(self.budget.memory)))
            }
            Err(e) => Err(Entry::Thrown(e)),
        }
    }

    /// Bytes the instance's heap holds now: the allocator's count, read after every entry,
    /// so O(1) (QuickJS's `memory_usage` walks every object of the heap).
    /// A shorter time budget from now on: a test of the budget loads under a generous one,
    /// so that a busy machine cannot make the load itself run out of time.
    #[cfg(test)]
    pub(crate) fn set_time_budget(&mut self, time: std::time::Duration) {
        self.budget.time = time;
    }

    pub(crate) fn memory_used(&self) -> usize {
        self.heap_used.get()
    }
}

enum Entry {
    Fatal(Fatal),
    Thrown(ScriptError),
}

fn is_out_of_memory(message: &str) -> bool {
    message.contains("out of memory")
}

/// The pending exception as message and stack.
fn thrown(ctx: &Ctx<'_>) -> ScriptError {
    let v = ctx.catch();
    match v.as_exception() {
        Some(e) => ScriptError {
            message: e.message().unwrap_or_default(),
            stack: e.stack().unwrap_or_default(),
        },
        None => ScriptError {
            message: v
                .as_string()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| format!("{v:?}")),
            stack: String::new(),
        },
    }
}

/// The natives the prelude builds on: `__trace` (to the log, with application and
/// instance) and `__load` (a file of the application's folder, evaluated under its name,
/// so exceptions name it).
fn install<'js>(
    ctx: &Ctx<'js>,
    app: &str,
    instance: &str,
    folder: PathBuf,
    files: Rc<RefCell<Vec<(PathBuf, u64)>>>,
) -> rquickjs::Result<()> {
    let (a, i) = (app.to_string(), instance.to_string());
    let trace = Function::new(ctx.clone(), move |text: String| {
        info!(target: "script", app = %a, instance = %i, "{text}");
    })?;
    ctx.globals().set("__trace", trace)?;
    let load = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, name: String| -> rquickjs::Result<()> {
            let path = app_dir::load_path(&folder, &name)
                .map_err(|e| Exception::throw_message(&ctx, &e))?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Exception::throw_message(&ctx, &format!("load({name:?}): {e}")))?;
            files.borrow_mut().push((path, hash_of(&text)));
            let mut opts = rquickjs::context::EvalOptions::default();
            opts.global = true;
            opts.filename = Some(name);
            ctx.eval_with_options::<(), _>(text, opts)
        },
    )?;
    ctx.globals().set("__load", load)?;
    Ok(())
}
