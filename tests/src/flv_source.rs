//! An FLV file's tags, to publish through our RTMP client (which, unlike ffmpeg's muxer,
//! can ask for `publish(name, "record" | "append")`), and ffprobe's view of a recording.

use crate::rtmp_client::RtmpClient;
use dataplane::proto::rtmp::{csid, msg_type, Message};
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub use crate::flv_tags::{read_tags, Tag};

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
