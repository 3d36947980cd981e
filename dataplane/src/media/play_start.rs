//! What every play start tells the client, live or file: Stream Begin, Play.Reset when
//! asked, Play.Start and `|RtmpSampleAccess` (which lets Flash players read the samples).

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
    port.status(
        client,
        stream_id,
        Level::Status,
        "NetStream.Play.Start",
        &format!("Started playing {name}."),
        name,
    );
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
