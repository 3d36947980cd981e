//! One upstream link's conversation, sans-IO: a connection we opened to an upstream server,
//! its `Session` in the client role. After the handshake it connects to the upstream
//! application, creates a stream and plays one name; what the upstream then says becomes a
//! `LinkStep` for the engine (go live, go offline, a frame, or give up on the link).
//! Bytes go out through the session into `out`; nothing here touches a socket or a clock.

use bytes::BytesMut;

use crate::proto::rtmp::session::{CallKind, Session, SessionEvent};
use crate::proto::rtmp::Message;
use crate::relay::client_setup::{ClientSetup, Setup};
use crate::relay::tier;

/// The flashVer a link announces: the upstream sees a server, as AMS edges announce theirs.
const FLASH_VER: &str = "FMS/3,5,7,7009 (strata)";
/// What a link asks the upstream to buffer (Set Buffer Length after play).
const BUFFER_MS: u32 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connecting and creating the stream (`ClientSetup`).
    Setup,
    Starting,
    Playing,
}

/// What the engine does after an event of the link.
#[derive(Debug, PartialEq)]
pub(crate) enum LinkStep {
    Nothing,
    /// The upstream plays the stream (Play.Start, or PublishNotify after an
    /// UnpublishNotify): the local stream goes live from this link.
    Live,
    /// The upstream's publisher left (UnpublishNotify): the local stream goes offline, the
    /// link stays and waits for the next publisher.
    Offline,
    /// The upstream has no such stream (onFMSubscribe with StreamNotFound).
    NotFound,
    /// Audio or video for the local stream.
    Media(Message),
    /// A data message (metadata) for the local stream.
    Data(Message),
    /// The link is of no more use (refused, failed, or the stream does not exist there):
    /// the engine closes it, saying why, and retries later.
    Failed(String),
}

/// One link's place in the conversation.
pub(crate) struct PullLink {
    setup: ClientSetup,
    name: String,
    stage: Stage,
    stream_id: u32,
}

impl PullLink {
    /// `app` is `app` or `app/instance` on the upstream.
    pub(crate) fn new(app: String, tc_url: String, name: String) -> Self {
        PullLink {
            setup: ClientSetup::new(app, tc_url, FLASH_VER, true),
            name,
            stage: Stage::Setup,
            stream_id: 0,
        }
    }

    /// Past connect: the connection's setup deadline no longer applies.
    pub(crate) fn is_connected(&self) -> bool {
        self.setup.is_connected()
    }

    pub(crate) fn on_event(
        &mut self,
        session: &mut Session,
        event: SessionEvent,
        out: &mut BytesMut,
    ) -> LinkStep {
        let event = match self.setup.on_event(session, event, out) {
            Setup::Pass(event) => event,
            Setup::Pending => return LinkStep::Nothing,
            Setup::Failed(why) => return LinkStep::Failed(why),
            Setup::Ready { stream_id } => {
                self.stage = Stage::Starting;
                self.stream_id = stream_id;
                // Asked first, as the seed's children do: an upstream that knows FCSubscribe
                // says at once whether it has the stream.
                let name = [crate::proto::amf0::Amf0Value::string(&self.name)];
                let null = crate::proto::amf0::Amf0Value::Null;
                if let Err(e) = session.call(0, tier::FC_SUBSCRIBE, null, &name, out) {
                    return LinkStep::Failed(format!("FCSubscribe not sent: {e}"));
                }
                session.play(stream_id, &self.name, out);
                session.set_buffer_length(stream_id, BUFFER_MS, out);
                return LinkStep::Nothing;
            }
        };
        match event {
            // An upstream that does not know FCSubscribe: play alone decides.
            SessionEvent::Error {
                call: CallKind::Method(_),
                ..
            } => LinkStep::Nothing,
            SessionEvent::Command { command, .. } if command.name == tier::ON_FM_SUBSCRIBE => {
                match command.info_str("code") {
                    Some("NetStream.Play.StreamNotFound") => LinkStep::NotFound,
                    _ => LinkStep::Nothing,
                }
            }
            SessionEvent::Error { call, command, .. } => LinkStep::Failed(format!(
                "upstream refused {}: {}",
                call.method(),
                command.info_str("code").unwrap_or("(no code)")
            )),
            SessionEvent::Status { stream_id, command } if stream_id == self.stream_id => {
                self.on_status(command.info_str("code").unwrap_or(""))
            }
            SessionEvent::Media { message } if self.playing(&message) => LinkStep::Media(message),
            SessionEvent::Data { message } if self.playing(&message) => LinkStep::Data(message),
            // Calls the upstream makes (onBWDone, ...), statuses of other streams, control.
            _ => LinkStep::Nothing,
        }
    }

    /// Media of our stream once play is sent: an upstream may send the first frames of its
    /// snapshot before its Play.Start (its statuses and media travel in separate queues),
    /// and those frames are the ones a decoder needs first.
    fn playing(&self, message: &Message) -> bool {
        matches!(self.stage, Stage::Starting | Stage::Playing)
            && message.stream_id == self.stream_id
    }

    fn on_status(&mut self, code: &str) -> LinkStep {
        match code {
            "NetStream.Play.Start" | "NetStream.Play.PublishNotify" => {
                if self.stage == Stage::Playing && code == "NetStream.Play.Start" {
                    // A repeated Start (after Play.Reset) changes nothing.
                    return LinkStep::Nothing;
                }
                self.stage = Stage::Playing;
                LinkStep::Live
            }
            "NetStream.Play.UnpublishNotify" => LinkStep::Offline,
            "NetStream.Play.StreamNotFound"
            | "NetStream.Play.Failed"
            | "NetStream.Play.Stop"
            | "NetStream.Play.InsufficientBW"
            | "NetStream.Play.Forbidden" => LinkStep::Failed(format!("upstream said {code}")),
            _ => LinkStep::Nothing,
        }
    }
}

#[cfg(test)]
mod tests;
