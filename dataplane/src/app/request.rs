//! Typed views of the NetConnection and NetStream calls a client makes.

use crate::proto::amf0::Amf0Value;
use crate::proto::command::Command;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConnectParams {
    /// The path after the host: `app` or `app/instance`.
    pub(crate) app_path: String,
    pub(crate) tc_url: Option<String>,
    pub(crate) flash_ver: Option<String>,
    /// What scripts see as `client.referrer` (the SWF's URL) and `client.pageUrl`.
    pub(crate) swf_url: Option<String>,
    pub(crate) page_url: Option<String>,
    /// 0 (AMF0) or 3 (AMF3); echoed in the reply.
    pub(crate) object_encoding: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishMode {
    Live,
    Record,
    Append,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlayParams {
    pub(crate) name: String,
    /// -2: live or recorded, -1: live only, >= 0: recorded from that second.
    pub(crate) start: f64,
    /// -1: to the end; 0: one frame; > 0: seconds.
    pub(crate) duration: f64,
    pub(crate) reset: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Connect(ConnectParams),
    CreateStream,
    DeleteStream {
        stream_id: u32,
    },
    CloseStream,
    ReleaseStream {
        name: String,
    },
    FcPublish {
        name: String,
    },
    FcUnpublish {
        name: String,
    },
    /// A child server (intermediate or edge) registers with its parent (LiveStreamCast).
    FcAddChild,
    /// FCSubscribe / FMSubscribe: is `name` live? (LiveStreamCast's subscribers).
    FcSubscribe {
        name: String,
    },
    FcUnsubscribe {
        name: String,
    },
    Publish {
        name: String,
        mode: PublishMode,
    },
    Play(PlayParams),
    ReceiveAudio(bool),
    ReceiveVideo(bool),
    Pause {
        pause: bool,
        ms: f64,
    },
    /// `seek(ms)` on a NetStream playing a file.
    Seek {
        ms: f64,
    },
    GetStreamLength {
        name: String,
    },
    Ping,
    /// `_checkbw` (FMLE) and replies a client sends us: acknowledged, nothing else.
    Ignorable,
    /// A call the application does not know; answered with NetConnection.Call.Failed.
    Unknown,
    /// A known call whose arguments are unusable.
    Invalid(&'static str),
}

fn str_arg(cmd: &Command, i: usize) -> Option<String> {
    cmd.arg(i).and_then(Amf0Value::as_str).map(str::to_string)
}

impl Request {
    pub(crate) fn from_command(cmd: &Command) -> Request {
        match cmd.name.as_str() {
            "connect" => {
                let obj = &cmd.command_object;
                let text = |k: &str| obj.get(k).and_then(Amf0Value::as_str).map(str::to_string);
                match text("app") {
                    Some(app_path) => Request::Connect(ConnectParams {
                        app_path,
                        tc_url: text("tcUrl"),
                        flash_ver: text("flashVer"),
                        swf_url: text("swfUrl"),
                        page_url: text("pageUrl"),
                        object_encoding: obj
                            .get("objectEncoding")
                            .and_then(Amf0Value::as_f64)
                            .unwrap_or(0.0),
                    }),
                    None => Request::Invalid("connect without an app"),
                }
            }
            "createStream" => Request::CreateStream,
            "deleteStream" => match cmd.arg(0).and_then(Amf0Value::as_f64) {
                Some(id) if id >= 0.0 && id <= f64::from(u32::MAX) => Request::DeleteStream {
                    stream_id: id as u32,
                },
                _ => Request::Invalid("deleteStream without a stream id"),
            },
            "closeStream" => Request::CloseStream,
            "releaseStream" => Request::ReleaseStream {
                name: str_arg(cmd, 0).unwrap_or_default(),
            },
            "FCPublish" => Request::FcPublish {
                name: str_arg(cmd, 0).unwrap_or_default(),
            },
            "FCUnpublish" => Request::FcUnpublish {
                name: str_arg(cmd, 0).unwrap_or_default(),
            },
            "FCAddChild" => Request::FcAddChild,
            "FCSubscribe" | "FMSubscribe" => match str_arg(cmd, 0) {
                Some(name) if !name.is_empty() => Request::FcSubscribe { name },
                _ => Request::Invalid("FCSubscribe without a stream name"),
            },
            "FCUnsubscribe" => Request::FcUnsubscribe {
                name: str_arg(cmd, 0).unwrap_or_default(),
            },
            "publish" => match str_arg(cmd, 0) {
                Some(name) if !name.is_empty() => {
                    let mode = match str_arg(cmd, 1).as_deref() {
                        Some("record") => PublishMode::Record,
                        Some("append") | Some("appendWithGap") => PublishMode::Append,
                        _ => PublishMode::Live,
                    };
                    Request::Publish { name, mode }
                }
                _ => Request::Invalid("publish without a stream name"),
            },
            "play" => match str_arg(cmd, 0) {
                Some(name) if !name.is_empty() => Request::Play(PlayParams {
                    name,
                    start: cmd.arg(1).and_then(Amf0Value::as_f64).unwrap_or(-2.0),
                    duration: cmd.arg(2).and_then(Amf0Value::as_f64).unwrap_or(-1.0),
                    reset: cmd.arg(3).and_then(Amf0Value::as_bool).unwrap_or(true),
                }),
                _ => Request::Invalid("play without a stream name"),
            },
            "receiveAudio" => {
                Request::ReceiveAudio(cmd.arg(0).and_then(Amf0Value::as_bool).unwrap_or(true))
            }
            "receiveVideo" => {
                Request::ReceiveVideo(cmd.arg(0).and_then(Amf0Value::as_bool).unwrap_or(true))
            }
            "pause" => Request::Pause {
                pause: cmd.arg(0).and_then(Amf0Value::as_bool).unwrap_or(true),
                ms: cmd.arg(1).and_then(Amf0Value::as_f64).unwrap_or(0.0),
            },
            "seek" => Request::Seek {
                ms: cmd.arg(0).and_then(Amf0Value::as_f64).unwrap_or(0.0),
            },
            "getStreamLength" => Request::GetStreamLength {
                name: str_arg(cmd, 0).unwrap_or_default(),
            },
            "ping" => Request::Ping,
            "_checkbw" | "_result" | "_error" | "onStatus" | "onBWDone" | "onBWCheck" => {
                Request::Ignorable
            }
            _ => Request::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str, args: Vec<Amf0Value>) -> Command {
        Command {
            name: name.into(),
            transaction_id: 4.0,
            command_object: Amf0Value::Null,
            args,
        }
    }

    #[test]
    fn play_defaults_follow_the_flash_api() {
        let r = Request::from_command(&cmd("play", vec![Amf0Value::string("cam")]));
        assert_eq!(
            r,
            Request::Play(PlayParams {
                name: "cam".into(),
                start: -2.0,
                duration: -1.0,
                reset: true
            })
        );
    }

    #[test]
    fn publish_modes() {
        let r = Request::from_command(&cmd(
            "publish",
            vec![Amf0Value::string("cam"), Amf0Value::string("record")],
        ));
        assert_eq!(
            r,
            Request::Publish {
                name: "cam".into(),
                mode: PublishMode::Record
            }
        );
        assert_eq!(
            Request::from_command(&cmd("publish", vec![])),
            Request::Invalid("publish without a stream name")
        );
    }

    #[test]
    fn unknown_calls_are_unknown() {
        assert_eq!(
            Request::from_command(&cmd("fooBar", vec![])),
            Request::Unknown
        );
    }
}
