/// Traits of an AMF3 object: its class, whether it is dynamic or externalizable, and the
/// names of its sealed members in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Amf3Traits {
    pub class_name: String,
    pub dynamic: bool,
    pub externalizable: bool,
    pub sealed_names: Vec<String>,
}

/// One AMF3 value. Reference-table entries are resolved while decoding, so a decoded value
/// is a plain tree (cycles are cut: see the decoder).
#[derive(Debug, Clone, PartialEq)]
pub enum Amf3Value {
    Undefined,
    Null,
    Boolean(bool),
    /// 29-bit signed integer.
    Integer(i32),
    Double(f64),
    String(String),
    XmlDocument(String),
    /// Milliseconds since the epoch.
    Date(f64),
    Array {
        associative: Vec<(String, Amf3Value)>,
        dense: Vec<Amf3Value>,
    },
    Object {
        traits: Amf3Traits,
        sealed: Vec<Amf3Value>,
        dynamic: Vec<(String, Amf3Value)>,
        /// The raw body of an externalizable object: its format is the class's own, so
        /// it cannot be decoded generically. Decoding one of unknown length is an error.
        external: Option<Vec<u8>>,
    },
    Xml(String),
    ByteArray(Vec<u8>),
    VectorInt {
        fixed: bool,
        items: Vec<i32>,
    },
    VectorUint {
        fixed: bool,
        items: Vec<u32>,
    },
    VectorDouble {
        fixed: bool,
        items: Vec<f64>,
    },
    VectorObject {
        fixed: bool,
        type_name: String,
        items: Vec<Amf3Value>,
    },
    Dictionary {
        weak_keys: bool,
        entries: Vec<(Amf3Value, Amf3Value)>,
    },
}

impl Amf3Value {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Amf3Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Amf3Value::Integer(i) => Some(f64::from(*i)),
            Amf3Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Amf3Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}
