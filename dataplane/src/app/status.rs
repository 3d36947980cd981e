//! The replies AMS clients expect: `_result`, `_error` and `onStatus` with info objects.

use crate::proto::amf0::Amf0Value;

pub(crate) const FMS_VERSION: &str = "FMS/3,5,7,7009";
/// Capabilities AMS 3.5 reports; clients only check that the field exists.
pub(crate) const CAPABILITIES: f64 = 31.0;

pub(crate) use crate::media::port::Level;

fn info_props(level: Level, code: &str, description: &str) -> Vec<(String, Amf0Value)> {
    vec![
        ("level".into(), Amf0Value::string(level.as_str())),
        ("code".into(), Amf0Value::string(code)),
        ("description".into(), Amf0Value::string(description)),
    ]
}

pub(crate) fn info(level: Level, code: &str, description: &str) -> Amf0Value {
    Amf0Value::Object(info_props(level, code, description))
}

/// `onStatus` on a NetStream (transaction 0, null command object).
pub(crate) fn on_status(
    level: Level,
    code: &str,
    description: &str,
    details: Option<&str>,
) -> Vec<Amf0Value> {
    let mut props = info_props(level, code, description);
    if let Some(d) = details {
        props.push(("details".into(), Amf0Value::string(d)));
    }
    vec![
        Amf0Value::string("onStatus"),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::Object(props),
    ]
}

pub(crate) fn result(
    transaction_id: f64,
    command_object: Amf0Value,
    value: Amf0Value,
) -> Vec<Amf0Value> {
    vec![
        Amf0Value::string("_result"),
        Amf0Value::Number(transaction_id),
        command_object,
        value,
    ]
}

pub(crate) fn error(transaction_id: f64, code: &str, description: &str) -> Vec<Amf0Value> {
    vec![
        Amf0Value::string("_error"),
        Amf0Value::Number(transaction_id),
        Amf0Value::Null,
        info(Level::Error, code, description),
    ]
}

/// The reply to a successful connect, shaped as AMS sends it.
pub(crate) fn connect_success(transaction_id: f64, object_encoding: f64) -> Vec<Amf0Value> {
    let props = Amf0Value::object([
        ("fmsVer", Amf0Value::string(FMS_VERSION)),
        ("capabilities", Amf0Value::Number(CAPABILITIES)),
        ("mode", Amf0Value::Number(1.0)),
    ]);
    let mut info_props = info_props(
        Level::Status,
        "NetConnection.Connect.Success",
        "Connection succeeded.",
    );
    info_props.push(("objectEncoding".into(), Amf0Value::Number(object_encoding)));
    info_props.push((
        "data".into(),
        Amf0Value::EcmaArray(vec![("version".into(), Amf0Value::string("3,5,7,7009"))]),
    ));
    result(transaction_id, props, Amf0Value::Object(info_props))
}

/// A named call to the client (`onFCPublish`, `onFCUnpublish`, ...).
pub(crate) fn call(name: &str, info_obj: Amf0Value) -> Vec<Amf0Value> {
    vec![
        Amf0Value::string(name),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        info_obj,
    ]
}
