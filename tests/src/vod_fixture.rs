//! What the VOD tests play: short files made by ffmpeg under a content root, and a stratad
//! serving that root.

use crate::rtmp_client::RtmpClient;
use crate::server::{Server, ServerOptions};
use crate::tools::ffmpeg;
use dataplane::proto::amf0::{self, Amf0Value};
use std::path::Path;
use std::time::Duration;

/// Writes 4 s of 25 fps H.264 (a key frame every second, 160x120) and AAC to `out`, in the
/// container its extension names (`.flv`, `.mp4`).
pub fn make_clip(out: &Path) {
    make_clip_with(
        out,
        4,
        &[
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k",
        ],
    );
}

/// Writes `seconds` of 25 fps testsrc (160x120, a key frame every second) and a 440 Hz sine
/// to `out`, encoded as `codecs` (ffmpeg's `-c:v ... -c:a ...` arguments) say.
pub fn make_clip_with(out: &Path, seconds: u32, codecs: &[&str]) {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("content dir");
    }
    let seconds = seconds.to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        &seconds,
        "-g",
        "25",
    ];
    args.extend_from_slice(codecs);
    args.extend_from_slice(&["-y", out.to_str().expect("utf-8 path")]);
    ffmpeg(&args).expect_success(Duration::from_secs(60));
}

/// Sends `play(name, start, len, reset)` (milliseconds) on NetStream `sid`.
pub fn play(c: &mut RtmpClient, sid: u32, name: &str, start_ms: f64, len_ms: f64, reset: bool) {
    c.send_command(
        sid,
        "play",
        Amf0Value::Null,
        &[
            Amf0Value::string(name),
            Amf0Value::Number(start_ms),
            Amf0Value::Number(len_ms),
            Amf0Value::Boolean(reset),
        ],
    )
    .expect("play");
}

/// The code of an onPlayStatus data message.
pub fn play_status(payload: &[u8]) -> Option<String> {
    let values = amf0::decode_all(payload).ok()?;
    if values.first()?.as_str()? != "onPlayStatus" {
        return None;
    }
    values.get(1)?.get("code")?.as_str().map(str::to_string)
}

/// One worker serving `root` as its content root.
pub fn vod_server(root: &Path) -> Server {
    Server::start_with(ServerOptions {
        workers: 1,
        config: Some(format!(
            "[vod]\nroot = {:?}\n",
            root.to_str().expect("utf-8 path")
        )),
        ..ServerOptions::default()
    })
}
