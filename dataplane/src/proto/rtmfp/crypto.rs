//! The Flash profile's packet protection (RFC 7425 §4.2, §4.6.4, §4.6.5): AES-128-CBC with a
//! zero IV per packet over [session sequence number][checksum] packet [0xff padding to 16],
//! then optionally a truncated HMAC-SHA256 of the ciphertext. Startup packets use the
//! well-known key "Adobe Systems 02" (they only hide the handshake from casual eyes; the
//! session keys come from Diffie-Hellman).
//!
//! One `PacketCrypto` per direction pair of a session; the AES key schedules are expanded
//! once, and a packet costs no allocation (the caller's buffers are reused).

use aes::cipher::block_padding::NoPadding;
use aes::cipher::consts::U16;
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    BlockBackend, BlockClosure, BlockDecryptMut, BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit,
    ParBlocks,
};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::checksum::internet_checksum;
use super::error::{Result, RtmfpError};
use super::vlu;

type HmacSha256 = Hmac<Sha256>;

/// RFC 7425 §4.2: the key of every startup-mode packet.
pub(crate) const DEFAULT_KEY: [u8; 16] = *b"Adobe Systems 02";
pub(crate) const MIN_HMAC_LEN: usize = 4;
pub(crate) const MAX_HMAC_LEN: usize = 32;
const BLOCK: usize = 16;
/// Packets `encrypt` takes through AES together: AES-NI keeps about eight independent
/// blocks in flight (the `aes` crate's parallel width).
pub(crate) const LANES: usize = 8;
/// Session sequence numbers further than this behind the highest one seen are refused
/// (a sliding replay window, as IPsec does).
const SEQ_WINDOW: u64 = 64;

/// What the keying negotiated for one session (RFC 7425 §4.6.5, §4.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Protection {
    /// Our packets carry an HMAC of this length instead of the checksum.
    pub tx_hmac: Option<usize>,
    /// The peer's packets carry an HMAC of this length.
    pub rx_hmac: Option<usize>,
    /// Our packets start with a session sequence number.
    pub tx_seq: bool,
    /// The peer's packets start with one.
    pub rx_seq: bool,
}

/// The keys a completed handshake yields (see `keys.rs`).
#[derive(Clone)]
pub(crate) struct DerivedKeys {
    pub encrypt: [u8; 32],
    pub decrypt: [u8; 32],
    pub tx_hmac: [u8; 32],
    pub rx_hmac: [u8; 32],
}

pub(crate) struct PacketCrypto {
    enc: Aes128,
    dec: Aes128,
    tx_hmac: Option<(HmacSha256, usize)>,
    rx_hmac: Option<(HmacSha256, usize)>,
    tx_seq: Option<u64>,
    rx_seq: Option<ReplayWindow>,
}

#[derive(Default)]
struct ReplayWindow {
    highest: u64,
    seen: u64,
    any: bool,
}

impl ReplayWindow {
    fn check(&self, seq: u64) -> bool {
        if !self.any || seq > self.highest {
            return true;
        }
        let back = self.highest - seq;
        back < SEQ_WINDOW && self.seen & (1 << back) == 0
    }

    fn record(&mut self, seq: u64) {
        if !self.any {
            self.any = true;
            self.highest = seq;
            self.seen = 1;
        } else if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= SEQ_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = seq;
        } else {
            self.seen |= 1 << (self.highest - seq);
        }
    }
}

fn hmac_key(key: &[u8; 32]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

impl PacketCrypto {
    /// Startup mode: the default key both ways, checksums, no sequence numbers.
    pub(crate) fn startup() -> Self {
        let k = Aes128::new(&DEFAULT_KEY.into());
        PacketCrypto {
            enc: k.clone(),
            dec: k,
            tx_hmac: None,
            rx_hmac: None,
            tx_seq: None,
            rx_seq: None,
        }
    }

    pub(crate) fn session(keys: &DerivedKeys, p: Protection) -> Self {
        let enc: [u8; 16] = first16(&keys.encrypt);
        let dec: [u8; 16] = first16(&keys.decrypt);
        PacketCrypto {
            enc: Aes128::new(&enc.into()),
            dec: Aes128::new(&dec.into()),
            tx_hmac: p.tx_hmac.map(|n| (hmac_key(&keys.tx_hmac), n)),
            rx_hmac: p.rx_hmac.map(|n| (hmac_key(&keys.rx_hmac), n)),
            tx_seq: p.tx_seq.then_some(0),
            rx_seq: p.rx_seq.then(ReplayWindow::default),
        }
    }

    /// Seals `plain` (packet header and chunks) for `session_id` into `out` (cleared first):
    /// the datagram to send.
    pub(crate) fn seal(&mut self, session_id: u32, plain: &[u8], out: &mut Vec<u8>) {
        out.clear();
        self.seal_append(session_id, plain, out);
    }

    /// `seal`, the packet appended to `out`.
    pub(crate) fn seal_append(&mut self, session_id: u32, plain: &[u8], out: &mut Vec<u8>) {
        let start = self.begin(out);
        out.extend_from_slice(plain);
        self.end_plain(out, start);
        self.encrypt(session_id, out, &[start]);
    }

    /// Begins a packet at the end of `out`: room for the scrambled session id, the session
    /// sequence number, room for the checksum. The caller appends the plain packet (header
    /// and chunks) and calls `end_plain`, or drops the packet by truncating `out` to the
    /// returned start. Packets are built in place: no copy of the plain packet.
    pub(crate) fn begin(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        if let Some(seq) = self.tx_seq {
            vlu::put(seq, out);
        }
        if self.tx_hmac.is_none() {
            out.extend_from_slice(&[0, 0]);
        }
        start
    }

    /// Ends the plain packet begun at `start` (it runs to the end of `out`): pads it to
    /// whole blocks, fills in its checksum and leaves room for its HMAC. `encrypt` then
    /// protects it.
    pub(crate) fn end_plain(&mut self, out: &mut Vec<u8>, start: usize) {
        let mut covered_from = start + 4;
        if let Some(seq) = self.tx_seq.as_mut() {
            covered_from += vlu::len(*seq);
            *seq += 1;
        }
        let enc_len = out.len() - start - 4;
        let padded = enc_len.div_ceil(BLOCK).max(1) * BLOCK;
        out.resize(start + 4 + padded, 0xff);
        if self.tx_hmac.is_none() {
            let sum = internet_checksum(&out[covered_from + 2..]);
            out[covered_from..covered_from + 2].copy_from_slice(&sum.to_be_bytes());
        }
        if let Some((_, n)) = &self.tx_hmac {
            out.resize(out.len() + n, 0);
        }
    }

    /// Encrypts the packets that start at `starts` (in order, each ended by `end_plain`, the
    /// last one running to the end of `out`), then writes each one's HMAC and scrambled
    /// session id. Each packet is its own CBC chain (zero IV), so up to `LANES` of them are
    /// encrypted together, a block of each per AES pass: the chains' serial latencies
    /// overlap instead of adding up (AES-NI pipelines independent blocks; one CBC chain
    /// waits for each block before the next).
    pub(crate) fn encrypt(&self, session_id: u32, out: &mut [u8], starts: &[usize]) {
        let tag = self.tx_hmac.as_ref().map_or(0, |(_, n)| *n);
        let total = out.len();
        let end_of = |k: usize| starts.get(k + 1).copied().unwrap_or(total);
        for (g, group) in starts.chunks(LANES).enumerate() {
            // Each lane: where its encrypted part starts, and its blocks.
            let mut lanes = [(0usize, 0usize); LANES];
            for (k, &start) in group.iter().enumerate() {
                let end = end_of(g * LANES + k) - tag;
                lanes[k] = (start + 4, (end - start - 4) / BLOCK);
            }
            self.enc.encrypt_with_backend(Chains {
                out: &mut *out,
                lanes: &lanes[..group.len()],
            });
        }
        for (k, &start) in starts.iter().enumerate() {
            let end = end_of(k);
            if let Some((mac, n)) = &self.tx_hmac {
                let t = mac
                    .clone()
                    .chain_update(&out[start + 4..end - n])
                    .finalize()
                    .into_bytes();
                out[end - n..end].copy_from_slice(&t[..*n]);
            }
            let scrambled =
                session_id ^ word(&out[start + 4..start + 8]) ^ word(&out[start + 8..start + 12]);
            out[start..start + 4].copy_from_slice(&scrambled.to_be_bytes());
        }
    }

    /// Opens a datagram already routed to this session: verifies the HMAC or checksum and
    /// the sequence number, and returns the packet (header and chunks, padding included).
    pub(crate) fn open<'a>(
        &mut self,
        datagram: &[u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        let enc = datagram.get(4..).ok_or(RtmfpError::Truncated("packet"))?;
        let hmac_len = self.rx_hmac.as_ref().map_or(0, |(_, n)| *n);
        if enc.len() < hmac_len + BLOCK {
            return Err(RtmfpError::Truncated("packet"));
        }
        let (enc, tag) = enc.split_at(enc.len() - hmac_len);
        if enc.len() % BLOCK != 0 {
            return Err(RtmfpError::NotBlockAligned);
        }
        if let Some((mac, n)) = &self.rx_hmac {
            let want = mac.clone().chain_update(enc).finalize().into_bytes();
            if !constant_time_eq(&want[..*n], tag) {
                return Err(RtmfpError::BadHmac);
            }
        }
        scratch.clear();
        scratch.extend_from_slice(enc);
        let cbc = cbc::Decryptor::<Aes128>::inner_iv_init(self.dec.clone(), &[0u8; BLOCK].into());
        cbc.decrypt_padded_mut::<NoPadding>(scratch)
            .map_err(|_| RtmfpError::NotBlockAligned)?;
        let mut rest: &[u8] = scratch;
        let mut seq = None;
        if let Some(w) = &self.rx_seq {
            let s = vlu::read(&mut rest)?;
            if !w.check(s) {
                return Err(RtmfpError::Replay);
            }
            seq = Some(s);
        }
        if self.rx_hmac.is_none() {
            if rest.len() < 2 {
                return Err(RtmfpError::Truncated("checksum"));
            }
            let (sum, covered) = rest.split_at(2);
            if u16::from_be_bytes([sum[0], sum[1]]) != internet_checksum(covered) {
                return Err(RtmfpError::BadChecksum);
            }
            rest = covered;
        }
        if let (Some(s), Some(w)) = (seq, self.rx_seq.as_mut()) {
            w.record(s);
        }
        let start = scratch.len() - rest.len();
        Ok(&scratch[start..])
    }
}

/// The CBC chains of one `encrypt` group, run inside the cipher's backend: one dispatch per
/// group instead of one per eight blocks, with the AES-NI rounds inlined here (the per-call
/// dispatch and the byte-wise gathering were as costly as the AES itself in a profile of
/// 1,000 viewers). Each lane is (where its encrypted part starts, its blocks); block `b` of
/// every lane that has one is XORed with that lane's previous ciphertext and the blocks go
/// through AES together.
struct Chains<'a> {
    out: &'a mut [u8],
    lanes: &'a [(usize, usize)],
}

impl BlockSizeUser for Chains<'_> {
    type BlockSize = U16;
}

impl BlockClosure for Chains<'_> {
    fn call<B: BlockBackend<BlockSize = U16>>(self, backend: &mut B) {
        let Chains { out, lanes } = self;
        let par = B::ParBlocksSize::USIZE.max(1);
        // Each lane's blocks as a slice of its own (the lanes are in order and disjoint),
        // so the loops below index no further than the slices' bounds checks once.
        let mut regions: [&mut [u8]; LANES] = Default::default();
        let mut rest = &mut *out;
        let mut at = 0;
        for (region, &(from, count)) in regions.iter_mut().zip(lanes) {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(from - at);
            let (mine, tail) = tail.split_at_mut(count * BLOCK);
            *region = mine;
            rest = tail;
            at = from + count * BLOCK;
        }
        let regions = &mut regions[..lanes.len()];
        let mut prev = [0u128; LANES];
        let mut blocks = ParBlocks::<B>::default();
        let load = |b: &[u8]| {
            let mut x = [0u8; BLOCK];
            x.copy_from_slice(b);
            u128::from_ne_bytes(x)
        };
        // The blocks every lane has (all of them but a last short packet's tail): every
        // lane in one parallel pass per block index.
        let common = if regions.len() > 1 && regions.len() <= par {
            regions.iter().map(|r| r.len()).min().unwrap_or(0) / BLOCK
        } else {
            0
        };
        for b in 0..common {
            let span = b * BLOCK..(b + 1) * BLOCK;
            for ((slot, r), p) in blocks.iter_mut().zip(regions.iter()).zip(&prev) {
                *slot = (load(&r[span.clone()]) ^ p).to_ne_bytes().into();
            }
            backend.proc_par_blocks((&mut blocks).into());
            for ((slot, r), p) in blocks.iter().zip(regions.iter_mut()).zip(prev.iter_mut()) {
                r[span.clone()].copy_from_slice(slot);
                *p = load(slot);
            }
        }
        // The rest: block `b` of the lanes that have one, `par` at a time.
        let most = regions.iter().map(|r| r.len()).max().unwrap_or(0) / BLOCK;
        let mut which = [0usize; LANES];
        for b in common..most {
            let span = b * BLOCK..(b + 1) * BLOCK;
            let mut n = 0;
            for (k, r) in regions.iter().enumerate() {
                if r.len() >= span.end {
                    which[n] = k;
                    n += 1;
                }
            }
            for chunk in which[..n].chunks(par) {
                for (slot, &k) in blocks.iter_mut().zip(chunk) {
                    *slot = (load(&regions[k][span.clone()]) ^ prev[k])
                        .to_ne_bytes()
                        .into();
                }
                // Two or more: a parallel pass (the unused slots' stale blocks cost nothing
                // more and are not written back).
                if chunk.len() > 1 {
                    backend.proc_par_blocks((&mut blocks).into());
                } else if let Some(slot) = blocks.first_mut() {
                    backend.proc_block(slot.into());
                }
                for (slot, &k) in blocks.iter().zip(chunk) {
                    regions[k][span.clone()].copy_from_slice(slot);
                    prev[k] = load(slot);
                }
            }
        }
    }
}

fn first16(k: &[u8; 32]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o.copy_from_slice(&k[..16]);
    o
}

fn word(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The session id a datagram is addressed to: the first word XOR the next two (RFC 7016
/// §2.2.1). The encrypted part is at least one AES block, so a shorter datagram is refused.
pub(crate) fn session_id_of(datagram: &[u8]) -> Result<u32> {
    if datagram.len() < 4 + BLOCK {
        return Err(RtmfpError::Truncated("packet"));
    }
    Ok(word(&datagram[..4]) ^ word(&datagram[4..8]) ^ word(&datagram[8..12]))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::KeyIvInit;

    fn keys() -> DerivedKeys {
        DerivedKeys {
            encrypt: [1; 32],
            decrypt: [2; 32],
            tx_hmac: [3; 32],
            rx_hmac: [4; 32],
        }
    }

    fn mirrored() -> DerivedKeys {
        let k = keys();
        DerivedKeys {
            encrypt: k.decrypt,
            decrypt: k.encrypt,
            tx_hmac: k.rx_hmac,
            rx_hmac: k.tx_hmac,
        }
    }

    #[test]
    fn default_key_round_trip_and_layout() {
        let mut a = PacketCrypto::startup();
        let mut out = Vec::new();
        a.seal(0, &[0x0b, 0x00, 0x01, 0x30, 0, 0], &mut out);
        // 4-byte scrambled id + one block (2 checksum + 6 bytes + 8 padding).
        assert_eq!(out.len(), 20);
        assert_eq!(session_id_of(&out), Ok(0));
        // The ciphertext is plain AES-128-CBC with a zero IV under "Adobe Systems 02".
        let mut block = out[4..20].to_vec();
        let cbc = cbc::Decryptor::<Aes128>::new(&DEFAULT_KEY.into(), &[0u8; 16].into());
        cbc.decrypt_padded_mut::<NoPadding>(&mut block)
            .expect("one block");
        assert_eq!(&block[2..8], &[0x0b, 0x00, 0x01, 0x30, 0, 0]);
        assert!(block[8..].iter().all(|&b| b == 0xff));
        assert_eq!(
            u16::from_be_bytes([block[0], block[1]]),
            internet_checksum(&block[2..])
        );
        let mut scratch = Vec::new();
        let plain = PacketCrypto::startup()
            .open(&out, &mut scratch)
            .expect("opens");
        assert_eq!(&plain[..6], &[0x0b, 0x00, 0x01, 0x30, 0, 0]);
    }

    #[test]
    fn packets_encrypted_together_open_as_packets_sealed_one_by_one() {
        // More packets than lanes, of lengths that end on and off block boundaries.
        encrypted_together_open(&[1, 14, 16, 100, 1137, 700, 30, 1137, 15, 17, 500]);
    }

    /// Packets of these lengths, encrypted together, open one by one (both protections).
    fn encrypted_together_open(lens: &[usize]) {
        for p in [Protection::default(), hmac_and_seq()] {
            let mut a = PacketCrypto::session(&keys(), p);
            let mut b = PacketCrypto::session(&mirrored(), p);
            let plains: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &len)| {
                    (0..len)
                        .map(|j| (j as u8).wrapping_mul(i as u8) ^ 0x5a)
                        .collect()
                })
                .collect();
            let mut out = b"earlier bytes".to_vec();
            let mut starts = Vec::new();
            for plain in &plains {
                let start = a.begin(&mut out);
                out.extend_from_slice(plain);
                a.end_plain(&mut out, start);
                starts.push(start);
            }
            a.encrypt(77, &mut out, &starts);
            assert_eq!(
                &out[..13],
                b"earlier bytes",
                "bytes before the packets untouched"
            );
            let mut scratch = Vec::new();
            let ends = starts[1..].iter().copied().chain([out.len()]);
            for ((plain, &start), end) in plains.iter().zip(&starts).zip(ends) {
                let datagram = &out[start..end];
                assert_eq!(session_id_of(datagram), Ok(77));
                let opened = b.open(datagram, &mut scratch).expect("opens");
                assert_eq!(&opened[..plain.len()], &plain[..]);
                assert!(opened[plain.len()..].iter().all(|&x| x == 0xff));
            }
        }
    }

    proptest::proptest! {
        /// Any mix of packet lengths: full bursts of one size, short tails, single packets.
        #[test]
        fn any_packets_encrypted_together_open(lens in proptest::collection::vec(0usize..1200, 1..20)) {
            encrypted_together_open(&lens);
        }
    }

    #[test]
    fn corrupt_packets_are_refused() {
        let mut out = Vec::new();
        PacketCrypto::startup().seal(7, b"\x0bhello", &mut out);
        let mut scratch = Vec::new();
        for i in 4..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(PacketCrypto::startup().open(&bad, &mut scratch).is_err());
        }
        assert_eq!(
            PacketCrypto::startup().open(&out[..out.len() - 1], &mut scratch),
            Err(RtmfpError::Truncated("packet"))
        );
        let mut two = Vec::new();
        PacketCrypto::startup().seal(7, &[0x0b; 20], &mut two);
        assert_eq!(
            PacketCrypto::startup().open(&two[..two.len() - 1], &mut scratch),
            Err(RtmfpError::NotBlockAligned)
        );
    }

    /// Both options on, both ways (10-byte HMACs).
    fn hmac_and_seq() -> Protection {
        Protection {
            tx_hmac: Some(10),
            rx_hmac: Some(10),
            tx_seq: true,
            rx_seq: true,
        }
    }

    #[test]
    fn hmac_and_sequence_numbers() {
        let p = hmac_and_seq();
        let mut a = PacketCrypto::session(&keys(), p);
        let mut b = PacketCrypto::session(&mirrored(), p);
        let mut scratch = Vec::new();
        let mut first = Vec::new();
        a.seal(99, b"\x09first", &mut first);
        assert_eq!((first.len() - 4) % 16, 10);
        assert_eq!(session_id_of(&first), Ok(99));
        let mut second = Vec::new();
        a.seal(99, b"\x09second", &mut second);
        assert_eq!(
            &b.open(&second, &mut scratch).expect("second")[..7],
            b"\x09second"
        );
        assert_eq!(
            &b.open(&first, &mut scratch).expect("late first")[..6],
            b"\x09first"
        );
        assert_eq!(b.open(&first, &mut scratch), Err(RtmfpError::Replay));
        let mut bad = second.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(b.open(&bad, &mut scratch), Err(RtmfpError::BadHmac));
        // Without the negotiated HMAC the other side cannot read it.
        let mut plain = PacketCrypto::session(&mirrored(), Protection::default());
        assert!(plain.open(&second, &mut scratch).is_err());
    }

    #[test]
    fn replay_window_slides() {
        let mut w = ReplayWindow::default();
        for s in [5, 3, 70, 69] {
            assert!(w.check(s));
            w.record(s);
        }
        assert!(!w.check(5));
        assert!(!w.check(69));
        assert!(w.check(68));
    }
}
