//! One client's NetConnection: what its calls mean, independent of how they arrived.
//! It answers what it can by itself and asks the worker (through `Action`s) for what needs
//! the shared stream registry: publishing and playing.

use super::request::{ConnectParams, PlayParams, PublishMode, Request};
use super::status::{self, Level};
use crate::config::{AppPolicy, Config};
use crate::media::StreamKey;
use crate::proto::amf0::Amf0Value;
use crate::proto::command::Command;

/// The instance a URL without one gets, as in AMS.
pub(crate) const DEFAULT_INSTANCE: &str = "_definst_";
/// NetStreams one connection may create; players use one, publishers one or two.
const MAX_STREAMS_PER_CONNECTION: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamState {
    Created,
    Publishing(StreamKey),
    Playing(StreamKey),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// A command or data message for the client on this message stream.
    Reply {
        stream_id: u32,
        values: Vec<Amf0Value>,
    },
    /// Connect accepted: the transport sends its preamble (window, bandwidth, chunk size),
    /// then `reply`.
    Accepted {
        reply: Vec<Amf0Value>,
    },
    StartPublish {
        stream_id: u32,
        key: StreamKey,
        mode: PublishMode,
        /// The query of the published name (`name?key=...`), for auth hooks.
        query: Option<String>,
    },
    StopPublish {
        stream_id: u32,
        key: StreamKey,
    },
    StartPlay {
        stream_id: u32,
        key: StreamKey,
        params: PlayParams,
    },
    /// A play with `reset` false follows on a NetStream that plays: a file play keeps
    /// playing and the next item joins its playlist; anything else stops as for `StopPlay`.
    NextPlay {
        stream_id: u32,
        key: StreamKey,
    },
    StopPlay {
        stream_id: u32,
        key: StreamKey,
    },
    SetReceive {
        stream_id: u32,
        audio: Option<bool>,
        video: Option<bool>,
    },
    Pause {
        stream_id: u32,
        pause: bool,
    },
    /// FCPublish: the transport answers onFCPublish with Publish.Start, or BadName when
    /// the name is published already.
    FcPublish {
        stream_id: u32,
        key: StreamKey,
    },
    /// FCAddChild from a child server, accepted: it is told of streams from now on, and of
    /// those live now.
    AddChild,
    /// FCSubscribe: the transport answers onFMSubscribe (Play.Start or StreamNotFound, and
    /// UnpublishNotify later).
    Subscribe {
        key: StreamKey,
    },
    /// FCUnsubscribe: no more onFMSubscribe for this name.
    Unsubscribe {
        key: StreamKey,
    },
    /// `getStreamLength(name)`: answered with the file's duration in seconds, 0 for what is
    /// not a file.
    StreamLength {
        stream_id: u32,
        transaction: f64,
        key: StreamKey,
        name: String,
    },
    /// Seek a NetStream that plays (a file; a live stream cannot seek).
    Seek {
        stream_id: u32,
        ms: f64,
    },
    /// Flush what is queued, then close.
    Close {
        reason: String,
    },
}

#[derive(Debug, Default)]
pub(crate) struct NetConnection {
    connected: bool,
    pub(crate) app: String,
    pub(crate) instance: String,
    pub(crate) policy: Option<AppPolicy>,
    pub(crate) tc_url: Option<String>,
    /// The query part of the application path or tcUrl (`?key=...`), for auth hooks.
    pub(crate) connect_query: Option<String>,
    pub(crate) object_encoding: f64,
    /// What an application script is told of the connect: the player's flashVer, swfUrl
    /// and pageUrl, and the connect's extra arguments (`onConnect(client, ...args)`).
    pub(crate) connect_info: Option<Box<ConnectInfo>>,
    streams: Vec<(u32, StreamState)>,
    /// SetBufferLength per stream (ms), kept whatever the stream does, so a file play that
    /// starts later (after its index is built) still sends ahead by what the client asked.
    buffer_lengths: Vec<(u32, u32)>,
    next_stream_id: u32,
}

/// The connect's details scripts see (see `NetConnection::connect_info`).
#[derive(Debug, Default)]
pub(crate) struct ConnectInfo {
    pub(crate) flash_ver: Option<String>,
    pub(crate) swf_url: Option<String>,
    pub(crate) page_url: Option<String>,
    pub(crate) args: Vec<Amf0Value>,
}

/// The part after `?`, if any and non-empty.
pub(crate) fn query_of(s: &str) -> Option<String> {
    s.split_once('?')
        .map(|(_, q)| q.to_string())
        .filter(|q| !q.is_empty())
}

fn split_app_path(path: &str) -> (String, String) {
    let path = path.split('?').next().unwrap_or(path).trim_matches('/');
    match path.split_once('/') {
        Some((app, inst)) if !inst.is_empty() => (app.to_string(), inst.to_string()),
        Some((app, _)) => (app.to_string(), DEFAULT_INSTANCE.to_string()),
        None => (path.to_string(), DEFAULT_INSTANCE.to_string()),
    }
}

impl NetConnection {
    pub(crate) fn new() -> Self {
        NetConnection {
            next_stream_id: 1,
            ..Default::default()
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    pub(crate) fn streams(&self) -> impl Iterator<Item = &(u32, StreamState)> {
        self.streams.iter()
    }

    /// The stream `stream_id` plays, if it plays one.
    pub(crate) fn playing(&self, stream_id: u32) -> Option<&StreamKey> {
        self.streams.iter().find_map(|(i, s)| match s {
            StreamState::Playing(k) if *i == stream_id => Some(k),
            _ => None,
        })
    }

    /// The stream `stream_id` publishes (or asked to publish), if any.
    pub(crate) fn publishing(&self, stream_id: u32) -> Option<&StreamKey> {
        self.streams.iter().find_map(|(i, s)| match s {
            StreamState::Publishing(k) if *i == stream_id => Some(k),
            _ => None,
        })
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut StreamState> {
        self.streams
            .iter_mut()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s)
    }

    /// The worker refused or ended a publish or play (name in use, limit, auth, play
    /// duration reached): the stream is idle again.
    pub(crate) fn stream_idle(&mut self, stream_id: u32) {
        if let Some(s) = self.stream_mut(stream_id) {
            *s = StreamState::Created;
        }
    }

    /// The client's buffer length for `stream_id` (SetBufferLength); ignored for a stream
    /// it did not create.
    pub(crate) fn set_buffer_length(&mut self, stream_id: u32, ms: u32) {
        if !self.streams.iter().any(|(i, _)| *i == stream_id) {
            return;
        }
        match self
            .buffer_lengths
            .iter_mut()
            .find(|(i, _)| *i == stream_id)
        {
            Some((_, b)) => *b = ms,
            None => self.buffer_lengths.push((stream_id, ms)),
        }
    }

    /// What the client last said its buffer for `stream_id` is, if it said.
    pub(crate) fn buffer_length(&self, stream_id: u32) -> Option<u32> {
        self.buffer_lengths
            .iter()
            .find(|(i, _)| *i == stream_id)
            .map(|(_, b)| *b)
    }

    fn key(&self, name: &str) -> StreamKey {
        StreamKey::new(&self.app, &self.instance, name)
    }

    /// Stops whatever `stream_id` is doing (publish or play), leaving it created.
    fn stop(&mut self, stream_id: u32, out: &mut Vec<Action>) {
        if let Some(state) = self.stream_mut(stream_id) {
            match std::mem::replace(state, StreamState::Created) {
                StreamState::Publishing(key) => out.push(Action::StopPublish { stream_id, key }),
                StreamState::Playing(key) => out.push(Action::StopPlay { stream_id, key }),
                StreamState::Created => {}
            }
        }
    }

    pub(crate) fn on_command(
        &mut self,
        stream_id: u32,
        cmd: &Command,
        config: &Config,
        out: &mut Vec<Action>,
    ) {
        let request = Request::from_command(cmd);
        let tid = cmd.transaction_id;
        if !self.connected {
            match request {
                Request::Connect(params) => self.connect(tid, params, &cmd.args, config, out),
                _ => out.push(Action::Close {
                    reason: format!("{:?} before connect", cmd.name),
                }),
            }
            return;
        }
        let reply = |values| Action::Reply { stream_id, values };
        match request {
            Request::Connect(_) => out.push(reply(status::error(
                tid,
                "NetConnection.Call.Failed",
                "Already connected.",
            ))),
            Request::CreateStream => {
                if self.streams.len() >= MAX_STREAMS_PER_CONNECTION {
                    out.push(reply(status::error(
                        tid,
                        "NetConnection.Call.Failed",
                        "Too many streams.",
                    )));
                    return;
                }
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
                self.streams.push((id, StreamState::Created));
                out.push(reply(status::result(
                    tid,
                    Amf0Value::Null,
                    Amf0Value::Number(f64::from(id)),
                )));
            }
            Request::DeleteStream { stream_id: id } => {
                self.stop(id, out);
                self.streams.retain(|(i, _)| *i != id);
                self.buffer_lengths.retain(|(i, _)| *i != id);
            }
            Request::CloseStream => self.stop(stream_id, out),
            Request::ReleaseStream { .. } => out.push(reply(status::result(
                tid,
                Amf0Value::Null,
                Amf0Value::Undefined,
            ))),
            Request::FcPublish { name } => {
                out.push(reply(status::result(
                    tid,
                    Amf0Value::Null,
                    Amf0Value::Undefined,
                )));
                let key = self.key(&name);
                out.push(Action::FcPublish { stream_id, key });
            }
            Request::FcSubscribe { name } => {
                if tid != 0.0 {
                    out.push(reply(status::result(
                        tid,
                        Amf0Value::Null,
                        Amf0Value::Undefined,
                    )));
                }
                let key = self.key(&name);
                out.push(Action::Subscribe { key });
            }
            Request::FcUnsubscribe { name } => {
                if tid != 0.0 {
                    out.push(reply(status::result(
                        tid,
                        Amf0Value::Null,
                        Amf0Value::Undefined,
                    )));
                }
                let info = status::info(Level::Status, "NetStream.Play.Stop", &name);
                out.push(reply(status::call("onFCUnsubscribe", info)));
                let key = self.key(&name);
                out.push(Action::Unsubscribe { key });
            }
            Request::FcAddChild => {
                if self.policy.as_ref().is_some_and(AppPolicy::has_children) {
                    out.push(reply(status::result(
                        tid,
                        Amf0Value::Null,
                        Amf0Value::Undefined,
                    )));
                    out.push(Action::AddChild);
                } else {
                    let why = format!(
                        "FCAddChild: application {:?} has no role that takes child servers \
                         (origin or intermediate).",
                        self.app
                    );
                    out.push(reply(status::error(tid, "NetConnection.Call.Failed", &why)));
                }
            }
            Request::FcUnpublish { name } => {
                let key = self.key(&name);
                let publishing: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| *s == StreamState::Publishing(key.clone()))
                    .map(|(i, _)| *i)
                    .collect();
                for id in publishing {
                    self.stop(id, out);
                }
                let info = status::info(Level::Status, "NetStream.Unpublish.Success", &name);
                out.push(reply(status::call("onFCUnpublish", info)));
                out.push(reply(status::result(
                    tid,
                    Amf0Value::Null,
                    Amf0Value::Undefined,
                )));
            }
            Request::Publish { name, mode } => self.publish(stream_id, name, mode, out),
            Request::Play(params) => self.play(stream_id, params, out),
            Request::ReceiveAudio(on) => out.push(Action::SetReceive {
                stream_id,
                audio: Some(on),
                video: None,
            }),
            Request::ReceiveVideo(on) => out.push(Action::SetReceive {
                stream_id,
                audio: None,
                video: Some(on),
            }),
            Request::Pause { pause, .. } => out.push(Action::Pause { stream_id, pause }),
            Request::Seek { ms } => out.push(Action::Seek { stream_id, ms }),
            // A file's length needs its index (the worker's); a live stream's is 0.
            Request::GetStreamLength { name } => out.push(Action::StreamLength {
                stream_id,
                transaction: tid,
                key: self.key(&name),
                name,
            }),
            Request::Ping => out.push(reply(status::result(tid, Amf0Value::Null, Amf0Value::Null))),
            Request::Ignorable => {}
            Request::Unknown => out.push(reply(status::error(
                tid,
                "NetConnection.Call.Failed",
                &format!("Method not found ({}).", cmd.name),
            ))),
            Request::Invalid(why) => {
                out.push(reply(status::error(tid, "NetConnection.Call.Failed", why)))
            }
        }
    }

    fn connect(
        &mut self,
        tid: f64,
        params: ConnectParams,
        args: &[Amf0Value],
        config: &Config,
        out: &mut Vec<Action>,
    ) {
        let (app, instance) = split_app_path(&params.app_path);
        match config.application(&app) {
            Some(policy) if !app.is_empty() => {
                self.connected = true;
                self.app = app;
                self.instance = instance;
                self.policy = Some(policy);
                self.connect_query = query_of(&params.app_path)
                    .or_else(|| params.tc_url.as_deref().and_then(query_of));
                self.tc_url = params.tc_url;
                self.object_encoding = params.object_encoding;
                self.connect_info = Some(Box::new(ConnectInfo {
                    flash_ver: params.flash_ver,
                    swf_url: params.swf_url,
                    page_url: params.page_url,
                    args: args.to_vec(),
                }));
                out.push(Action::Accepted {
                    reply: status::connect_success(tid, params.object_encoding),
                });
            }
            _ => {
                let why = format!("Application {app:?} is not served here.");
                let mut reply = status::error(tid, "NetConnection.Connect.Rejected", &why);
                if let Some(Amf0Value::Object(props)) = reply.get_mut(3) {
                    props.push((
                        "objectEncoding".into(),
                        Amf0Value::Number(params.object_encoding),
                    ));
                }
                out.push(Action::Reply {
                    stream_id: 0,
                    values: reply,
                });
                out.push(Action::Close {
                    reason: format!("application {app:?} rejected"),
                });
            }
        }
    }

    fn publish(&mut self, stream_id: u32, name: String, mode: PublishMode, out: &mut Vec<Action>) {
        let allowed = self.policy.as_ref().is_some_and(|p| p.publish);
        let key = self.key(&name);
        let Some(state) = self.stream_mut(stream_id) else {
            let values = status::on_status(
                Level::Error,
                "NetStream.Publish.BadName",
                "No such stream; call createStream first.",
                Some(&name),
            );
            out.push(Action::Reply { stream_id, values });
            return;
        };
        if !allowed {
            let values = status::on_status(
                Level::Error,
                "NetStream.Publish.BadName",
                "Publishing is not allowed in this application.",
                Some(&name),
            );
            out.push(Action::Reply { stream_id, values });
            return;
        }
        if *state != StreamState::Created {
            let values = status::on_status(
                Level::Error,
                "NetStream.Publish.BadName",
                "This stream is already publishing or playing.",
                Some(&name),
            );
            out.push(Action::Reply { stream_id, values });
            return;
        }
        *state = StreamState::Publishing(key.clone());
        let query = query_of(&name);
        out.push(Action::StartPublish {
            stream_id,
            key,
            mode,
            query,
        });
    }

    fn play(&mut self, stream_id: u32, params: PlayParams, out: &mut Vec<Action>) {
        let allowed = self.policy.as_ref().is_some_and(|p| p.play);
        let key = self.key(&params.name);
        let Some(state) = self.stream_mut(stream_id) else {
            let values = status::on_status(
                Level::Error,
                "NetStream.Play.Failed",
                "No such stream; call createStream first.",
                Some(&params.name),
            );
            out.push(Action::Reply { stream_id, values });
            return;
        };
        if !allowed {
            let values = status::on_status(
                Level::Error,
                "NetStream.Play.Failed",
                "Playing is not allowed in this application.",
                Some(&params.name),
            );
            out.push(Action::Reply { stream_id, values });
            return;
        }
        // A second play on the same NetStream replaces the first, as in Flash; with reset
        // false it is the next item of a playlist.
        let previous = std::mem::replace(state, StreamState::Playing(key.clone()));
        match previous {
            StreamState::Playing(old) if !params.reset => out.push(Action::NextPlay {
                stream_id,
                key: old,
            }),
            StreamState::Playing(old) => out.push(Action::StopPlay {
                stream_id,
                key: old,
            }),
            StreamState::Publishing(old) => out.push(Action::StopPublish {
                stream_id,
                key: old,
            }),
            StreamState::Created => {}
        }
        out.push(Action::StartPlay {
            stream_id,
            key,
            params,
        });
    }

    /// Everything this connection publishes or plays, for cleanup when it goes away.
    pub(crate) fn close_all(&mut self, out: &mut Vec<Action>) {
        let ids: Vec<u32> = self.streams.iter().map(|(i, _)| *i).collect();
        for id in ids {
            self.stop(id, out);
        }
        self.streams.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str, tid: f64, obj: Amf0Value, args: Vec<Amf0Value>) -> Command {
        Command {
            name: name.into(),
            transaction_id: tid,
            command_object: obj,
            args,
        }
    }

    fn connected(config: &Config) -> NetConnection {
        let mut nc = NetConnection::new();
        let mut out = Vec::new();
        let obj = Amf0Value::object([("app", Amf0Value::string("live/room1"))]);
        nc.on_command(0, &cmd("connect", 1.0, obj, vec![]), config, &mut out);
        assert!(matches!(out[0], Action::Accepted { .. }), "{out:?}");
        nc
    }

    #[test]
    fn connect_splits_app_and_instance() {
        assert_eq!(split_app_path("live"), ("live".into(), "_definst_".into()));
        assert_eq!(
            split_app_path("live/room1?x=1"),
            ("live".into(), "room1".into())
        );
        let nc = connected(&Config::default());
        assert_eq!((nc.app.as_str(), nc.instance.as_str()), ("live", "room1"));
    }

    #[test]
    fn fc_add_child_is_for_origins_and_intermediates_and_fc_publish_asks_the_engine() {
        let config = Config::parse("[[application]]\nname = \"live\"\nrole = \"origin\"\n", "t")
            .expect("config");
        let mut nc = connected(&config);
        let mut out = Vec::new();
        nc.on_command(
            0,
            &cmd("FCAddChild", 2.0, Amf0Value::Null, vec![]),
            &config,
            &mut out,
        );
        assert!(
            matches!(&out[..], [Action::Reply { .. }, Action::AddChild]),
            "{out:?}"
        );
        out.clear();
        let name = vec![Amf0Value::string("cam")];
        nc.on_command(
            0,
            &cmd("FCPublish", 3.0, Amf0Value::Null, name),
            &config,
            &mut out,
        );
        match &out[..] {
            [Action::Reply { .. }, Action::FcPublish { stream_id: 0, key }] => {
                assert_eq!(
                    (key.app(), key.instance(), key.name()),
                    ("live", "room1", "cam")
                )
            }
            other => panic!("{other:?}"),
        }

        // A plain application (no role) has no children.
        let config = Config::default();
        let mut nc = connected(&config);
        let mut out = Vec::new();
        nc.on_command(
            0,
            &cmd("FCAddChild", 2.0, Amf0Value::Null, vec![]),
            &config,
            &mut out,
        );
        match &out[..] {
            [Action::Reply { values, .. }] => {
                assert_eq!(values[0].as_str(), Some("_error"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unlisted_application_is_rejected() {
        let config = Config::parse("[[application]]\nname = \"vod\"\n", "t").expect("config");
        let mut nc = NetConnection::new();
        let mut out = Vec::new();
        let obj = Amf0Value::object([("app", Amf0Value::string("live"))]);
        nc.on_command(0, &cmd("connect", 1.0, obj, vec![]), &config, &mut out);
        assert!(!nc.is_connected());
        assert!(matches!(&out[1], Action::Close { .. }));
    }

    #[test]
    fn buffer_lengths_are_kept_per_created_stream_until_it_is_deleted() {
        let config = Config::default();
        let mut nc = connected(&config);
        let mut out = Vec::new();
        nc.on_command(
            0,
            &cmd("createStream", 2.0, Amf0Value::Null, vec![]),
            &config,
            &mut out,
        );
        nc.set_buffer_length(1, 3000);
        nc.set_buffer_length(1, 5000);
        nc.set_buffer_length(7, 1000);
        assert_eq!(nc.buffer_length(1), Some(5000), "the last one said");
        assert_eq!(nc.buffer_length(7), None, "a stream it did not create");
        nc.on_command(
            0,
            &cmd(
                "deleteStream",
                3.0,
                Amf0Value::Null,
                vec![Amf0Value::Number(1.0)],
            ),
            &config,
            &mut out,
        );
        assert_eq!(nc.buffer_length(1), None, "forgotten with its stream");
    }

    #[test]
    fn publish_then_play_on_created_streams() {
        let config = Config::default();
        let mut nc = connected(&config);
        let mut out = Vec::new();
        nc.on_command(
            0,
            &cmd("createStream", 2.0, Amf0Value::Null, vec![]),
            &config,
            &mut out,
        );
        nc.on_command(
            1,
            &cmd(
                "publish",
                0.0,
                Amf0Value::Null,
                vec![Amf0Value::string("cam")],
            ),
            &config,
            &mut out,
        );
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::StartPublish { stream_id: 1, .. })));
        out.clear();
        nc.on_command(
            0,
            &cmd(
                "deleteStream",
                3.0,
                Amf0Value::Null,
                vec![Amf0Value::Number(1.0)],
            ),
            &config,
            &mut out,
        );
        assert!(matches!(&out[0], Action::StopPublish { stream_id: 1, .. }));
    }

    #[test]
    fn unknown_call_gets_call_failed() {
        let config = Config::default();
        let mut nc = connected(&config);
        let mut out = Vec::new();
        nc.on_command(
            0,
            &cmd("fooBar", 7.0, Amf0Value::Null, vec![]),
            &config,
            &mut out,
        );
        let Action::Reply { values, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(values[0].as_str(), Some("_error"));
        assert_eq!(
            values[3].get("code").and_then(Amf0Value::as_str),
            Some("NetConnection.Call.Failed")
        );
    }

    #[test]
    fn commands_before_connect_close() {
        let mut nc = NetConnection::new();
        let mut out = Vec::new();
        nc.on_command(
            0,
            &cmd("play", 0.0, Amf0Value::Null, vec![]),
            &Config::default(),
            &mut out,
        );
        assert!(matches!(&out[0], Action::Close { .. }));
    }
}
