//! Why a datagram, chunk or handshake message was refused. Every decoder of peer bytes returns
//! one of these (never panics); the endpoint drops the datagram and, for a session, counts it.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum RtmfpError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("variable-length integer too long")]
    VluOverflow,
    #[error("encrypted part not a whole number of 16-byte blocks")]
    NotBlockAligned,
    #[error("bad checksum")]
    BadChecksum,
    #[error("bad HMAC")]
    BadHmac,
    #[error("replayed or too old session sequence number")]
    Replay,
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

pub(crate) type Result<T> = std::result::Result<T, RtmfpError>;
