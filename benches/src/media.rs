//! The benchmark stream: H.264 + AAC at about 2.15 Mbit/s, a 2 s GOP (30 fps, keyint 60),
//! made with ffmpeg into a cache directory (never committed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/bench-media` of this workspace.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("bench-media")
}

/// The ffmpeg arguments that make `out` (`seconds` long).
pub fn ffmpeg_args(out: &Path, seconds: u32) -> Vec<String> {
    let s = |x: &str| x.to_string();
    vec![
        s("-hide_banner"),
        s("-loglevel"),
        s("error"),
        s("-y"),
        s("-f"),
        s("lavfi"),
        s("-i"),
        s("testsrc2=size=1280x720:rate=30"),
        s("-f"),
        s("lavfi"),
        s("-i"),
        s("sine=frequency=440:sample_rate=48000"),
        s("-c:v"),
        s("libx264"),
        s("-preset"),
        s("veryfast"),
        s("-pix_fmt"),
        s("yuv420p"),
        s("-b:v"),
        s("2000k"),
        s("-maxrate"),
        s("2000k"),
        s("-bufsize"),
        s("4000k"),
        s("-g"),
        s("60"),
        s("-keyint_min"),
        s("60"),
        s("-sc_threshold"),
        s("0"),
        s("-c:a"),
        s("aac"),
        s("-b:a"),
        s("128k"),
        s("-t"),
        seconds.to_string(),
        s("-f"),
        s("flv"),
        out.display().to_string(),
    ]
}

/// Makes the file unless it exists already; returns its path.
pub fn generate(out: &Path, seconds: u32, force: bool) -> Result<PathBuf, String> {
    if out.exists() && !force {
        return Ok(out.to_path_buf());
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = out.with_extension("partial.flv");
    let status = Command::new("ffmpeg")
        .args(ffmpeg_args(&tmp, seconds))
        .status()
        .map_err(|e| format!("ffmpeg: {e} (is ffmpeg installed?)"))?;
    if !status.success() {
        return Err(format!("ffmpeg failed: {status}"));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out.to_path_buf())
}
