//! A small blocking RTMP client for tests, over std::net: the client role of the project's
//! sans-IO `Session` behind a socket. Every read is bounded by a timeout; raw socket access
//! is there for the bad-input tests.

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::command::Command;
use dataplane::proto::rtmp::chunk_decoder::DEFAULT_CHUNK_SIZE;
use dataplane::proto::rtmp::handshake::HandshakeKind;
use dataplane::proto::rtmp::session::{CallAnswer, Session, SessionConfig, SessionEvent};
use dataplane::proto::rtmp::shared_object::SoMessage;
use dataplane::proto::rtmp::{msg_type, Message};
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bound on TCP connect and on the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one write (a server that stops reading must not hang a test).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer length announced after play, as Flash Player and ffmpeg do.
const BUFFER_LENGTH_MS: u32 = 3000;
/// The Flash Player version our connect announces (what ffmpeg sends).
const FLASH_VER: &str = "LNX 9,0,124,2";
const READ_BUF: usize = 64 * 1024;

/// A command the server sent: `_result`, `_error`, `onStatus`, ...
pub type Reply = Command;

pub struct RtmpClient {
    stream: TcpStream,
    local: SocketAddr,
    session: Session,
    /// Events not yet taken by a `read_*` or `wait_*`.
    inbox: VecDeque<SessionEvent>,
    events: Vec<SessionEvent>,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// The NetStream from `create_stream`.
    pub stream_id: Option<u32>,
}

/// An error for "the deadline passed".
fn timed_out(what: &str) -> io::Error {
    io::Error::new(ErrorKind::TimedOut, format!("timed out waiting for {what}"))
}

/// The command an event carries, if it is one: a call, an answer or a status.
fn command_of(event: SessionEvent) -> Option<Command> {
    match event {
        SessionEvent::Command { command, .. }
        | SessionEvent::Result { command, .. }
        | SessionEvent::Error { command, .. }
        | SessionEvent::Status { command, .. } => Some(command),
        _ => None,
    }
}

impl RtmpClient {
    /// A TCP connection to `addr`, without any RTMP yet (for raw bad-input tests).
    pub fn tcp(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// TCP connect and the simple handshake.
    pub fn open(addr: SocketAddr) -> io::Result<RtmpClient> {
        RtmpClient::handshake(RtmpClient::tcp(addr)?, HandshakeKind::Simple)
    }

    /// Runs the handshake on a connected socket.
    pub fn handshake(stream: TcpStream, kind: HandshakeKind) -> io::Result<RtmpClient> {
        let local = stream.local_addr()?;
        let mut out = Vec::with_capacity(2 * 1537);
        let config = SessionConfig::client(DEFAULT_CHUNK_SIZE);
        let session = Session::client(config, kind, &mut rand::thread_rng(), 0, &mut out);
        let mut client = RtmpClient {
            stream,
            local,
            session,
            inbox: VecDeque::new(),
            events: Vec::new(),
            buf: vec![0u8; READ_BUF],
            out,
            stream_id: None,
        };
        client.flush()?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while !client.session.is_handshake_done() {
            client.read_some(deadline, "the handshake")?;
        }
        Ok(client)
    }

    /// Handshake, `connect` to `app` and `createStream`: ready to play or publish.
    pub fn connected(addr: SocketAddr, app: &str) -> io::Result<RtmpClient> {
        let mut client = RtmpClient::open(addr)?;
        client.connect(app, &format!("rtmp://{addr}/{app}"))?;
        client.create_stream()?;
        Ok(client)
    }

    /// The client's own address: the `peer=` the server logs for it.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The socket, for raw writes and reads.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes raw bytes (no chunking).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends what the session wrote.
    fn flush(&mut self) -> io::Result<()> {
        let sent = self.stream.write_all(&self.out);
        self.out.clear();
        sent
    }

    /// Chunks and sends one message.
    pub fn send(&mut self, msg: &Message) -> io::Result<()> {
        self.session.write_message(msg, &mut self.out);
        self.flush()
    }

    /// Sends a command (name, transaction id, command object, args) on a message stream;
    /// returns its transaction id.
    pub fn send_command(
        &mut self,
        stream_id: u32,
        name: &str,
        command_object: Amf0Value,
        args: &[Amf0Value],
    ) -> io::Result<f64> {
        let transaction = self
            .session
            .call(stream_id, name, command_object, args, &mut self.out)
            .map_err(io::Error::other)?;
        self.flush()?;
        Ok(f64::from(transaction))
    }

    /// `connect`; waits for `_result` with NetConnection.Connect.Success.
    pub fn connect(&mut self, app: &str, tc_url: &str) -> io::Result<Reply> {
        let tx = self
            .session
            .connect(app, tc_url, FLASH_VER, &mut self.out)
            .map_err(io::Error::other)?;
        self.flush()?;
        let reply = self.wait_reply(f64::from(tx), Duration::from_secs(10))?;
        let code = info_code(&reply);
        if reply.name != "_result" || code.as_deref() != Some("NetConnection.Connect.Success") {
            return Err(io::Error::other(format!("connect refused: {reply:?}")));
        }
        Ok(reply)
    }

    /// `createStream`; waits for its answer and remembers the stream id.
    pub fn create_stream(&mut self) -> io::Result<u32> {
        let tx = self
            .session
            .create_stream(&mut self.out)
            .map_err(io::Error::other)?;
        self.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.next_event(deadline, "createStream's answer")? {
                SessionEvent::StreamCreated {
                    transaction,
                    stream_id,
                } if transaction == tx => {
                    self.stream_id = Some(stream_id);
                    return Ok(stream_id);
                }
                SessionEvent::Error {
                    transaction,
                    command,
                    ..
                } if transaction == tx => {
                    return Err(io::Error::other(format!(
                        "createStream failed: {command:?}"
                    )))
                }
                _ => {}
            }
        }
    }

    fn netstream(&self) -> io::Result<u32> {
        self.stream_id
            .ok_or_else(|| io::Error::other("no NetStream: call create_stream first"))
    }

    /// `play(name, -2)` on our NetStream, then Set Buffer Length; returns when play was sent.
    /// Statuses and media follow through `read_message` and the `wait_*` helpers.
    pub fn play(&mut self, name: &str) -> io::Result<Instant> {
        let sid = self.netstream()?;
        self.session.play(sid, name, &mut self.out);
        self.session
            .set_buffer_length(sid, BUFFER_LENGTH_MS, &mut self.out);
        self.flush()?;
        Ok(Instant::now())
    }

    /// Set Buffer Length (a user control message) for `stream_id`.
    pub fn set_buffer_length(&mut self, stream_id: u32, ms: u32) -> io::Result<()> {
        self.session.set_buffer_length(stream_id, ms, &mut self.out);
        self.flush()
    }

    /// `publish(name, "live")` on our NetStream (no media is sent).
    pub fn publish(&mut self, name: &str) -> io::Result<()> {
        self.publish_as(name, "live")
    }

    /// `publish(name, kind)`: "live", "record" or "append".
    pub fn publish_as(&mut self, name: &str, kind: &str) -> io::Result<()> {
        let sid = self.netstream()?;
        self.session.publish(sid, name, kind, &mut self.out);
        self.flush()
    }

    /// Calls a NetConnection method and waits for its `_result` or `_error`.
    pub fn call(&mut self, name: &str, args: &[Amf0Value], timeout: Duration) -> io::Result<Reply> {
        let tx = self.send_command(0, name, Amf0Value::Null, args)?;
        self.wait_reply(tx, timeout)
    }

    /// Waits for the server to call `method` on us and answers with what `answer` makes
    /// of the call; returns the call.
    pub fn answer_call(
        &mut self,
        method: &str,
        timeout: Duration,
        answer: impl FnOnce(&Command) -> CallAnswer,
    ) -> io::Result<Command> {
        let call = self.wait_command(timeout, method, |c| c.name == method)?;
        let reply = answer(&call);
        self.session
            .answer(0, call.transaction_id, reply, &mut self.out);
        self.flush()?;
        Ok(call)
    }

    /// Waits for `_result`/`_error` with this transaction id; other messages are skipped.
    pub fn wait_reply(&mut self, transaction: f64, timeout: Duration) -> io::Result<Reply> {
        self.wait_command(timeout, "a reply", |c| {
            (c.name == "_result" || c.name == "_error") && c.transaction_id == transaction
        })
    }

    /// Sends a shared-object message: type 16 when `amf3`, else 19.
    pub fn send_shared_object(&mut self, amf3: bool, message: &SoMessage) -> io::Result<()> {
        self.session
            .write_shared_object(amf3, message, &mut self.out);
        self.flush()
    }

    /// The next shared-object message of object `name`; anything else before it is skipped.
    pub fn wait_shared_object(&mut self, name: &str, timeout: Duration) -> io::Result<SoMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            if let SessionEvent::SharedObject { message, .. } =
                self.next_event(deadline, "a shared object message")?
            {
                if message.name == name {
                    return Ok(message);
                }
            }
        }
    }

    /// Waits for `onStatus` with this `info.code`; other messages are skipped.
    pub fn wait_status(&mut self, code: &str, timeout: Duration) -> io::Result<Reply> {
        self.wait_command(timeout, code, |c| {
            c.name == "onStatus" && info_code(c).as_deref() == Some(code)
        })
    }

    /// Reads until a command satisfies `want`; the error names what else arrived.
    pub fn wait_command(
        &mut self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&Command) -> bool,
    ) -> io::Result<Reply> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let event = match self.next_event(deadline, what) {
                Ok(event) => event,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{e} (waiting for {what}; commands seen: {seen:?})"),
                    ))
                }
            };
            if let Some(command) = command_of(event) {
                if want(&command) {
                    return Ok(command);
                }
                seen.push(format!("{} {:?}", command.name, info_code(&command)));
            }
        }
    }

    /// Reads until the first video message; returns it with its arrival time.
    pub fn wait_first_video(&mut self, timeout: Duration) -> io::Result<(Message, Instant)> {
        self.wait_media(msg_type::VIDEO, timeout)
    }

    /// Reads until the first message of `type_id` (audio or video).
    pub fn wait_media(&mut self, type_id: u8, timeout: Duration) -> io::Result<(Message, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let msg = self.read_message(remaining)?;
            if msg.type_id == type_id {
                return Ok((msg, Instant::now()));
            }
        }
    }

    /// The next audio, video or data message; commands and statuses before it are skipped
    /// (`read_event` has them).
    pub fn read_message(&mut self, timeout: Duration) -> io::Result<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_event(deadline, "a message")? {
                SessionEvent::Media { message } | SessionEvent::Data { message } => {
                    return Ok(message)
                }
                _ => {}
            }
        }
    }

    /// The next thing the server said: a command, an answer, a status, data or media.
    /// Protocol control (pings, acknowledgements) is handled by the session.
    pub fn read_event(&mut self, timeout: Duration) -> io::Result<SessionEvent> {
        self.next_event(Instant::now() + timeout, "a message")
    }

    fn next_event(&mut self, deadline: Instant, what: &str) -> io::Result<SessionEvent> {
        loop {
            if let Some(event) = self.inbox.pop_front() {
                return Ok(event);
            }
            self.read_some(deadline, what)?;
        }
    }

    /// Reads once and feeds the session; its events join the inbox and what it has to
    /// send back (handshake, acknowledgements, ping replies) is sent.
    fn read_some(&mut self, deadline: Instant, what: &str) -> io::Result<()> {
        let n = read_until(&mut self.stream, &mut self.buf, deadline, what)?;
        let fed = self
            .session
            .feed(&self.buf[..n], &mut self.out, &mut self.events);
        self.inbox.extend(self.events.drain(..));
        self.flush()?;
        fed.map_err(|e| io::Error::new(ErrorKind::InvalidData, format!("from server: {e}")))
    }

    /// Drains whatever the server still sends until it closes the connection (read returns 0
    /// or an error such as a reset); fails if it is still open at the deadline.
    pub fn wait_closed(&mut self, timeout: Duration) -> io::Result<()> {
        wait_closed(&mut self.stream, timeout)
    }

    /// Closes our side.
    pub fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Reads into `buf` before `deadline`; 0 bytes (the server closed) is an error here.
fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    what: &str,
) -> io::Result<usize> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out(what));
        }
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("server closed the connection (waiting for {what})"),
                ))
            }
            Ok(n) => return Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out(what))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads and discards until the peer closes (0 or a hard error) or the deadline passes.
pub fn wait_closed(stream: &mut TcpStream, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out("the server to close the connection"));
        }
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out("the server to close the connection"))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Reset, broken pipe: closed.
            Err(_) => return Ok(()),
        }
    }
}

/// `info.code` of an onStatus / `_result` / `_error`.
pub fn info_code(command: &Command) -> Option<String> {
    command.info_str("code").map(str::to_string)
}

/// Whether a video message payload starts a key frame of AVC (FLV VideoTagHeader: frame type
/// 1 in the high nibble, codec id 7 in the low one).
pub fn is_avc_key_frame(payload: &[u8]) -> bool {
    payload.first() == Some(&0x17)
}

/// Whether a video message is an AVC sequence header (decoder configuration), not a frame.
pub fn is_avc_sequence_header(payload: &[u8]) -> bool {
    payload.len() >= 2 && payload[0] & 0x0f == 7 && payload[1] == 0
}
