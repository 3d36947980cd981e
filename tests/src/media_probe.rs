//! What ffprobe says about a recorded file or a live URL: streams and packets.

use crate::tools::ffprobe_json;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Bound on one ffprobe run (a live URL needs a few seconds of analysis).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub codec_type: String,
    pub codec_name: String,
    pub width: Option<u64>,
    pub height: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub codec_type: String,
    /// Decode timestamp in seconds.
    pub dts: f64,
    pub key: bool,
}

/// The streams of a file or URL.
pub fn probe_streams(input: &str) -> Vec<StreamInfo> {
    let json = ffprobe_json(&["-show_streams", input], PROBE_TIMEOUT);
    json["streams"]
        .as_array()
        .map(|streams| streams.iter().map(stream_info).collect())
        .unwrap_or_default()
}

fn stream_info(v: &Value) -> StreamInfo {
    StreamInfo {
        codec_type: v["codec_type"].as_str().unwrap_or_default().to_string(),
        codec_name: v["codec_name"].as_str().unwrap_or_default().to_string(),
        width: v["width"].as_u64(),
        height: v["height"].as_u64(),
    }
}

/// Every packet of a recorded file, in file order.
pub fn probe_packets(file: &Path) -> Vec<Packet> {
    let file = file.to_str().expect("utf-8 path");
    let json = ffprobe_json(
        &[
            "-show_entries",
            "packet=codec_type,dts_time,pts_time,flags",
            file,
        ],
        PROBE_TIMEOUT,
    );
    json["packets"]
        .as_array()
        .map(|packets| packets.iter().map(packet).collect())
        .unwrap_or_default()
}

fn packet(v: &Value) -> Packet {
    let time = |key: &str| v[key].as_str().and_then(|s| s.parse::<f64>().ok());
    Packet {
        codec_type: v["codec_type"].as_str().unwrap_or_default().to_string(),
        dts: time("dts_time")
            .or_else(|| time("pts_time"))
            .unwrap_or(f64::NAN),
        key: v["flags"].as_str().is_some_and(|f| f.contains('K')),
    }
}

/// The packets of one kind ("video" or "audio").
pub fn of_type<'a>(packets: &'a [Packet], codec_type: &str) -> Vec<&'a Packet> {
    packets
        .iter()
        .filter(|p| p.codec_type == codec_type)
        .collect()
}

/// Panics unless the decode timestamps of these packets never go backwards.
pub fn assert_monotonic(packets: &[&Packet], what: &str) {
    for pair in packets.windows(2) {
        assert!(
            pair[1].dts >= pair[0].dts,
            "{what} timestamps go backwards: {} then {}",
            pair[0].dts,
            pair[1].dts
        );
    }
}
