//! Fuzz entry point for the relays' conversations in the client role: what an upstream, a
//! push target or a parent tier (or anything pretending to be one) sends to a pull's link
//! (`relay::link`), a push (`relay::push`) or a standing link (`relay::registration`, whose
//! addStream / removeStream go into a `relay::catalog::Catalog`).

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::handshake::{HandshakeKind, ServerHandshake};
use crate::proto::rtmp::session::{Session, SessionConfig, SessionEvent};
use crate::relay::catalog::Catalog;
use crate::relay::link::PullLink;
use crate::relay::push::PushLink;
use crate::relay::registration::{ChildLink, RegistrationStep};

enum Conversation {
    Pull(PullLink),
    Push(PushLink),
    Child(ChildLink, Catalog),
}

impl Conversation {
    fn on_event(&mut self, session: &mut Session, event: SessionEvent, out: &mut BytesMut) {
        match self {
            Conversation::Pull(link) => {
                link.on_event(session, event, out);
            }
            Conversation::Push(push) => {
                push.on_event(session, event, out);
            }
            Conversation::Child(link, catalog) => match link.on_event(session, event, out) {
                RegistrationStep::Registered => catalog.registered("edge", 0),
                RegistrationStep::Stream { name, live } => {
                    let _ = catalog.stream("edge", 0, &name, live);
                    let _ = catalog.lookup("edge", &name);
                }
                RegistrationStep::Failed(_) => {
                    catalog.lost("edge", 0);
                }
                RegistrationStep::Nothing => {}
            },
        }
    }
}

/// Byte 0: its value mod 3 picks the conversation (pull, push, standing link); the rest of
/// it (divided by 3) the feed size (0 = everything at once). A real server handshake comes
/// first; the rest is what the far end sends.
pub fn relay_links(data: &[u8]) {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let step = match usize::from(ctl / 3) {
        0 => data.len().max(1),
        n => n,
    };
    let (app, url) = (
        "lsc_origin".to_string(),
        "rtmp://127.0.0.2/lsc_origin".to_string(),
    );
    let mut conversation = match ctl % 3 {
        0 => Conversation::Pull(PullLink::new(app, url, "cam".into())),
        1 => Conversation::Push(PushLink::new(app, url, "cam".into())),
        _ => {
            let mut catalog = Catalog::default();
            catalog.set_groups("edge", 1);
            Conversation::Child(ChildLink::new(app, url), catalog)
        }
    };
    let mut rng = StdRng::seed_from_u64(12);
    let config = SessionConfig {
        limits: DecoderLimits {
            max_message_size: 1 << 20,
            max_chunk_streams: 16,
        },
        ..SessionConfig::client(4096)
    };
    let mut out = BytesMut::new();
    let mut client = Session::client(config, HandshakeKind::Digest, &mut rng, 0, &mut out);
    let mut server = ServerHandshake::new(&mut rng, 0);
    let mut s0s1s2 = Vec::new();
    assert!(
        server.feed(&out, &mut s0s1s2).is_ok(),
        "our C0C1 refused by our server"
    );
    let mut events = Vec::new();
    assert!(
        client.feed(&s0s1s2, &mut out, &mut events).is_ok(),
        "our server's S0S1S2 refused by our client"
    );
    for event in events.drain(..) {
        conversation.on_event(&mut client, event, &mut out);
    }
    for piece in data.chunks(step) {
        let fed = client.feed(piece, &mut out, &mut events);
        for event in events.drain(..) {
            conversation.on_event(&mut client, event, &mut out);
        }
        if fed.is_err() {
            return;
        }
        out.clear();
    }
}
