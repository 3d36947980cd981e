//! RFC 7016 §2.1.5 socket addresses in Redirect and Forwarded IHello chunks: a flags byte
//! (0x80: IPv6; low two bits: origin — unknown, local, remote (observed), relay), the
//! address, then the port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::error::{Result, RtmfpError};

const FLAG_IPV6: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Unknown = 0,
    Local = 1,
    Remote = 2,
    Relay = 3,
}

pub(crate) fn put(addr: SocketAddr, origin: Origin, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(origin as u8);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(FLAG_IPV6 | origin as u8);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

pub(crate) fn read(buf: &mut &[u8]) -> Result<(SocketAddr, Origin)> {
    let (&flags, rest) = buf.split_first().ok_or(RtmfpError::Truncated("address"))?;
    let origin = match flags & 3 {
        0 => Origin::Unknown,
        1 => Origin::Local,
        2 => Origin::Remote,
        _ => Origin::Relay,
    };
    let ip_len = if flags & FLAG_IPV6 != 0 { 16 } else { 4 };
    if rest.len() < ip_len + 2 {
        return Err(RtmfpError::Truncated("address"));
    }
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]))
    } else {
        let mut o = [0u8; 16];
        o.copy_from_slice(&rest[..16]);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    let port = u16::from_be_bytes([rest[ip_len], rest[ip_len + 1]]);
    *buf = &rest[ip_len + 2..];
    Ok((SocketAddr::new(ip, port), origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_v4_and_v6() {
        let mut out = Vec::new();
        let a: SocketAddr = "127.0.0.2:1935".parse().expect("addr");
        let b: SocketAddr = "[::1]:5000".parse().expect("addr");
        put(a, Origin::Remote, &mut out);
        assert_eq!(out, [2, 127, 0, 0, 2, 0x07, 0x8f]);
        put(b, Origin::Local, &mut out);
        let mut s = &out[..];
        assert_eq!(read(&mut s), Ok((a, Origin::Remote)));
        assert_eq!(read(&mut s), Ok((b, Origin::Local)));
        assert!(s.is_empty());
        assert!(read(&mut &[0x80u8, 1, 2][..]).is_err());
    }
}
