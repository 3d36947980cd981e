//! One worker: a thread pinned to a core with its own io_uring, listeners, connections and
//! live streams. Completions are reaped first and handled afterwards; sends are started once
//! per loop turn for every connection that has something new to send.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use io_uring::{opcode, squeue, types};
use socket2::Socket;
use tracing::{debug, info, warn};

mod control;
mod files;
mod multicast;
mod outbound;
mod port;
mod push;
mod recordings;
mod registrations;
mod resolve;
mod rpc;
pub(super) mod rtmfp;
mod script_connections;
mod scripts;
mod server_streams;
mod session;
pub(super) mod shared_objects;
#[cfg(test)]
mod starved_tests;
mod streams;
#[cfg(test)]
mod testing;
mod tiers;
mod upstream;
mod vod;

use super::conn::{Closing, Conn, ConnRef, Slots};
use super::connect::Connects;
use super::cross::{Answer, ControlInbound, Query, WorkerMsg};
use super::file::FileOps;
use super::file_read::FileReads;
use super::io::{Completion, Io};
use super::mailbox::{Mailbox, MailboxReceiver};
use super::owner::Owner;
use super::registry::{PublishRefused, Registry};
use super::stats::WorkerStats;
use super::timers::{Timer, TimerKind, Timers};
use super::token::{OpKind, Token};
use super::udp::UdpSockets;
use super::zerocopy::{self, ZeroCopy};
use crate::app::net_connection::Action;
use crate::app::request::{PlayParams, PublishMode};
use crate::app::status;
use crate::app::{Client, StreamKey};
use crate::config::Config;
use crate::media::frame::{FrameRef, MediaMessage};
use crate::media::live_stream::{LiveStream, Source, Stopped};
use crate::media::send_queue::{PushOutcome, QueueLimits, SendQueue};
use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::control::UserControl;
use crate::proto::rtmp::msg_type;
use crate::proto::rtmp::session::{Session, SessionConfig, SessionEvent};

/// Slots for listeners sit above any connection slot.
const LISTENER_SLOT_BASE: u32 = 0xFFFF_0000;
/// Completions handled per loop turn. In a join storm thousands of handshakes and commands
/// complete at once; handled in one turn they took 100-300 ms (10,000 players on 2
/// workers), during which no joiner got its next catch-up round and no media batch went
/// out. Bounded, the rest of the turn (rounds, media flushes, sends) runs between slices of
/// them; what is left waits in the completion queue for the next turn, which starts at once.
const MAX_COMPLETIONS_PER_TURN: usize = 1024;
/// Starved receives armed again per turn even when no client buffer came back that turn
/// (see `Worker::starved`), so that they never wait on a turn with no receive to reap: the
/// buffers may all be free by then.
const MIN_STARVED_REARMS: usize = 4;
/// iovecs and bytes per send: enough to drain a GOP burst in a few sends without one send
/// holding the ring for long.
const MAX_IOV: usize = 64;
const MAX_SEND_BYTES: usize = 512 * 1024;
// `live.send_zerocopy_min_bytes` is validated against this.
const _: () = assert!(MAX_SEND_BYTES == crate::config::MAX_SEND_BYTES as usize);
/// How long a closing connection may take to flush its last messages.
const CLOSE_FLUSH: Duration = Duration::from_millis(1000);
/// The longest the loop sleeps with nothing to do, so shutdown and timers stay responsive.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// What all workers and the control thread share. Nothing here is touched per media
/// message except each worker's own counters.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) mailboxes: Vec<Mailbox<WorkerMsg>>,
    pub(crate) control: Mailbox<ControlInbound>,
    pub(crate) stats: Vec<WorkerStats>,
    pub(crate) next_publish_id: AtomicU64,
    pub(crate) next_client_id: AtomicU64,
    pub(crate) next_auth_id: AtomicU64,
    /// A manager has registered to answer auth requests.
    pub(crate) auth_manager: AtomicBool,
    /// A manager has registered to answer client calls (`rpc_register`).
    pub(crate) rpc_manager: AtomicBool,
    /// The upstream groups' lists of live streams (worker 0's standing links keep them).
    pub(crate) catalog: std::sync::Mutex<crate::relay::catalog::Catalog>,
    /// The script thread, when `[scripts] dir` is set (see `crate::scripts`).
    pub(crate) scripts: Option<crate::scripts::Scripts>,
    /// Which worker holds the RTMFP session of each connected peer id, for introductions
    /// across workers (`worker/rtmfp.rs`): locked when a session opens or ends and for an
    /// IHello naming a peer id the receiving worker does not hold, never per media message.
    pub(crate) rtmfp_peers: std::sync::Mutex<HashMap<crate::proto::rtmfp::keys::PeerId, usize>>,
    /// The VOD file indexes the workers hold, so a file is indexed once per process.
    pub(crate) indexes: crate::engine::shared_indexes::SharedIndexes,
}

/// How often stream rates are refreshed.
const TICK: Duration = Duration::from_secs(1);

struct Listener {
    addr: SocketAddr,
    socket: Socket,
}

/// Now as Unix time in seconds, for events and `since` fields.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(crate) struct Worker {
    id: usize,
    io: Io,
    shared: Arc<Shared>,
    /// This worker's copy of the configuration, replaced on reload. Connections keep what
    /// they resolved at connect time: changed limits apply to new clients.
    config: Arc<Config>,
    mailbox: MailboxReceiver<WorkerMsg>,
    /// Indexed by the listener slot in accept tokens; a removed listener leaves `None`.
    listeners: Vec<Option<Listener>>,
    /// Connections waiting for the manager, by auth request id.
    pending_auth: HashMap<u64, ConnRef>,
    /// Client calls waiting for the manager, by request id (see `rpc.rs`).
    pending_rpc: HashMap<u64, ConnRef>,
    /// Connects waiting for their application's onConnect, by request id (see `scripts.rs`).
    pending_script: HashMap<u64, ConnRef>,
    /// Clients a script admitted, by client id: their calls go to the script.
    script_clients: HashMap<u64, ConnRef>,
    /// Their readAccess/writeAccess, for those a script restricted.
    script_access: HashMap<u64, crate::app::access::Access>,
    last_tick: Instant,
    conns: Slots,
    streams: HashMap<StreamKey, LiveStream>,
    timers: Timers,
    /// Outbound TCP connects in flight and UDP sockets (see `outbound.rs`). Declared after
    /// `io`, so the ring is gone before the memory it may still read.
    connects: Connects<Owner>,
    udp: UdpSockets<Owner>,
    /// File writes and syncs in flight, and the recordings they are for (see
    /// `recordings.rs`); after `io` for the same reason.
    files: FileOps<Owner>,
    recordings: recordings::Recordings,
    /// Multicast outputs of the streams that enter here (see `multicast.rs`); after `io`
    /// for the same reason.
    multicasts: multicast::Multicasts,
    /// Multicast outputs an operator added at run time, besides the config's.
    multicast_added: Vec<crate::multicast::spec::MulticastSpec>,
    /// Relay pulls: streams this worker plays from an upstream (see `upstream.rs`).
    pulls: upstream::Pulls,
    /// Push relays: streams published here forwarded to other servers (see `push.rs`).
    pushes: push::Pushes,
    /// Standing links to upstream groups (worker 0 only; see `registrations.rs`).
    registrations: registrations::Registrations,
    /// Server-side scripts' NetConnections of the instances this worker owns.
    script_ncs: script_connections::ScriptConnections,
    /// Child servers (FCAddChild) connected to this worker, told of streams going live.
    children: Vec<ConnRef>,
    /// FCSubscribe'd names of this worker's clients, told of the stream with onFMSubscribe.
    subscribers: Vec<(ConnRef, StreamKey)>,
    /// File reads in flight (see `files.rs`), after `io` for the same reason.
    file_reads: FileReads<Owner>,
    /// Files played on this worker: their indexes and the NetStreams playing them.
    vod: vod::VodState,
    server_streams: server_streams::ServerStreams,
    /// RTMFP on the listen addresses (see `rtmfp.rs`).
    rtmfp: rtmfp::Rtmfp,
    /// Connections with something new to send this turn (replies, control, catch-up).
    dirty: Vec<ConnRef>,
    /// Viewers with new media and when it goes (see `live.send_batch_ms`).
    media: MediaFlush,
    /// Streams with frames waiting for the media flush (see `LiveStream::pending`).
    pending_streams: Vec<StreamKey>,
    /// Streams with viewers taking their GOP in rounds: one round each loop turn (see
    /// `LiveStream::catch_up`).
    catching_up: Vec<StreamKey>,
    /// Connections whose multishot receive ended and must be armed again.
    rearm: Vec<ConnRef>,
    /// Connections whose receive found no client buffer free (ENOBUFS), in the order they
    /// found none. Each turn arms again only as many as buffers came back: armed all at
    /// once, they would fail again at once, and in a join storm thousands of such failures
    /// a turn were most of the worker's work (a handshake step waited through ~20 of them).
    starved: VecDeque<ConnRef>,
    /// Client buffers the last reaping handed back to the kernel.
    buffers_back: u16,
    /// Other workers posted to this turn (woken once at the end of the turn).
    wake: Vec<bool>,
    events: Vec<SessionEvent>,
    actions: Vec<Action>,
    /// What a fan-out left to the worker (see `settle`): viewers whose play ended, and
    /// clients to close. Reused.
    stopped: Stopped,
    closing: Vec<(ConnRef, String)>,
    /// Shared objects: those of the instances this worker owns, and local users.
    so: shared_objects::SoWorker,
    rng: rand::rngs::ThreadRng,
    started: Instant,
    shutting_down: Option<Instant>,
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        shared: Arc<Shared>,
        config: Arc<Config>,
        mailbox: MailboxReceiver<WorkerMsg>,
    ) -> std::io::Result<Self> {
        let io = Io::new()?;
        if id == 0 && config.live.send_zerocopy && !io.send_zc {
            warn_no_zerocopy();
        }
        let mut listeners = Vec::new();
        for addr in &config.server.listen {
            listeners.push(Some(Listener {
                addr: *addr,
                socket: super::listener::tcp_listener(*addr, config.server.listen_backlog)?,
            }));
        }
        let workers = shared.mailboxes.len();
        Ok(Worker {
            id,
            io,
            shared,
            config,
            mailbox,
            listeners,
            pending_auth: HashMap::new(),
            pending_rpc: HashMap::new(),
            pending_script: HashMap::new(),
            script_clients: HashMap::new(),
            script_access: HashMap::new(),
            last_tick: Instant::now(),
            conns: Slots::default(),
            streams: HashMap::new(),
            timers: Timers::default(),
            connects: Connects::default(),
            udp: UdpSockets::default(),
            files: FileOps::default(),
            recordings: recordings::Recordings::default(),
            multicasts: multicast::Multicasts::default(),
            multicast_added: Vec::new(),
            pulls: upstream::Pulls::default(),
            pushes: push::Pushes::default(),
            registrations: registrations::Registrations::default(),
            script_ncs: script_connections::ScriptConnections::default(),
            children: Vec::new(),
            subscribers: Vec::new(),
            file_reads: FileReads::default(),
            vod: vod::VodState::default(),
            server_streams: server_streams::ServerStreams::default(),
            rtmfp: rtmfp::Rtmfp::default(),
            dirty: Vec::new(),
            media: MediaFlush::default(),
            pending_streams: Vec::new(),
            catching_up: Vec::new(),
            rearm: Vec::new(),
            starved: VecDeque::new(),
            buffers_back: 0,
            wake: vec![false; workers],
            events: Vec::new(),
            actions: Vec::new(),
            stopped: Vec::new(),
            closing: Vec::new(),
            so: shared_objects::SoWorker::default(),
            rng: rand::thread_rng(),
            started: Instant::now(),
            shutting_down: None,
        })
    }

    pub(crate) fn run(mut self) {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.open_rtmfp();
        self.arm_mailbox();
        self.timers
            .arm_for(Owner::Worker, Instant::now() + TICK, TimerKind::Tick);
        self.start_registrations();
        let mut completions = Vec::with_capacity(1024);
        loop {
            let now = Instant::now();
            let mut wait = self
                .timers
                .next_timeout(now)
                .map_or(MAX_WAIT, |d| d.min(MAX_WAIT));
            if let Some(due) = self.recordings_wait() {
                wait = wait.min(due);
            }
            if let Some(due) = self.multicast_wait() {
                wait = wait.min(due);
            }
            if let Some(due) = self.rtmfp_wait() {
                wait = wait.min(due);
            }
            if let Some(at) = self.media.at {
                wait = wait.min(at.saturating_duration_since(now));
            }
            if !self.catching_up.is_empty() {
                // The next round comes with the next media flush at the latest.
                wait = wait.min(Duration::from_millis(
                    self.config.live.send_batch_ms.max(1).into(),
                ));
            }
            if let Err(e) = self.io.submit_and_wait(Some(wait)) {
                warn!(worker = self.id, error = %e, "io_uring wait failed; worker stops");
                break;
            }
            let busy_since = Instant::now();
            self.turn(&mut completions);
            WorkerStats::add(
                &self.stats().busy_ns,
                busy_since.elapsed().as_nanos() as u64,
            );
            if let Some(since) = self.shutting_down {
                if (self.conns.is_empty()
                    && self.outbound_idle()
                    && self.recordings.is_empty()
                    && self.files.is_empty()
                    && self.vod.opens_idle())
                    || since.elapsed() > CLOSE_FLUSH + Duration::from_millis(300)
                {
                    break;
                }
            }
        }
        for r in self.conns.refs() {
            if let Some(c) = self.conns.remove(r) {
                if c.zc.outstanding() {
                    // Its bytes are dropped with it, here, while the kernel may still send
                    // from them: reset first, so that no closing socket sends reused memory.
                    abort_socket(c.fd);
                }
                if c.fd >= 0 {
                    // SAFETY: closing a descriptor this worker owns; the ring is dropped next.
                    unsafe { libc::close(c.fd) };
                }
            }
        }
        self.log_zerocopy();
        debug!(worker = self.id, "worker stopped");
    }

    /// A loop turn's work once the ring's wait returned: completions, timers, the
    /// transports' and outputs' turns, receives armed again, sends, wake-ups (tests take
    /// turns through it too).
    fn turn(&mut self, completions: &mut Vec<Completion>) {
        self.handle_completions(completions);
        self.run_timers();
        self.rtmfp_turn();
        self.pump_recordings();
        self.pump_multicast();
        self.rearm_receives();
        self.flush_dirty();
        self.rtmfp_transmit();
        self.wake_peers();
    }

    fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.id]
    }

    fn tick(&mut self, now: Instant) {
        let secs = now.duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        for s in self.streams.values_mut() {
            s.stats.tick(secs);
        }
        // A file's index another worker kept alive longer than this one's plays.
        self.vod_forget_unused();
    }

    fn arm_accept(&mut self, i: usize) {
        let Some(Some(l)) = self.listeners.get(i) else {
            return;
        };
        let token = Token::new(OpKind::Accept, LISTENER_SLOT_BASE + i as u32, 0);
        let e = opcode::AcceptMulti::new(types::Fd(l.socket.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token.to_user_data());
        // SAFETY: no buffers; the listener outlives the ring's use of it (closed at exit).
        unsafe { self.io.push(e) };
    }

    fn arm_mailbox(&mut self) {
        let token = Token::new(OpKind::Mailbox, 0, 0);
        let buf: *mut u64 = &mut *self.mailbox.read_buf;
        let e = opcode::Read::new(types::Fd(self.mailbox.fd()), buf.cast(), 8)
            .build()
            .user_data(token.to_user_data());
        // SAFETY: the read buffer is boxed in the receiver, which lives as long as the worker.
        unsafe { self.io.push(e) };
    }

    fn arm_recv(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.recv_armed || c.closing == Closing::ShutDown {
            return;
        }
        c.recv_armed = true;
        c.recv_ingest = c.ingest;
        let (kind, group) = if c.recv_ingest {
            (OpKind::IngestRecv, self.io.ingest.bgid)
        } else {
            (OpKind::Recv, self.io.bufs.bgid)
        };
        let token = Token::new(kind, r.slot, r.generation);
        let e = opcode::RecvMulti::new(types::Fd(c.fd), group)
            .build()
            .user_data(token.to_user_data());
        // SAFETY: the kernel writes into provided buffers owned by `Io`.
        unsafe { self.io.push(e) };
    }

    /// Marks what `r` has queued as due and sends it this turn (or as soon as the send in
    /// flight completes).
    fn send_now(&mut self, r: ConnRef) {
        if let Some(c) = self.conns.get_mut(r) {
            c.send_due = true;
            self.dirty.push(r);
        }
    }

    fn start_send(&mut self, r: ConnRef) {
        let zc_params = self.zerocopy();
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.send_in_flight || c.queue.is_empty() || c.closing == Closing::ShutDown {
            return;
        }
        if c.rtmfp.is_some() {
            return self.rtmfp_send(r);
        }
        let n = c.queue.next_batch(&mut c.iov, MAX_IOV, MAX_SEND_BYTES);
        if n == 0 {
            return;
        }
        // Still due if the batch could not take everything (a fast-start burst).
        c.send_due = n < c.queue.queued_bytes();
        c.msghdr.msg_iov = c.iov.as_mut_ptr();
        c.msghdr.msg_iovlen = c.iov.len() as _;
        c.send_in_flight = true;
        let token = Token::new(OpKind::Send, r.slot, r.generation);
        let hdr: *const libc::msghdr = &*c.msghdr;
        let zc = zc_params
            .filter(|&(_, min_bytes)| n >= min_bytes && c.zc.has_room())
            .map(|(flags, _)| flags);
        WorkerStats::add(&self.shared.stats[self.id].sends, 1);
        if zc.is_some() {
            c.zc.submitted();
            WorkerStats::add(&self.shared.stats[self.id].zc_sends, 1);
        }
        let e = send_entry(types::Fd(c.fd), hdr, zc).user_data(token.to_user_data());
        // SAFETY: the msghdr is boxed in the connection, the iovecs live in `c.iov` and point
        // into Bytes held by the send queue; none is touched or freed while the send is in
        // flight (a connection is freed only once `send_in_flight` is false). A zero-copy
        // send's Bytes stay alive until its notification: the queue or `c.zc` holds them,
        // and a connection with notifications outstanding is not freed.
        unsafe { self.io.push(e) };
    }

    /// Zero-copy sends' flags (SENDMSG_ZC's ioprio) and smallest batch, when
    /// `live.send_zerocopy` is on and the kernel has them. Read per send, so that a reload
    /// applies at once, as `send_batch_ms` does.
    fn zerocopy(&self) -> Option<(u16, usize)> {
        let live = &self.config.live;
        if !live.send_zerocopy || !self.io.send_zc {
            return None;
        }
        let flags = if self.io.zc_usage {
            zerocopy::REPORT_USAGE
        } else {
            0
        };
        Some((flags, live.send_zerocopy_min_bytes as usize))
    }

    fn cancel(&mut self, r: ConnRef, kind: OpKind) {
        let target = Token::new(kind, r.slot, r.generation).to_user_data();
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
        // SAFETY: no buffers.
        unsafe { self.io.push(e) };
    }

    /// Reaps what the ring completed, handles each by its token, then hands the receive
    /// buffers that were used back to the kernel.
    fn handle_completions(&mut self, completions: &mut Vec<Completion>) {
        self.io.drain_at_most(completions, MAX_COMPLETIONS_PER_TURN);
        for c in completions.drain(..) {
            self.on_completion(c);
        }
        self.buffers_back = self.io.bufs.publish();
        self.io.ingest.publish();
    }

    fn on_completion(&mut self, c: Completion) {
        let Some(token) = Token::from_user_data(c.user_data) else {
            return;
        };
        match token.kind {
            OpKind::Accept => self.on_accept(token, c),
            OpKind::Recv | OpKind::IngestRecv => self.on_recv(token, c),
            OpKind::Send => self.on_send(token, c),
            OpKind::Mailbox => self.on_mailbox(c),
            OpKind::Connect => self.on_connect(token, c),
            OpKind::UdpRecv => self.on_udp_recv(token, c),
            OpKind::UdpSend => self.on_udp_sent(token, c),
            OpKind::File => self.on_file(token, c),
            OpKind::FileRead => self.on_file_read(token, c),
            OpKind::FileOpen => self.on_vod_open(token, c),
            OpKind::MulticastSend => self.on_multicast_sent(token, c),
            OpKind::Cancel => {}
        }
    }

    fn on_accept(&mut self, token: Token, c: Completion) {
        let index = (token.slot - LISTENER_SLOT_BASE) as usize;
        let listening = matches!(self.listeners.get(index), Some(Some(_)));
        if !Io::more(c.flags) && self.shutting_down.is_none() && listening {
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
        if self.shutting_down.is_some() || !listening {
            // SAFETY: a descriptor the kernel just gave us.
            unsafe { libc::close(fd) };
            return;
        }
        self.adopt(fd, false);
    }

    /// Makes a connection of an accepted socket: its slot, client and connect timer, and
    /// its first receive (into the ingest buffers if `ingest`: an upstream link's).
    fn adopt(&mut self, fd: RawFd, ingest: bool) -> ConnRef {
        let peer = peer_addr(fd).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        set_nodelay(fd);
        if self.config.server.tcp_notsent_lowat > 0 {
            set_notsent_lowat(fd, self.config.server.tcp_notsent_lowat);
        }
        let r = self.new_conn(fd, peer);
        if let Some(c) = self.conns.get_mut(r) {
            c.ingest = ingest;
        }
        debug!(worker = self.id, %peer, "connection accepted");
        self.arm_recv(r);
        r
    }

    /// A client's connection slot (an accepted socket, or an RTMFP session with `fd` -1):
    /// its RTMP session in the server role, its `Client`, send queue and connect timer.
    fn new_conn(&mut self, fd: RawFd, peer: SocketAddr) -> ConnRef {
        let session_config = self.session_config();
        let cfg = &self.config;
        let epoch = self.started.elapsed().as_millis() as u32;
        let conn = Conn {
            since: unix_now(),
            fd,
            peer,
            session: Session::server(session_config, &mut self.rng, epoch),
            client: Client::new(self.shared.next_client_id.fetch_add(1, Ordering::Relaxed)),
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
            recv_ingest: false,
            ingest: false,
            send_in_flight: false,
            zc: ZeroCopy::default(),
            send_due: false,
            media_pending: false,
            closing: Closing::Open,
            preamble_sent: false,
            amf3: false,
            bytes_out: 0,
            upstream: None,
            rtmfp: None,
        };
        let r = self.conns.insert(conn);
        WorkerStats::add(&self.stats().connections, 1);
        self.timers.arm(Timer {
            at: Instant::now() + Duration::from_millis(self.config.server.connect_timeout_ms),
            slot: r.slot,
            generation: r.generation,
            kind: TimerKind::Connect,
        });
        r
    }

    /// The RTMP session settings from the configuration, for either role.
    fn session_config(&self) -> SessionConfig {
        let cfg = &self.config;
        SessionConfig {
            limits: DecoderLimits {
                max_message_size: cfg.server.max_message_size,
                max_chunk_streams: cfg.server.max_chunk_streams,
            },
            chunk_size: cfg.server.chunk_size,
            window_ack_size: cfg.server.window_ack_size,
            peer_bandwidth: cfg.server.peer_bandwidth,
        }
    }

    /// Milliseconds on this worker's clock, for the sans-IO tables that take time in.
    fn clock_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    fn on_recv(&mut self, token: Token, c: Completion) {
        let r = ConnRef {
            slot: token.slot,
            generation: token.generation,
        };
        let bid = Io::buffer_id(c.flags);
        let more = Io::more(c.flags);
        let ingest = token.kind == OpKind::IngestRecv;
        // Every client buffer was in use: it waits its turn for one (see `starved`).
        // Ingest's receives are armed again at once, below: few, and their buffers come
        // back every turn.
        let starved = -c.result == libc::ENOBUFS && !ingest;
        let mut events = std::mem::take(&mut self.events);
        let mut failure: Option<(String, bool)> = None;
        match self.conns.get_mut(r) {
            None => {}
            Some(conn) => {
                if !more {
                    conn.recv_armed = false;
                }
                if c.result > 0 {
                    WorkerStats::add(&self.shared.stats[self.id].bytes_in, c.result as u64);
                    if let Some(bid) = bid {
                        if conn.closing == Closing::Open {
                            let data = self.io.recv_bufs(ingest).buffer(bid, c.result as usize);
                            if let Err(e) = conn.session.feed(data, &mut conn.out, &mut events) {
                                failure = Some((e.to_string(), false));
                            }
                        }
                    }
                } else if c.result == 0 {
                    failure = Some(("client closed the connection".into(), true));
                } else if starved {
                    WorkerStats::add(&self.shared.stats[self.id].recv_no_buffer, 1);
                    if conn.closing == Closing::Open {
                        self.starved.push_back(r);
                    }
                } else if !matches!(-c.result, libc::ECANCELED | libc::ENOBUFS) {
                    let e = std::io::Error::from_raw_os_error(-c.result);
                    failure = Some((format!("receive failed: {e}"), true));
                }
                if !more && !starved && conn.closing == Closing::Open && failure.is_none() {
                    self.rearm.push(r);
                }
            }
        }
        if let Some(bid) = bid {
            self.io.recv_bufs(ingest).recycle(bid);
        }
        let link = self.conns.get(r).is_some_and(|c| c.upstream.is_some());
        for ev in events.drain(..) {
            if link {
                self.on_link_event(r, ev);
            } else {
                self.on_event_or_defer(r, ev);
            }
        }
        self.events = events;
        self.flush_out(r);
        if let Some((reason, normal)) = failure {
            self.close(r, &reason, !normal);
        }
        self.maybe_free(r);
    }

    fn on_send(&mut self, token: Token, c: Completion) {
        let r = ConnRef {
            slot: token.slot,
            generation: token.generation,
        };
        let Some(conn) = self.conns.get_mut(r) else {
            return;
        };
        if Io::notif(c.flags) {
            // A zero-copy send's second completion: its send already completed.
            conn.zc.notified();
            self.count_notif(c.result);
            self.maybe_free(r);
            return;
        }
        conn.send_in_flight = false;
        let sent = usize::try_from(c.result).unwrap_or(0);
        let short = sent < conn.queue.in_flight_bytes();
        conn.zc.completed(&mut conn.queue, sent, Io::more(c.flags));
        if c.result < 0 {
            if conn.closing == Closing::Open {
                let e = std::io::Error::from_raw_os_error(-c.result);
                self.close(r, &format!("send failed: {e}"), false);
            } else {
                self.shutdown(r);
            }
        } else {
            conn.bytes_out += c.result as u64;
            WorkerStats::add(&self.shared.stats[self.id].bytes_out, c.result as u64);
            if conn.closing == Closing::Flushing && conn.queue.is_empty() {
                self.shutdown(r);
            } else if short || conn.send_due || conn.closing == Closing::Flushing {
                // Media queued while this send was in flight is not due: it waits for its
                // batch (see `live.send_batch_ms`), which is what keeps sends large.
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

    fn post(&mut self, worker: usize, msg: WorkerMsg) {
        post_to(&self.shared.mailboxes, &mut self.wake, worker, msg);
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
                let Some(stream) = self.streams.get_mut(&key) else {
                    return;
                };
                if let Some((publish_id, snapshot)) = stream.add_worker(worker) {
                    self.post(
                        worker,
                        WorkerMsg::StreamStarted {
                            key,
                            publish_id,
                            snapshot,
                        },
                    );
                }
            }
            WorkerMsg::Unsubscribe { key, worker } => {
                if let Some(stream) = self.streams.get_mut(&key) {
                    stream.remove_worker(worker);
                }
                self.release_unwanted_pull(&key);
            }
            WorkerMsg::StreamStarted {
                key,
                publish_id,
                snapshot,
            } => {
                let Some(stream) = self.streams.get_mut(&key) else {
                    return;
                };
                if stream.follow_remote(publish_id, snapshot) {
                    self.went_live(&key);
                }
            }
            WorkerMsg::Media {
                key,
                publish_id,
                message,
            } => {
                let from = |s: &Source| matches!(s, Source::Remote { publish_id: id } if *id == publish_id);
                let data = message.type_id == msg_type::DATA_AMF0;
                if data && crate::media::data_frame::is_clear(&message.payload) {
                    return self.clear_metadata(&key, message, from);
                }
                let cache = !data || crate::media::data_frame::is_metadata(&message.payload);
                self.publish_frame(&key, message, cache, from);
            }
            WorkerMsg::StreamStopped { key, publish_id } => {
                let Some(stream) = self.streams.get(&key) else {
                    return;
                };
                if stream.publish_id() == Some(publish_id)
                    && matches!(stream.source, Source::Remote { .. })
                {
                    self.went_offline(&key);
                }
            }
            WorkerMsg::TierStream { key, live } => self.tell_children(&key, live),
            WorkerMsg::UpstreamCatalog { app, name, live } => {
                self.catalog_changed(&app, &name, live)
            }
            WorkerMsg::Query { query, ask } => self.answer_query(query, ask),
            WorkerMsg::Reload(config) => self.reload(config),
            WorkerMsg::Resolved { owner, result } => self.resolved(owner, result),
            WorkerMsg::AuthDecision {
                request,
                allow,
                reason,
            } => self.auth_decided(request, allow, reason),
            WorkerMsg::RpcAnswer { request, outcome } => self.rpc_answered(request, &outcome),
            WorkerMsg::SoRequest {
                instance,
                user,
                client,
                message,
            } => self.so_request(instance, user, client, message),
            WorkerMsg::SoLeave { instance, user } => self.so_leave(instance, user),
            WorkerMsg::SoDeliver {
                instance,
                target,
                message,
            } => self.so_deliver(instance, target, message),
            WorkerMsg::MulticastAdd(spec) => self.add_multicast(spec),
            WorkerMsg::MulticastRemove { stream, group } => self.remove_multicast(&stream, group),
            WorkerMsg::Script(msg) => self.on_script(msg),
            WorkerMsg::RtmfpDatagram {
                endpoint,
                from,
                payload,
            } => self.rtmfp_forwarded(endpoint, from, &payload),
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
            let e = opcode::AsyncCancel::new(token)
                .build()
                .user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
            // SAFETY: no buffers.
            unsafe { self.io.push(e) };
        }
        for r in self.conns.refs() {
            self.close(r, "server shutting down", false);
        }
        self.stop_outbound();
    }

    /// Runs the timers due now, each by its owner.
    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some((owner, kind)) = self.timers.pop_due(now) {
            let r = match owner {
                Owner::Conn(r) => r,
                Owner::Pull { pull, group } => {
                    self.pull_timer(pull, group, kind);
                    continue;
                }
                Owner::Push(push) => {
                    self.push_timer(push, kind);
                    continue;
                }
                Owner::Registration(r) => {
                    self.registration_timer(r, kind);
                    continue;
                }
                Owner::Worker => {
                    self.worker_timer(kind, now);
                    continue;
                }
                Owner::Recording(_) | Owner::ScriptNc(_) => {
                    debug_assert!(
                        false,
                        "recordings and script connections arm no timers: {kind:?}"
                    );
                    continue;
                }
                Owner::Vod(crate::engine::owner::VodReader::Server(id)) => {
                    self.server_stream_pump(id);
                    continue;
                }
                Owner::Vod(_) | Owner::Rtmfp(_) => continue,
            };
            let Some(c) = self.conns.get(r) else { continue };
            match kind {
                TimerKind::Connect => {
                    let connected = c
                        .upstream
                        .as_ref()
                        .map_or(c.client.nc.is_connected(), |u| u.is_connected());
                    if !connected && c.closing == Closing::Open {
                        let secs = self.config.server.connect_timeout_ms as f64 / 1000.0;
                        self.close(
                            r,
                            &format!("no handshake and connect within {secs} s"),
                            false,
                        );
                    }
                }
                TimerKind::Auth(request) => self.auth_timed_out(r, request),
                TimerKind::CallDeadline => self.calls_expired(r, now),
                TimerKind::RpcDeadline(request) => self.rpc_timed_out(request),
                TimerKind::CloseFlush => {
                    if c.closing == Closing::Flushing {
                        self.shutdown(r);
                    }
                }
                TimerKind::NotifWait => {
                    if c.closing == Closing::ShutDown && c.zc.outstanding() {
                        debug!(
                            worker = self.id,
                            peer = %c.peer,
                            "zero-copy data still unacknowledged; resetting"
                        );
                        abort_socket(c.fd);
                    }
                }
                TimerKind::VodPace(stream_id) => self.vod_pump(r, stream_id),
                TimerKind::Tick | TimerKind::Retry | TimerKind::Idle | TimerKind::ListGrace => {
                    debug_assert!(false, "a worker or pull timer armed for a connection")
                }
            }
            self.maybe_free(r);
        }
    }

    /// The worker's own timers.
    fn worker_timer(&mut self, kind: TimerKind, now: Instant) {
        match kind {
            TimerKind::Tick => {
                self.tick(now);
                self.timers
                    .arm_for(Owner::Worker, now + TICK, TimerKind::Tick);
            }
            TimerKind::ListGrace => self.list_grace_over(now),
            TimerKind::Connect
            | TimerKind::CloseFlush
            | TimerKind::Auth(_)
            | TimerKind::CallDeadline
            | TimerKind::RpcDeadline(_)
            | TimerKind::NotifWait
            | TimerKind::Retry
            | TimerKind::Idle
            | TimerKind::VodPace(_) => {
                debug_assert!(false, "a connection's timer armed for the worker: {kind:?}");
            }
        }
    }

    fn rearm_receives(&mut self) {
        for r in std::mem::take(&mut self.rearm) {
            if self
                .conns
                .get(r)
                .is_some_and(|c| c.closing == Closing::Open)
            {
                self.arm_recv(r);
            }
        }
        // As many starved receives as client buffers came back this turn (a few more, in
        // case buffers the kernel still held came free meanwhile): each takes at least one.
        let mut budget = usize::from(self.buffers_back).max(MIN_STARVED_REARMS);
        while budget > 0 {
            let Some(r) = self.starved.pop_front() else {
                break;
            };
            if self
                .conns
                .get(r)
                .is_some_and(|c| c.closing == Closing::Open && !c.recv_armed)
            {
                self.arm_recv(r);
                budget -= 1;
            }
        }
    }

    fn flush_dirty(&mut self) {
        self.catch_up();
        let mut dirty = std::mem::take(&mut self.dirty);
        for r in dirty.drain(..) {
            self.start_send(r);
        }
        self.dirty = dirty;
        if self.media.at.is_some_and(|at| at <= Instant::now()) {
            for key in std::mem::take(&mut self.pending_streams) {
                self.flush_stream(&key);
            }
            self.media.at = None;
            let mut dirty = std::mem::take(&mut self.media.viewers);
            for r in dirty.drain(..) {
                if let Some(c) = self.conns.get_mut(r) {
                    c.media_pending = false;
                    c.send_due = true;
                }
                self.start_send(r);
            }
            self.media.viewers = dirty;
        }
    }

    /// Closes a connection: its streams are released at once (others are not kept waiting),
    /// then what is queued is flushed for up to `CLOSE_FLUSH` before the socket shuts down.
    fn close(&mut self, r: ConnRef, reason: &str, error: bool) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.closing != Closing::Open {
            return;
        }
        let (peer, app) = (c.peer, c.client.app().to_string());
        self.so_client_closed(r);
        self.script_client_closed(r);
        self.emit("disconnect", r, None, Some(reason));
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if let Some(request) = c.client.gate.clear() {
            self.pending_auth.remove(&request);
            self.pending_script.remove(&request);
        }
        for request in c.client.incoming.clear() {
            self.pending_rpc.remove(&request);
        }
        let client_id = c.client.id;
        let queries: Vec<u64> = c
            .client
            .calls
            .drain()
            .filter_map(|call| call.query)
            .collect();
        for query in queries {
            self.client_gone(query, client_id);
        }
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if error {
            warn!(%peer, %app, reason, "connection closed");
        } else {
            info!(%peer, %app, reason, "connection closed");
        }
        let mut actions = Vec::new();
        c.client.nc.close_all(&mut actions);
        c.closing = Closing::Flushing;
        let link = c.upstream.as_ref().map(|u| u.owner());
        for a in actions {
            match a {
                Action::StopPublish { key, .. } => self.stop_publish(r, &key),
                Action::StopPlay { stream_id, key } => self.stop_play(r, stream_id, &key),
                _ => {}
            }
        }
        match link {
            Some(Owner::Pull { pull, group }) => self.link_closed(r, pull, group, reason),
            Some(Owner::Push(push)) => self.push_closed(r, push, reason),
            Some(Owner::Registration(reg)) => self.registration_closed(r, reg, reason),
            Some(Owner::ScriptNc(nc)) => self.script_nc_closed(r, nc, reason),
            _ => {}
        }
        if self.conns.get(r).is_some_and(|c| c.rtmfp.is_some()) {
            // Its queue goes to its flows now; it shuts down once they are acknowledged
            // (`rtmfp_send`), or at the flush timer.
            self.rtmfp_send(r);
        }
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.closing == Closing::ShutDown {
            return;
        }
        if c.queue.is_empty() && !c.send_in_flight && c.rtmfp.is_none() {
            self.shutdown(r);
        } else {
            self.timers.arm(Timer {
                at: Instant::now() + CLOSE_FLUSH,
                slot: r.slot,
                generation: r.generation,
                kind: TimerKind::CloseFlush,
            });
        }
    }

    fn shutdown(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.closing == Closing::ShutDown {
            return;
        }
        if c.closing == Closing::Open {
            // Not through `close`: release its streams first.
            self.close(r, "closed", false);
        }
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        c.closing = Closing::ShutDown;
        if c.rtmfp.is_some() {
            self.rtmfp_end(r);
            return self.maybe_free(r);
        }
        // SAFETY: shutting down a socket this connection owns; it wakes any operation the
        // ring has in progress on it, which then completes and is handed back.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        let (recv, send, ingest) = (c.recv_armed, c.send_in_flight, c.recv_ingest);
        if c.zc.outstanding() {
            // Notifications come when the peer acknowledges the data, which a peer that
            // stopped reading never does: give a live one the time a flush gets.
            self.timers.arm(Timer {
                at: Instant::now() + CLOSE_FLUSH,
                slot: r.slot,
                generation: r.generation,
                kind: TimerKind::NotifWait,
            });
        }
        if recv {
            let kind = if ingest {
                OpKind::IngestRecv
            } else {
                OpKind::Recv
            };
            self.cancel(r, kind);
        }
        if send {
            self.cancel(r, OpKind::Send);
        }
        self.maybe_free(r);
    }

    /// Frees a shut-down connection once the ring holds nothing of it, and the kernel reads
    /// none of its memory (zero-copy notifications).
    fn maybe_free(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get(r) else { return };
        if c.closing == Closing::ShutDown
            && !c.recv_armed
            && !c.send_in_flight
            && !c.zc.outstanding()
        {
            if let Some(c) = self.conns.remove(r) {
                if c.fd >= 0 {
                    // SAFETY: no operation of the ring refers to this descriptor any more.
                    unsafe { libc::close(c.fd) };
                }
                if c.rtmfp.is_some() {
                    WorkerStats::sub(&self.shared.stats[self.id].rtmfp_sessions, 1);
                }
                WorkerStats::sub(&self.shared.stats[self.id].connections, 1);
            }
        }
    }

    fn count_notif(&self, result: i32) {
        let stats = self.stats();
        WorkerStats::add(&stats.zc_notifs, 1);
        // The result is the usage report's bits, not a byte count or an error.
        if self.io.zc_usage && (result as u32) & zerocopy::USAGE_COPIED != 0 {
            WorkerStats::add(&stats.zc_copied, 1);
        }
    }

    /// For whoever measures `live.send_zerocopy`: how many sends went zero-copy, and how
    /// many of those the kernel copied after all.
    fn log_zerocopy(&self) {
        let stats = self.stats();
        let sends = WorkerStats::get(&stats.zc_sends);
        if sends == 0 {
            return;
        }
        let notifications = WorkerStats::get(&stats.zc_notifs);
        if self.io.zc_usage {
            let copied = WorkerStats::get(&stats.zc_copied);
            info!(
                worker = self.id,
                sends, notifications, copied, "zero-copy sends"
            );
        } else {
            info!(
                worker = self.id,
                sends,
                notifications,
                copied = "not reported",
                "zero-copy sends"
            );
        }
    }
}

/// The send for the batch in the msghdr: zero-copy with these flags (IORING_OP_SENDMSG_ZC's
/// ioprio), or copying.
fn send_entry(fd: types::Fd, hdr: *const libc::msghdr, zerocopy: Option<u16>) -> squeue::Entry {
    let flags = libc::MSG_NOSIGNAL as u32;
    match zerocopy {
        Some(zc_flags) => opcode::SendMsgZc::new(fd, hdr)
            .ioprio(zc_flags)
            .flags(flags)
            .build(),
        None => opcode::SendMsg::new(fd, hdr).flags(flags).build(),
    }
}

/// `live.send_zerocopy` is on but the kernel lacks it: said once (by worker 0), at start or
/// when a reload turns it on.
fn warn_no_zerocopy() {
    warn!(
        "live.send_zerocopy: this kernel's io_uring lacks zero-copy sends \
         (IORING_OP_SENDMSG_ZC, Linux 6.1); sending normally"
    );
}

/// Resets a TCP connection without closing its descriptor: connect(2) with AF_UNSPEC
/// disconnects the socket, discarding what it still queues, so the kernel releases (and
/// notifies) zero-copy data a peer will never acknowledge. The descriptor is closed as
/// usual when the connection is freed.
fn abort_socket(fd: RawFd) {
    // SAFETY: sockaddr is plain old data; only its family is read for AF_UNSPEC.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: connect on a socket this worker owns, with a pointer to a live sockaddr of the
    // size given. Failure leaves the socket as it was: the notifications then come when the
    // kernel gives up on the peer.
    unsafe {
        libc::connect(
            fd,
            std::ptr::addr_of!(addr),
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        );
    }
}

/// Media waiting for the next flush: sent together once `at` passes, several messages per
/// send instead of one (see `live.send_batch_ms`).
#[derive(Default)]
struct MediaFlush {
    /// Viewers with media queued for the flush, each listed once.
    viewers: Vec<ConnRef>,
    at: Option<Instant>,
}

impl MediaFlush {
    /// The flush goes `batch_ms` after the first message that waits for it.
    fn arm(&mut self, batch_ms: u32) {
        if self.at.is_none() {
            self.at = Some(Instant::now() + Duration::from_millis(u64::from(batch_ms)));
        }
    }

    /// Lists a viewer whose queue has media for the flush, once however many messages join.
    fn list(&mut self, r: ConnRef, c: &mut Conn, batch_ms: u32) {
        if !c.media_pending {
            c.media_pending = true;
            self.viewers.push(r);
        }
        self.arm(batch_ms);
    }
}

/// Queues `msg` for `worker`, which is woken once at the end of this loop turn. A free
/// function over the two fields it needs, so callers can hold other parts of the worker
/// (the fan-out borrows a stream's worker list while it posts).
fn post_to(mailboxes: &[Mailbox<WorkerMsg>], wake: &mut [bool], worker: usize, msg: WorkerMsg) {
    if let Some(m) = mailboxes.get(worker) {
        m.post(msg);
        if let Some(w) = wake.get_mut(worker) {
            *w = true;
        }
    }
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
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn set_notsent_lowat(fd: RawFd, bytes: u32) {
    let value = bytes as libc::c_int;
    // SAFETY: setsockopt with a pointer to a live c_int of the size given. Failure leaves
    // the kernel's default, which is not an error.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
