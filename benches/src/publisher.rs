//! The publisher: sends an FLV file to an RTMP server in real time (by the tags'
//! timestamps), looping, until a deadline. One blocking socket on its own thread; the few
//! bytes the server sends back are drained between tags with non-blocking reads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dataplane::media::{classify, FrameKind};
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::command::{encode_values, Command};
use dataplane::proto::rtmp::chunk_decoder::ChunkDecoder;
use dataplane::proto::rtmp::chunk_encoder::ChunkEncoder;
use dataplane::proto::rtmp::control::{ControlMessage, UserControl};
use dataplane::proto::rtmp::handshake::{ClientHandshake, HandshakeKind};
use dataplane::proto::rtmp::{csid, msg_type, Message};
use rand::SeedableRng;

use crate::flv::{tag_type, Tag};
use crate::url::RtmpUrl;

/// The chunk size we announce: what ffmpeg and OBS send with, a fair publisher.
pub const PUBLISH_CHUNK_SIZE: u32 = 4096;
/// How long the server has to answer each step of the session setup.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Gap put between the last tag of one pass over the file and the first of the next.
const LOOP_GAP_MS: u32 = 33;

/// What the publisher did.
#[derive(Debug, Default, Clone)]
pub struct PublishStats {
    pub tags_sent: u64,
    pub bytes_sent: u64,
    pub loops: u32,
    /// How far behind its schedule the publisher fell at worst (the server not reading).
    pub max_late: Duration,
}

struct Conn {
    sock: TcpStream,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    messages: Vec<Message>,
    bytes_in: u64,
    acked: u64,
    window: u32,
    out: Vec<u8>,
}

impl Conn {
    fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        self.out.clear();
        self.encoder.encode(msg, &mut self.out);
        self.sock.write_all(&self.out)
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) -> std::io::Result<()> {
        self.send(&Message {
            csid: csid::COMMAND,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id,
            payload: Bytes::from(encode_values(false, values)),
        })
    }

    /// Handles what arrived: control messages (acknowledgements, pings) are answered; commands
    /// are returned.
    fn absorb(&mut self, input: &[u8], commands: &mut Vec<Command>) -> std::io::Result<()> {
        self.bytes_in += input.len() as u64;
        self.decoder
            .feed(input, &mut self.messages)
            .map_err(std::io::Error::other)?;
        let msgs = std::mem::take(&mut self.messages);
        for m in &msgs {
            match m.type_id {
                msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                    if let Ok(c) = Command::decode(m.type_id == msg_type::COMMAND_AMF3, &m.payload)
                    {
                        commands.push(c);
                    }
                }
                t @ (msg_type::WINDOW_ACK_SIZE | msg_type::USER_CONTROL) => {
                    match ControlMessage::decode(t, &m.payload) {
                        Ok(ControlMessage::WindowAckSize(n)) => self.window = n,
                        Ok(ControlMessage::UserControl(UserControl::PingRequest(x))) => {
                            let pong = ControlMessage::UserControl(UserControl::PingResponse(x));
                            self.send(&pong.to_message())?;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        self.messages = msgs;
        self.messages.clear();
        if self.window > 0 && self.bytes_in - self.acked >= u64::from(self.window) {
            self.acked = self.bytes_in;
            self.send(&ControlMessage::Acknowledgement(self.bytes_in as u32).to_message())?;
        }
        Ok(())
    }

    /// Reads whatever is there without blocking.
    fn drain(&mut self, commands: &mut Vec<Command>) -> std::io::Result<()> {
        let mut buf = [0u8; 16 << 10];
        loop {
            // SAFETY: `buf` is valid for its length; MSG_DONTWAIT keeps the socket blocking
            // for writes.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                return Err(std::io::Error::other("server closed the connection"));
            }
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock => Ok(()),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            self.absorb(&buf[..n as usize], commands)?;
        }
    }

    /// Blocks until a command satisfying `want` arrives; an `_error` or an error-level
    /// onStatus fails.
    fn wait_for(&mut self, what: &str, want: impl Fn(&Command) -> bool) -> std::io::Result<()> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let mut buf = [0u8; 16 << 10];
        let mut commands = Vec::new();
        loop {
            for c in commands.drain(..) {
                if want(&c) {
                    return Ok(());
                }
                if is_failure(&c) {
                    return Err(std::io::Error::other(format!(
                        "{what}: server answered {} {:?}",
                        c.name,
                        status_code(&c).unwrap_or_default()
                    )));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::other(format!("{what}: no answer")));
            }
            self.sock.set_read_timeout(Some(left))?;
            let n = self.sock.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::other(format!("{what}: connection closed")));
            }
            self.absorb(&buf[..n], &mut commands)?;
        }
    }
}

fn status_code(c: &Command) -> Option<String> {
    c.arg(0)?.get("code")?.as_str().map(str::to_string)
}

fn is_failure(c: &Command) -> bool {
    c.name == "_error"
        || (c.name == "onStatus"
            && c.arg(0)
                .and_then(|i| i.get("level"))
                .and_then(Amf0Value::as_str)
                == Some("error"))
}

fn handshake(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut out = Vec::new();
    let mut hs = ClientHandshake::new(&mut rng, 0, HandshakeKind::Digest, &mut out);
    sock.write_all(&out)?;
    sock.set_read_timeout(Some(SETUP_TIMEOUT))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("handshake: connection closed"));
        }
        out.clear();
        let used = hs
            .feed(&buf[..n], &mut out)
            .map_err(std::io::Error::other)?;
        sock.write_all(&out)?;
        if hs.is_done() {
            // Bytes after S2 belong to the chunk stream.
            return Ok(buf[used..n].to_vec());
        }
    }
}

/// Connects, publishes `url`'s stream, and sends `tags` in real time, looping, until
/// `deadline`.
pub fn publish(url: &RtmpUrl, tags: &[Tag], deadline: Instant) -> std::io::Result<PublishStats> {
    if tags.is_empty() {
        return Err(std::io::Error::other("the FLV file has no tags"));
    }
    let addr = url.resolve().map_err(std::io::Error::other)?;
    let mut sock = TcpStream::connect_timeout(&addr, SETUP_TIMEOUT)?;
    sock.set_nodelay(true)?;
    let early = handshake(&mut sock)?;
    let mut c = Conn {
        sock,
        decoder: ChunkDecoder::default(),
        encoder: ChunkEncoder::new(128),
        messages: Vec::new(),
        bytes_in: 0,
        acked: 0,
        window: 0,
        out: Vec::new(),
    };
    let mut commands = Vec::new();
    c.absorb(&early, &mut commands)?;
    c.send(&ControlMessage::SetChunkSize(PUBLISH_CHUNK_SIZE).to_message())?;
    c.encoder.set_chunk_size(PUBLISH_CHUNK_SIZE);
    let tc_url = url.tc_url();
    c.command(
        0,
        &[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string(url.app.as_str())),
                ("type", Amf0Value::string("nonprivate")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; strata-load)"),
                ),
                ("tcUrl", Amf0Value::string(tc_url.as_str())),
            ]),
        ],
    )?;
    c.wait_for("connect", |m| {
        m.name == "_result" && m.transaction_id == 1.0
    })?;
    let name = Amf0Value::string(url.stream.as_str());
    c.command(
        0,
        &[
            Amf0Value::string("releaseStream"),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
            name.clone(),
        ],
    )?;
    c.command(
        0,
        &[
            Amf0Value::string("FCPublish"),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            name.clone(),
        ],
    )?;
    c.command(
        0,
        &[
            Amf0Value::string("createStream"),
            Amf0Value::Number(4.0),
            Amf0Value::Null,
        ],
    )?;
    let sid = std::cell::Cell::new(1u32);
    c.wait_for("createStream", |m| {
        let ok = m.name == "_result" && m.transaction_id == 4.0;
        if ok {
            sid.set(m.arg(0).and_then(Amf0Value::as_f64).unwrap_or(1.0) as u32);
        }
        ok
    })?;
    let sid = sid.get();
    c.command(
        sid,
        &[
            Amf0Value::string("publish"),
            Amf0Value::Number(5.0),
            Amf0Value::Null,
            name,
            Amf0Value::string("live"),
        ],
    )?;
    c.wait_for("publish", |m| {
        m.name == "onStatus" && status_code(m).as_deref() == Some("NetStream.Publish.Start")
    })?;
    send_tags(&mut c, sid, tags, deadline)
}

fn send_tags(
    c: &mut Conn,
    sid: u32,
    tags: &[Tag],
    deadline: Instant,
) -> std::io::Result<PublishStats> {
    let mut stats = PublishStats::default();
    let first_ts = tags.iter().map(|t| t.timestamp).min().unwrap_or(0);
    let last_ts = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
    let pass_ms = last_ts - first_ts + LOOP_GAP_MS;
    let t0 = Instant::now();
    let mut commands = Vec::new();
    for pass in 0u32.. {
        stats.loops = pass;
        for tag in tags {
            let kind = classify(tag.tag_type, &tag.body);
            // Metadata and sequence headers once: later passes carry the same configuration.
            let header = matches!(
                kind,
                FrameKind::Metadata | FrameKind::AudioHeader | FrameKind::VideoHeader
            );
            if pass > 0 && header {
                continue;
            }
            let ts = (tag.timestamp - first_ts).wrapping_add(pass.wrapping_mul(pass_ms));
            let due = t0 + Duration::from_millis(u64::from(ts));
            let now = Instant::now();
            if due >= deadline {
                return Ok(stats);
            }
            if due > now {
                std::thread::sleep(due - now);
            } else {
                stats.max_late = stats.max_late.max(now - due);
            }
            let msg = tag_message(tag, sid, ts);
            c.send(&msg)?;
            stats.tags_sent += 1;
            stats.bytes_sent += msg.payload.len() as u64;
            c.drain(&mut commands)?;
            if let Some(bad) = commands.iter().find(|m| is_failure(m)) {
                return Err(std::io::Error::other(format!(
                    "server stopped the publisher: {:?}",
                    status_code(bad).unwrap_or_default()
                )));
            }
            commands.clear();
        }
    }
    Ok(stats)
}

/// The RTMP message for a tag; a script tag goes out as `@setDataFrame`, as encoders send it.
fn tag_message(tag: &Tag, sid: u32, ts: u32) -> Message {
    let (csid, payload) = match tag.tag_type {
        tag_type::AUDIO => (csid::AUDIO, tag.body.clone()),
        tag_type::VIDEO => (csid::VIDEO, tag.body.clone()),
        _ => {
            let mut p = encode_values(false, &[Amf0Value::string("@setDataFrame")]);
            p.extend_from_slice(&tag.body);
            (csid::DATA, Bytes::from(p))
        }
    };
    Message {
        csid,
        timestamp: ts,
        type_id: tag.tag_type,
        stream_id: sid,
        payload,
    }
}
