//! The publisher: sends an FLV file to an RTMP server in real time (by the tags'
//! timestamps), looping, until a deadline. One blocking socket on its own thread, driving the
//! client role of `dataplane`'s RTMP `Session`; the few bytes the server sends back are
//! drained between tags with non-blocking reads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dataplane::media::{classify, FrameKind};
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::command::encode_values;
use dataplane::proto::rtmp::handshake::HandshakeKind;
use dataplane::proto::rtmp::session::{Session, SessionConfig, SessionError, SessionEvent};
use dataplane::proto::rtmp::{csid, Message};
use rand::SeedableRng;

use crate::flv::{tag_type, Tag};
use crate::url::RtmpUrl;

/// The chunk size we announce: what ffmpeg and OBS send with, a fair publisher.
pub const PUBLISH_CHUNK_SIZE: u32 = 4096;
/// How long the server has to answer each step of the session setup.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Gap put between the last tag of one pass over the file and the first of the next.
const LOOP_GAP_MS: u32 = 33;
/// What our connect announces, as an encoder.
const FLASH_VER: &str = "FMLE/3.0 (compatible; strata-load)";

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
    session: Session,
    /// Events not yet looked at.
    events: Vec<SessionEvent>,
    out: Vec<u8>,
}

impl Conn {
    /// Sends what the session wrote.
    fn flush(&mut self) -> std::io::Result<()> {
        let sent = self.sock.write_all(&self.out);
        self.out.clear();
        sent
    }

    fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        self.session.write_message(msg, &mut self.out);
        self.flush()
    }

    /// Feeds what arrived to the session (which answers acknowledgements and pings); its
    /// events join `events`.
    fn absorb(&mut self, input: &[u8]) -> std::io::Result<()> {
        let fed = self.session.feed(input, &mut self.out, &mut self.events);
        self.flush()?;
        fed.map_err(std::io::Error::other)
    }

    /// Reads whatever is there without blocking.
    fn drain(&mut self) -> std::io::Result<()> {
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
            self.absorb(&buf[..n as usize])?;
        }
    }

    /// Reads once, blocking until `deadline`.
    fn read(&mut self, what: &str, deadline: Instant) -> std::io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::other(format!("{what}: no answer")));
        }
        let mut buf = [0u8; 16 << 10];
        self.sock.set_read_timeout(Some(left))?;
        let n = self.sock.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other(format!("{what}: connection closed")));
        }
        self.absorb(&buf[..n])
    }

    /// Blocks until an event satisfying `want` arrives; an `_error` or an error-level
    /// onStatus fails.
    fn wait_for(
        &mut self,
        what: &str,
        mut want: impl FnMut(&SessionEvent) -> bool,
    ) -> std::io::Result<()> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            for event in std::mem::take(&mut self.events) {
                if want(&event) {
                    return Ok(());
                }
                if let Some(why) = failure(&event) {
                    return Err(std::io::Error::other(format!(
                        "{what}: server answered {why}"
                    )));
                }
            }
            self.read(what, deadline)?;
        }
    }
}

/// What is wrong, if `event` says the server refused something.
fn failure(event: &SessionEvent) -> Option<String> {
    let (SessionEvent::Error { command, .. }
    | SessionEvent::Status { command, .. }
    | SessionEvent::Command { command, .. }) = event
    else {
        return None;
    };
    let refused = command.name == "_error" || command.info_str("level") == Some("error");
    refused.then(|| {
        format!(
            "{} {:?}",
            command.name,
            command.info_str("code").unwrap_or_default()
        )
    })
}

/// Connects, publishes `url`'s stream, and sends `tags` in real time, looping, until
/// `deadline`. `late_us` is raised (fetch_max) to how far behind its schedule a tag went
/// out, for the run's per-second lines to read and reset: a stall that every player sees
/// at once is the source's when this shows it.
pub fn publish(
    url: &RtmpUrl,
    tags: &[Tag],
    deadline: Instant,
    late_us: Arc<AtomicU64>,
) -> std::io::Result<PublishStats> {
    if tags.is_empty() {
        return Err(std::io::Error::other("the FLV file has no tags"));
    }
    let addr = url.resolve().map_err(std::io::Error::other)?;
    let sock = TcpStream::connect_timeout(&addr, SETUP_TIMEOUT)?;
    sock.set_nodelay(true)?;
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut out = Vec::new();
    let config = SessionConfig::client(PUBLISH_CHUNK_SIZE);
    let session = Session::client(config, HandshakeKind::Digest, &mut rng, 0, &mut out);
    let mut c = Conn {
        sock,
        session,
        events: Vec::new(),
        out,
    };
    c.flush()?;
    let handshake_deadline = Instant::now() + SETUP_TIMEOUT;
    while !c.session.is_handshake_done() {
        c.read("handshake", handshake_deadline)?;
    }
    let setup = |e: SessionError| std::io::Error::other(e.to_string());
    let tx = c
        .session
        .connect(&url.app, &url.tc_url(), FLASH_VER, &mut c.out)
        .map_err(setup)?;
    c.flush()?;
    c.wait_for(
        "connect",
        |e| matches!(e, SessionEvent::Result { transaction, .. } if *transaction == tx),
    )?;
    let name = Amf0Value::string(url.stream.as_str());
    for call in ["releaseStream", "FCPublish"] {
        c.session
            .call(
                0,
                call,
                Amf0Value::Null,
                std::slice::from_ref(&name),
                &mut c.out,
            )
            .map_err(setup)?;
    }
    let tx = c.session.create_stream(&mut c.out).map_err(setup)?;
    c.flush()?;
    let mut sid = None;
    c.wait_for("createStream", |e| match e {
        SessionEvent::StreamCreated {
            transaction,
            stream_id,
        } if *transaction == tx => {
            sid = Some(*stream_id);
            true
        }
        _ => false,
    })?;
    let sid = sid.ok_or_else(|| std::io::Error::other("createStream: no stream id"))?;
    c.session.publish(sid, &url.stream, "live", &mut c.out);
    c.flush()?;
    c.wait_for("publish", |e| {
        matches!(e, SessionEvent::Status { command, .. }
            if command.info_str("code") == Some("NetStream.Publish.Start"))
    })?;
    send_tags(&mut c, sid, tags, deadline, &late_us)
}

fn send_tags(
    c: &mut Conn,
    sid: u32,
    tags: &[Tag],
    deadline: Instant,
    late_us: &AtomicU64,
) -> std::io::Result<PublishStats> {
    let mut stats = PublishStats::default();
    let first_ts = tags.iter().map(|t| t.timestamp).min().unwrap_or(0);
    let last_ts = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
    let pass_ms = last_ts - first_ts + LOOP_GAP_MS;
    let t0 = Instant::now();
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
                late_us.fetch_max((now - due).as_micros() as u64, Ordering::Relaxed);
            }
            let msg = tag_message(tag, sid, ts);
            c.send(&msg)?;
            stats.tags_sent += 1;
            stats.bytes_sent += msg.payload.len() as u64;
            c.drain()?;
            if let Some(why) = c.events.iter().find_map(failure) {
                return Err(std::io::Error::other(format!(
                    "server stopped the publisher: {why}"
                )));
            }
            c.events.clear();
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
