//! A server-side script's `NetConnection` to another application (on this server or
//! another), sans-IO: the conversation FCRemoteConnection.asc has with a remote server.
//! After the handshake it connects (with the script's arguments, for the far onConnect),
//! then carries the script's calls and their answers, and the far application's calls on
//! the NetConnection. The engine opens the connection (engine/worker/script_connections.rs)
//! and turns each step into the script's onStatus, onResult or method call.

use bytes::BytesMut;

use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::session::{CallAnswer, CallKind, Session, SessionEvent};
use crate::relay::client_setup::{ClientSetup, Setup};

/// What a script's connection announces: a server, as AMS's own server-side connections do.
const FLASH_VER: &str = "FMS/3,5,7,7009 (strata script)";

#[derive(Debug, PartialEq)]
pub(crate) enum ScriptLinkStep {
    Nothing,
    /// The far application accepted connect.
    Connected,
    /// The far application refused connect: its `_error` info object (code, description,
    /// and the `application` object its script rejected with).
    Rejected(Amf0Value),
    /// The answer to our call `transaction`: `_result`'s value, or `_error`'s info object.
    Answer {
        transaction: u32,
        ok: bool,
        value: Amf0Value,
    },
    /// The far application calls `method` on this NetConnection (transaction 0: it waits
    /// for no answer).
    Call {
        transaction: f64,
        method: String,
        args: Vec<Amf0Value>,
    },
    /// A NetConnection status from the far end (e.g. NetConnection.Connect.AppShutdown).
    Status(Amf0Value),
    /// The connection is of no more use; the engine closes it, saying why.
    Failed(String),
}

pub(crate) struct ScriptLink {
    setup: ClientSetup,
}

impl ScriptLink {
    /// `app` is `app` or `app/instance` on the far server; `args` go with connect.
    pub(crate) fn new(app: String, tc_url: String, args: Vec<Amf0Value>) -> Self {
        ScriptLink {
            setup: ClientSetup::new(app, tc_url, FLASH_VER, false).with_args(args),
        }
    }

    /// Past connect: the connection's setup deadline no longer applies.
    pub(crate) fn is_connected(&self) -> bool {
        self.setup.is_connected()
    }

    /// Calls `method` on the far application; its answer comes as `Answer` with the
    /// transaction returned.
    pub(crate) fn call(
        &mut self,
        session: &mut Session,
        method: &str,
        args: &[Amf0Value],
        out: &mut BytesMut,
    ) -> Result<u32, String> {
        if !self.is_connected() {
            return Err("not connected".into());
        }
        session
            .call(0, method, Amf0Value::Null, args, out)
            .map_err(|e| e.to_string())
    }

    /// Answers the far application's call `transaction` (see `Call`).
    pub(crate) fn answer(
        &mut self,
        session: &mut Session,
        transaction: f64,
        answer: CallAnswer,
        out: &mut BytesMut,
    ) {
        session.answer(0, transaction, answer, out);
    }

    pub(crate) fn on_event(
        &mut self,
        session: &mut Session,
        event: SessionEvent,
        out: &mut BytesMut,
    ) -> ScriptLinkStep {
        let event = match self.setup.on_event(session, event, out) {
            Setup::Pass(event) => event,
            Setup::Pending => return ScriptLinkStep::Nothing,
            Setup::Failed(why) => return ScriptLinkStep::Failed(why),
            Setup::Ready { .. } => return ScriptLinkStep::Connected,
        };
        match event {
            SessionEvent::Error {
                call: CallKind::Connect,
                command,
                ..
            } => ScriptLinkStep::Rejected(command.info().cloned().unwrap_or(Amf0Value::Null)),
            SessionEvent::Result {
                transaction,
                call: CallKind::Method(_),
                command,
            } => ScriptLinkStep::Answer {
                transaction,
                ok: true,
                value: command.arg(0).cloned().unwrap_or(Amf0Value::Undefined),
            },
            SessionEvent::Error {
                transaction,
                call: CallKind::Method(_),
                command,
            } => ScriptLinkStep::Answer {
                transaction,
                ok: false,
                value: command
                    .info()
                    .or(command.arg(0))
                    .cloned()
                    .unwrap_or(Amf0Value::Null),
            },
            SessionEvent::Status {
                stream_id: 0,
                command,
            } => ScriptLinkStep::Status(command.info().cloned().unwrap_or(Amf0Value::Null)),
            SessionEvent::Command {
                stream_id: 0,
                command,
                ..
            } if self.is_connected() && !command.name.starts_with('_') => ScriptLinkStep::Call {
                transaction: command.transaction_id,
                method: command.name,
                args: command.args,
            },
            // Acknowledgements, control, answers to nothing, streams' messages.
            _ => ScriptLinkStep::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::test_peer::Peer;

    struct Far {
        link: ScriptLink,
        peer: Peer,
        steps: Vec<ScriptLinkStep>,
    }

    impl Far {
        fn new(args: Vec<Amf0Value>) -> Far {
            Far {
                link: ScriptLink::new("b".into(), "rtmp://127.0.0.1:1935/b".into(), args),
                peer: Peer::new(),
                steps: Vec::new(),
            }
        }

        fn pump(&mut self) -> Vec<ScriptLinkStep> {
            let (link, steps) = (&mut self.link, &mut self.steps);
            self.peer.pump(|session, e, out| {
                let step = link.on_event(session, e, out);
                if step != ScriptLinkStep::Nothing {
                    steps.push(step);
                }
            });
            std::mem::take(&mut self.steps)
        }
    }

    #[test]
    fn connects_with_the_scripts_arguments_then_calls_and_is_called() {
        let mut far = Far::new(vec![Amf0Value::string("relay")]);
        // No call before connect is accepted.
        let mut out = BytesMut::new();
        assert!(far
            .link
            .call(&mut far.peer.client, "early", &[], &mut out)
            .is_err());
        assert_eq!(far.pump(), [ScriptLinkStep::Connected]);
        assert_eq!(far.peer.received, [("connect".into(), "b".into())]);
        assert!(far.link.is_connected());

        // A call goes out and its answer comes back by transaction.
        let t = far
            .link
            .call(
                &mut far.peer.client,
                "relayed",
                &[Amf0Value::string("x")],
                &mut far.peer.to_server,
            )
            .expect("sent");
        let steps = far.pump();
        assert_eq!(far.peer.received[1], ("relayed".into(), "x".into()));
        assert_eq!(
            steps,
            [ScriptLinkStep::Answer {
                transaction: t,
                ok: true,
                value: Amf0Value::Undefined
            }]
        );

        // The far application calls a method on us; an answer goes back by its
        // transaction; its NetConnection status reaches the script.
        far.peer.send(
            0,
            &[
                Amf0Value::string("hello"),
                Amf0Value::Number(7.0),
                Amf0Value::Null,
                Amf0Value::Number(1.0),
            ],
        );
        far.peer.send(
            0,
            &[
                Amf0Value::string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                crate::relay::test_peer::info("error", "NetConnection.Connect.AppShutdown"),
            ],
        );
        let steps = far.pump();
        assert_eq!(
            steps,
            [
                ScriptLinkStep::Call {
                    transaction: 7.0,
                    method: "hello".into(),
                    args: vec![Amf0Value::Number(1.0)]
                },
                ScriptLinkStep::Status(crate::relay::test_peer::info(
                    "error",
                    "NetConnection.Connect.AppShutdown"
                )),
            ]
        );
        far.link.answer(
            &mut far.peer.client,
            7.0,
            CallAnswer::Result(Amf0Value::Boolean(true)),
            &mut far.peer.to_server,
        );
        far.pump();
        assert_eq!(far.peer.received.len(), 3, "{:?}", far.peer.received);
    }

    #[test]
    fn a_refused_connect_is_told_with_its_info() {
        let mut far = Far::new(Vec::new());
        far.peer.refuse_connect = true;
        let steps = far.pump();
        assert_eq!(
            steps,
            [ScriptLinkStep::Rejected(crate::relay::test_peer::info(
                "status",
                "NetConnection.Connect.Rejected"
            ))]
        );
        assert!(!far.link.is_connected());
    }
}
