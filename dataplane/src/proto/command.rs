//! Command and data messages: a name, a transaction id, a command object and arguments, in
//! AMF0 (RTMP type 20 / 18) or in the AMF3 framing (type 17 / 15: a leading 0x00, then AMF0
//! values that may switch to AMF3). RTMFP flows carry the same bodies, so this is shared.

use crate::proto::amf0::{self, Amf0Value};
use crate::proto::AmfError;

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    pub command_object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("invalid AMF in command: {0}")]
    Amf(#[from] AmfError),
    #[error("command message without a name")]
    NoName,
}

/// Strips the AMF3 framing byte so both framings decode the same way.
fn body(amf3_framed: bool, payload: &[u8]) -> &[u8] {
    match payload.split_first() {
        Some((0, rest)) if amf3_framed => rest,
        _ => payload,
    }
}

impl Command {
    pub(crate) fn decode(amf3_framed: bool, payload: &[u8]) -> Result<Command, CommandError> {
        let mut values = amf0::decode_all(body(amf3_framed, payload))?.into_iter();
        let name = match values.next() {
            Some(v) => v.as_str().ok_or(CommandError::NoName)?.to_string(),
            None => return Err(CommandError::NoName),
        };
        let transaction_id = values.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let command_object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Command {
            name,
            transaction_id,
            command_object,
            args: values.collect(),
        })
    }

    /// The argument at `i` (after the command object), if present.
    pub(crate) fn arg(&self, i: usize) -> Option<&Amf0Value> {
        self.args.get(i)
    }

    /// The info object of an `onStatus`, `_result` or `_error`: the first of the command
    /// object and the arguments that has a `code` (onStatus and `_error` carry it as their
    /// argument, connect's `_result` after the server's properties).
    pub(crate) fn info(&self) -> Option<&Amf0Value> {
        std::iter::once(&self.command_object)
            .chain(&self.args)
            .find(|v| v.get("code").is_some())
    }

    /// A string field of the info object (`code`, `level`, `description`).
    pub fn info_str(&self, key: &str) -> Option<&str> {
        self.info()?.get(key)?.as_str()
    }
}

/// Decodes a data message (`@setDataFrame`, `onMetaData`, `|RtmpSampleAccess`, ...).
pub(crate) fn decode_data(
    amf3_framed: bool,
    payload: &[u8],
) -> Result<Vec<Amf0Value>, CommandError> {
    Ok(amf0::decode_all(body(amf3_framed, payload))?)
}

/// Encodes values as a command or data body; `amf3_framed` adds the leading 0x00 of types
/// 17 and 15.
pub fn encode_values(amf3_framed: bool, values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if amf3_framed {
        out.push(0);
    }
    amf0::encode_all(values, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_values() -> Vec<Amf0Value> {
        vec![
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([("app", Amf0Value::string("live"))]),
        ]
    }

    #[test]
    fn decodes_both_framings() {
        for framed in [false, true] {
            let bytes = encode_values(framed, &connect_values());
            let cmd = Command::decode(framed, &bytes).expect("decodes");
            assert_eq!(cmd.name, "connect");
            assert_eq!(cmd.transaction_id, 1.0);
            assert_eq!(
                cmd.command_object.get("app").and_then(|v| v.as_str()),
                Some("live")
            );
        }
    }

    #[test]
    fn the_info_object_is_found_after_the_properties() {
        let info = Amf0Value::object([
            ("level", Amf0Value::string("status")),
            ("code", Amf0Value::string("NetConnection.Connect.Success")),
        ]);
        let result = Command {
            name: "_result".into(),
            transaction_id: 1.0,
            command_object: Amf0Value::object([("fmsVer", Amf0Value::string("FMS/3,5,7,7009"))]),
            args: vec![info.clone()],
        };
        assert_eq!(result.info(), Some(&info));
        assert_eq!(result.info_str("level"), Some("status"));
        assert_eq!(result.info_str("description"), None);
        let create = Command {
            args: vec![Amf0Value::Number(1.0)],
            command_object: Amf0Value::Null,
            ..result
        };
        assert_eq!(create.info(), None);
    }

    #[test]
    fn truncated_amf_is_an_error() {
        let bytes = encode_values(false, &connect_values());
        for cut in 1..bytes.len() {
            // Any prefix either decodes to fewer values or fails; it never panics.
            let _ = Command::decode(false, &bytes[..cut]);
        }
        assert!(Command::decode(false, &bytes[..5]).is_err());
        assert!(Command::decode(false, &[]).is_err());
    }
}
