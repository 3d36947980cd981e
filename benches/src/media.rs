//! The benchmark stream: H.264 + AAC at about 2.15 Mbit/s, a 2 s GOP (30 fps, keyint 60),
//! made with ffmpeg into a cache directory (never committed); and its 500 kbit/s rendition,
//! the same source and GOP at 640x360, for runs with more viewers than loopback carries at
//! full rate (10,000 x 2.15 Mbit/s would be 21.5 Gbit/s, whose receive side the same
//! machine pays).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/bench-media` of this workspace.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("bench-media")
}

/// Which encoding of the benchmark stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    /// 1280x720, video 2000k, audio 128k: ~2.15 Mbit/s in all.
    Full,
    /// 640x360, video 436k, audio 64k: ~0.5 Mbit/s in all.
    Kbit500,
}

impl Rendition {
    /// Its name on the command line (`--rendition`).
    pub fn parse(name: &str) -> Result<Rendition, String> {
        match name {
            "full" => Ok(Rendition::Full),
            "500k" => Ok(Rendition::Kbit500),
            _ => Err(format!("rendition {name:?}: full or 500k")),
        }
    }

    /// Its file in the cache directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Rendition::Full => "bench.flv",
            Rendition::Kbit500 => "bench-500k.flv",
        }
    }

    /// Picture size, video rate (also the maxrate; the buffer is twice it), audio rate.
    fn encoding(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Rendition::Full => ("1280x720", "2000k", "4000k", "128k"),
            Rendition::Kbit500 => ("640x360", "436k", "872k", "64k"),
        }
    }
}

/// The ffmpeg arguments that make `out` (`seconds` long).
pub fn ffmpeg_args(out: &Path, seconds: u32, rendition: Rendition) -> Vec<String> {
    let s = |x: &str| x.to_string();
    let (size, video, bufsize, audio) = rendition.encoding();
    vec![
        s("-hide_banner"),
        s("-loglevel"),
        s("error"),
        s("-y"),
        s("-f"),
        s("lavfi"),
        s("-i"),
        format!("testsrc2=size={size}:rate=30"),
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
        s(video),
        s("-maxrate"),
        s(video),
        s("-bufsize"),
        s(bufsize),
        s("-g"),
        s("60"),
        s("-keyint_min"),
        s("60"),
        s("-sc_threshold"),
        s("0"),
        s("-c:a"),
        s("aac"),
        s("-b:a"),
        s(audio),
        s("-t"),
        seconds.to_string(),
        s("-f"),
        s("flv"),
        out.display().to_string(),
    ]
}

/// Makes the file unless it exists already; returns its path.
pub fn generate(
    out: &Path,
    seconds: u32,
    rendition: Rendition,
    force: bool,
) -> Result<PathBuf, String> {
    if out.exists() && !force {
        return Ok(out.to_path_buf());
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = out.with_extension("partial.flv");
    let status = Command::new("ffmpeg")
        .args(ffmpeg_args(&tmp, seconds, rendition))
        .status()
        .map_err(|e| format!("ffmpeg: {e} (is ffmpeg installed?)"))?;
    if !status.success() {
        return Err(format!("ffmpeg failed: {status}"));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renditions_differ_in_size_and_rates_only() {
        let out = Path::new("x.flv");
        let full = ffmpeg_args(out, 60, Rendition::Full);
        let low = ffmpeg_args(out, 60, Rendition::Kbit500);
        assert!(full.contains(&"testsrc2=size=1280x720:rate=30".to_string()));
        assert!(low.contains(&"testsrc2=size=640x360:rate=30".to_string()));
        let differing: Vec<_> = full.iter().zip(&low).filter(|(a, b)| a != b).collect();
        // Picture size, video rate and maxrate, buffer, audio rate; the GOP is the same.
        assert_eq!(differing.len(), 5, "{differing:?}");
        assert_eq!(Rendition::parse("500k"), Ok(Rendition::Kbit500));
        assert_eq!(Rendition::parse("full"), Ok(Rendition::Full));
        assert!(Rendition::parse("1m").is_err());
        assert_ne!(Rendition::Full.file_name(), Rendition::Kbit500.file_name());
    }
}
