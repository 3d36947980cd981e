//! One multicast output as configured (`[[multicast]]`) or added at run time: which streams,
//! which group, and how datagrams are sent.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use crate::app::net_connection::DEFAULT_INSTANCE;
use crate::media::StreamKey;

/// TS packets per datagram by default: 7 × 188 = 1316 bytes, the largest that fits a
/// 1500-byte Ethernet MTU with IP, UDP and RTP headers; what every IPTV receiver expects.
pub(crate) const DEFAULT_PACKETS_PER_DATAGRAM: usize = 7;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MulticastSpec {
    /// "app/name", "app/instance/name", or a pattern with `*` for any name ("live/*").
    pub stream: String,
    /// The group and port, "239.1.1.1:5000" or "[ff15::1]:5000".
    pub group: SocketAddr,
    /// Hops the datagrams may take (IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The outgoing interface: an IPv4 address of it (IPv4 groups) or its name (either).
    #[serde(default)]
    pub interface: Option<String>,
    /// RTP (RFC 2250, payload type 33) rather than plain UDP.
    #[serde(default)]
    pub rtp: bool,
    /// TS packets per datagram (1..=7).
    #[serde(default = "default_packet_size")]
    pub packet_size: usize,
    /// DSCP code point (0..=63), set as IP_TOS / IPV6_TCLASS.
    #[serde(default)]
    pub dscp: u8,
    /// Sends are paced to this many bits per second (0: as fast as the stream comes).
    #[serde(default)]
    pub rate: u64,
    /// Source-specific multicast (SSM) is chosen by receivers (they join (S, G)); for a
    /// sender it is only the address it sends from. When given, it must be an address of
    /// this host on the group's family; it is documentation and a check, nothing more.
    #[serde(default)]
    pub source: Option<IpAddr>,
}

fn default_ttl() -> u32 {
    16
}

fn default_packet_size() -> usize {
    DEFAULT_PACKETS_PER_DATAGRAM
}

impl MulticastSpec {
    /// What is wrong with it, for the operator.
    pub fn validate(&self) -> Result<(), String> {
        if !self.group.ip().is_multicast() {
            return Err(format!("group {} is not a multicast address", self.group));
        }
        if self.group.port() == 0 {
            return Err(format!("group {} needs a port", self.group));
        }
        if !(1..=DEFAULT_PACKETS_PER_DATAGRAM).contains(&self.packet_size) {
            return Err(format!(
                "packet_size {} must be 1..=7 TS packets",
                self.packet_size
            ));
        }
        if self.dscp > 63 {
            return Err(format!("dscp {} must be 0..=63", self.dscp));
        }
        if self.ttl > 255 {
            return Err(format!("ttl {} must be 0..=255", self.ttl));
        }
        if let Some(s) = self.source {
            if s.is_ipv4() != self.group.is_ipv4() {
                return Err(format!("source {s} is not of the group's family"));
            }
        }
        let named = self
            .stream
            .split_once('/')
            .is_some_and(|(app, rest)| !app.is_empty() && !rest.is_empty());
        if !named {
            return Err(format!(
                "stream {:?} must be \"app/name\" or \"app/instance/name\"",
                self.stream
            ));
        }
        Ok(())
    }

    /// Whether a published stream is one this output sends: "app/name" or
    /// "app/instance/name" as the control socket names streams, or "app/*" (any stream of
    /// the application's default instance) and "app/instance/*".
    pub(crate) fn matches(&self, key: &StreamKey) -> bool {
        match self.stream.strip_suffix("/*") {
            Some(scope) => {
                scope == key.app() && key.instance() == DEFAULT_INSTANCE
                    || scope
                        .strip_prefix(key.app())
                        .and_then(|r| r.strip_prefix('/'))
                        .is_some_and(|instance| instance == key.instance())
            }
            None => key.is_named(&self.stream, DEFAULT_INSTANCE),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(s: &str) -> MulticastSpec {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let s = spec("stream = \"live/cam\"\ngroup = \"239.1.1.1:5000\"\n");
        assert_eq!((s.ttl, s.packet_size, s.rtp, s.rate), (16, 7, false, 0));
        assert_eq!(s.validate(), Ok(()));
        let bad = spec("stream = \"live/cam\"\ngroup = \"10.1.1.1:5000\"\n");
        assert!(bad.validate().unwrap_err().contains("not a multicast"));
        let bad = spec("stream = \"live/cam\"\ngroup = \"239.1.1.1:5000\"\npacket_size = 8\n");
        assert!(bad.validate().is_err());
        let bad = spec("stream = \"cam\"\ngroup = \"[ff15::1]:5000\"\n");
        assert!(bad.validate().is_err());
        let bad = spec("stream = \"a/b\"\ngroup = \"[ff15::1]:5000\"\nsource = \"10.0.0.1\"\n");
        assert!(bad.validate().unwrap_err().contains("family"));
        assert!(toml::from_str::<MulticastSpec>(
            "stream = \"a/b\"\ngroup = \"239.1.1.1:1\"\nfoo = 1\n"
        )
        .is_err());
    }

    #[test]
    fn patterns_match_streams() {
        let key = StreamKey::new;
        let s = spec("stream = \"live/*\"\ngroup = \"239.1.1.1:5000\"\n");
        assert!(s.matches(&key("live", "_definst_", "x")));
        assert!(!s.matches(&key("live", "room", "x")));
        assert!(!s.matches(&key("vod", "_definst_", "x")));
        let s = spec("stream = \"live/room/cam\"\ngroup = \"239.1.1.1:5000\"\n");
        assert!(s.matches(&key("live", "room", "cam")));
        assert!(!s.matches(&key("live", "room", "cam2")));
    }
}
