//! Stateless RHello cookies (RFC 7016 §3.5.1.1.2): an IHello costs the responder no state.
//! A cookie is the time it was made and an HMAC of that time and the initiator's address
//! under a secret only the responder knows; the IIKeying echoes it and the responder checks
//! it. 64 bytes, because librtmfp refuses any other length.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::address::{self, Origin};

pub(crate) const COOKIE_LEN: usize = 64;
/// How long an RHello's cookie may be echoed (RFC 7016 suggests it be short; rtmfp-cpp 95 s).
pub(crate) const COOKIE_LIFETIME_S: u64 = 95;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieCheck {
    Ok,
    /// Made by us, but for another address: the initiator's address changed (a NAT
    /// rebinding) between RHello and IIKeying; answer with a Cookie Change.
    OtherAddress,
    Bad,
}

pub(crate) struct CookieJar {
    secret: [u8; 32],
}

impl CookieJar {
    pub(crate) fn new(secret: [u8; 32]) -> Self {
        CookieJar { secret }
    }

    fn mac(&self, label: u8, time: &[u8], addr: Option<SocketAddr>) -> [u8; 32] {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        m.update(&[label]);
        m.update(time);
        if let Some(a) = addr {
            let mut enc = Vec::with_capacity(19);
            address::put(a, Origin::Unknown, &mut enc);
            m.update(&enc);
        }
        m.finalize().into_bytes().into()
    }

    /// [time (8 bytes, seconds)][HMAC(time) first 24][HMAC(time, address)]
    pub(crate) fn make(&self, addr: SocketAddr, now_s: u64) -> [u8; COOKIE_LEN] {
        let t = now_s.to_be_bytes();
        let mut c = [0u8; COOKIE_LEN];
        c[..8].copy_from_slice(&t);
        c[8..32].copy_from_slice(&self.mac(1, &t, None)[..24]);
        c[32..].copy_from_slice(&self.mac(2, &t, Some(addr)));
        c
    }

    pub(crate) fn check(&self, cookie: &[u8], addr: SocketAddr, now_s: u64) -> CookieCheck {
        if cookie.len() != COOKIE_LEN {
            return CookieCheck::Bad;
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&cookie[..8]);
        let made = u64::from_be_bytes(t);
        if made > now_s || now_s - made > COOKIE_LIFETIME_S {
            return CookieCheck::Bad;
        }
        if !eq(&cookie[8..32], &self.mac(1, &t, None)[..24]) {
            return CookieCheck::Bad;
        }
        if !eq(&cookie[32..], &self.mac(2, &t, Some(addr))) {
            return CookieCheck::OtherAddress;
        }
        CookieCheck::Ok
    }
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_check_time_address_and_secret() {
        let jar = CookieJar::new([7; 32]);
        let a: SocketAddr = "127.0.0.2:5000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.2:5001".parse().expect("addr");
        let c = jar.make(a, 1000);
        assert_eq!(jar.check(&c, a, 1000), CookieCheck::Ok);
        assert_eq!(jar.check(&c, a, 1000 + COOKIE_LIFETIME_S), CookieCheck::Ok);
        assert_eq!(jar.check(&c, a, 1001 + COOKIE_LIFETIME_S), CookieCheck::Bad);
        assert_eq!(jar.check(&c, a, 999), CookieCheck::Bad);
        assert_eq!(jar.check(&c, b, 1000), CookieCheck::OtherAddress);
        assert_eq!(CookieJar::new([8; 32]).check(&c, a, 1000), CookieCheck::Bad);
        assert_eq!(jar.check(&c[..63], a, 1000), CookieCheck::Bad);
        let mut forged = c;
        forged[7] ^= 1;
        assert_eq!(jar.check(&forged, a, 1001), CookieCheck::Bad);
    }
}
