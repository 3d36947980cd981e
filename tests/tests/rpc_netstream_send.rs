//! NetStream.send (issue 11, "What it must show" 4): data messages a publisher sends
//! (`onTextData` here; `onCuePoint` and custom handlers take the same path) reach ffmpeg
//! viewers — two of them, so that with two workers one is likely on another worker than
//! the publisher — and sit in their recordings in order with the media. ffmpeg reads
//! `onTextData` as a text subtitle stream and its FLV muxer writes it back as `onTextData`
//! tags. (rtmpdump cannot be the viewer here: librtmp passes on no data message but
//! `onMetaData`.)

use bytes::Bytes;
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::command::encode_values;
use dataplane::proto::rtmp::Message;
use e2e::bounds;
use e2e::flv_tags::{read_tags, Tag};
use e2e::rtmp_client::RtmpClient;
use e2e::sample_media::sample_flv;
use e2e::scratch_dir::ScratchDir;
use e2e::server::Server;
use e2e::tools::ffmpeg;
use std::time::{Duration, Instant};

const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const SCRIPT: u8 = 18;
/// How much of the sample is published, in its own milliseconds.
const PUBLISH_MS: u32 = 7_000;
/// The viewers start this far into it (after the first key frame went by).
const VIEWERS_AT_MS: u32 = 500;
/// No cue in the last this many milliseconds of what is published.
const CUES_END_BEFORE_MS: u32 = 2_000;

fn text_of(tag: &Tag) -> Option<u32> {
    let text = String::from_utf8_lossy(&tag.body);
    if !text.contains("onTextData") {
        return None;
    }
    let at = text.find("cue ")?;
    text[at + 4..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[test]
fn netstream_send_reaches_ffmpeg_viewers_in_order_with_the_media() {
    let server = Server::start();
    let url = server.url("live/txt");
    let mut publisher = RtmpClient::connected(server.addr(), "live").expect("connect");
    let sid = publisher.create_stream().expect("createStream");
    publisher.publish("txt").expect("publish");
    publisher
        .wait_status("NetStream.Publish.Start", bounds::MESSAGE)
        .expect("Publish.Start");

    // The sample's metadata first, as an encoder sends it (ffmpeg takes the video's
    // dimensions from it).
    let sample = read_tags(&sample_flv());
    let metadata = sample
        .iter()
        .find(|t| t.type_id == SCRIPT)
        .expect("onMetaData");
    let mut payload = encode_values(false, &[Amf0Value::string("@setDataFrame")]);
    payload.extend_from_slice(&metadata.body);
    publisher
        .send(&Message {
            csid: 5,
            timestamp: 0,
            type_id: SCRIPT,
            stream_id: sid,
            payload: Bytes::from(payload),
        })
        .expect("send metadata");

    let dir = ScratchDir::new("netstream-send");
    let outs = [dir.join("a.flv"), dir.join("b.flv")];
    let mut dumps = Vec::new();
    let media: Vec<Tag> = sample
        .into_iter()
        .filter(|t| (t.type_id == AUDIO || t.type_id == VIDEO) && t.timestamp <= PUBLISH_MS)
        .collect();
    let start = Instant::now();
    let mut cues = 0u32;
    let mut last_cue_at = 0;
    for tag in &media {
        // Paced as a live encoder sends (bounded: PUBLISH_MS of the sample).
        let due = start + Duration::from_millis(u64::from(tag.timestamp));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if dumps.is_empty() && tag.timestamp >= VIEWERS_AT_MS {
            dumps = outs
                .iter()
                .map(|o| {
                    let o = o.to_str().expect("utf-8 path");
                    ffmpeg(&[
                        "-rw_timeout",
                        "2000000",
                        "-i",
                        &url,
                        "-map",
                        "0",
                        "-c",
                        "copy",
                        "-f",
                        "flv",
                        o,
                    ])
                })
                .collect();
        }
        let csid = if tag.type_id == VIDEO { 6 } else { 4 };
        publisher
            .send(&Message {
                csid,
                timestamp: tag.timestamp,
                type_id: tag.type_id,
                stream_id: sid,
                payload: tag.body.clone(),
            })
            .expect("send media");
        // A cue every 250 ms of video once the viewers are up, at the video's timestamp,
        // and media for a while after the last (ffmpeg interleaves before it writes).
        let cueing = tag.timestamp + CUES_END_BEFORE_MS <= PUBLISH_MS;
        if tag.type_id == VIDEO && !dumps.is_empty() && cueing && tag.timestamp >= last_cue_at + 250
        {
            last_cue_at = tag.timestamp;
            let values = [
                Amf0Value::string("onTextData"),
                Amf0Value::object([("text", Amf0Value::string(format!("cue {cues}")))]),
            ];
            publisher
                .send(&Message {
                    csid: 5,
                    timestamp: tag.timestamp,
                    type_id: SCRIPT,
                    stream_id: sid,
                    payload: Bytes::from(encode_values(false, &values)),
                })
                .expect("send onTextData");
            cues += 1;
        }
    }
    // The stream ends; each viewer ends on its read timeout and writes out everything
    // (an interrupted ffmpeg loses what its muxer still interleaves).
    for d in &mut dumps {
        assert!(d.is_running(), "ffmpeg exited early:\n{}", d.stderr());
    }
    publisher.shutdown();
    for d in &mut dumps {
        if d.wait_timeout(Duration::from_secs(20)).is_none() {
            d.interrupt(Duration::from_secs(5));
        }
    }
    assert!(cues >= 12, "only {cues} cues were sent");

    for out in &outs {
        let tags = read_tags(out);
        let texts: Vec<(usize, u32)> = tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.type_id == SCRIPT)
            .filter_map(|(i, t)| text_of(t).map(|n| (i, n)))
            .collect();
        // A viewer starts on a key frame (every 2 s in the sample): the cues before its
        // first one are not its; the rest all are, each once, in order.
        assert!(
            texts.len() >= 6,
            "{}: {} of {cues} cues recorded",
            out.display(),
            texts.len()
        );
        let numbers: Vec<u32> = texts.iter().map(|(_, n)| *n).collect();
        let first = numbers[0];
        let expected: Vec<u32> = (first..first + numbers.len() as u32).collect();
        assert_eq!(
            numbers,
            expected,
            "{}: cues lost or reordered",
            out.display()
        );
        assert_eq!(
            numbers.last(),
            Some(&(cues - 1)),
            "{}: the last cue",
            out.display()
        );
        // In order with the media: each cue sits between video of no later and video of
        // no earlier timestamp, as it was sent.
        for (i, _) in &texts {
            let ts = tags[*i].timestamp;
            let before = tags[..*i].iter().rev().find(|t| t.type_id == VIDEO);
            let after = tags[i + 1..].iter().find(|t| t.type_id == VIDEO);
            assert!(
                before.is_some_and(|v| v.timestamp <= ts),
                "{}: cue at {ts} before its video",
                out.display()
            );
            if let Some(v) = after {
                assert!(
                    v.timestamp >= ts,
                    "{}: cue at {ts} after later video",
                    out.display()
                );
            }
        }
    }
}
