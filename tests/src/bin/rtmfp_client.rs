//! A command-line RTMFP client: the client role of `dataplane::proto::rtmfp` behind a UDP
//! socket, run as a separate process by the e2e tests (and usable by hand).
//!
//! ```text
//! rtmfp_client <server host:port> <rtmfp://host/app[/instance]> connect [method [n [bytes]]]
//! rtmfp_client <server> <url> publish <name> <file.flv> <seconds>
//! rtmfp_client <server> <url> play <name> <out.flv> <seconds> [move]
//! rtmfp_client <server> <url> accept <seconds>
//! rtmfp_client <server> <url> call <peer id> <messages> <bytes each>
//! ```
//!
//! `accept` stays connected and takes peer-to-peer sessions the server introduces
//! (`peer_session <addr>`, `peer_messages <n>` at the end); `call` asks the server for the
//! client with that peer id and, once the session with it is open (`direct <addr>`), sends
//! it the messages directly (`sent_direct <n>` once all are acknowledged). `play ... move`
//! changes the client's address (a new socket) halfway through (`moved <addr>`).
//!
//! It prints one line per fact: `peer_id <hex>`, `server_peer_id <hex>`, `status <code>`
//! for every `_result`/`_error`/`onStatus` code, `frames <n>` (play: video frames written),
//! `sent <n>` (publish: tags sent). Exit status: 0 when connect succeeded and the action
//! ran, 2 when the server refused, 1 on any other failure (timeout, bad arguments). Every
//! wait is bounded.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::command::{encode_values, Command};
use dataplane::proto::rtmfp::net_client::{command_of, ClientState, RtmfpNetClient};
use dataplane::proto::rtmp::{csid, msg_type, Message};
use e2e::flv_tags::read_tags;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Unacknowledged bytes a publisher keeps on its flows before it waits.
const PUBLISH_WINDOW: usize = 512 * 1024;

struct Driver {
    socket: UdpSocket,
    client: RtmfpNetClient,
    started: Instant,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// Commands received and not yet looked at.
    commands: VecDeque<(u32, Command)>,
    /// Media and data received (play).
    media: VecDeque<Message>,
}

impl Driver {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sends what is due, then waits up to `max` for one datagram and handles timers.
    fn pump(&mut self, max: Duration) -> io::Result<()> {
        let now = self.now();
        // Bounded: the endpoint's output is limited by its congestion window.
        while let Some(to) = self.client.poll_transmit(now, &mut self.out) {
            self.socket.send_to(&self.out, to)?;
        }
        let until_timer = self
            .client
            .poll_timeout()
            .map_or(max, |t| Duration::from_millis(t.saturating_sub(now)));
        let wait = until_timer.min(max).max(Duration::from_millis(1));
        self.socket.set_read_timeout(Some(wait))?;
        match self.socket.recv_from(&mut self.buf) {
            Ok((n, from)) => {
                let now = self.now();
                self.client.handle(now, from, &self.buf[..n]);
                // Take what else is already there without waiting (bounded per call).
                self.socket.set_nonblocking(true)?;
                for _ in 0..256 {
                    match self.socket.recv_from(&mut self.buf) {
                        Ok((n, from)) => self.client.handle(now, from, &self.buf[..n]),
                        Err(_) => break,
                    }
                }
                self.socket.set_nonblocking(false)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        let now = self.now();
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        while let Some(m) = self.client.recv() {
            match command_of(&m) {
                Some(c) => {
                    for code in [c.info_str("code")].into_iter().flatten() {
                        println!("status {code}");
                    }
                    self.commands.push_back((m.stream_id, c));
                }
                None => self.media.push_back(m),
            }
        }
        io::stdout().flush()
    }

    fn send_command(&mut self, stream_id: u32, values: &[Amf0Value]) -> bool {
        self.client.send_command(stream_id, values)
    }

    /// Waits for a command that `pick` takes.
    fn wait_command(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(u32, &Command) -> bool,
    ) -> io::Result<Command> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.commands.iter().position(|(s, c)| pick(*s, c)) {
                if let Some((_, c)) = self.commands.remove(i) {
                    return Ok(c);
                }
            }
            if let ClientState::Closed(why) | ClientState::Failed(why) = self.client.state() {
                return Err(io::Error::other(format!("session ended: {why}")));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"));
            }
            self.pump(Duration::from_millis(20))?;
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: rtmfp_client <host:port> <rtmfp://host/app> connect\n\
         \x20      rtmfp_client <host:port> <url> publish <name> <file.flv> <seconds>\n\
         \x20      rtmfp_client <host:port> <url> play <name> <out.flv> <seconds>\n\
         \x20      rtmfp_client <host:port> <url> accept <seconds>\n\
         \x20      rtmfp_client <host:port> <url> call <peer id> <messages> <bytes each>"
    );
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rtmfp_client: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn run(args: &[String]) -> io::Result<i32> {
    let (Some(server), Some(url), Some(action)) = (args.first(), args.get(1), args.get(2)) else {
        usage()
    };
    let server: SocketAddr = server
        .parse()
        .map_err(|e| io::Error::other(format!("{server}: {e}")))?;
    let app = url
        .strip_prefix("rtmfp://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, app)| app.to_string())
        .ok_or_else(|| io::Error::other("the url is rtmfp://host/app"))?;
    let bind = if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = UdpSocket::bind(bind)?;
    let started = Instant::now();
    let seed = u64::from(std::process::id()) ^ started.elapsed().as_nanos() as u64;
    let client = RtmfpNetClient::connect(0, server, url, seed ^ 0x5eed);
    let mut d = Driver {
        socket,
        client,
        started,
        buf: vec![0; 2048],
        out: Vec::with_capacity(2048),
        commands: VecDeque::new(),
        media: VecDeque::new(),
    };
    println!("peer_id {}", d.client.peer_id_hex());
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while *d.client.state() == ClientState::Connecting {
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no RTMFP session"));
        }
        d.pump(Duration::from_millis(20))?;
    }
    if let ClientState::Failed(why) | ClientState::Closed(why) = d.client.state() {
        return Err(io::Error::other(format!("no RTMFP session: {why}")));
    }
    if let Some(id) = d.client.server_peer_id_hex() {
        println!("server_peer_id {id}");
    }
    let object = Amf0Value::object([
        ("app", Amf0Value::string(app)),
        ("flashVer", Amf0Value::string("LNX 11,2,202,235")),
        ("tcUrl", Amf0Value::string(url.as_str())),
        ("fpad", Amf0Value::Boolean(false)),
        ("capabilities", Amf0Value::Number(235.0)),
        ("audioCodecs", Amf0Value::Number(3575.0)),
        ("videoCodecs", Amf0Value::Number(252.0)),
        ("videoFunction", Amf0Value::Number(1.0)),
        ("objectEncoding", Amf0Value::Number(0.0)),
    ]);
    d.send_command(
        0,
        &[Amf0Value::string("connect"), Amf0Value::Number(1.0), object],
    );
    let answer = d.wait_command(ANSWER_TIMEOUT, |s, c| {
        s == 0 && c.transaction_id == 1.0 && matches!(c.name.as_str(), "_result" | "_error")
    })?;
    if answer.name != "_result" {
        return Ok(2);
    }
    if let Some(rtt) = d.client.rtt_ms() {
        println!("rtt_ms {rtt}");
    }
    let code = match action.as_str() {
        "connect" => match args.get(3) {
            // `connect <method> [count] [bytes]`: then calls an application method (RPC)
            // `count` times (1 by default) with an argument of `bytes` bytes, all at once,
            // and waits for every answer.
            Some(method) => {
                let count: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
                let bytes: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(3);
                calls(&mut d, method, count, bytes)?
            }
            None => 0,
        },
        "accept" => {
            let seconds: u64 = args
                .get(3)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage());
            accept(&mut d, seconds)?
        }
        "call" => {
            let (Some(peer), Some(count), Some(size)) = (
                args.get(3),
                args.get(4).and_then(|s| s.parse().ok()),
                args.get(5).and_then(|s| s.parse().ok()),
            ) else {
                usage()
            };
            call(&mut d, peer, count, size)?
        }
        "publish" | "play" => {
            let (Some(name), Some(file), Some(seconds)) = (args.get(3), args.get(4), args.get(5))
            else {
                usage()
            };
            let seconds: u64 = seconds.parse().map_err(io::Error::other)?;
            d.send_command(
                0,
                &[
                    Amf0Value::string("createStream"),
                    Amf0Value::Number(2.0),
                    Amf0Value::Null,
                ],
            );
            let created = d.wait_command(ANSWER_TIMEOUT, |s, c| {
                s == 0 && c.transaction_id == 2.0 && matches!(c.name.as_str(), "_result" | "_error")
            })?;
            let Some(stream_id) = created.args.first().and_then(|v| match v {
                Amf0Value::Number(n) => Some(*n),
                _ => None,
            }) else {
                return Ok(2);
            };
            let stream_id = stream_id as u32;
            if action == "publish" {
                publish(&mut d, stream_id, name, Path::new(file), seconds)?
            } else {
                let moving = args.get(6).is_some_and(|a| a == "move");
                play(&mut d, stream_id, name, Path::new(file), seconds, moving)?
            }
        }
        _ => usage(),
    };
    let now = d.now();
    d.client.close(now);
    // Until the server acknowledges the close (bounded: half a second).
    for _ in 0..50 {
        if matches!(d.client.state(), ClientState::Closed(_)) {
            break;
        }
        d.pump(Duration::from_millis(10))?;
    }
    Ok(code)
}

/// Calls `method` `count` times at once (transaction ids 3, 4, ...), each with a string
/// argument of `bytes` bytes, then waits for every answer: prints `answer <name>` for the
/// first, `answers <n>` and `in_order <true|false>` (the transaction ids came back in the
/// order they were sent, none missing).
fn calls(d: &mut Driver, method: &str, count: u32, bytes: usize) -> io::Result<i32> {
    let arg = "x".repeat(bytes);
    for i in 0..count {
        let sent = d.send_command(
            0,
            &[
                Amf0Value::string(method),
                Amf0Value::Number(f64::from(3 + i)),
                Amf0Value::Null,
                Amf0Value::string(arg.as_str()),
            ],
        );
        if !sent {
            return Err(io::Error::other("session gone while calling"));
        }
    }
    let mut seen = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let answer = d.wait_command(ANSWER_TIMEOUT, |s, c| {
            s == 0 && c.transaction_id >= 3.0 && matches!(c.name.as_str(), "_result" | "_error")
        })?;
        if seen.is_empty() {
            println!("answer {}", answer.name);
        }
        seen.push(answer.transaction_id as u32);
    }
    let in_order = seen.iter().copied().eq(3..3 + count);
    println!("answers {}", seen.len());
    println!("in_order {in_order}");
    Ok(0)
}

/// Stays connected for `seconds`, taking the peer sessions the server introduces and
/// counting what they send.
fn accept(d: &mut Driver, seconds: u64) -> io::Result<i32> {
    println!("accepting");
    io::stdout().flush()?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut seen = Vec::new();
    let mut messages = 0u64;
    while Instant::now() < until {
        d.pump(Duration::from_millis(10))?;
        for (id, addr) in d.client.peer_sessions() {
            if !seen.contains(&id) {
                seen.push(id);
                println!("peer_session {addr}");
                io::stdout().flush()?;
            }
        }
        while d.client.recv_from_peer().is_some() {
            messages += 1;
        }
    }
    println!("peer_messages {messages}");
    Ok(0)
}

/// Opens a session to the client with `peer` (hex peer id) through the server's
/// introduction and sends it `count` data messages of `size` bytes directly.
fn call(d: &mut Driver, peer: &str, count: u32, size: usize) -> io::Result<i32> {
    let now = d.now();
    let sid = d
        .client
        .open_peer(now, peer)
        .ok_or_else(|| io::Error::other("the peer id is 64 hex digits"))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let addr = loop {
        if let Some((_, addr)) = d.client.peer_sessions().into_iter().find(|p| p.0 == sid) {
            break addr;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no peer session"));
        }
        d.pump(Duration::from_millis(10))?;
    };
    println!("direct {addr}");
    let body = vec![0x42u8; size];
    for i in 0..count {
        let mut payload = encode_values(false, &[Amf0Value::string("onPeerData")]);
        payload.extend_from_slice(&body);
        let m = Message {
            csid: csid::DATA,
            timestamp: i,
            type_id: msg_type::DATA_AMF0,
            stream_id: 0,
            payload: payload.into(),
        };
        while d.client.peer_queued_bytes(sid) > PUBLISH_WINDOW {
            d.pump(Duration::from_millis(5))?;
        }
        if !d.client.send_to_peer(sid, &m) {
            return Err(io::Error::other("peer session gone"));
        }
    }
    let drain = Instant::now() + Duration::from_secs(10);
    while d.client.peer_queued_bytes(sid) > 0 {
        if Instant::now() >= drain {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "not acknowledged"));
        }
        d.pump(Duration::from_millis(5))?;
    }
    println!("sent_direct {count}");
    Ok(0)
}

fn status_code(c: &Command) -> &str {
    c.info_str("code").unwrap_or("")
}

/// Publishes the file's tags in real time, looping, for `seconds`.
fn publish(
    d: &mut Driver,
    stream_id: u32,
    name: &str,
    file: &Path,
    seconds: u64,
) -> io::Result<i32> {
    d.send_command(
        stream_id,
        &[
            Amf0Value::string("publish"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::string(name),
            Amf0Value::string("live"),
        ],
    );
    let status = d.wait_command(ANSWER_TIMEOUT, |s, c| {
        s == stream_id && c.name == "onStatus"
    })?;
    if status_code(&status) != "NetStream.Publish.Start" {
        return Ok(2);
    }
    let tags = read_tags(file);
    let length = tags.iter().map(|t| t.timestamp).max().unwrap_or(0) + 40;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut sent = 0u64;
    'outer: for round in 0u32.. {
        let offset = round.saturating_mul(length);
        for t in &tags {
            if t.type_id == msg_type::DATA_AMF0 && round > 0 {
                continue;
            }
            let ts = offset.saturating_add(t.timestamp);
            let due = started + Duration::from_millis(u64::from(ts));
            if due >= until {
                break 'outer;
            }
            while Instant::now() < due || d.client.queued_bytes() > PUBLISH_WINDOW {
                if Instant::now() >= until {
                    break 'outer;
                }
                d.pump(Duration::from_millis(5))?;
            }
            let csid = match t.type_id {
                msg_type::AUDIO => csid::AUDIO,
                msg_type::VIDEO => csid::VIDEO,
                _ => csid::DATA,
            };
            let payload = if t.type_id == msg_type::DATA_AMF0 {
                // A file's onMetaData becomes @setDataFrame, as publishers send it.
                let mut p = encode_values(false, &[Amf0Value::string("@setDataFrame")]);
                p.extend_from_slice(&t.body);
                p.into()
            } else {
                t.body.clone()
            };
            let m = Message {
                csid,
                timestamp: ts,
                type_id: t.type_id,
                stream_id,
                payload,
            };
            if !d.client.send(&m, None) {
                return Err(io::Error::other("session gone while publishing"));
            }
            sent += 1;
        }
    }
    println!("sent {sent}");
    // Let the last messages be acknowledged (bounded).
    let drain = Instant::now() + Duration::from_secs(5);
    while d.client.queued_bytes() > 0 && Instant::now() < drain {
        d.pump(Duration::from_millis(10))?;
    }
    Ok(0)
}

/// Plays `name` for `seconds`, writing audio, video and metadata to an FLV file.
fn play(
    d: &mut Driver,
    stream_id: u32,
    name: &str,
    out: &Path,
    seconds: u64,
    moving: bool,
) -> io::Result<i32> {
    d.send_command(
        stream_id,
        &[
            Amf0Value::string("play"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::string(name),
        ],
    );
    let status = d.wait_command(ANSWER_TIMEOUT, |s, c| {
        s == stream_id && c.name == "onStatus" && status_code(c) != "NetStream.Play.Reset"
    })?;
    if status_code(&status) != "NetStream.Play.Start" {
        return Ok(2);
    }
    let mut flv = Vec::with_capacity(1 << 20);
    flv.extend_from_slice(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut move_at = moving.then(|| Instant::now() + Duration::from_secs(seconds) / 2);
    let mut frames = 0u64;
    let mut base: Option<u32> = None;
    while Instant::now() < until {
        if move_at.is_some_and(|t| Instant::now() >= t) {
            // A new socket: a new source port, as after a NAT rebinding or a network
            // change. The session goes on once the server has checked the new address.
            move_at = None;
            let bind = if d.socket.local_addr()?.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            d.socket = UdpSocket::bind(bind)?;
            println!("moved {}", d.socket.local_addr()?);
            // Say something from the new address at once (as Flash does after a network
            // change), here the buffer length: the server hears it and checks the address.
            let mut body = 3u16.to_be_bytes().to_vec();
            body.extend_from_slice(&stream_id.to_be_bytes());
            body.extend_from_slice(&3000u32.to_be_bytes());
            let buffer = Message {
                csid: csid::PROTOCOL_CONTROL,
                timestamp: 0,
                type_id: msg_type::USER_CONTROL,
                stream_id: 0,
                payload: body.into(),
            };
            d.client.send(&buffer, None);
        }
        d.pump(Duration::from_millis(20))?;
        while let Some(m) = d.media.pop_front() {
            let keep = match m.type_id {
                msg_type::AUDIO | msg_type::VIDEO => true,
                msg_type::DATA_AMF0 => is_metadata(&m.payload),
                _ => false,
            };
            if !keep || m.payload.is_empty() {
                continue;
            }
            if m.type_id == msg_type::VIDEO {
                frames += 1;
            }
            let ts = m.timestamp.wrapping_sub(*base.get_or_insert(m.timestamp));
            write_tag(&mut flv, m.type_id, ts, &m.payload);
        }
    }
    std::fs::write(out, &flv)?;
    println!("frames {frames}");
    Ok(0)
}

fn is_metadata(payload: &[u8]) -> bool {
    dataplane::proto::amf0::decode(&mut &payload[..])
        .ok()
        .and_then(|v| v.as_str().map(|s| s == "onMetaData"))
        .unwrap_or(false)
}

fn write_tag(flv: &mut Vec<u8>, type_id: u8, ts: u32, body: &[u8]) {
    let size = body.len() as u32;
    flv.push(type_id);
    flv.extend_from_slice(&size.to_be_bytes()[1..]);
    flv.extend_from_slice(&ts.to_be_bytes()[1..]);
    flv.push((ts >> 24) as u8);
    flv.extend_from_slice(&[0, 0, 0]);
    flv.extend_from_slice(body);
    flv.extend_from_slice(&(size + 11).to_be_bytes());
}
