//! What the VOD tests play: short files made by ffmpeg under a content root, and a stratad
//! serving that root.

use crate::server::{Server, ServerOptions};
use crate::tools::ffmpeg;
use std::path::Path;
use std::time::Duration;

/// Writes 4 s of 25 fps H.264 (a key frame every second, 160x120) and AAC to `out`, in the
/// container its extension names (`.flv`, `.mp4`).
pub fn make_clip(out: &Path) {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("content dir");
    }
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        "-y",
        out.to_str().expect("utf-8 path"),
    ])
    .expect_success(Duration::from_secs(60));
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
