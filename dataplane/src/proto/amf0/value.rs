use crate::proto::amf3::Amf3Value;

/// One AMF0 value. Objects keep their properties in wire order (AMS clients care about the
/// order of `_result` properties less than we do about round-trip fidelity).
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Index into the table of objects already decoded in this message.
    Reference(u16),
    /// The associative count is a hint only; the properties are what was on the wire.
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the epoch and the (unused, but preserved) time-zone field.
    Date {
        millis: f64,
        time_zone: i16,
    },
    LongString(String),
    XmlDocument(String),
    TypedObject {
        class_name: String,
        properties: Vec<(String, Amf0Value)>,
    },
    /// The 0x11 marker: the rest of this value is AMF3.
    Amf3(Amf3Value),
}

impl Amf0Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            Amf0Value::Amf3(v) => v.as_str(),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            Amf0Value::Amf3(v) => v.as_f64(),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            Amf0Value::Number(n) => Some(*n != 0.0),
            Amf0Value::Amf3(v) => v.as_bool(),
            _ => None,
        }
    }

    /// The properties of an object-like value (object, ECMA array, typed object).
    pub(crate) fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            Amf0Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// A property of an object-like value, by name (first match).
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Shorthand for building objects in replies.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn string(s: impl Into<String>) -> Self {
        Amf0Value::String(s.into())
    }
}
