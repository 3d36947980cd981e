//! A child's standing link to one upstream group, sans-IO: the seed's "connect to every
//! group, register, keep a list of active publishers". After the handshake it connects to
//! the upstream application and calls FCAddChild; the upstream then sends addStream /
//! removeStream as publishers start and stop (and, at registration, one addStream per stream
//! live then). Each becomes a `RegistrationStep` for the engine, which keeps the lists
//! (`relay::catalog`). Nothing here touches a socket or a clock.

use bytes::BytesMut;

use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::session::{CallKind, Session, SessionEvent};
use crate::relay::client_setup::{ClientSetup, Setup};
use crate::relay::tier;

/// What a child announces (as the link of a pull does).
const FLASH_VER: &str = "FMS/3,5,7,7009 (strata)";
/// The registration call (../shared/seeds/livestreamcast-architecture.txt).
pub(crate) const FC_ADD_CHILD: &str = "FCAddChild";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connecting (`ClientSetup`).
    Setup,
    Registering,
    Registered,
}

#[derive(Debug, PartialEq)]
pub(crate) enum RegistrationStep {
    Nothing,
    /// The upstream accepted FCAddChild: its list is kept from now on.
    Registered,
    /// addStream (`true`) or removeStream (`false`) for a stream name.
    Stream {
        name: String,
        live: bool,
    },
    /// The link is of no more use (refused, or the upstream takes no children): the engine
    /// closes it, saying why, and retries later.
    Failed(String),
}

pub(crate) struct ChildLink {
    setup: ClientSetup,
    stage: Stage,
}

impl ChildLink {
    /// `app` is `app` or `app/instance` on the upstream.
    pub(crate) fn new(app: String, tc_url: String) -> Self {
        ChildLink {
            setup: ClientSetup::new(app, tc_url, FLASH_VER, false),
            stage: Stage::Setup,
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
    ) -> RegistrationStep {
        let event = match self.setup.on_event(session, event, out) {
            Setup::Pass(event) => event,
            Setup::Pending => return RegistrationStep::Nothing,
            Setup::Failed(why) => return RegistrationStep::Failed(why),
            Setup::Ready { .. } => {
                self.stage = Stage::Registering;
                return match session.call(0, FC_ADD_CHILD, Amf0Value::Null, &[], out) {
                    Ok(_) => RegistrationStep::Nothing,
                    Err(e) => RegistrationStep::Failed(format!("FCAddChild not sent: {e}")),
                };
            }
        };
        match event {
            SessionEvent::Result {
                call: CallKind::Method(method),
                ..
            } if method == FC_ADD_CHILD && self.stage == Stage::Registering => {
                self.stage = Stage::Registered;
                RegistrationStep::Registered
            }
            SessionEvent::Error { call, command, .. } => RegistrationStep::Failed(format!(
                "upstream refused {}: {}",
                call.method(),
                command
                    .info_str("description")
                    .or(command.info_str("code"))
                    .unwrap_or("(no reason)")
            )),
            SessionEvent::Command { command, .. }
                if command.name == tier::ADD_STREAM || command.name == tier::REMOVE_STREAM =>
            {
                let live = command.name == tier::ADD_STREAM;
                match command.arg(0).and_then(Amf0Value::as_str) {
                    // Before the answer to FCAddChild too: an upstream may tell what is
                    // live before it answers.
                    Some(name) if !name.is_empty() && self.is_connected() => {
                        RegistrationStep::Stream {
                            name: name.to_string(),
                            live,
                        }
                    }
                    _ => RegistrationStep::Nothing,
                }
            }
            // Calls the upstream makes (onBWDone, ...), acknowledgements, control.
            _ => RegistrationStep::Nothing,
        }
    }
}

#[cfg(test)]
mod tests;
