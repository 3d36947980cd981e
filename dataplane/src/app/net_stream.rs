//! What a client is told about its own NetStreams as publisher and about its requests:
//! publish accepted or refused, unpublished, play stopped, and the answers to requests a
//! decision (auth) refused. Told through the `Port`, so every transport says the same.

use super::net_connection::Action;
use super::status;
use crate::media::port::{ClientRef, Level, Port, StreamEvent};
use crate::media::StreamKey;

/// The publish was refused (name in use, too many streams, denied): the NetStream is idle.
pub(crate) fn publish_refused<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    key: &StreamKey,
    description: &str,
) {
    port.status(
        client,
        stream_id,
        Level::Error,
        "NetStream.Publish.BadName",
        description,
        key.name(),
    );
}

/// The client holds the stream now.
pub(crate) fn publish_started<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    key: &StreamKey,
) {
    let name = key.name();
    port.stream_event(client, StreamEvent::Begin(stream_id));
    port.status(
        client,
        stream_id,
        Level::Status,
        "NetStream.Publish.Start",
        &format!("Publishing {name}."),
        name,
    );
}

/// What a recording the publisher asked for (`record`, `append`) became, as AMS tells it
/// (levels from Adobe's NetStatusEvent table: Start and Stop are status, NoAccess and
/// Failed errors). A server-side recording tells the publisher nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RecordStatus {
    Started,
    Stopped,
    /// The recording cannot start (no content root, a name that cannot be a file).
    NoAccess(String),
    /// It could not start or stopped short (disk full, unwritable path): why.
    Failed(String),
}

pub(crate) fn record_status<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    key: &StreamKey,
    status: RecordStatus,
) {
    let name = key.name();
    let (level, code, description) = match status {
        RecordStatus::Started => (
            Level::Status,
            "NetStream.Record.Start",
            format!("Recording {name}."),
        ),
        RecordStatus::Stopped => (
            Level::Status,
            "NetStream.Record.Stop",
            format!("Stopped recording {name}."),
        ),
        RecordStatus::NoAccess(why) => (
            Level::Error,
            "NetStream.Record.NoAccess",
            format!("No access to record {name}: {why}."),
        ),
        RecordStatus::Failed(why) => (
            Level::Error,
            "NetStream.Record.Failed",
            format!("Recording {name} failed: {why}."),
        ),
    };
    port.status(client, stream_id, level, code, &description, name);
    port.flush(client);
}

/// The client stopped publishing (closeStream, deleteStream, FCUnpublish).
pub(crate) fn unpublished<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    key: &StreamKey,
) {
    let name = key.name();
    port.status(
        client,
        stream_id,
        Level::Status,
        "NetStream.Unpublish.Success",
        &format!("Stopped publishing {name}."),
        name,
    );
}

/// The client stopped playing (closeStream, deleteStream, a new play on the NetStream).
pub(crate) fn play_stopped<P: Port>(
    port: &mut P,
    client: ClientRef,
    stream_id: u32,
    key: &StreamKey,
) {
    crate::media::play_statuses::stopped(port, client, stream_id, key.name());
}

/// What the caller does after a refusal.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    /// The client was told; close it with this reason (a refused connect).
    Close(String),
    /// The client was told; this NetStream of its is idle again (`stream_idle`).
    StreamIdle(u32),
    /// Not a decision's action: carry it out as usual.
    NotGated(Action),
}

/// A decision went against `action` for `reason`: the client is told what AMS tells it.
pub(crate) fn refuse<P: Port>(
    port: &mut P,
    client: ClientRef,
    action: Action,
    reason: &str,
) -> Refused {
    match action {
        Action::Accepted { reply } => {
            let tid = reply
                .get(1)
                .and_then(crate::proto::amf0::Amf0Value::as_f64)
                .unwrap_or(1.0);
            let description = format!("Connection refused: {reason}.");
            port.command(
                client,
                0,
                &status::error(tid, "NetConnection.Connect.Rejected", &description),
            );
            port.flush(client);
            Refused::Close(format!("connect refused: {reason}"))
        }
        Action::StartPublish { stream_id, key, .. } => {
            let description = format!("Publishing refused: {reason}.");
            publish_refused(port, client, stream_id, &key, &description);
            Refused::StreamIdle(stream_id)
        }
        Action::StartPlay { stream_id, key, .. } => {
            port.status(
                client,
                stream_id,
                Level::Error,
                "NetStream.Play.Failed",
                &format!("Playing refused: {reason}."),
                key.name(),
            );
            Refused::StreamIdle(stream_id)
        }
        other => Refused::NotGated(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::request::{PlayParams, PublishMode};
    use crate::media::test_port::{TestPort, Told};

    const C: ClientRef = ClientRef {
        slot: 1,
        generation: 0,
    };

    fn key() -> StreamKey {
        StreamKey::new("live", "_definst_", "dir/cam")
    }

    fn port() -> TestPort {
        let mut port = TestPort::default();
        port.add(C);
        port
    }

    /// The claim is the registry's; what the refused client is told is the app's.
    #[test]
    fn second_publisher_gets_bad_name() {
        use crate::engine::registry::{PublishRefused, Registry};
        let r = Registry::new(2);
        let k = StreamKey::new("live", "_definst_", "dir/cam");
        assert!(r.publish(&k, 0, 1, None).is_ok());
        let second = ClientRef {
            slot: 2,
            generation: 0,
        };
        let mut port = TestPort::default();
        port.add(second);
        if let Err(PublishRefused::NameInUse) = r.publish(&k, 1, 2, None) {
            publish_refused(&mut port, second, 1, &k, "Stream name is already in use.");
        }
        assert!(matches!(
            &port.clients[&second].told[..],
            [Told::Status { code, details, .. }]
                if code == "NetStream.Publish.BadName" && details == "dir/cam"
        ));
    }

    #[test]
    fn refused_connect_is_rejected_and_closed() {
        let mut port = port();
        let accepted = Action::Accepted {
            reply: status::connect_success(1.0, 0.0),
        };
        let refused = refuse(&mut port, C, accepted, "denied by the manager");
        assert_eq!(
            refused,
            Refused::Close("connect refused: denied by the manager".into())
        );
        assert_eq!(port.codes(C), ["NetConnection.Connect.Rejected"]);
        assert!(
            matches!(&port.clients[&C].told[0], Told::Command { name, .. } if name == "_error")
        );
    }

    #[test]
    fn refused_publish_is_bad_name_with_the_full_name() {
        let mut port = port();
        let publish = Action::StartPublish {
            stream_id: 1,
            key: key(),
            mode: PublishMode::Live,
            query: None,
        };
        assert_eq!(
            refuse(&mut port, C, publish, "bad key"),
            Refused::StreamIdle(1)
        );
        assert_eq!(
            port.clients[&C].told,
            [Told::Status {
                code: "NetStream.Publish.BadName".into(),
                details: "dir/cam".into(),
                description: "Publishing refused: bad key.".into(),
            }]
        );
    }

    #[test]
    fn refused_play_is_play_failed() {
        let mut port = port();
        let play = Action::StartPlay {
            stream_id: 2,
            key: key(),
            params: PlayParams {
                name: "dir/cam".into(),
                start: -2.0,
                duration: -1.0,
                reset: false,
            },
        };
        assert_eq!(refuse(&mut port, C, play, "no"), Refused::StreamIdle(2));
        assert_eq!(port.codes(C), ["NetStream.Play.Failed"]);
    }

    #[test]
    fn other_actions_are_not_refused() {
        let mut port = port();
        let close = Action::Close { reason: "x".into() };
        assert!(matches!(
            refuse(&mut port, C, close, "no"),
            Refused::NotGated(_)
        ));
        assert!(port.codes(C).is_empty());
    }

    /// Publish.Start says nothing of recording: what a `record` publish becomes is told
    /// by the recording (`record_status`), with AMS's codes and levels.
    #[test]
    fn recording_statuses_have_ams_codes_and_levels() {
        let mut port = port();
        publish_started(&mut port, C, 1, &key());
        assert_eq!(port.codes(C), ["NetStream.Publish.Start"]);
        assert_eq!(port.clients[&C].told[0], Told::Event(StreamEvent::Begin(1)));
        for status in [
            RecordStatus::Started,
            RecordStatus::Stopped,
            RecordStatus::NoAccess("no content root".into()),
            RecordStatus::Failed("No space left on device".into()),
        ] {
            record_status(&mut port, C, 1, &key(), status);
        }
        assert_eq!(
            port.codes(C),
            [
                "NetStream.Publish.Start",
                "NetStream.Record.Start",
                "NetStream.Record.Stop",
                "NetStream.Record.NoAccess",
                "NetStream.Record.Failed"
            ]
        );
        assert!(matches!(
            port.clients[&C].told.last(),
            Some(Told::Status { description, details, .. })
                if description == "Recording dir/cam failed: No space left on device."
                    && details == "dir/cam"
        ));
    }
}
