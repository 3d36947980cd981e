//! Interop: real RTMP clients (ffmpeg, rtmpdump) against our sans-IO handshake and chunk
//! decoder, driven over a loopback socket. Both tools must be installed (Debian: `apt-get
//! install -y ffmpeg rtmpdump`); a missing one fails the test rather than skipping it, so a
//! CI image without them cannot pass silently.

#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dataplane::proto::rtmp::chunk_decoder::ChunkDecoder;
use dataplane::proto::rtmp::handshake::{HandshakeKind, ServerHandshake};
use dataplane::proto::rtmp::{msg_type, Message};

/// Everything one client run may take, from spawn to connect.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long a client gets to exit after we close its socket.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Kills the child (by its pid, via `Child::kill`) when dropped, whatever happened.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Outcome {
    kind: Option<HandshakeKind>,
    messages: Vec<Message>,
    stderr: String,
}

/// Spawns `program args` with `{url}` replaced, serves one connection and returns what it sent
/// up to and including its first command message.
fn serve(program: &str, args: &[&str]) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtmp://{}/app/stream", listener.local_addr().unwrap());
    let args: Vec<String> = args.iter().map(|a| a.replace("{url}", &url)).collect();
    let child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); install it: apt-get install -y ffmpeg rtmpdump")
        });
    let mut guard = ChildGuard(child);
    let mut stderr_pipe = guard.0.stderr.take().unwrap();
    let (tx, stderr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut s);
        let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
    });
    let start = Instant::now();
    let result = drive(&listener, &mut guard, start);
    // Close our side, give the client a moment to exit on its own, then the guard kills it.
    let (kind, messages, failure) = match result {
        Ok((stream, kind, messages)) => {
            drop(stream);
            (kind, messages, None)
        }
        Err(e) => (None, Vec::new(), Some(e)),
    };
    let exit_by = Instant::now() + EXIT_WAIT;
    while Instant::now() < exit_by && matches!(guard.0.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(guard);
    let stderr = stderr_rx.recv_timeout(EXIT_WAIT).unwrap_or_default();
    if let Some(e) = failure {
        panic!("{program}: {e}\n--- {program} stderr ---\n{stderr}");
    }
    Outcome {
        kind,
        messages,
        stderr,
    }
}

type Served = (TcpStream, Option<HandshakeKind>, Vec<Message>);

fn drive(listener: &TcpListener, child: &mut ChildGuard, start: Instant) -> Result<Served, String> {
    listener.set_nonblocking(true).unwrap();
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    return Err(format!("exited ({status}) before connecting"));
                }
                if start.elapsed() > DEADLINE {
                    return Err("did not connect in time".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut hs = ServerHandshake::new(&mut rand::thread_rng(), 0);
    let mut decoder = ChunkDecoder::default();
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if start.elapsed() > DEADLINE {
            return Err(format!(
                "timed out (handshake done: {}, messages: {:?})",
                hs.is_done(),
                messages
                    .iter()
                    .map(|m: &Message| m.type_id)
                    .collect::<Vec<_>>()
            ));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err("closed the connection".into()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        let mut input = &buf[..n];
        if !hs.is_done() {
            let mut out = Vec::new();
            let used = hs.feed(input, &mut out).map_err(|e| e.to_string())?;
            stream.write_all(&out).map_err(|e| format!("write: {e}"))?;
            input = &input[used..];
        }
        if hs.is_done() {
            decoder
                .feed(input, &mut messages)
                .map_err(|e| e.to_string())?;
            let command = [msg_type::COMMAND_AMF0, msg_type::COMMAND_AMF3];
            if messages.iter().any(|m| command.contains(&m.type_id)) {
                return Ok((stream, hs.kind(), messages));
            }
        }
    }
}

/// The first command message must be `connect` (AMF0 string marker, length 7, "connect").
fn assert_connect_first(who: &str, o: &Outcome) {
    let first = o
        .messages
        .iter()
        .find(|m| m.type_id == msg_type::COMMAND_AMF0 || m.type_id == msg_type::COMMAND_AMF3)
        .unwrap();
    assert_eq!(
        first.type_id,
        msg_type::COMMAND_AMF0,
        "{who}: connect in AMF0"
    );
    assert!(
        first.payload.starts_with(b"\x02\x00\x07connect"),
        "{who}: first command is not connect: {:02x?}",
        &first.payload[..first.payload.len().min(16)]
    );
    assert_eq!(
        first.stream_id, 0,
        "{who}: connect goes on the NetConnection"
    );
}

#[test]
fn ffmpeg_digest_handshake_then_connect() {
    let o = serve(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "debug",
            "-i",
            "{url}",
            "-t",
            "1",
            "-f",
            "null",
            "-",
        ],
    );
    assert_eq!(
        o.kind,
        Some(HandshakeKind::Digest),
        "ffmpeg signs C1, so it gets the digest handshake"
    );
    assert_connect_first("ffmpeg", &o);
    // ffmpeg checks our S1 digest and S2 signature when S1 carries a version (rtmpproto.c).
    for complaint in [
        "Server response validating failed",
        "Signature mismatch",
        "handshake",
    ] {
        let hit = o
            .stderr
            .lines()
            .find(|l| l.contains(complaint) && !l.contains("Handshaking"));
        assert!(hit.is_none(), "ffmpeg complained: {hit:?}\n{}", o.stderr);
    }
    // ffmpeg logs S1's version just before verifying the digest, and sends connect only if
    // the digest and the S2 signature verified: with connect in hand, both passed.
    assert!(
        o.stderr.contains("Server version 13.14.10.13"),
        "{}",
        o.stderr
    );
    eprintln!("--- ffmpeg stderr ---\n{}", o.stderr);
}

#[test]
fn rtmpdump_simple_handshake_then_connect() {
    // Without SWF verification or RTMPE, librtmp sends a zero-version C1.
    let o = serve("rtmpdump", &["-r", "{url}", "-o", "/dev/null"]);
    assert_eq!(o.kind, Some(HandshakeKind::Simple));
    assert_connect_first("rtmpdump", &o);
    eprintln!("--- rtmpdump stderr ---\n{}", o.stderr);
}

#[test]
fn rtmpdump_digest_handshake_then_connect() {
    // A SWF hash makes librtmp use the Flash Player 9 handshake (handshake.h), which checks
    // our S1 digest ("Couldn't verify the server digest") and S2 before going on.
    let hash = "00".repeat(32);
    let o = serve(
        "rtmpdump",
        &["-r", "{url}", "-w", &hash, "-x", "1", "-o", "/dev/null"],
    );
    assert_eq!(o.kind, Some(HandshakeKind::Digest));
    assert_connect_first("rtmpdump", &o);
    for complaint in ["verify", "not genuine", "digest"] {
        let hit = o
            .stderr
            .lines()
            .find(|l| l.to_lowercase().contains(complaint));
        assert!(hit.is_none(), "rtmpdump complained: {hit:?}\n{}", o.stderr);
    }
    eprintln!("--- rtmpdump (digest) stderr ---\n{}", o.stderr);
}
