//! Diffie-Hellman over the MODP groups the Flash profile uses (RFC 7425 §4.3): group 2
//! (1024-bit, RFC 2409 §6.2; Flash Player's only group, so required) and group 14 (2048-bit,
//! RFC 3526 §3; what rtmfp-cpp prefers). Both with generator 2. Only these are advertised.
//!
//! A server makes a fresh key for every session, and a join storm makes a thousand of them
//! at once: the public key g^x is taken from a table of the generator's powers (see
//! `FixedBase`), about a quarter of a general exponentiation's cost (0.28x, measured).

use std::sync::OnceLock;

use num_bigint::BigUint;
use rand::RngCore;

use super::error::{Result, RtmfpError};

const MODP_1024: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";
const MODP_2048: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DhGroup {
    Modp1024 = 2,
    Modp2048 = 14,
}

impl DhGroup {
    pub(crate) fn from_id(id: u64) -> Option<Self> {
        match id {
            2 => Some(DhGroup::Modp1024),
            14 => Some(DhGroup::Modp2048),
            _ => None,
        }
    }

    pub(crate) fn id(self) -> u64 {
        self as u64
    }

    /// The group's prime and its generator's table, built on first use (once per process).
    fn fixed(self) -> &'static FixedBase {
        static TABLES: [OnceLock<FixedBase>; 2] = [OnceLock::new(), OnceLock::new()];
        let (slot, hex) = match self {
            DhGroup::Modp1024 => (&TABLES[0], MODP_1024),
            DhGroup::Modp2048 => (&TABLES[1], MODP_2048),
        };
        slot.get_or_init(|| {
            // Constants above: parsing cannot fail (checked by a test).
            let p = BigUint::parse_bytes(hex.as_bytes(), 16).unwrap_or_default();
            FixedBase::new(p, self.exponent_len() * 8)
        })
    }

    fn prime(self) -> &'static BigUint {
        &self.fixed().p
    }

    /// Public keys are sent at the prime's width.
    pub(crate) fn key_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp2048 => 256,
        }
    }

    /// Private exponent bytes: twice the group's security strength (RFC 3526 §8).
    fn exponent_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 28,
            DhGroup::Modp2048 => 40,
        }
    }
}

/// Powers of the generator 2 modulo p, for exponents of up to `bits` bits: `table[i][d - 1]`
/// is 2^(d·16^i) mod p, so 2^x is the product of one entry per nonzero hex digit of x — about
/// 80 multiplications for group 14's 320-bit exponents, where square-and-multiply takes 320
/// squarings and some 64 multiplications (0.25 against 0.9 ms here). 15 entries per digit:
/// 300 KiB for group 14, 105 KiB for group 2. Like num-bigint's `modpow` (which this
/// replaces for the generator only) it is not constant-time; the keys are ephemeral.
struct FixedBase {
    p: BigUint,
    table: Vec<[BigUint; 15]>,
}

impl FixedBase {
    fn new(p: BigUint, bits: usize) -> Self {
        let mut table = Vec::with_capacity(bits.div_ceil(4));
        // 2^(16^i) mod p, the base of digit i.
        let mut base = BigUint::from(2u32);
        for _ in 0..bits.div_ceil(4) {
            let mut row: [BigUint; 15] = std::array::from_fn(|_| BigUint::default());
            row[0] = base.clone();
            for d in 1..15 {
                row[d] = &row[d - 1] * &base % &p;
            }
            // 2^(16^(i+1)) = (2^(15·16^i)) · 2^(16^i).
            base = &row[14] * &base % &p;
            table.push(row);
        }
        FixedBase { p, table }
    }

    /// 2^x mod p, for x of at most the table's bits (larger ones fall back to `modpow`).
    fn pow(&self, x: &BigUint) -> BigUint {
        let digits = x.to_radix_le(16);
        if digits.len() > self.table.len() {
            return BigUint::from(2u32).modpow(x, &self.p);
        }
        let mut acc = BigUint::from(1u32);
        for (row, &d) in self.table.iter().zip(&digits) {
            if d != 0 {
                acc = acc * &row[usize::from(d) - 1] % &self.p;
            }
        }
        acc
    }
}

/// One side's key pair (ephemeral for a server, a client's identity for its sessions).
#[derive(Clone)]
pub(crate) struct DhKey {
    group: DhGroup,
    private: BigUint,
    public: Vec<u8>,
}

impl DhKey {
    pub(crate) fn generate(group: DhGroup, rng: &mut impl RngCore) -> Self {
        let mut x = vec![0u8; group.exponent_len()];
        rng.fill_bytes(&mut x);
        x[0] |= 0x80; // full length, as the security estimate assumes
        let private = BigUint::from_bytes_be(&x);
        let y = group.fixed().pow(&private).to_bytes_be();
        let mut public = vec![0u8; group.key_len() - y.len()];
        public.extend_from_slice(&y);
        DhKey {
            group,
            private,
            public,
        }
    }

    pub(crate) fn group(&self) -> DhGroup {
        self.group
    }

    pub(crate) fn public(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret as a big-endian number without leading zeros (what OpenSSL's
    /// BN_bn2bin gives the other implementations). Refuses degenerate peer keys (0, 1,
    /// p-1 and anything outside [2^24, p - 2^24]) that would force a known secret.
    pub(crate) fn shared_secret(&self, peer_public: &[u8]) -> Result<Vec<u8>> {
        if peer_public.len() > self.group.key_len() {
            return Err(RtmfpError::Malformed("Diffie-Hellman public key"));
        }
        let p = self.group.prime();
        let y = BigUint::from_bytes_be(peer_public);
        let low = BigUint::from(1u32 << 24);
        if y < low || y > p - &low {
            return Err(RtmfpError::Malformed("Diffie-Hellman public key"));
        }
        Ok(y.modpow(&self.private, p).to_bytes_be())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn both_groups_agree_and_refuse_degenerate_keys() {
        let mut rng = StdRng::seed_from_u64(1);
        for g in [DhGroup::Modp1024, DhGroup::Modp2048] {
            assert_eq!(g.prime().bits() as usize, g.key_len() * 8);
            let a = DhKey::generate(g, &mut rng);
            let b = DhKey::generate(g, &mut rng);
            assert_eq!(a.public().len(), g.key_len());
            let s1 = a.shared_secret(b.public()).expect("secret");
            let s2 = b.shared_secret(a.public()).expect("secret");
            assert_eq!(s1, s2);
            assert!(s1.len() > g.key_len() - 4);
            assert!(a.shared_secret(&[1]).is_err());
            assert!(a.shared_secret(&vec![0xff; g.key_len()]).is_err());
            assert!(a.shared_secret(&vec![1; g.key_len() + 1]).is_err());
        }
        assert_eq!(DhGroup::from_id(5), None);
    }

    proptest::proptest! {
        /// The generator's table gives what a general exponentiation gives, for exponents
        /// of every length up to the table's (and beyond it, by the fallback).
        #[test]
        fn the_generator_table_agrees_with_modpow(x in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48), big in proptest::prelude::any::<bool>()) {
            let g = if big { DhGroup::Modp2048 } else { DhGroup::Modp1024 };
            let x = BigUint::from_bytes_be(&x);
            let p = g.prime();
            proptest::prop_assert_eq!(g.fixed().pow(&x), BigUint::from(2u32).modpow(&x, p));
        }
    }
}
