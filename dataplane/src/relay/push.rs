//! One push relay's conversation, sans-IO: a connection we opened to a push target (the
//! application key `push`, as nginx-rtmp's), its `Session` in the client role. After the
//! handshake it connects to the target application, creates a stream and publishes the
//! local stream's name there; once the target says Publish.Start the engine hands the
//! stream's frames to the connection's send queue (`Sink::Push`). What the target then says
//! becomes a `PushStep`. Nothing here touches a socket or a clock.

use bytes::BytesMut;

use crate::proto::rtmp::session::{CallKind, Session, SessionEvent};
use crate::relay::client_setup::{ClientSetup, Setup};

/// The flashVer a push announces: the target sees an encoder of ours.
const FLASH_VER: &str = "FMLE/3.0 (strata push)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connecting and creating the stream (`ClientSetup`).
    Setup,
    Publishing,
    Published,
}

/// What the engine does after an event of the push.
#[derive(Debug, PartialEq)]
pub(crate) enum PushStep {
    Nothing,
    /// The target accepted the publish: frames go out on message stream `stream_id`.
    Publishing {
        stream_id: u32,
    },
    /// The push is of no more use (refused, the name is taken, the target unpublished us):
    /// the engine closes the connection, saying why, and tries again after back-off.
    Failed(String),
}

pub(crate) struct PushLink {
    setup: ClientSetup,
    name: String,
    stage: Stage,
    stream_id: u32,
}

impl PushLink {
    /// `app` is `app` or `app/instance` on the target.
    pub(crate) fn new(app: String, tc_url: String, name: String) -> Self {
        PushLink {
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
    ) -> PushStep {
        let event = match self.setup.on_event(session, event, out) {
            Setup::Pass(event) => event,
            Setup::Pending => return PushStep::Nothing,
            Setup::Failed(why) => return PushStep::Failed(why),
            Setup::Ready { stream_id } => {
                self.stage = Stage::Publishing;
                self.stream_id = stream_id;
                session.publish(stream_id, &self.name, "live", out);
                return PushStep::Nothing;
            }
        };
        match event {
            // A call of ours the target does not know changes nothing; connect or
            // createStream refused ends the push.
            SessionEvent::Error {
                call: CallKind::Method(_),
                ..
            } => PushStep::Nothing,
            SessionEvent::Error { call, command, .. } => PushStep::Failed(format!(
                "target refused {}: {}",
                call.method(),
                command.info_str("code").unwrap_or("(no code)")
            )),
            SessionEvent::Status { stream_id, command } if stream_id == self.stream_id => {
                self.on_status(command.info_str("code").unwrap_or(""))
            }
            // Calls the target makes (onBWDone, ...), acknowledgements, control.
            _ => PushStep::Nothing,
        }
    }

    fn on_status(&mut self, code: &str) -> PushStep {
        match code {
            "NetStream.Publish.Start" if self.stage == Stage::Publishing => {
                self.stage = Stage::Published;
                PushStep::Publishing {
                    stream_id: self.stream_id,
                }
            }
            "NetStream.Publish.BadName"
            | "NetStream.Publish.Failed"
            | "NetStream.Publish.Denied"
            | "NetStream.Unpublish.Success"
            | "NetStream.Failed" => PushStep::Failed(format!("target said {code}")),
            _ => PushStep::Nothing,
        }
    }
}

#[cfg(test)]
mod tests;
