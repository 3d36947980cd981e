//! The statuses every play sends, live or file, worded once: the start (Stream Begin,
//! Play.Reset when asked, Play.Start and `|RtmpSampleAccess`, which lets Flash players read
//! the samples), a restart after a seek, and the stop.

use super::port::{ClientRef, Level, Port, StreamEvent};
use crate::proto::amf0::Amf0Value;

pub(crate) fn announce<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    name: &str,
    reset: bool,
) {
    port.stream_event(client, StreamEvent::Begin(stream_id));
    if reset {
        port.status(
            client,
            stream_id,
            Level::Status,
            "NetStream.Play.Reset",
            &format!("Playing and resetting {name}."),
            name,
        );
    }
    started(port, client, stream_id, name);
    port.data(
        client,
        stream_id,
        &[
            Amf0Value::string("|RtmpSampleAccess"),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ],
    );
}

/// NetStream.Play.Start: at a play's start, and again after a seek.
pub(crate) fn started<P: Port>(port: &mut P, client: ClientRef, stream_id: u32, name: &str) {
    port.status(
        client,
        stream_id,
        Level::Status,
        "NetStream.Play.Start",
        &format!("Started playing {name}."),
        name,
    );
}

/// NetStream.Play.Stop: the client stopped playing, or the play ended.
pub(crate) fn stopped<P: Port>(port: &mut P, client: ClientRef, stream_id: u32, name: &str) {
    port.status(
        client,
        stream_id,
        Level::Status,
        "NetStream.Play.Stop",
        &format!("Stopped playing {name}."),
        name,
    );
}
