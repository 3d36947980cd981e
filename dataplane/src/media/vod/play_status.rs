//! What a viewer of a file is told, as AMS tells it: the start (shared with live plays:
//! `media/play_statuses.rs`) followed by onMetaData with the file's duration and the sequence
//! headers; Play.Switch between playlist items, Play.Complete and Play.Stop at the end
//! (onPlayStatus carries Switch and Complete), Pause/Unpause/Seek notifications, and
//! StreamNotFound.

use bytes::Bytes;

use super::index::{MediaIndex, Sample};
use crate::media::frame::{Frame, FrameRef, MediaMessage};
use crate::media::play_statuses;
use crate::media::port::{ClientRef, Level, Port, StreamEvent, Urgency};
use crate::proto::amf0::{self, Amf0Value};
use crate::proto::rtmp::msg_type;

/// The play of `name` starts (`reset`: the first item of a play, not a playlist addition):
/// announced, then metadata and sequence headers at media time `at`, never dropped.
pub(crate) fn start<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    name: &str,
    reset: bool,
    index: &MediaIndex,
    at: u32,
) {
    play_statuses::announce(port, client, stream_id, name, reset);
    headers(port, client, stream_id, index, at);
    port.flush(client);
}

/// A playlist moves on to its next item: onPlayStatus Play.Switch, then that item's
/// metadata and headers.
pub(crate) fn switch<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    index: &MediaIndex,
    at: u32,
) {
    play_status(port, client, stream_id, "NetStream.Play.Switch", index);
    headers(port, client, stream_id, index, at);
    port.flush(client);
}

/// The last item ended: onPlayStatus Play.Complete, Play.Stop and Stream EOF.
pub(crate) fn complete<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    name: &str,
    index: &MediaIndex,
) {
    play_status(port, client, stream_id, "NetStream.Play.Complete", index);
    play_statuses::stopped(port, client, stream_id, name);
    port.stream_event(client, StreamEvent::Eof(stream_id));
    port.flush(client);
}

pub(crate) fn not_found<P: Port>(port: &mut P, client: ClientRef, stream_id: u32, name: &str) {
    port.status(
        client,
        stream_id,
        Level::Error,
        "NetStream.Play.StreamNotFound",
        &format!("Failed to play {name}; stream not found."),
        name,
    );
    port.flush(client);
}

/// pause / unpause of a file: told with the position (AMS's descriptions).
pub(crate) fn paused<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    name: &str,
    pause: bool,
) {
    let (code, description) = if pause {
        ("NetStream.Pause.Notify", format!("Pausing {name}."))
    } else {
        ("NetStream.Unpause.Notify", format!("Unpausing {name}."))
    };
    port.status(client, stream_id, Level::Status, code, &description, name);
    port.flush(client);
}

/// A seek: Seek.Notify, then Play.Start as AMS sends it, then headers again (the player
/// flushed its buffer).
pub(crate) fn seeked<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    name: &str,
    index: &MediaIndex,
    at: u32,
) {
    port.status(
        client,
        stream_id,
        Level::Status,
        "NetStream.Seek.Notify",
        &format!("Seeking {at} (stream ID: {stream_id})."),
        name,
    );
    play_statuses::started(port, client, stream_id, name);
    headers(port, client, stream_id, index, at);
    port.flush(client);
}

/// A seek where there is nothing to seek in (a live stream, nothing playing).
pub(crate) fn seek_failed<P: Port>(port: &mut P, client: ClientRef, stream_id: u32) {
    port.status(
        client,
        stream_id,
        Level::Error,
        "NetStream.Seek.Failed",
        "Seeking is not possible on this stream.",
        "",
    );
    port.flush(client);
}

/// One sample, given its bytes from the file, as a frame for viewers' queues (a file's
/// viewers share it: `sample_frames`).
pub(crate) fn sample_frame(index: &MediaIndex, sample: &Sample, data: Bytes) -> FrameRef {
    Frame::new(MediaMessage {
        timestamp: sample.timestamp,
        type_id: sample.type_id(),
        payload: index.payload(sample, data),
    })
}

/// onMetaData (the file's own if it has one, else one made from the index, with the
/// duration players need for their seek bar) and the sequence headers.
fn headers<P: Port>(port: &mut P, client: ClientRef, stream_id: u32, index: &MediaIndex, at: u32) {
    // What was said so far goes first: a port may queue commands and frames apart, and a
    // player ignores media before its Play.Start.
    port.flush(client);
    for m in header_messages(index, at) {
        port.frame(client, stream_id, &Frame::new(m), Urgency::Now);
    }
}

/// What a player needs before a file's samples, at media time `at`: onMetaData and the
/// codec headers (a viewer's play and a server-side stream's item both start with them).
pub(crate) fn header_messages(index: &MediaIndex, at: u32) -> Vec<MediaMessage> {
    let metadata = index
        .metadata
        .clone()
        .unwrap_or_else(|| made_metadata(index).into());
    let messages = [
        (msg_type::DATA_AMF0, Some(metadata)),
        (msg_type::VIDEO, index.video_header.clone()),
        (msg_type::AUDIO, index.audio_header.clone()),
    ];
    messages
        .into_iter()
        .filter_map(|(type_id, payload)| {
            Some(MediaMessage {
                timestamp: at,
                type_id,
                payload: payload?,
            })
        })
        .collect()
}

fn made_metadata(index: &MediaIndex) -> Vec<u8> {
    let mut props = vec![(
        "duration".to_string(),
        Amf0Value::Number(f64::from(index.duration_ms) / 1000.0),
    )];
    if index.width > 0 {
        props.push(("width".into(), Amf0Value::Number(f64::from(index.width))));
        props.push(("height".into(), Amf0Value::Number(f64::from(index.height))));
    }
    // Players set up their decoders from these before the first frame (ffmpeg creates its
    // streams from them); an FLV file's own onMetaData has them already.
    for track in &index.tracks {
        let key = if track.is_video() {
            "videocodecid"
        } else {
            "audiocodecid"
        };
        let id = f64::from(track.metadata_codec_id());
        props.push((key.into(), Amf0Value::Number(id)));
    }
    let mut out = Vec::new();
    amf0::encode_all(
        &[Amf0Value::string("onMetaData"), Amf0Value::EcmaArray(props)],
        &mut out,
    );
    out
}

/// onPlayStatus, a data message (AMS sends Switch and Complete so, not as onStatus).
fn play_status<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    code: &str,
    index: &MediaIndex,
) {
    port.data(
        client,
        stream_id,
        &[
            Amf0Value::string("onPlayStatus"),
            Amf0Value::object([
                ("level", Amf0Value::string("status")),
                ("code", Amf0Value::string(code)),
                (
                    "duration",
                    Amf0Value::Number(f64::from(index.duration_ms) / 1000.0),
                ),
                ("bytes", Amf0Value::Number(index.file_len as f64)),
            ]),
        ],
    );
}
