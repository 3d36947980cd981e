//! Multicast outputs: what `[[multicast]]` in stratad's configuration and `stratactl
//! multicast add` describe (one type for both), and the `multicast` control call.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// TS packets per datagram by default: 7 × 188 = 1316 bytes, the largest that fits a
/// 1500-byte Ethernet MTU with IP, UDP and RTP headers; what IPTV receivers expect.
pub const DEFAULT_PACKETS_PER_DATAGRAM: usize = 7;

/// One multicast output: a stream (or a pattern of streams) sent as MPEG-TS to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MulticastOutput {
    /// "app/name", "app/instance/name", or "app/*" / "app/instance/*" for every stream.
    pub stream: String,
    /// The group and port, "239.1.1.1:5000" or "[ff15::1]:5000".
    pub group: SocketAddr,
    /// Hops the datagrams may take (IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The outgoing interface: an IPv4 address of it (IPv4 groups) or its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// RTP (RFC 2250, payload type 33) rather than plain UDP.
    #[serde(default)]
    pub rtp: bool,
    /// TS packets per datagram (1..=7).
    #[serde(default = "default_packet_size")]
    pub packet_size: usize,
    /// DSCP code point (0..=63), sent as IP_TOS / IPV6_TCLASS.
    #[serde(default)]
    pub dscp: u8,
    /// Sends are paced to this many bits per second (0: as the stream comes).
    #[serde(default)]
    pub rate: u64,
    /// Source-specific multicast is chosen by receivers (they join (S, G)); for a sender
    /// it only means the address it sends from. When given, stratad sends from it (it must
    /// be an address of this host on the group's family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
}

fn default_ttl() -> u32 {
    16
}

fn default_packet_size() -> usize {
    DEFAULT_PACKETS_PER_DATAGRAM
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MulticastCall {
    /// Every output: the configuration's and those added at run time.
    List,
    /// Adds an output at run time (until stratad stops; the file is not changed).
    Add { output: MulticastOutput },
    /// Removes an output added at run time, by stream and group.
    Remove { stream: String, group: SocketAddr },
}

/// One output as `multicast list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticastListed {
    #[serde(flatten)]
    pub output: MulticastOutput,
    /// "config" (the file's `[[multicast]]`) or "runtime" (added by an operator).
    pub origin: String,
}
