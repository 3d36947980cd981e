//! One worker: a thread pinned to a core with its own io_uring, listeners, connections and
//! live streams. Completions are reaped first and handled afterwards; sends are started once
//! per loop turn for every connection that has something new to send.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use io_uring::{opcode, types};
use socket2::Socket;
use tracing::{debug, info, warn};

use super::conn::{Closing, Conn, Publishing, Slots, Viewer};
use super::cross::{MediaMessage, WorkerMsg};
use super::io::{Completion, Io};
use super::live::{ConnRef, Frame, FrameRef, LiveStream, Source};
use super::mailbox::{Mailbox, MailboxReceiver};
use super::registry::{PublishRefused, Registry};
use super::timers::{Timer, TimerKind, Timers};
use super::token::{OpKind, Token};
use crate::app::net_connection::Action;
use crate::app::request::{PlayParams, PublishMode};
use crate::app::status::{self, Level};
use crate::app::{NetConnection, StreamKey};
use crate::config::Config;
use crate::media::gop_cache::CachedFrame;
use crate::media::send_queue::{PushOutcome, QueueLimits, SendQueue};
use crate::media::tag::FrameKind;
use crate::proto::amf0::Amf0Value;
use crate::proto::command;
use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::control::UserControl;
use crate::proto::rtmp::msg_type;
use crate::proto::rtmp::session::{ServerSession, SessionConfig, SessionEvent};

/// Slots for listeners sit above any connection slot.
const LISTENER_SLOT_BASE: u32 = 0xFFFF_0000;
/// iovecs and bytes per send: enough to drain a GOP burst in a few sends without one send
/// holding the ring for long.
const MAX_IOV: usize = 64;
const MAX_SEND_BYTES: usize = 512 * 1024;
/// How long a closing connection may take to flush its last messages.
const CLOSE_FLUSH: Duration = Duration::from_millis(1000);
/// The longest the loop sleeps with nothing to do, so shutdown and timers stay responsive.
const MAX_WAIT: Duration = Duration::from_millis(500);

pub struct Shared {
    pub config: Arc<Config>,
    pub registry: Registry,
    pub mailboxes: Vec<Mailbox<WorkerMsg>>,
    pub next_publish_id: std::sync::atomic::AtomicU64,
}

pub struct Worker {
    id: usize,
    io: Io,
    shared: Arc<Shared>,
    mailbox: MailboxReceiver<WorkerMsg>,
    listeners: Vec<Socket>,
    conns: Slots,
    streams: HashMap<StreamKey, LiveStream>,
    timers: Timers,
    /// Connections with something new to send this turn.
    dirty: Vec<ConnRef>,
    /// Connections whose multishot receive ended and must be armed again.
    rearm: Vec<ConnRef>,
    /// Other workers posted to this turn (woken once at the end of the turn).
    wake: Vec<bool>,
    events: Vec<SessionEvent>,
    actions: Vec<Action>,
    fanout: Vec<(ConnRef, u32)>,
    rng: rand::rngs::ThreadRng,
    started: Instant,
    shutting_down: Option<Instant>,
}

impl Worker {
    pub fn new(id: usize, shared: Arc<Shared>, mailbox: MailboxReceiver<WorkerMsg>, listen: &[SocketAddr]) -> std::io::Result<Self> {
        let io = Io::new()?;
        let listeners = listen.iter().map(|a| super::listener::tcp_listener(*a)).collect::<Result<Vec<_>, _>>()?;
        let workers = shared.mailboxes.len();
        Ok(Worker {
            id,
            io,
            shared,
            mailbox,
            listeners,
            conns: Slots::default(),
            streams: HashMap::new(),
            timers: Timers::default(),
            dirty: Vec::new(),
            rearm: Vec::new(),
            wake: vec![false; workers],
            events: Vec::new(),
            actions: Vec::new(),
            fanout: Vec::new(),
            rng: rand::thread_rng(),
            started: Instant::now(),
            shutting_down: None,
        })
    }

    pub fn run(mut self) {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.arm_mailbox();
        let mut completions = Vec::with_capacity(1024);
        loop {
            let now = Instant::now();
            let wait = self.timers.next_timeout(now).map_or(MAX_WAIT, |d| d.min(MAX_WAIT));
            if let Err(e) = self.io.submit_and_wait(Some(wait)) {
                warn!(worker = self.id, error = %e, "io_uring wait failed; worker stops");
                break;
            }
            self.io.drain(&mut completions);
            for c in completions.drain(..) {
                self.on_completion(c);
            }
            self.io.bufs.publish();
            self.run_timers();
            self.rearm_receives();
            self.flush_dirty();
            self.wake_peers();
            if let Some(since) = self.shutting_down {
                if self.conns.is_empty() || since.elapsed() > CLOSE_FLUSH + Duration::from_millis(300) {
                    break;
                }
            }
        }
        for r in self.conns.refs() {
            if let Some(c) = self.conns.remove(r) {
                // SAFETY: closing a descriptor this worker owns; the ring is dropped next.
                unsafe { libc::close(c.fd) };
            }
        }
        debug!(worker = self.id, "worker stopped");
    }

    // ---- ring submissions -------------------------------------------------------------

    fn arm_accept(&mut self, i: usize) {
        let Some(l) = self.listeners.get(i) else { return };
        let token = Token::new(OpKind::Accept, LISTENER_SLOT_BASE + i as u32, 0);
        let e = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token.to_user_data());
        // SAFETY: no buffers; the listener outlives the ring's use of it (closed at exit).
        unsafe { self.io.push(e) };
    }

    fn arm_mailbox(&mut self) {
        let token = Token::new(OpKind::Mailbox, 0, 0);
        let buf: *mut u64 = &mut *self.mailbox.read_buf;
        let e = opcode::Read::new(types::Fd(self.mailbox.fd()), buf.cast(), 8).build().user_data(token.to_user_data());
        // SAFETY: the read buffer is boxed in the receiver, which lives as long as the worker.
        unsafe { self.io.push(e) };
    }

    fn arm_recv(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else { return };
        if c.recv_armed || c.closing == Closing::ShutDown {
            return;
        }
        c.recv_armed = true;
        let token = Token::new(OpKind::Recv, r.slot, r.generation);
        let e = opcode::RecvMulti::new(types::Fd(c.fd), self.io.bufs.bgid).build().user_data(token.to_user_data());
        // SAFETY: the kernel writes into provided buffers owned by `Io`.
        unsafe { self.io.push(e) };
    }

    fn start_send(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else { return };
        if c.send_in_flight || c.queue.is_empty() || c.closing == Closing::ShutDown {
            return;
        }
        let n = c.queue.next_batch(&mut c.iov, MAX_IOV, MAX_SEND_BYTES);
        if n == 0 {
            return;
        }
        c.msghdr.msg_iov = c.iov.as_mut_ptr();
        c.msghdr.msg_iovlen = c.iov.len() as _;
        c.send_in_flight = true;
        let token = Token::new(OpKind::Send, r.slot, r.generation);
        let hdr: *const libc::msghdr = &*c.msghdr;
        let e = opcode::SendMsg::new(types::Fd(c.fd), hdr).flags(libc::MSG_NOSIGNAL as u32).build().user_data(token.to_user_data());
        // SAFETY: the msghdr is boxed in the connection, the iovecs live in `c.iov` and point
        // into Bytes held by the send queue; none is touched or freed while the send is in
        // flight (a connection is freed only once `send_in_flight` is false).
        unsafe { self.io.push(e) };
    }

    fn cancel(&mut self, r: ConnRef, kind: OpKind) {
        let target = Token::new(kind, r.slot, r.generation).to_user_data();
        let e = opcode::AsyncCancel::new(target).build().user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
        // SAFETY: no buffers.
        unsafe { self.io.push(e) };
    }

    // ---- completions ------------------------------------------------------------------

    fn on_completion(&mut self, c: Completion) {
        let Some(token) = Token::from_user_data(c.user_data) else { return };
        match token.kind {
            OpKind::Accept => self.on_accept(token, c),
            OpKind::Recv => self.on_recv(token, c),
            OpKind::Send => self.on_send(token, c),
            OpKind::Mailbox => self.on_mailbox(c),
            OpKind::Cancel => {}
        }
    }

    fn on_accept(&mut self, token: Token, c: Completion) {
        let index = (token.slot - LISTENER_SLOT_BASE) as usize;
        if !Io::more(c.flags) && self.shutting_down.is_none() {
            self.arm_accept(index);
        }
        if c.result < 0 {
            let err = std::io::Error::from_raw_os_error(-c.result);
            if -c.result != libc::ECANCELED {
                warn!(worker = self.id, error = %err, "accept failed");
            }
            return;
        }
        let fd: RawFd = c.result;
        if self.shutting_down.is_some() {
            // SAFETY: a descriptor the kernel just gave us.
            unsafe { libc::close(fd) };
            return;
        }
        let peer = peer_addr(fd).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        set_nodelay(fd);
        let cfg = &self.shared.config;
        let session_config = SessionConfig {
            limits: DecoderLimits { max_message_size: cfg.server.max_message_size, max_chunk_streams: cfg.server.max_chunk_streams },
            chunk_size: cfg.server.chunk_size,
            window_ack_size: cfg.server.window_ack_size,
            peer_bandwidth: cfg.server.peer_bandwidth,
        };
        let epoch = self.started.elapsed().as_millis() as u32;
        let (slot, generation) = self.conns.reserve();
        let conn = Conn {
            fd,
            peer,
            generation,
            session: ServerSession::new(session_config, &mut self.rng, epoch),
            nc: NetConnection::new(),
            queue: SendQueue::new(QueueLimits {
                drop_lag_ms: cfg.live.drop_lag_ms,
                max_lag_ms: cfg.live.max_lag_ms,
                max_bytes: cfg.live.max_queue_bytes,
            }),
            out: BytesMut::new(),
            iov: Vec::with_capacity(MAX_IOV),
            // SAFETY: msghdr is plain old data; all-zero is its empty value.
            msghdr: Box::new(unsafe { std::mem::zeroed() }),
            recv_armed: false,
            send_in_flight: false,
            closing: Closing::Open,
            preamble_sent: false,
            amf3: false,
            plays: Vec::new(),
            publishing: Vec::new(),
            bytes_out: 0,
        };
        self.conns.insert(slot, conn);
        let r = ConnRef { slot, generation };
        debug!(worker = self.id, %peer, "connection accepted");
        self.timers.arm(Timer {
            at: Instant::now() + Duration::from_millis(self.shared.config.server.connect_timeout_ms),
            slot,
            generation,
            kind: TimerKind::Connect,
        });
        self.arm_recv(r);
    }

    fn on_recv(&mut self, token: Token, c: Completion) {
        let r = ConnRef { slot: token.slot, generation: token.generation };
        let bid = Io::buffer_id(c.flags);
        let more = Io::more(c.flags);
        let mut events = std::mem::take(&mut self.events);
        let mut failure: Option<(String, bool)> = None;
        match self.conns.get_mut(r) {
            None => {}
            Some(conn) => {
                if !more {
                    conn.recv_armed = false;
                }
                if c.result > 0 {
                    if let Some(bid) = bid {
                        if conn.closing == Closing::Open {
                            let data = self.io.bufs.buffer(bid, c.result as usize);
                            if let Err(e) = conn.session.feed(data, &mut conn.out, &mut events) {
                                failure = Some((e.to_string(), false));
                            }
                        }
                    }
                } else if c.result == 0 {
                    failure = Some(("client closed the connection".into(), true));
                } else if -c.result == libc::ENOBUFS {
                    // Every receive buffer was in use; armed again once this turn returns them.
                } else if -c.result != libc::ECANCELED {
                    let e = std::io::Error::from_raw_os_error(-c.result);
                    failure = Some((format!("receive failed: {e}"), true));
                }
                if !more && conn.closing == Closing::Open && failure.is_none() {
                    self.rearm.push(r);
                }
            }
        }
        if let Some(bid) = bid {
            self.io.bufs.recycle(bid);
        }
        for ev in events.drain(..) {
            self.on_session_event(r, ev);
        }
        self.events = events;
        self.flush_out(r);
        if let Some((reason, normal)) = failure {
            self.close(r, &reason, !normal);
        }
        self.maybe_free(r);
    }

    fn on_send(&mut self, token: Token, c: Completion) {
        let r = ConnRef { slot: token.slot, generation: token.generation };
        let Some(conn) = self.conns.get_mut(r) else { return };
        conn.send_in_flight = false;
        if c.result < 0 {
            conn.queue.complete(0);
            if conn.closing == Closing::Open {
                let e = std::io::Error::from_raw_os_error(-c.result);
                self.close(r, &format!("send failed: {e}"), false);
            } else {
                self.shutdown(r);
            }
        } else {
            conn.queue.complete(c.result as usize);
            conn.bytes_out += c.result as u64;
            if conn.closing == Closing::Flushing && conn.queue.is_empty() {
                self.shutdown(r);
            } else {
                self.dirty.push(r);
            }
        }
        self.maybe_free(r);
    }

    fn on_mailbox(&mut self, c: Completion) {
        let _ = c;
        self.arm_mailbox();
        while let Some(msg) = self.mailbox.try_recv() {
            self.on_worker_msg(msg);
        }
    }

    // ---- protocol events --------------------------------------------------------------

    fn on_session_event(&mut self, r: ConnRef, ev: SessionEvent) {
        match ev {
            SessionEvent::HandshakeDone(kind) => {
                if let Some(c) = self.conns.get(r) {
                    debug!(peer = %c.peer, ?kind, "handshake done");
                }
            }
            SessionEvent::Command { stream_id, amf3, command } => {
                let config = Arc::clone(&self.shared.config);
                let mut actions = std::mem::take(&mut self.actions);
                if let Some(c) = self.conns.get_mut(r) {
                    c.amf3 |= amf3;
                    let was_connected = c.nc.is_connected();
                    c.nc.on_command(stream_id, &command, &config, &mut actions);
                    if !was_connected && c.nc.is_connected() {
                        info!(peer = %c.peer, app = %c.nc.app, instance = %c.nc.instance, "client connected");
                    }
                }
                for a in actions.drain(..) {
                    self.apply(r, a);
                }
                self.actions = actions;
            }
            SessionEvent::Media { message } => {
                let Some(key) = self.conns.get(r).and_then(|c| c.publishing_on(message.stream_id)).map(|p| p.key.clone()) else {
                    return;
                };
                let m = MediaMessage { timestamp: message.timestamp, type_id: message.type_id, payload: message.payload };
                self.publish_frame(&key, m, true);
            }
            SessionEvent::Data { message } => {
                let Some(key) = self.conns.get(r).and_then(|c| c.publishing_on(message.stream_id)).map(|p| p.key.clone()) else {
                    return;
                };
                let amf3 = message.type_id == msg_type::DATA_AMF3;
                let Ok(values) = command::decode_data(amf3, &message.payload) else {
                    if let Some(c) = self.conns.get(r) {
                        debug!(peer = %c.peer, "undecodable data message ignored");
                    }
                    return;
                };
                // `@setDataFrame` asks the server to keep what follows for new viewers.
                let (values, keep) = match values.first().and_then(Amf0Value::as_str) {
                    Some("@setDataFrame") => (values[1..].to_vec(), true),
                    Some("onMetaData") => (values, true),
                    _ => (values, false),
                };
                let payload = bytes::Bytes::from(command::encode_values(false, &values));
                let m = MediaMessage { timestamp: message.timestamp, type_id: msg_type::DATA_AMF0, payload };
                self.publish_frame(&key, m, keep);
            }
            SessionEvent::BufferLength { stream_id, ms } => {
                if let Some(c) = self.conns.get(r) {
                    debug!(peer = %c.peer, stream_id, ms, "client buffer length");
                }
            }
        }
    }

    fn reply(&mut self, r: ConnRef, stream_id: u32, values: &[Amf0Value]) {
        let Some(c) = self.conns.get_mut(r) else { return };
        if !c.preamble_sent {
            // The preamble carries Set Chunk Size: nothing larger may precede it.
            c.session.write_connect_preamble(&mut c.out);
            c.preamble_sent = true;
        }
        c.session.write_command(stream_id, c.amf3, values, &mut c.out);
    }

    fn status(&mut self, r: ConnRef, stream_id: u32, level: Level, code: &str, description: &str, details: &str) {
        self.reply(r, stream_id, &status::on_status(level, code, description, Some(details)));
    }

    fn user_control(&mut self, r: ConnRef, event: UserControl) {
        if let Some(c) = self.conns.get_mut(r) {
            c.session.write_user_control(event, &mut c.out);
        }
    }

    /// Moves what the protocol wrote for `r` into its send queue.
    fn flush_out(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else { return };
        if !c.out.is_empty() {
            let bytes = c.out.split().freeze();
            c.queue.push_control(bytes);
            self.dirty.push(r);
        }
    }

    fn apply(&mut self, r: ConnRef, action: Action) {
        match action {
            Action::Reply { stream_id, values } => self.reply(r, stream_id, &values),
            Action::Accepted { reply } => {
                self.reply(r, 0, &reply);
            }
            Action::StartPublish { stream_id, key, mode } => self.start_publish(r, stream_id, key, mode),
            Action::StopPublish { stream_id, key } => {
                self.stop_publish(r, stream_id, &key);
                self.status(r, stream_id, Level::Status, "NetStream.Unpublish.Success", "Stopped publishing.", key_name(&key));
            }
            Action::StartPlay { stream_id, key, params } => self.start_play(r, stream_id, key, params),
            Action::StopPlay { stream_id, key } => {
                self.stop_play(r, stream_id, &key);
                self.status(r, stream_id, Level::Status, "NetStream.Play.Stop", "Stopped playing.", key_name(&key));
            }
            Action::SetReceive { stream_id, audio, video } => {
                if let Some(v) = self.conns.get_mut(r).and_then(|c| c.viewer_mut(stream_id)) {
                    if let Some(a) = audio {
                        v.audio = a;
                    }
                    if let Some(on) = video {
                        v.need_key |= on && !v.video;
                        v.video = on;
                    }
                }
            }
            Action::Pause { stream_id, pause } => {
                let Some(v) = self.conns.get_mut(r).and_then(|c| c.viewer_mut(stream_id)) else { return };
                v.paused = pause;
                v.need_key |= !pause;
                let name = key_name(&v.key).to_string();
                if pause {
                    self.status(r, stream_id, Level::Status, "NetStream.Pause.Notify", "Paused live stream.", &name);
                } else {
                    self.status(r, stream_id, Level::Status, "NetStream.Unpause.Notify", "Unpaused live stream.", &name);
                }
            }
            Action::Close { reason } => self.close(r, &reason, false),
        }
    }

    fn start_publish(&mut self, r: ConnRef, stream_id: u32, key: StreamKey, mode: PublishMode) {
        let Some(c) = self.conns.get(r) else { return };
        let peer = c.peer;
        let app = c.nc.app.clone();
        let limit = c.nc.policy.as_ref().map(|p| p.max_streams).unwrap_or(0);
        let publish_id = self.shared.next_publish_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.shared.registry.publish(&key, self.id, publish_id, Some((app.as_str(), limit))) {
            Err(refused) => {
                if let Some(c) = self.conns.get_mut(r) {
                    c.nc.publish_refused(stream_id);
                }
                let why = match refused {
                    PublishRefused::NameInUse => "Stream name is already in use.",
                    PublishRefused::TooManyStreams => "This application publishes as many streams as it may.",
                };
                info!(%peer, %app, stream = key_name(&key), reason = why, "publish refused");
                self.status(r, stream_id, Level::Error, "NetStream.Publish.BadName", why, key_name(&key));
            }
            Ok(remote_workers) => {
                info!(%peer, %app, stream = key_name(&key), "publish started");
                self.user_control(r, UserControl::StreamBegin(stream_id));
                self.status(r, stream_id, Level::Status, "NetStream.Publish.Start", "Publishing.", key_name(&key));
                if mode != PublishMode::Live {
                    self.status(
                        r,
                        stream_id,
                        Level::Warning,
                        "NetStream.Record.NoAccess",
                        "Recording is not available on this server yet; the stream is published live only.",
                        key_name(&key),
                    );
                }
                if let Some(c) = self.conns.get_mut(r) {
                    c.publishing.push(Publishing { stream_id, key: key.clone(), publish_id });
                }
                let stream = self.streams.entry(key.clone()).or_insert_with(|| LiveStream::new());
                stream.source = Source::Local { publisher: r, publish_id };
                stream.gop.clear();
                stream.remote_workers = remote_workers.clone();
                for w in remote_workers {
                    self.post(w, WorkerMsg::StreamStarted { key: key.clone(), publish_id, snapshot: Vec::new() });
                }
                self.went_live(&key);
            }
        }
    }

    /// The stream just went live on this worker: waiting viewers get PublishNotify.
    fn went_live(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.get(key) else { return };
        let viewers = stream.viewers.clone();
        for (v, stream_id) in viewers {
            let notify = self.conns.get_mut(v).and_then(|c| c.viewer_mut(stream_id)).map(|vw| {
                vw.need_key = true;
                std::mem::replace(&mut vw.notify_on_publish, false)
            });
            if notify == Some(true) {
                self.status(v, stream_id, Level::Status, "NetStream.Play.PublishNotify", "Stream is now published.", key_name(key));
            }
            self.send_snapshot(v, stream_id, key);
            self.flush_out(v);
        }
    }

    fn stop_publish(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        let Some(c) = self.conns.get_mut(r) else { return };
        let Some(pos) = c.publishing.iter().position(|p| p.stream_id == stream_id && p.key == *key) else { return };
        let p = c.publishing.remove(pos);
        info!(peer = %c.peer, app = %c.nc.app, stream = key_name(key), "publish stopped");
        let remote = self.shared.registry.unpublish(key, p.publish_id);
        for w in remote {
            self.post(w, WorkerMsg::StreamStopped { key: key.clone(), publish_id: p.publish_id });
        }
        self.went_offline(key);
    }

    /// The stream's publisher left: viewers get UnpublishNotify and wait for the next one.
    fn went_offline(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        stream.source = Source::None;
        stream.gop.clear();
        stream.remote_workers.clear();
        let viewers = stream.viewers.clone();
        let unused = stream.is_unused();
        if unused {
            self.streams.remove(key);
        }
        for (v, stream_id) in viewers {
            if let Some(vw) = self.conns.get_mut(v).and_then(|c| c.viewer_mut(stream_id)) {
                vw.notify_on_publish = true;
                vw.need_key = true;
            }
            self.user_control(v, UserControl::StreamEof(stream_id));
            self.status(v, stream_id, Level::Status, "NetStream.Play.UnpublishNotify", "Stream is now unpublished.", key_name(key));
            self.flush_out(v);
        }
    }

    fn start_play(&mut self, r: ConnRef, stream_id: u32, key: StreamKey, params: PlayParams) {
        let Some(c) = self.conns.get(r) else { return };
        info!(peer = %c.peer, app = %c.nc.app, stream = key_name(&key), start = params.start, "play started");
        let joined = self.shared.registry.join(&key, self.id);
        let stream = self.streams.entry(key.clone()).or_insert_with(|| LiveStream::new());
        stream.viewers.push((r, stream_id));
        let live_here = stream.is_live();
        if let Some((pub_worker, _)) = joined.publisher {
            if pub_worker != self.id && joined.first_on_worker {
                self.post(pub_worker, WorkerMsg::Subscribe { key: key.clone(), worker: self.id });
            }
        }
        if let Some(c) = self.conns.get_mut(r) {
            c.plays.retain(|v| v.stream_id != stream_id);
            c.plays.push(Viewer {
                stream_id,
                key: key.clone(),
                audio: true,
                video: true,
                paused: false,
                need_key: true,
                notify_on_publish: joined.publisher.is_none(),
            });
        }
        self.user_control(r, UserControl::StreamBegin(stream_id));
        if params.reset {
            self.status(r, stream_id, Level::Status, "NetStream.Play.Reset", "Playing and resetting.", key_name(&key));
        }
        self.status(r, stream_id, Level::Status, "NetStream.Play.Start", "Started playing.", key_name(&key));
        if let Some(c) = self.conns.get_mut(r) {
            c.session.write_data(stream_id, &[Amf0Value::string("|RtmpSampleAccess"), Amf0Value::Boolean(true), Amf0Value::Boolean(true)], &mut c.out);
        }
        if live_here {
            self.send_snapshot(r, stream_id, &key);
        }
        self.flush_out(r);
    }

    /// Metadata, codec headers and the current GOP, so the viewer starts on a key frame.
    fn send_snapshot(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        let Some(stream) = self.streams.get(key) else { return };
        let frames: Vec<FrameRef> = stream.gop.snapshot().cloned().collect();
        for f in frames {
            self.deliver(r, stream_id, &f);
        }
    }

    fn stop_play(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        if let Some(c) = self.conns.get_mut(r) {
            c.plays.retain(|v| !(v.stream_id == stream_id && v.key == *key));
            info!(peer = %c.peer, app = %c.nc.app, stream = key_name(key), "play stopped");
        }
        if let Some(stream) = self.streams.get_mut(key) {
            stream.viewers.retain(|(v, s)| !(*v == r && *s == stream_id));
            if stream.is_unused() {
                self.streams.remove(key);
            }
        }
        if let Some(pub_worker) = self.shared.registry.leave(key, self.id) {
            if pub_worker != self.id {
                self.post(pub_worker, WorkerMsg::Unsubscribe { key: key.clone(), worker: self.id });
            }
        }
    }

    /// A message from this stream's source (local publisher or another worker): into the
    /// GOP cache (if `cache`), to every local viewer, and, for a local publisher, once to
    /// each other worker with viewers.
    fn publish_frame(&mut self, key: &StreamKey, m: MediaMessage, cache: bool) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let frame = Frame::new(m);
        if cache && self.shared.config.live.gop_cache {
            stream.gop.push(&frame);
        } else if cache && frame.kind() != FrameKind::VideoKey && frame.kind() != FrameKind::VideoInter {
            // Without a GOP cache, metadata and codec headers are still kept.
            stream.gop.push(&frame);
        }
        if let Source::Local { publish_id, .. } = stream.source {
            let remote = stream.remote_workers.clone();
            for w in remote {
                self.post(w, WorkerMsg::Media { key: key.clone(), publish_id, message: frame.message() });
            }
        }
        let Some(stream) = self.streams.get(key) else { return };
        // A reused scratch list: delivering may close viewers, which edits the stream's list.
        let mut viewers = std::mem::take(&mut self.fanout);
        viewers.clear();
        viewers.extend_from_slice(&stream.viewers);
        for (v, stream_id) in &viewers {
            self.deliver(*v, *stream_id, &frame);
        }
        self.fanout = viewers;
    }

    /// Queues one frame for one viewer, honouring its receive flags, pause and key-frame wait.
    fn deliver(&mut self, r: ConnRef, stream_id: u32, frame: &FrameRef) {
        let Some(c) = self.conns.get_mut(r) else { return };
        if c.closing != Closing::Open {
            return;
        }
        let chunk_size = c.session.config().chunk_size;
        let Some(v) = c.viewer_mut(stream_id) else { return };
        let kind = frame.kind;
        let is_video = frame.type_id == msg_type::VIDEO;
        let is_audio = frame.type_id == msg_type::AUDIO;
        let header_or_meta = matches!(kind, FrameKind::Metadata | FrameKind::AudioHeader | FrameKind::VideoHeader);
        if !header_or_meta {
            if v.paused || (is_video && !v.video) || (is_audio && !v.audio) {
                return;
            }
            if is_video {
                if v.need_key && kind != FrameKind::VideoKey {
                    return;
                }
                if kind == FrameKind::VideoKey {
                    v.need_key = false;
                }
            }
        }
        let bytes = frame.chunked(chunk_size, stream_id);
        let outcome = if header_or_meta {
            c.queue.push_control(bytes);
            PushOutcome::Queued
        } else {
            c.queue.push_media(bytes, frame.timestamp, kind)
        };
        self.dirty.push(r);
        if let PushOutcome::TooSlow = outcome {
            let lag = c.queue.lag_ms();
            let max = c.nc.policy.as_ref().map_or(self.shared.config.live.max_lag_ms, |p| p.max_lag_ms);
            let name = key_name(&frame_key_of(c, stream_id)).to_string();
            self.status(r, stream_id, Level::Warning, "NetStream.Play.InsufficientBW", "The client is too slow for this stream.", &name);
            self.flush_out(r);
            self.close(r, &format!("viewer lag {lag} ms over max_lag_ms {max} (NetStream.Play.InsufficientBW)"), true);
        }
    }

    // ---- cross-worker -----------------------------------------------------------------

    fn post(&mut self, worker: usize, msg: WorkerMsg) {
        if let Some(m) = self.shared.mailboxes.get(worker) {
            m.post(msg);
            if let Some(w) = self.wake.get_mut(worker) {
                *w = true;
            }
        }
    }

    fn wake_peers(&mut self) {
        for (i, w) in self.wake.iter_mut().enumerate() {
            if std::mem::replace(w, false) {
                if let Some(m) = self.shared.mailboxes.get(i) {
                    m.wake();
                }
            }
        }
    }

    fn on_worker_msg(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Subscribe { key, worker } => {
                let Some(stream) = self.streams.get_mut(&key) else { return };
                let Source::Local { publish_id, .. } = stream.source else { return };
                if !stream.remote_workers.contains(&worker) {
                    stream.remote_workers.push(worker);
                }
                let snapshot = stream.gop.snapshot().map(|f| f.message()).collect();
                self.post(worker, WorkerMsg::StreamStarted { key, publish_id, snapshot });
            }
            WorkerMsg::Unsubscribe { key, worker } => {
                if let Some(stream) = self.streams.get_mut(&key) {
                    stream.remote_workers.retain(|w| *w != worker);
                }
            }
            WorkerMsg::StreamStarted { key, publish_id, snapshot } => {
                let Some(stream) = self.streams.get_mut(&key) else { return };
                if stream.viewers.is_empty() || matches!(stream.source, Source::Local { .. }) {
                    return;
                }
                stream.source = Source::Remote { worker: usize::MAX, publish_id };
                stream.gop.clear();
                for m in snapshot {
                    stream.gop.push(&Frame::new(m));
                }
                self.went_live(&key);
            }
            WorkerMsg::Media { key, publish_id, message } => {
                let Some(stream) = self.streams.get(&key) else { return };
                if let Source::Remote { publish_id: id, .. } = stream.source {
                    if id == publish_id {
                        let cache = message.type_id != msg_type::DATA_AMF0 || is_metadata(&message);
                        self.publish_frame(&key, message, cache);
                    }
                }
            }
            WorkerMsg::StreamStopped { key, publish_id } => {
                let Some(stream) = self.streams.get(&key) else { return };
                if stream.publish_id() == Some(publish_id) && matches!(stream.source, Source::Remote { .. }) {
                    self.went_offline(&key);
                }
            }
            WorkerMsg::Shutdown => self.begin_shutdown(),
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down.is_some() {
            return;
        }
        self.shutting_down = Some(Instant::now());
        for i in 0..self.listeners.len() {
            let token = Token::new(OpKind::Accept, LISTENER_SLOT_BASE + i as u32, 0).to_user_data();
            let e = opcode::AsyncCancel::new(token).build().user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
            // SAFETY: no buffers.
            unsafe { self.io.push(e) };
        }
        for r in self.conns.refs() {
            self.close(r, "server shutting down", false);
        }
    }

    // ---- timers and closing -----------------------------------------------------------

    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.timers.pop_due(now) {
            let r = ConnRef { slot: t.slot, generation: t.generation };
            let Some(c) = self.conns.get(r) else { continue };
            match t.kind {
                TimerKind::Connect => {
                    if !c.nc.is_connected() && c.closing == Closing::Open {
                        let secs = self.shared.config.server.connect_timeout_ms as f64 / 1000.0;
                        self.close(r, &format!("no handshake and connect within {secs} s"), false);
                    }
                }
                TimerKind::CloseFlush => {
                    if c.closing == Closing::Flushing {
                        self.shutdown(r);
                    }
                }
            }
            self.maybe_free(r);
        }
    }

    fn rearm_receives(&mut self) {
        for r in std::mem::take(&mut self.rearm) {
            if self.conns.get(r).is_some_and(|c| c.closing == Closing::Open) {
                self.arm_recv(r);
            }
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for r in dirty.drain(..) {
            self.start_send(r);
        }
        self.dirty = dirty;
    }

    /// Closes a connection: its streams are released at once (others are not kept waiting),
    /// then what is queued is flushed for up to `CLOSE_FLUSH` before the socket shuts down.
    fn close(&mut self, r: ConnRef, reason: &str, error: bool) {
        let Some(c) = self.conns.get_mut(r) else { return };
        if c.closing != Closing::Open {
            return;
        }
        let (peer, app) = (c.peer, c.app().to_string());
        if error {
            warn!(%peer, %app, reason, "connection closed");
        } else {
            info!(%peer, %app, reason, "connection closed");
        }
        let mut actions = Vec::new();
        c.nc.close_all(&mut actions);
        c.closing = Closing::Flushing;
        for a in actions {
            match a {
                Action::StopPublish { stream_id, key } => self.stop_publish(r, stream_id, &key),
                Action::StopPlay { stream_id, key } => self.stop_play(r, stream_id, &key),
                _ => {}
            }
        }
        let Some(c) = self.conns.get_mut(r) else { return };
        if c.queue.is_empty() && !c.send_in_flight {
            self.shutdown(r);
        } else {
            self.timers.arm(Timer { at: Instant::now() + CLOSE_FLUSH, slot: r.slot, generation: r.generation, kind: TimerKind::CloseFlush });
        }
    }

    fn shutdown(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else { return };
        if c.closing == Closing::ShutDown {
            return;
        }
        if c.closing == Closing::Open {
            // Not through `close`: release its streams first.
            self.close(r, "closed", false);
        }
        let Some(c) = self.conns.get_mut(r) else { return };
        c.closing = Closing::ShutDown;
        // SAFETY: shutting down a socket this connection owns; it wakes any operation the
        // ring has in progress on it, which then completes and is handed back.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        let (recv, send) = (c.recv_armed, c.send_in_flight);
        if recv {
            self.cancel(r, OpKind::Recv);
        }
        if send {
            self.cancel(r, OpKind::Send);
        }
        self.maybe_free(r);
    }

    /// Frees a shut-down connection once the ring holds nothing of it.
    fn maybe_free(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get(r) else { return };
        if c.closing == Closing::ShutDown && !c.recv_armed && !c.send_in_flight {
            if let Some(c) = self.conns.remove(r) {
                // SAFETY: no operation of the ring refers to this descriptor any more.
                unsafe { libc::close(c.fd) };
            }
        }
    }
}

fn frame_key_of(c: &Conn, stream_id: u32) -> StreamKey {
    c.plays.iter().find(|v| v.stream_id == stream_id).map(|v| v.key.clone()).unwrap_or_else(|| StreamKey::new("-", "-", "-"))
}

fn is_metadata(m: &MediaMessage) -> bool {
    command::decode_data(false, &m.payload)
        .ok()
        .and_then(|v| v.first().and_then(Amf0Value::as_str).map(|s| s == "onMetaData"))
        .unwrap_or(false)
}

/// The stream name part of a key, for status details and logs.
fn key_name(key: &StreamKey) -> &str {
    key.as_str().rsplit('/').next().unwrap_or(key.as_str())
}

fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain old data; getpeername fills at most `len` bytes.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: pointers to live locals of the right sizes.
    let rc = unsafe { libc::getpeername(fd, std::ptr::addr_of_mut!(storage).cast(), &mut len) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the kernel filled a sockaddr of `len` bytes.
    let addr = unsafe { socket2::SockAddr::new(storage, len) };
    addr.as_socket()
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int of the size given. Failure only
    // costs latency, so it is not an error.
    unsafe {
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, std::ptr::addr_of!(one).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t);
    }
}
