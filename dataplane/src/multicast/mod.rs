//! Multicast outputs: a live stream as MPEG-TS over UDP or RTP to a multicast group. Sans-IO
//! like `relay/`: `spec` is what an operator configures, `output` one output's state (where
//! it starts, what waits to go, the datagrams of the next send, pacing, back-off after a
//! (`engine/worker/multicast.rs`) owns the sockets and carries the sends out on its ring.

pub(crate) mod output;
pub(crate) mod spec;
