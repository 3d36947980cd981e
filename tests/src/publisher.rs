//! ffmpeg publishers: the cheap looped sample file, or a live encoder.

use crate::sample_media::{sample_flv, FPS, GOP_FRAMES, HEIGHT, WIDTH};
use crate::tools::{ffmpeg, ChildGuard};

/// Publishes the pre-encoded sample to `url` in real time, looping forever (`-c copy`).
pub fn publish_sample(url: &str) -> ChildGuard {
    publish_sample_with(url, &[])
}

/// `publish_sample` with more output options before the url (`-rtmp_app`, `-rtmp_playpath`).
pub fn publish_sample_with(url: &str, options: &[&str]) -> ChildGuard {
    let sample = sample_flv();
    let sample = sample.to_str().expect("utf-8 path");
    let mut args = vec![
        "-re",
        "-stream_loop",
        "-1",
        "-i",
        sample,
        "-c",
        "copy",
        "-f",
        "flv",
    ];
    args.extend_from_slice(options);
    args.push(url);
    ffmpeg(&args)
}

/// Publishes a live synthetic H.264 + AAC stream encoded on the fly (the command).
pub fn publish_live_encoder(url: &str) -> ChildGuard {
    let video = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}");
    let gop = GOP_FRAMES.to_string();
    ffmpeg(&[
        "-re",
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        &gop,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
    ])
}
