//! The worker's side of NetConnection RPC, both ways (`app::rpc` says what the calls mean):
//! a client's call to an application method goes to the manager's `on_call` hook through
//! the control thread and its answer comes back by request id, while the client's other
//! traffic goes on; an operator's call to a client goes through the session's outgoing-call
//! table and its answer goes back to the control query that asked; a broadcast writes one
//! call (transaction 0) to every client of an instance on this worker.

use control_protocol::RpcOutcome;
use serde_json::Value;

use super::*;
use crate::app::client::OutgoingCall;
use crate::app::incoming_calls::Caller;
use crate::app::rpc;
use crate::proto::command::Command;

/// How long a client's call waits for the manager. The manager's own hook timeout (2 s
/// by default) answers first; this ends the call when the manager never answers at all.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

impl Worker {
    /// Client `r` called an application method: the manager is asked, or the call fails
    /// at once (no manager answers calls, or the client has too many waiting).
    pub(super) fn call_application(&mut self, r: ConnRef, stream_id: u32, cmd: &Command) {
        let caller = Caller {
            stream_id,
            transaction: cmd.transaction_id,
        };
        let manager = self.shared.rpc_manager.load(Ordering::Relaxed);
        let scripted = self.script_calls(r);
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if !manager && !scripted {
            debug!(peer = %c.peer, app = %c.client.app(), method = %cmd.name, "no handler for a client call");
            let why = format!("Method not found ({}).", cmd.name);
            return self.answer_call(r, caller, &RpcOutcome::failed(why));
        }
        let request = self.shared.next_auth_id.fetch_add(1, Ordering::Relaxed);
        if c.client.incoming.admit(request, caller).is_err() {
            let refused = c.client.incoming.refused_in_a_row();
            if refused.is_power_of_two() {
                warn!(peer = %c.peer, app = %c.client.app(), method = %cmd.name, refused,
                    "client calls faster than its calls are answered; calls refused");
            }
            return self.answer_call(
                r,
                caller,
                &RpcOutcome::failed("Too many calls in progress."),
            );
        }
        let ask = rpc::request(request, &c.client.nc, c.client.id, c.peer.to_string(), cmd);
        // Operators see each call that goes to the application (a refused flood is one
        // log line instead, above).
        self.emit("call", r, Some(&cmd.name), None);
        self.pending_rpc.insert(request, r);
        self.timers.arm(Timer {
            at: Instant::now() + RPC_TIMEOUT,
            slot: r.slot,
            generation: r.generation,
            kind: TimerKind::RpcDeadline(request),
        });
        if scripted {
            // The application's script answers, not the manager.
            return self.call_script(r, request, &cmd.name, &cmd.args);
        }
        self.shared.control.post(ControlInbound::Rpc {
            worker: self.id,
            request: ask,
        });
        self.shared.control.wake();
    }

    fn answer_call(&mut self, r: ConnRef, caller: Caller, outcome: &RpcOutcome) {
        if let Some(values) = rpc::answer(caller, outcome) {
            self.reply(r, caller.stream_id, &values);
            self.flush_out(r);
        }
    }

    /// The manager answered client call `request`.
    pub(super) fn rpc_answered(&mut self, request: u64, outcome: &RpcOutcome) {
        let Some(r) = self.pending_rpc.remove(&request) else {
            // Not a client's: a script's `callManager` (the script thread ignores others).
            if let Some(scripts) = self.shared.scripts.as_ref() {
                scripts.send(crate::scripts::ToScripts::ManagerAnswer {
                    request,
                    outcome: outcome.clone(),
                });
            }
            return;
        };
        let Some(caller) = self
            .conns
            .get_mut(r)
            .and_then(|c| c.client.incoming.settle(request))
        else {
            return;
        };
        self.answer_call(r, caller, outcome);
    }

    pub(super) fn rpc_timed_out(&mut self, request: u64) {
        if self.pending_rpc.contains_key(&request) {
            let outcome = RpcOutcome::failed("The call was not answered in time.");
            self.rpc_answered(request, &outcome);
        }
    }

    /// An operator's call to client `client`: None while the answer is outstanding (it
    /// goes to `query` when it comes), else the answer now (not here, or not callable).
    pub(super) fn call_for_query(
        &mut self,
        query: u64,
        client: u64,
        method: &str,
        args: &[Value],
        timeout_ms: u64,
    ) -> Option<Answer> {
        let Some(r) = self.conn_of_client(client) else {
            return Some(Answer::Called(None));
        };
        let args = match rpc::args_from_json(args) {
            Ok(a) => a,
            Err(e) => {
                let why = format!("arguments: {e}");
                return Some(Answer::Called(Some(RpcOutcome::error("bad_request", why))));
            }
        };
        let timeout = Duration::from_millis(timeout_ms);
        match self.call_client_for(r, method, &args, timeout, Some(query)) {
            Some(_) => None,
            None => Some(Answer::Called(Some(RpcOutcome::failed(
                "The call could not be made (too many calls unanswered).",
            )))),
        }
    }

    fn conn_of_client(&self, client: u64) -> Option<ConnRef> {
        self.conns.refs().into_iter().find(|r| {
            self.conns
                .get(*r)
                .is_some_and(|c| c.client.id == client && c.closing == Closing::Open)
        })
    }

    /// Calls `method` on client `r` and waits up to `timeout` for its answer: the session
    /// numbers the call, the client's calls table keeps what it was for (and the query
    /// waiting for it), and a timer owned by the connection ends it at its deadline. None
    /// if the call could not be made (gone, or too many calls unanswered).
    pub(super) fn call_client_for(
        &mut self,
        r: ConnRef,
        method: &str,
        args: &[Amf0Value],
        timeout: Duration,
        query: Option<u64>,
    ) -> Option<u32> {
        self.call_client_with(r, method, args, timeout, query, None)
    }

    /// `call_client_for`, with the script that waits for the answer, if any.
    pub(super) fn call_client_with(
        &mut self,
        r: ConnRef,
        method: &str,
        args: &[Amf0Value],
        timeout: Duration,
        query: Option<u64>,
        script: Option<(crate::app::instance::InstanceKey, u64)>,
    ) -> Option<u32> {
        let now = Instant::now();
        let now_ms = self.clock_ms(now);
        let c = self.conns.get_mut(r)?;
        let transaction = match c.call(method, args) {
            Ok(t) => t,
            Err(e) => {
                warn!(peer = %c.peer, app = %c.client.app(), method, error = %e, "call to client not made");
                return None;
            }
        };
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let what = OutgoingCall {
            method: method.to_string(),
            query,
            script,
        };
        c.client.calls.expect(transaction, what, now_ms, timeout_ms);
        self.timers
            .arm_for(Owner::Conn(r), now + timeout, TimerKind::CallDeadline);
        self.flush_out(r);
        self.emit("call_client", r, Some(method), None);
        Some(transaction)
    }

    /// The session matched a `_result` (`ok`) or `_error` to our call `transaction`.
    pub(super) fn call_answered(
        &mut self,
        r: ConnRef,
        transaction: u32,
        ok: bool,
        answer: &Command,
    ) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        match c.client.calls.answered(transaction) {
            Some(call) => {
                debug!(peer = %c.peer, method = call.method, transaction, ok, "client answered our call");
                if let Some(query) = call.query {
                    let answer = Answer::Called(Some(rpc::outcome_of(ok, answer)));
                    self.post_answer(query, answer);
                }
                if let Some(to) = call.script {
                    let value = match rpc::outcome_of(ok, answer) {
                        RpcOutcome { error: Some(e), .. } => {
                            serde_json::json!({"code": e.code, "description": e.description})
                        }
                        RpcOutcome { result, .. } => result.unwrap_or(Value::Null),
                    };
                    self.script_call_answered(to, ok, value);
                }
            }
            None => {
                debug!(peer = %c.peer, transaction, ok, "answer to a call nobody waits for ignored")
            }
        }
    }

    /// A call deadline of `r`'s passed: the calls unanswered by now leave its table and
    /// its session, and whoever waits for them is told.
    pub(super) fn calls_expired(&mut self, r: ConnRef, now: Instant) {
        let now_ms = self.clock_ms(now);
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        // Allocates only when a call timed out, never on a media path.
        let mut expired = Vec::new();
        c.client.calls.expired(now_ms, &mut expired);
        let mut tell = Vec::new();
        let mut scripts = Vec::new();
        for (transaction, call) in expired {
            if let Some(to) = call.script {
                scripts.push(to);
            }
            c.session.forget_call(transaction);
            info!(peer = %c.peer, app = %c.client.app(), method = call.method, transaction, "client did not answer our call in time");
            if let Some(query) = call.query {
                let why = format!(
                    "client {} did not answer {} in time",
                    c.client.id, call.method
                );
                tell.push((
                    query,
                    Answer::Called(Some(RpcOutcome::error("timeout", why))),
                ));
            }
        }
        for (query, answer) in tell {
            self.post_answer(query, answer);
        }
        for to in scripts {
            let value = serde_json::json!({"code": "NetConnection.Call.Failed", "description": "the client did not answer in time"});
            self.script_call_answered(to, false, value);
        }
    }

    /// Client `client` went away while `query` waited for its answer to our call.
    pub(super) fn client_gone(&self, query: u64, client: u64) {
        let why = format!("client {client} disconnected before answering");
        self.post_answer(query, Answer::Called(Some(RpcOutcome::failed(why))));
    }

    pub(super) fn post_answer(&self, query: u64, answer: Answer) {
        self.shared
            .control
            .post(ControlInbound::Answer { query, answer });
        self.shared.control.wake();
    }

    /// Calls `method` on every client of `app` (`instance`, if given) here, transaction 0.
    pub(super) fn broadcast(
        &mut self,
        app: &str,
        instance: Option<&str>,
        method: &str,
        args: &[Value],
    ) -> Answer {
        let Ok(args) = rpc::args_from_json(args) else {
            // The control thread refuses such arguments before asking.
            return Answer::Count(0);
        };
        let mut values = Vec::with_capacity(args.len() + 3);
        values.extend([
            Amf0Value::string(method),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
        ]);
        values.extend(args);
        let mut sent = 0;
        for r in self.conns.refs() {
            let Some(c) = self.conns.get_mut(r) else {
                continue;
            };
            let nc = &c.client.nc;
            let member = nc.is_connected()
                && nc.app == app
                && instance.is_none_or(|i| nc.instance == i)
                && c.closing == Closing::Open;
            if member {
                c.write_command(0, &values);
                sent += 1;
                self.flush_out(r);
            }
        }
        Answer::Count(sent)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;
    use std::os::unix::net::UnixStream;

    use control_protocol::RpcRequest;

    use super::*;
    use crate::app::incoming_calls::MAX_PENDING;
    use crate::engine::worker::testing::worker;

    fn command(name: &str, transaction: f64, args: Vec<Amf0Value>) -> SessionEvent {
        SessionEvent::Command {
            stream_id: 0,
            amf3: false,
            command: Command {
                name: name.into(),
                transaction_id: transaction,
                command_object: Amf0Value::Null,
                args,
            },
        }
    }

    /// A connected client of chat/room, and its peer's end (kept open by the caller).
    fn connected(w: &mut Worker) -> (ConnRef, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let r = w.adopt(ours.into_raw_fd(), false);
        let connect = Command {
            name: "connect".into(),
            transaction_id: 1.0,
            command_object: Amf0Value::object([("app", Amf0Value::string("chat/room"))]),
            args: vec![],
        };
        let config = Arc::clone(&w.config);
        let c = w.conns.get_mut(r).expect("adopted");
        c.client
            .nc
            .on_command(0, &connect, &config, &mut Vec::new());
        assert!(c.client.nc.is_connected());
        (r, theirs)
    }

    fn asked(control: &crate::engine::mailbox::MailboxReceiver<ControlInbound>) -> Vec<RpcRequest> {
        let mut out = Vec::new();
        while let Some(m) = control.try_recv() {
            if let ControlInbound::Rpc { request, .. } = m {
                out.push(request);
            }
        }
        out
    }

    fn waiting(w: &Worker, r: ConnRef) -> usize {
        w.pending_rpc.values().filter(|c| **c == r).count()
    }

    /// The operator events drained from the control mailbox: (event, stream).
    fn events(
        control: &crate::engine::mailbox::MailboxReceiver<ControlInbound>,
    ) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        while let Some(m) = control.try_recv() {
            if let ControlInbound::Event(e) = m {
                out.push((e.event, e.stream));
            }
        }
        out
    }

    #[test]
    fn calls_both_ways_are_events_naming_the_method() {
        let (mut w, control) = worker();
        w.shared.rpc_manager.store(true, Ordering::Relaxed);
        let (r, _peer) = connected(&mut w);
        events(&control);
        w.on_session_event(r, command("addUser", 2.0, vec![]));
        assert!(events(&control).contains(&("call".into(), Some("addUser".into()))));
        let sent = w.call_client_for(r, "greet", &[], Duration::from_secs(5), None);
        assert!(sent.is_some());
        assert!(events(&control).contains(&("call_client".into(), Some("greet".into()))));
    }

    #[test]
    fn without_a_manager_nothing_is_asked() {
        let (mut w, control) = worker();
        let (r, _peer) = connected(&mut w);
        w.on_session_event(r, command("addUser", 2.0, vec![]));
        assert!(asked(&control).is_empty());
        assert_eq!(waiting(&w, r), 0);
    }

    #[test]
    fn calls_go_to_the_manager_bounded_and_answers_settle_them() {
        let (mut w, control) = worker();
        w.shared.rpc_manager.store(true, Ordering::Relaxed);
        let (r, _peer) = connected(&mut w);
        w.on_session_event(r, command("add", 2.0, vec![Amf0Value::Number(1.0)]));
        let first = asked(&control);
        let [req] = &first[..] else {
            panic!("{first:?}")
        };
        assert_eq!((req.app.as_str(), req.method.as_str()), ("chat", "add"));
        assert_eq!(req.args, vec![serde_json::json!(1.0)]);
        assert_eq!(waiting(&w, r), 1);

        // A built-in method is not asked about.
        w.on_session_event(r, command("getStreamLength", 3.0, vec![]));
        assert!(asked(&control).is_empty());

        // A flood: past MAX_PENDING waiting, calls are not asked about.
        for t in 0..(MAX_PENDING * 2) {
            w.on_session_event(r, command("slow", 10.0 + t as f64, vec![]));
        }
        assert_eq!(asked(&control).len(), MAX_PENDING - 1);
        assert_eq!(waiting(&w, r), MAX_PENDING);

        // Answers (and a deadline) settle calls once; a second answer finds nothing.
        w.rpc_answered(req.request, &RpcOutcome::result(serde_json::json!(2)));
        assert_eq!(waiting(&w, r), MAX_PENDING - 1);
        w.rpc_answered(req.request, &RpcOutcome::result(serde_json::json!(2)));
        assert_eq!(waiting(&w, r), MAX_PENDING - 1);
        let any = *w.pending_rpc.keys().next().expect("one waits");
        w.rpc_timed_out(any);
        assert_eq!(waiting(&w, r), MAX_PENDING - 2);

        // Room again: the next call is asked about.
        w.on_session_event(r, command("add", 99.0, vec![]));
        assert_eq!(asked(&control).len(), 1);

        // The client goes: whatever it waited for is forgotten.
        w.close(r, "test", false);
        assert!(w.pending_rpc.is_empty());
    }
}
