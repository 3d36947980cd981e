//! A local JSON webhook for the RPC tests: each POST body is parsed as JSON and answered
//! by the test's handler on a thread of its own (so a slow answer holds up no other), and
//! every body is kept for the test to look at.

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the handler answers: HTTP status, JSON body, and how long to wait first.
pub type HookAnswer = (u16, Value, Duration);

pub struct JsonHook {
    pub url: String,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl JsonHook {
    pub fn start(handler: fn(&Value) -> HookAnswer) -> JsonHook {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("hook"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, st, kept) = (server.clone(), stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok(Some(mut req)) = s.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                kept.lock().expect("hook log").push(value.clone());
                std::thread::spawn(move || {
                    let (status, answer, delay) = handler(&value);
                    std::thread::sleep(delay);
                    let resp = tiny_http::Response::from_string(answer.to_string())
                        .with_status_code(status);
                    let _ = req.respond(resp);
                });
            }
        });
        JsonHook {
            url: format!("http://127.0.0.1:{port}/rpc"),
            server,
            stop,
            thread: Some(thread),
            seen,
        }
    }

    /// The bodies POSTed so far.
    pub fn seen(&self) -> Vec<Value> {
        self.seen.lock().expect("hook log").clone()
    }
}

impl Drop for JsonHook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
