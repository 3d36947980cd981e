//! The pre-encoded sample stream that most tests publish with `-re -stream_loop -1 -c copy`,
//! so a test without a live encoder costs almost no CPU. Encoded once per target directory.

use crate::server::target_dir;
use crate::tools::run_bounded;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Frames per second of every synthetic stream.
pub const FPS: u32 = 25;
/// Frames per group of pictures: a key frame every 2 s.
pub const GOP_FRAMES: u32 = 50;
pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 360;
/// Length of the sample file; publishers loop it.
const SAMPLE_SECONDS: u32 = 10;

static ENCODE: Mutex<()> = Mutex::new(());

/// The sample FLV (H.264 640x360 25 fps, key frame every 2 s, AAC 44.1 kHz), encoded on first
/// use and reused by later tests and runs.
pub fn sample_flv() -> PathBuf {
    let dir = target_dir().join("e2e-fixtures");
    let path = dir.join(format!(
        "testsrc2-{WIDTH}x{HEIGHT}-{FPS}fps-g{GOP_FRAMES}-aac-{SAMPLE_SECONDS}s.flv"
    ));
    let _once = ENCODE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if path.is_file() {
        return path;
    }
    std::fs::create_dir_all(&dir).expect("create fixture dir");
    // Encode to a private name, then rename: other test processes never see half a file.
    let partial = dir.join(format!("partial-{}.flv", std::process::id()));
    let video = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={SAMPLE_SECONDS}");
    let audio = format!("sine=frequency=440:sample_rate=44100:duration={SAMPLE_SECONDS}");
    let gop = GOP_FRAMES.to_string();
    run_bounded(
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &video,
            "-f",
            "lavfi",
            "-i",
            &audio,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-shortest",
            "-f",
            "flv",
            partial.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(120),
    );
    std::fs::rename(&partial, &path).expect("rename fixture");
    path
}
