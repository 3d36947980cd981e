//! An FLV file's tags, to publish through our RTMP client (which, unlike ffmpeg's muxer,
//! can ask for `publish(name, "record" | "append")`), and ffprobe's view of a recording.

use crate::rtmp_client::RtmpClient;
use bytes::Bytes;
use dataplane::proto::rtmp::{csid, msg_type, Message};
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One tag of a file: RTMP message type, timestamp (ms) and body.
#[derive(Clone)]
pub struct Tag {
    pub type_id: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

/// The tags of a well-formed FLV file (the test's own fixtures; panics on anything else).
pub fn read_tags(path: &Path) -> Vec<Tag> {
    let data = std::fs::read(path).expect("read FLV fixture");
    assert!(data.starts_with(b"FLV"), "not an FLV file");
    let mut at = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while at + 11 <= data.len() {
        let h = &data[at..at + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let end = at + 11 + size;
        if end + 4 > data.len() {
            break;
        }
        tags.push(Tag {
            type_id: h[0],
            timestamp,
            body: Bytes::copy_from_slice(&data[at + 11..end]),
        });
        at = end + 4;
    }
    tags
}

/// Sends `tags` on the client's NetStream, up to (not
/// including) `until_ms` of the file; in real time if `paced`. Returns the last timestamp
/// sent (file time).
pub fn send_tags(
    client: &mut RtmpClient,
    tags: &[Tag],
    until_ms: u32,
    paced: bool,
) -> io::Result<u32> {
    let stream_id = client
        .stream_id
        .ok_or_else(|| io::Error::other("no NetStream"))?;
    let started = Instant::now();
    let mut last = 0;
    for t in tags.iter().filter(|t| t.timestamp < until_ms) {
        if paced {
            let due = started + Duration::from_millis(u64::from(t.timestamp));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let csid = match t.type_id {
            msg_type::AUDIO => csid::AUDIO,
            msg_type::VIDEO => csid::VIDEO,
            _ => csid::DATA,
        };
        client.send(&Message {
            csid,
            timestamp: t.timestamp,
            type_id: t.type_id,
            stream_id,
            payload: t.body.clone(),
        })?;
        last = last.max(t.timestamp);
    }
    Ok(last)
}

/// `timeout 60 <tool> <args>`: stdout and stderr (the tool bounded by coreutils' timeout).
fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The file's duration as ffprobe reports it, after checking that ffprobe reads it and
/// ffmpeg decodes every frame of it with no error at all.
pub fn probe_clean_duration(file: &Path) -> f64 {
    let f = file.to_str().expect("utf-8 path");
    let (out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            f,
        ],
    );
    assert!(err.is_empty(), "ffprobe reported errors on {f}:\n{err}");
    let (_, err) = run(
        "ffmpeg",
        &["-nostdin", "-v", "error", "-i", f, "-f", "null", "-"],
    );
    assert!(
        err.is_empty(),
        "ffmpeg reported errors decoding {f}:\n{err}"
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe printed no duration for {f}: {out:?}"))
}
