//! TS packets: the 4-byte header (sync, payload unit start, PID, continuity counter), the
//! adaptation field (discontinuity, random access, PCR, stuffing) and the splitting of one
//! payload unit (a PES packet or a PSI section) into whole 188-byte packets.

use bytes::{BufMut, BytesMut};

use super::{SYNC_BYTE, TIME_MASK, TS_PACKET_SIZE};

const HEADER_LEN: usize = 4;
const BODY_LEN: usize = TS_PACKET_SIZE - HEADER_LEN;

/// What the first packet of a payload unit says in its adaptation field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UnitFlags {
    /// A program clock reference, in 90 kHz units (the 27 MHz extension is 0).
    pub(crate) pcr: Option<u64>,
    /// The time base (and the continuity counter) may jump here: a new source.
    pub(crate) discontinuity: bool,
    /// A decoder can start here (a key frame, after the tables).
    pub(crate) random_access: bool,
}

impl UnitFlags {
    fn needs_adaptation(&self) -> bool {
        self.pcr.is_some() || self.discontinuity || self.random_access
    }
}

/// Appends `unit` to `out` as whole TS packets on `pid`, counting `cc` (4 bits) up once
/// per packet. The first packet has payload_unit_start set and carries `flags`; the last
/// is filled with adaptation-field stuffing.
pub(crate) fn write_unit(out: &mut BytesMut, pid: u16, cc: &mut u8, flags: UnitFlags, unit: &[u8]) {
    write_unit_parts(out, pid, cc, flags, unit.len(), [unit]);
}

/// `write_unit` for a unit given as consecutive pieces, `len` bytes in all: packetised
/// straight from them, so that a PES made of a header, start codes and the publisher's
/// NAL units is copied once, into the packets, and never gathered first. Pieces that end
/// short of `len` are padded with 0xff (a caller's bug, caught by `debug_assert`).
pub(crate) fn write_unit_parts<'a>(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut u8,
    flags: UnitFlags,
    len: usize,
    parts: impl IntoIterator<Item = &'a [u8]>,
) {
    let mut parts = parts.into_iter();
    let mut piece: &[u8] = &[];
    let mut rest = len;
    let mut first = true;
    loop {
        let flags = if first { flags } else { UnitFlags::default() };
        let mut take = write_packet_head(out, pid, *cc, first, flags, rest);
        rest -= take;
        while take > 0 {
            if piece.is_empty() {
                match parts.next() {
                    Some(p) => piece = p,
                    None => break,
                }
                continue;
            }
            let n = take.min(piece.len());
            out.extend_from_slice(&piece[..n]);
            piece = &piece[n..];
            take -= n;
        }
        debug_assert_eq!(take, 0, "the pieces are shorter than the unit's length");
        out.resize(out.len() + take, 0xff);
        *cc = (*cc + 1) & 0x0f;
        first = false;
        if rest == 0 {
            break;
        }
    }
}

/// A PSI section (behind its pointer field) as one packet, padded with 0xff after the
/// section as PSI is (no adaptation field). Our sections are a few dozen bytes; a longer
/// one is cut, which `debug_assert` catches in tests.
pub(crate) fn write_section(out: &mut BytesMut, pid: u16, cc: &mut u8, section: &[u8]) {
    debug_assert!(section.len() <= BODY_LEN);
    let start = out.len();
    out.extend_from_slice(&[SYNC_BYTE, 0x40 | ((pid >> 8) as u8 & 0x1f), pid as u8]);
    out.put_u8(0x10 | (*cc & 0x0f));
    *cc = (*cc + 1) & 0x0f;
    out.extend_from_slice(&section[..section.len().min(BODY_LEN)]);
    out.resize(start + TS_PACKET_SIZE, 0xff);
}

/// One packet's header and adaptation field, for as much of the `remaining` payload as
/// fits; returns how much that is (the caller appends those bytes).
fn write_packet_head(
    out: &mut BytesMut,
    pid: u16,
    cc: u8,
    unit_start: bool,
    flags: UnitFlags,
    remaining: usize,
) -> usize {
    // The adaptation field's fixed part after its length byte: flags, then the PCR.
    let fixed = if flags.needs_adaptation() {
        1 + if flags.pcr.is_some() { 6 } else { 0 }
    } else {
        0
    };
    let room = if fixed > 0 {
        BODY_LEN - 1 - fixed
    } else {
        BODY_LEN
    };
    let take = remaining.min(room);
    // Adaptation field bytes including its length byte; 0 when there is none.
    let adaptation = if take < room || fixed > 0 {
        BODY_LEN - take
    } else {
        0
    };
    // Built on the stack and appended at once: one bounds check and copy per packet
    // rather than one per byte.
    let mut head = [0xffu8; TS_PACKET_SIZE];
    head[0] = SYNC_BYTE;
    head[1] = if unit_start { 0x40 } else { 0 } | ((pid >> 8) as u8 & 0x1f);
    head[2] = pid as u8;
    let control = if adaptation > 0 { 0x30 } else { 0x10 };
    head[3] = control | (cc & 0x0f);
    if adaptation > 0 {
        let length = adaptation - 1;
        head[4] = length as u8;
        if length > 0 {
            let mut f = 0u8;
            if flags.discontinuity {
                f |= 0x80;
            }
            if flags.random_access {
                f |= 0x40;
            }
            if flags.pcr.is_some() {
                f |= 0x10;
            }
            head[5] = f;
            if let Some(pcr) = flags.pcr {
                let base = pcr & TIME_MASK;
                // 33 bits of base, 6 reserved bits (ones), 9 bits of extension (0).
                head[6..12].copy_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    ((base & 1) as u8) << 7 | 0x7e,
                    0,
                ]);
            }
            // The rest of the field is stuffing: the 0xff `head` was filled with.
        }
    }
    let head_len = HEADER_LEN + adaptation;
    out.extend_from_slice(&head[..head_len]);
    debug_assert_eq!(head_len + take, TS_PACKET_SIZE);
    take
}

/// The PID of a packet (for tests and the datagram planner's checks).
#[cfg(test)]
pub(crate) fn pid_of(packet: &[u8]) -> u16 {
    u16::from(packet[1] & 0x1f) << 8 | u16::from(packet[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_small_unit_is_one_stuffed_packet() {
        let mut out = BytesMut::new();
        let mut cc = 15;
        write_unit(&mut out, 0x100, &mut cc, UnitFlags::default(), &[1, 2, 3]);
        assert_eq!(out.len(), 188);
        assert_eq!(&out[..4], &[0x47, 0x41, 0x00, 0x3f]);
        assert_eq!(out[4] as usize, 188 - 4 - 1 - 3);
        assert_eq!(&out[185..], &[1, 2, 3]);
        assert_eq!(cc, 0);
        assert_eq!(pid_of(&out), 0x100);
    }

    #[test]
    fn one_byte_of_stuffing_is_the_length_byte_alone() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        write_unit(&mut out, 0x101, &mut cc, UnitFlags::default(), &[7; 183]);
        assert_eq!(out.len(), 188);
        assert_eq!(out[3] & 0x30, 0x30);
        assert_eq!(out[4], 0);
        assert_eq!(out[5], 7);
    }

    #[test]
    fn pcr_and_flags_in_the_first_packet_only() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        let flags = UnitFlags {
            pcr: Some(0x1_2345_6789),
            discontinuity: true,
            random_access: true,
        };
        write_unit(&mut out, 0x100, &mut cc, flags, &[9; 400]);
        assert_eq!(out.len(), 3 * 188);
        assert_eq!(out[4], 7);
        assert_eq!(out[5], 0x80 | 0x40 | 0x10);
        let b = &out[6..12];
        let base = u64::from(b[0]) << 25
            | u64::from(b[1]) << 17
            | u64::from(b[2]) << 9
            | u64::from(b[3]) << 1
            | u64::from(b[4] >> 7);
        assert_eq!(base, 0x1_2345_6789);
        assert_eq!(out[188 + 1] & 0x40, 0, "no unit start after the first");
        assert_eq!(out[188 + 3], 0x11, "no adaptation in a full middle packet");
        assert_eq!(cc, 3);
    }

    proptest! {
        #[test]
        fn any_unit_round_trips(len in 0usize..2000, pcr in proptest::option::of(any::<u64>()), d: bool, r: bool) {
            let unit: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = BytesMut::new();
            let mut cc = 5;
            write_unit(&mut out, 0x1fff, &mut cc, UnitFlags { pcr, discontinuity: d, random_access: r }, &unit);
            prop_assert_eq!(out.len() % 188, 0);
            let mut back = Vec::new();
            for (i, p) in out.chunks(188).enumerate() {
                prop_assert_eq!(p[0], 0x47);
                prop_assert_eq!(p[3] & 0x0f, ((5 + i) & 0x0f) as u8);
                let body = if p[3] & 0x20 != 0 { 5 + p[4] as usize } else { 4 };
                back.extend_from_slice(&p[body..]);
            }
            prop_assert_eq!(back, unit);
        }

        #[test]
        fn a_unit_in_pieces_makes_the_same_packets(len in 0usize..2000, pcr in proptest::option::of(any::<u64>()), d: bool, cuts in proptest::collection::vec(0usize..400, 1..8)) {
            let unit: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let flags = UnitFlags { pcr, discontinuity: d, random_access: d };
            let mut whole = BytesMut::new();
            let mut cc = 9;
            write_unit(&mut whole, 0x100, &mut cc, flags, &unit);
            let mut pieces = Vec::new();
            let mut at = 0;
            for cut in &cuts {
                let end = (at + cut).min(unit.len());
                pieces.push(&unit[at..end]);
                at = end;
            }
            pieces.push(&unit[at..]);
            let mut again = BytesMut::new();
            let mut cc2 = 9;
            write_unit_parts(&mut again, 0x100, &mut cc2, flags, unit.len(), pieces);
            prop_assert_eq!(&again[..], &whole[..]);
            prop_assert_eq!(cc2, cc);
        }
    }
}
