//! Program-specific information: the PAT (program 1 is at the PMT's PID) and the PMT (the
//! elementary streams, their types and PIDs, and which PID carries the PCR). One program
//! per transport stream, as every multicast receiver expects.

use bytes::BytesMut;

use super::crc::crc32_mpeg2;
use super::packet::{write_section, write_unit, UnitFlags};

pub(crate) const PAT_PID: u16 = 0x0000;
pub(crate) const PMT_PID: u16 = 0x1000;
const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;

/// Stream types of the PMT (ISO/IEC 13818-1 table 2-34 and its amendments).
pub(crate) mod stream_type {
    pub(crate) const MPEG1_AUDIO: u8 = 0x03;
    /// PES packets with private data: Opus and AV1, told apart by their registration
    /// descriptors.
    pub(crate) const PRIVATE_PES: u8 = 0x06;
    pub(crate) const AAC_ADTS: u8 = 0x0f;
    pub(crate) const H264: u8 = 0x1b;
    pub(crate) const HEVC: u8 = 0x24;
}

/// One elementary stream as the PMT lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elementary<'a> {
    pub(crate) stream_type: u8,
    pub(crate) pid: u16,
    /// The stream's descriptors, whole (tag, length, body), in order.
    pub(crate) descriptors: &'a [u8],
}

/// Appends a section's long-form header, the body, and the CRC, behind a pointer field.
fn section(table_id: u8, id: u16, version: u8, body: &[u8]) -> Vec<u8> {
    // After section_length: id (2), version (1), section numbers (2), body, CRC (4).
    let length = 5 + body.len() + 4;
    let mut s = Vec::with_capacity(4 + length);
    s.push(0); // pointer_field: the section starts right after it
    s.push(table_id);
    s.push(0xb0 | ((length >> 8) as u8 & 0x0f));
    s.push(length as u8);
    s.extend_from_slice(&id.to_be_bytes());
    s.push(0xc1 | (version & 0x1f) << 1);
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s[1..]);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// A table's section as its one packet. With `discontinuity` the packet says (in an
/// adaptation field) that its continuity counter may jump: the first tables of a new
/// source, whose counters start afresh (a publisher back on another worker).
fn write_table(out: &mut BytesMut, pid: u16, cc: &mut u8, discontinuity: bool, section: &[u8]) {
    if discontinuity {
        let flags = UnitFlags {
            discontinuity: true,
            ..UnitFlags::default()
        };
        write_unit(out, pid, cc, flags, section);
    } else {
        write_section(out, pid, cc, section);
    }
}

pub(crate) fn write_pat(out: &mut BytesMut, cc: &mut u8, discontinuity: bool) {
    let mut body = [0u8; 4];
    body[..2].copy_from_slice(&PROGRAM_NUMBER.to_be_bytes());
    body[2..].copy_from_slice(&(0xe000 | PMT_PID).to_be_bytes());
    let s = section(0x00, TRANSPORT_STREAM_ID, 0, &body);
    write_table(out, PAT_PID, cc, discontinuity, &s);
}

pub(crate) fn write_pmt(
    out: &mut BytesMut,
    cc: &mut u8,
    discontinuity: bool,
    version: u8,
    pcr_pid: u16,
    streams: &[Elementary],
) {
    let mut body = Vec::with_capacity(4 + 5 * streams.len());
    body.extend_from_slice(&(0xe000 | pcr_pid).to_be_bytes());
    body.extend_from_slice(&[0xf0, 0x00]); // no program descriptors
    for s in streams {
        body.push(s.stream_type);
        body.extend_from_slice(&(0xe000 | s.pid).to_be_bytes());
        // ES_info_length: 12 bits; ours are a dozen bytes.
        let len = s.descriptors.len() as u16 & 0x3ff;
        body.extend_from_slice(&(0xf000 | len).to_be_bytes());
        body.extend_from_slice(&s.descriptors[..usize::from(len)]);
    }
    let s = section(0x02, PROGRAM_NUMBER, version, &body);
    write_table(out, PMT_PID, cc, discontinuity, &s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_is_the_well_known_bytes() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        write_pat(&mut out, &mut cc, false);
        // The PAT every TS muxer with program 1 at PID 0x1000 writes (ffmpeg's too).
        assert_eq!(
            &out[..4 + 1 + 1 + 16],
            &[
                0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00,
                0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04, 0xb2, 0xff
            ][..22]
        );
        assert_eq!(crc32_mpeg2(&out[5..5 + 16]), 0);
        assert!(out[21..].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn pmt_lists_streams_and_checks() {
        let mut out = BytesMut::new();
        let mut cc = 0;
        let streams = [
            Elementary {
                stream_type: stream_type::H264,
                pid: 0x100,
                descriptors: &[],
            },
            Elementary {
                stream_type: stream_type::AAC_ADTS,
                pid: 0x101,
                descriptors: &[],
            },
        ];
        write_pmt(&mut out, &mut cc, false, 3, 0x100, &streams);
        let len = usize::from(out[6] & 0x0f) << 8 | usize::from(out[7]);
        assert_eq!(len, 13 + 2 * 5);
        assert_eq!(out[10], 0xc1 | 3 << 1);
        assert_eq!(crc32_mpeg2(&out[5..5 + 3 + len]), 0);
        assert_eq!(&out[17..22], &[0x1b, 0xe1, 0x00, 0xf0, 0x00]);
    }
}
