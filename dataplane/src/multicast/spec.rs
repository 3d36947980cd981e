//! One multicast output as configured (`[[multicast]]`) or added at run time: the type is
//! the control protocol's (`MulticastOutput`, one type for the file and the wire); what
//! stratad checks of it and which streams it sends live here.

pub(crate) use control_protocol::MulticastOutput as MulticastSpec;
use control_protocol::DEFAULT_PACKETS_PER_DATAGRAM;

use crate::app::net_connection::DEFAULT_INSTANCE;
use crate::media::StreamKey;

/// What is wrong with it, for the operator.
pub(crate) fn validate(spec: &MulticastSpec) -> Result<(), String> {
    if !spec.group.ip().is_multicast() {
        return Err(format!("group {} is not a multicast address", spec.group));
    }
    if spec.group.port() == 0 {
        return Err(format!("group {} needs a port", spec.group));
    }
    if !(1..=DEFAULT_PACKETS_PER_DATAGRAM).contains(&spec.packet_size) {
        return Err(format!(
            "packet_size {} must be 1..=7 TS packets",
            spec.packet_size
        ));
    }
    if spec.dscp > 63 {
        return Err(format!("dscp {} must be 0..=63", spec.dscp));
    }
    if spec.ttl > 255 {
        return Err(format!("ttl {} must be 0..=255", spec.ttl));
    }
    if let Some(s) = spec.source {
        if s.is_ipv4() != spec.group.is_ipv4() {
            return Err(format!("source {s} is not of the group's family"));
        }
    }
    let named = spec
        .stream
        .split_once('/')
        .is_some_and(|(app, rest)| !app.is_empty() && !rest.is_empty());
    if !named {
        return Err(format!(
            "stream {:?} must be \"app/name\" or \"app/instance/name\"",
            spec.stream
        ));
    }
    Ok(())
}

/// Whether a published stream is one this output sends: "app/name" or
/// "app/instance/name" as the control socket names streams, or "app/*" (any stream of
/// the application's default instance) and "app/instance/*".
pub(crate) fn matches(spec: &MulticastSpec, key: &StreamKey) -> bool {
    match spec.stream.strip_suffix("/*") {
        Some(scope) => {
            scope == key.app() && key.instance() == DEFAULT_INSTANCE
                || scope
                    .strip_prefix(key.app())
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|instance| instance == key.instance())
        }
        None => key.is_named(&spec.stream, DEFAULT_INSTANCE),
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
        assert_eq!(validate(&s), Ok(()));
        let bad = spec("stream = \"live/cam\"\ngroup = \"10.1.1.1:5000\"\n");
        assert!(validate(&bad).unwrap_err().contains("not a multicast"));
        let bad = spec("stream = \"live/cam\"\ngroup = \"239.1.1.1:5000\"\npacket_size = 8\n");
        assert!(validate(&bad).is_err());
        let bad = spec("stream = \"cam\"\ngroup = \"[ff15::1]:5000\"\n");
        assert!(validate(&bad).is_err());
        let bad = spec("stream = \"a/b\"\ngroup = \"[ff15::1]:5000\"\nsource = \"10.0.0.1\"\n");
        assert!(validate(&bad).unwrap_err().contains("family"));
        assert!(toml::from_str::<MulticastSpec>(
            "stream = \"a/b\"\ngroup = \"239.1.1.1:1\"\nfoo = 1\n"
        )
        .is_err());
    }

    #[test]
    fn patterns_match_streams() {
        let key = StreamKey::new;
        let s = spec("stream = \"live/*\"\ngroup = \"239.1.1.1:5000\"\n");
        assert!(matches(&s, &key("live", "_definst_", "x")));
        assert!(!matches(&s, &key("live", "room", "x")));
        assert!(!matches(&s, &key("vod", "_definst_", "x")));
        let s = spec("stream = \"live/room/cam\"\ngroup = \"239.1.1.1:5000\"\n");
        assert!(matches(&s, &key("live", "room", "cam")));
        assert!(!matches(&s, &key("live", "room", "cam2")));
    }
}
