//! RTP for transport streams (RFC 2250 over RFC 3550): a 12-byte header before each
//! datagram's whole TS packets, payload type 33 (MP2T), a sequence number per datagram and
//! a 90 kHz timestamp. Receivers use the sequence numbers to see loss and reordering.

pub(crate) const HEADER_LEN: usize = 12;
/// The static payload type of MPEG-2 transport streams (RFC 3551).
pub(crate) const PAYLOAD_TYPE_MP2T: u8 = 33;

/// One datagram's RTP header: version 2, no padding, extension or CSRCs, marker clear.
pub(crate) fn header(sequence: u16, timestamp: u32, ssrc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = 0x80;
    h[1] = PAYLOAD_TYPE_MP2T;
    h[2..4].copy_from_slice(&sequence.to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp2t_header() {
        assert_eq!(
            header(0x1234, 0x0102_0304, 0xdead_beef),
            [0x80, 33, 0x12, 0x34, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef]
        );
    }
}
