//! A small blocking RTMP client for tests, over std::net, built on the project's sans-IO
//! cores (handshake, chunk decoder/encoder, control messages, AMF0). Every read is bounded by
//! a timeout; raw socket access is there for the bad-input tests.

use bytes::Bytes;
use dataplane::proto::amf0::{self, Amf0Value};
use dataplane::proto::command::Command;
use dataplane::proto::rtmp::chunk_decoder::{ChunkDecoder, DecoderLimits};
use dataplane::proto::rtmp::chunk_encoder::ChunkEncoder;
use dataplane::proto::rtmp::control::{ControlMessage, UserControl};
use dataplane::proto::rtmp::handshake::{ClientHandshake, HandshakeKind};
use dataplane::proto::rtmp::{csid, msg_type, Message};
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bound on TCP connect and on the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one write (a server that stops reading must not hang a test).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunk stream our NetStream commands go on (ffmpeg uses 8 for play/publish).
const STREAM_COMMAND_CSID: u32 = 8;
/// Buffer length announced after play, as Flash Player and ffmpeg do.
const BUFFER_LENGTH_MS: u32 = 3000;
const READ_BUF: usize = 64 * 1024;

/// A command the server sent: `_result`, `_error`, `onStatus`, ...
pub type Reply = Command;

pub struct RtmpClient {
    stream: TcpStream,
    local: SocketAddr,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    inbox: VecDeque<Message>,
    buf: Vec<u8>,
    next_transaction: f64,
    /// Bytes received since the handshake, and at the last Acknowledgement we sent.
    bytes_in: u64,
    acked: u64,
    /// The server's Window Acknowledgement Size, once it sent one.
    window: Option<u32>,
    /// The NetStream from `create_stream`.
    pub stream_id: Option<u32>,
}

/// An error for "the deadline passed".
fn timed_out(what: &str) -> io::Error {
    io::Error::new(ErrorKind::TimedOut, format!("timed out waiting for {what}"))
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
    pub fn handshake(mut stream: TcpStream, kind: HandshakeKind) -> io::Result<RtmpClient> {
        let local = stream.local_addr()?;
        let mut out = Vec::with_capacity(2 * 1537);
        let mut hs = ClientHandshake::new(&mut rand::thread_rng(), 0, kind, &mut out);
        stream.write_all(&out)?;
        out.clear();
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut buf = vec![0u8; READ_BUF];
        let mut leftover = Vec::new();
        while !hs.is_done() {
            let n = read_until(&mut stream, &mut buf, deadline, "the handshake")?;
            let used = hs
                .feed(&buf[..n], &mut out)
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
            if !out.is_empty() {
                stream.write_all(&out)?;
                out.clear();
            }
            if hs.is_done() {
                leftover.extend_from_slice(&buf[used..n]);
            }
        }
        let mut client = RtmpClient {
            stream,
            local,
            decoder: ChunkDecoder::new(DecoderLimits::default()),
            encoder: ChunkEncoder::new(128),
            inbox: VecDeque::new(),
            buf,
            next_transaction: 1.0,
            bytes_in: 0,
            acked: 0,
            window: None,
            stream_id: None,
        };
        if !leftover.is_empty() {
            client.ingest(&leftover)?;
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

    /// Chunks and sends one message.
    pub fn send(&mut self, msg: &Message) -> io::Result<()> {
        let mut out = Vec::with_capacity(msg.payload.len() + 64);
        self.encoder.encode(msg, &mut out);
        self.stream.write_all(&out)
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
        let transaction = self.next_transaction;
        self.next_transaction += 1.0;
        let mut values = vec![
            Amf0Value::string(name),
            Amf0Value::Number(transaction),
            command_object,
        ];
        values.extend_from_slice(args);
        let mut payload = Vec::new();
        amf0::encode_all(values.iter(), &mut payload);
        let chunk_stream = if stream_id == 0 {
            csid::COMMAND
        } else {
            STREAM_COMMAND_CSID
        };
        self.send(&Message {
            csid: chunk_stream,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id,
            payload: Bytes::from(payload),
        })?;
        Ok(transaction)
    }

    /// `connect`; waits for `_result` with NetConnection.Connect.Success.
    pub fn connect(&mut self, app: &str, tc_url: &str) -> io::Result<Reply> {
        let object = Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("flashVer", Amf0Value::string("LNX 9,0,124,2")),
            ("tcUrl", Amf0Value::string(tc_url)),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
            ("objectEncoding", Amf0Value::Number(0.0)),
        ]);
        let tx = self.send_command(0, "connect", object, &[])?;
        let reply = self.wait_reply(tx, Duration::from_secs(10))?;
        let code = info_code(&reply);
        if reply.name != "_result" || code.as_deref() != Some("NetConnection.Connect.Success") {
            return Err(io::Error::other(format!("connect refused: {reply:?}")));
        }
        Ok(reply)
    }

    /// `createStream`; waits for `_result` and remembers the stream id.
    pub fn create_stream(&mut self) -> io::Result<u32> {
        let reply = self.call("createStream", &[], Duration::from_secs(10))?;
        let id = reply
            .args
            .first()
            .and_then(Amf0Value::as_f64)
            .filter(|_| reply.name == "_result")
            .ok_or_else(|| io::Error::other(format!("createStream failed: {reply:?}")))?;
        let id = id as u32;
        self.stream_id = Some(id);
        Ok(id)
    }

    fn netstream(&self) -> io::Result<u32> {
        self.stream_id
            .ok_or_else(|| io::Error::other("no NetStream: call create_stream first"))
    }

    /// `play(name, -2)` on our NetStream, then Set Buffer Length; returns when play was sent.
    /// Statuses and media follow through `read_message` and the `wait_*` helpers.
    pub fn play(&mut self, name: &str) -> io::Result<Instant> {
        let sid = self.netstream()?;
        self.send_command(
            sid,
            "play",
            Amf0Value::Null,
            &[Amf0Value::string(name), Amf0Value::Number(-2.0)],
        )?;
        let sent = Instant::now();
        let buffer = ControlMessage::UserControl(UserControl::SetBufferLength {
            stream_id: sid,
            ms: BUFFER_LENGTH_MS,
        });
        self.send(&buffer.to_message())?;
        Ok(sent)
    }

    /// `publish(name, "live")` on our NetStream (no media is sent).
    pub fn publish(&mut self, name: &str) -> io::Result<()> {
        let sid = self.netstream()?;
        self.send_command(
            sid,
            "publish",
            Amf0Value::Null,
            &[Amf0Value::string(name), Amf0Value::string("live")],
        )?;
        Ok(())
    }

    /// Calls a NetConnection method and waits for its `_result` or `_error`.
    pub fn call(&mut self, name: &str, args: &[Amf0Value], timeout: Duration) -> io::Result<Reply> {
        let tx = self.send_command(0, name, Amf0Value::Null, args)?;
        self.wait_reply(tx, timeout)
    }

    /// Waits for `_result`/`_error` with this transaction id; other messages are skipped.
    pub fn wait_reply(&mut self, transaction: f64, timeout: Duration) -> io::Result<Reply> {
        self.wait_command(timeout, "a reply", |c| {
            (c.name == "_result" || c.name == "_error") && c.transaction_id == transaction
        })
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
            let remaining = deadline.saturating_duration_since(Instant::now());
            let msg = match self.read_message(remaining) {
                Ok(msg) => msg,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{e} (waiting for {what}; commands seen: {seen:?})"),
                    ))
                }
            };
            if let Some(command) = decode_command(&msg) {
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

    /// The next message that is not protocol control: commands, data, audio, video.
    /// Answers Ping Requests and sends Acknowledgements as the server's window requires.
    pub fn read_message(&mut self, timeout: Duration) -> io::Result<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(msg) = self.inbox.pop_front() {
                if !self.handle_protocol(&msg)? {
                    return Ok(msg);
                }
            }
            let n = read_until(&mut self.stream, &mut self.buf, deadline, "a message")?;
            let bytes = self.buf[..n].to_vec();
            self.ingest(&bytes)?;
        }
    }

    /// Feeds received bytes to the decoder and acknowledges past the window.
    fn ingest(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes_in += bytes.len() as u64;
        let mut out = Vec::new();
        self.decoder
            .feed(bytes, &mut out)
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, format!("from server: {e}")))?;
        self.inbox.extend(out);
        if let Some(window) = self.window {
            if self.bytes_in - self.acked >= u64::from(window) {
                self.acked = self.bytes_in;
                // The sequence number wraps at 2^32 by the specification.
                let ack = ControlMessage::Acknowledgement(self.bytes_in as u32);
                self.send(&ack.to_message())?;
            }
        }
        Ok(())
    }

    /// Acts on a protocol control message; false if `msg` is not one.
    fn handle_protocol(&mut self, msg: &Message) -> io::Result<bool> {
        match msg.type_id {
            msg_type::SET_CHUNK_SIZE | msg_type::ABORT => Ok(true),
            msg_type::ACKNOWLEDGEMENT | msg_type::SET_PEER_BANDWIDTH => Ok(true),
            msg_type::WINDOW_ACK_SIZE | msg_type::USER_CONTROL => {
                match ControlMessage::decode(msg.type_id, &msg.payload) {
                    Ok(ControlMessage::WindowAckSize(n)) if n > 0 => self.window = Some(n),
                    Ok(ControlMessage::UserControl(UserControl::PingRequest(t))) => {
                        let pong = ControlMessage::UserControl(UserControl::PingResponse(t));
                        self.send(&pong.to_message())?;
                    }
                    _ => {}
                }
                Ok(true)
            }
            _ => Ok(false),
        }
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

/// A command message (AMF0 or AMF3-framed) decoded, or None for anything else.
pub fn decode_command(msg: &Message) -> Option<Command> {
    match msg.type_id {
        msg_type::COMMAND_AMF0 => Command::decode(false, &msg.payload).ok(),
        msg_type::COMMAND_AMF3 => Command::decode(true, &msg.payload).ok(),
        _ => None,
    }
}

/// `info.code` of an onStatus / `_result` / `_error`: the first argument that has one.
pub fn info_code(command: &Command) -> Option<String> {
    std::iter::once(&command.command_object)
        .chain(command.args.iter())
        .find_map(|v| {
            v.get("code")
                .and_then(Amf0Value::as_str)
                .map(str::to_string)
        })
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
