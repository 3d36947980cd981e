//! RTMFP (RFC 7016) with the Flash profile (RFC 7425), sans-IO: datagrams and the time in,
//! datagrams, events and the next deadline out, both roles (initiator and responder).
//!
//! Layers, one file each, bottom up: `vlu` (integers and option lists), `checksum`, `crypto`
//! (AES-CBC, HMAC, sequence numbers), `packet` (header and chunk framing), `address`,
//! `chunk` (the chunk types), `dh`, `keys` (identities and keying), `cookie`, `congestion`,
//! `flow_send`, `flow_recv`, `session`, `endpoint`, and `flash` (RTMP messages on flows).
//!
//! Use: one `Endpoint` per UDP socket; feed it `handle(now, from, datagram)` and
//! `handle_timeout(now)` at `poll_timeout()`, drain `poll_transmit_into` and `poll_event`.

pub(crate) mod address;
pub mod bench;
pub(crate) mod checksum;
pub(crate) mod chunk;
pub(crate) mod congestion;
pub(crate) mod cookie;
pub(crate) mod crypto;
pub(crate) mod dh;
pub(crate) mod endpoint;
pub(crate) mod error;
pub(crate) mod flash;
pub(crate) mod flow_recv;
pub(crate) mod flow_send;
pub(crate) mod keys;
pub mod net_client;
pub(crate) mod packet;
pub(crate) mod session;
pub(crate) mod vlu;

#[cfg(test)]
mod tests;
