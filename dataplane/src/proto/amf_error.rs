//! The one error type of the AMF0 and AMF3 decoders (the encoders cannot fail).

use thiserror::Error;

use crate::proto::amf3::limits::{MAX_DEPTH, MAX_NODES, MAX_PAYLOAD_BYTES};

/// Why an AMF0 or AMF3 value could not be decoded. The messages name the format and the
/// offending byte or index so that a log line is enough to reproduce the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AmfError {
    #[error("truncated AMF0 input")]
    TruncatedAmf0,
    #[error("truncated AMF3 input")]
    TruncatedAmf3,
    #[error("unknown AMF0 marker {0:#04x}")]
    UnknownAmf0Marker(u8),
    /// Movie clip, record set and the "unsupported" marker: reserved by the spec, never
    /// sent by Flash Player, and without a defined body.
    #[error("unsupported AMF0 marker {0:#04x}")]
    UnsupportedAmf0Marker(u8),
    #[error("AMF0 object end outside an object")]
    UnexpectedObjectEnd,
    #[error("AMF0 empty property name not followed by object end")]
    MissingObjectEnd,
    #[error("unknown AMF3 marker {0:#04x}")]
    UnknownAmf3Marker(u8),
    #[error("invalid UTF-8 in AMF string")]
    InvalidUtf8,
    #[error("AMF nesting deeper than {}", MAX_DEPTH)]
    TooDeep,
    #[error("AMF value has more than {} nodes", MAX_NODES)]
    TooManyNodes,
    #[error(
        "AMF value has more than {} bytes of strings and arrays",
        MAX_PAYLOAD_BYTES
    )]
    TooLarge,
    #[error("AMF3 string reference {0} out of range")]
    BadStringReference(u32),
    #[error("AMF3 object reference {0} out of range")]
    BadObjectReference(u32),
    #[error("AMF3 traits reference {0} out of range")]
    BadTraitsReference(u32),
    #[error("AMF3 reference {0} to an object still being decoded")]
    ReferenceCycle(u32),
    #[error("AMF3 externalizable class {0:?} has a body of unknown length")]
    Externalizable(String),
}
