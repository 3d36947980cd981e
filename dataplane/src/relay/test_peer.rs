//! An in-memory far end for the relays' conversations (a push's target, a child link's
//! upstream): a server-role `Session` that answers connect, createStream and any other call
//! that expects an answer as a server does, records every command it gets, and sends what a
//! test writes. The conversation under test sits on the client-role `Session`.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::handshake::HandshakeKind;
use crate::proto::rtmp::session::{Session, SessionConfig, SessionEvent};

/// The message stream the peer's createStream hands out.
pub(crate) const STREAM: u32 = 1;

pub(crate) struct Peer {
    pub(crate) client: Session,
    server: Session,
    pub(crate) to_server: BytesMut,
    to_client: BytesMut,
    /// Commands the peer received: (name, first argument, or the connect's app).
    pub(crate) received: Vec<(String, String)>,
    /// The peer refuses connect (`_error` NetConnection.Connect.Rejected).
    pub(crate) refuse_connect: bool,
}

pub(crate) fn info(level: &str, code: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
    ])
}

impl Peer {
    pub(crate) fn new() -> Peer {
        let mut rng = StdRng::seed_from_u64(9);
        let mut to_server = BytesMut::new();
        let client = Session::client(
            SessionConfig::client(4096),
            HandshakeKind::Simple,
            &mut rng,
            0,
            &mut to_server,
        );
        let server = Session::server(
            SessionConfig {
                limits: DecoderLimits::default(),
                chunk_size: 4096,
                window_ack_size: 2_500_000,
                peer_bandwidth: 2_500_000,
            },
            &mut rng,
            0,
        );
        Peer {
            client,
            server,
            to_server,
            to_client: BytesMut::new(),
            received: Vec::new(),
            refuse_connect: false,
        }
    }

    /// Moves bytes both ways until both are quiet; every event of the client session goes
    /// to `on_event` (the conversation under test) with the client's session and output.
    pub(crate) fn pump(
        &mut self,
        mut on_event: impl FnMut(&mut Session, SessionEvent, &mut BytesMut),
    ) {
        for _ in 0..20 {
            if self.to_server.is_empty() && self.to_client.is_empty() {
                return;
            }
            let mut events = Vec::new();
            let bytes = self.to_server.split();
            self.server
                .feed(&bytes, &mut self.to_client, &mut events)
                .expect("the peer takes what the client sends");
            for e in events {
                let SessionEvent::Command { command, .. } = e else {
                    continue;
                };
                let arg = command
                    .arg(0)
                    .and_then(|a| a.as_str())
                    .unwrap_or_default()
                    .to_string();
                let tx = Amf0Value::Number(command.transaction_id);
                match command.name.as_str() {
                    "connect" => {
                        let app = command
                            .command_object
                            .get("app")
                            .and_then(|a| a.as_str())
                            .unwrap_or_default()
                            .to_string();
                        self.received.push(("connect".into(), app));
                        self.server.write_connect_preamble(&mut self.to_client);
                        let (name, code) = if self.refuse_connect {
                            ("_error", "NetConnection.Connect.Rejected")
                        } else {
                            ("_result", "NetConnection.Connect.Success")
                        };
                        self.reply(&[
                            Amf0Value::string(name),
                            tx,
                            Amf0Value::Null,
                            info("status", code),
                        ]);
                    }
                    "createStream" => {
                        self.received.push(("createStream".into(), arg));
                        self.reply(&[
                            Amf0Value::string("_result"),
                            tx,
                            Amf0Value::Null,
                            Amf0Value::Number(f64::from(STREAM)),
                        ]);
                    }
                    name => {
                        self.received.push((name.to_string(), arg));
                        if command.transaction_id != 0.0 {
                            self.reply(&[
                                Amf0Value::string("_result"),
                                tx,
                                Amf0Value::Null,
                                Amf0Value::Undefined,
                            ]);
                        }
                    }
                }
            }
            let mut events = Vec::new();
            let bytes = self.to_client.split();
            self.client
                .feed(&bytes, &mut self.to_server, &mut events)
                .expect("the client takes what the peer sends");
            for e in events {
                on_event(&mut self.client, e, &mut self.to_server);
            }
        }
        panic!("the conversation does not settle");
    }

    /// A command from the peer on message stream `stream_id` (sent at the next pump).
    pub(crate) fn send(&mut self, stream_id: u32, values: &[Amf0Value]) {
        self.server
            .write_command(stream_id, false, values, &mut self.to_client);
    }

    fn reply(&mut self, values: &[Amf0Value]) {
        self.send(0, values);
    }
}
