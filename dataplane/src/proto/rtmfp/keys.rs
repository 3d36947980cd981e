//! The Flash profile's identities and keying (RFC 7425 §4.3–§4.6): endpoint discriminators,
//! certificates, peer ids, session key components with the HMAC and session-sequence-number
//! negotiations, and the HMAC-SHA256 key derivation.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::crypto::{DerivedKeys, Protection, MAX_HMAC_LEN, MIN_HMAC_LEN};
use super::dh::{DhGroup, DhKey};
use super::error::{Result, RtmfpError};
use super::vlu;

/// Endpoint discriminator options (§4.4.2).
pub(crate) mod epd_opt {
    pub const HOSTNAME: u64 = 0x00;
    /// Flash sends the whole `rtmfp://host/app` URL here.
    pub const ANCILLARY: u64 = 0x0a;
    /// A peer id: the SHA-256 of the wanted peer's certificate.
    pub const FINGERPRINT: u64 = 0x0f;
}

/// Certificate options (§4.3.2).
pub(crate) mod cert_opt {
    pub const ACCEPTS_ANCILLARY: u64 = 0x0a;
    pub const EXTRA_RANDOMNESS: u64 = 0x0e;
    pub const SUPPORTED_GROUP: u64 = 0x15;
    pub const DH_PUBLIC_KEY: u64 = 0x1d;
}

/// Session key component options (§4.6.2).
pub(crate) mod key_opt {
    pub const DH_PUBLIC_KEY: u64 = 0x0d;
    pub const HMAC: u64 = 0x1a;
    pub const DH_GROUP_SELECT: u64 = 0x1d;
    pub const SSEQ: u64 = 0x1e;
}

/// Negotiation flags (§4.6.5): will send always, will send on request, request.
const NEG_SEND_ALWAYS: u8 = 0x04;
const NEG_SEND_ON_REQUEST: u8 = 0x02;
const NEG_REQUEST: u8 = 0x01;

pub(crate) type PeerId = [u8; 32];

/// What an IHello asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Epd<'a> {
    pub hostname: Option<&'a [u8]>,
    pub url: Option<&'a [u8]>,
    pub peer_id: Option<&'a [u8]>,
}

pub(crate) fn parse_epd(raw: &[u8]) -> Result<Epd<'_>> {
    let mut e = Epd::default();
    for o in vlu::options(raw) {
        let o = o?;
        match o.kind {
            epd_opt::HOSTNAME => e.hostname = Some(o.value),
            epd_opt::ANCILLARY => e.url = Some(o.value),
            epd_opt::FINGERPRINT => e.peer_id = Some(o.value),
            _ => {}
        }
    }
    if e.hostname.is_none() && e.url.is_none() && e.peer_id.is_none() {
        return Err(RtmfpError::Malformed("endpoint discriminator"));
    }
    Ok(e)
}

pub(crate) fn epd_url(url: &str) -> Vec<u8> {
    let mut o = Vec::new();
    vlu::put_option(epd_opt::ANCILLARY, url.as_bytes(), &mut o);
    o
}

pub(crate) fn epd_peer_id(id: &PeerId) -> Vec<u8> {
    let mut o = Vec::new();
    vlu::put_option(epd_opt::FINGERPRINT, id, &mut o);
    o
}

#[cfg(test)]
pub(crate) fn epd_hostname(host: &str) -> Vec<u8> {
    let mut o = Vec::new();
    vlu::put_option(epd_opt::HOSTNAME, host.as_bytes(), &mut o);
    o
}

/// A peer id: the SHA-256 of the certificate's canonical part (up to its first marker).
pub(crate) fn peer_id(cert: &[u8]) -> PeerId {
    let mut rest = cert;
    while !rest.is_empty() {
        match vlu::read_option(&mut rest) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let canonical = cert.len() - rest.len() - 1;
                return Sha256::digest(&cert[..canonical]).into();
            }
            Err(_) => break,
        }
    }
    Sha256::digest(cert).into()
}

/// A server's certificate: accepts the URL discriminator, offers ephemeral Diffie-Hellman
/// in `groups`, with extra randomness so that two servers' peer ids differ.
pub(crate) fn responder_cert(groups: &[DhGroup], randomness: &[u8; 64]) -> Vec<u8> {
    let mut c = Vec::new();
    vlu::put_option(cert_opt::ACCEPTS_ANCILLARY, &[], &mut c);
    vlu::put_option(cert_opt::EXTRA_RANDOMNESS, randomness, &mut c);
    for g in groups {
        let mut v = Vec::new();
        vlu::put(g.id(), &mut v);
        vlu::put_option(cert_opt::SUPPORTED_GROUP, &v, &mut c);
    }
    c
}

/// A client's certificate as Flash Player makes it: its Diffie-Hellman public keys (for a
/// group 2 key alone, the well-known `81 02 1D 02` + 128 bytes). The keys are the client's
/// identity: its peer id is the hash of this certificate, and peers reach it by that id.
pub(crate) fn initiator_cert(keys: &[DhKey]) -> Vec<u8> {
    let mut c = Vec::new();
    for key in keys {
        let mut v = Vec::new();
        vlu::put(key.group().id(), &mut v);
        v.extend_from_slice(key.public());
        vlu::put_option(cert_opt::DH_PUBLIC_KEY, &v, &mut c);
    }
    c
}

/// The static public key for `group` in a certificate, if it has one.
pub(crate) fn cert_public_key(cert: &[u8], group: DhGroup) -> Option<&[u8]> {
    group_options(cert, cert_opt::DH_PUBLIC_KEY)
        .find(|(g, _)| *g == group.id())
        .map(|(_, k)| k)
}

/// (group, rest of value) for the options of `kind` whose value starts with a group VLU.
fn group_options(list: &[u8], kind: u64) -> impl Iterator<Item = (u64, &[u8])> {
    vlu::options(list)
        .map_while(|o| o.ok())
        .filter(move |o| o.kind == kind)
        .filter_map(|o| {
            let mut v = o.value;
            vlu::read(&mut v).ok().map(|g| (g, v))
        })
}

/// The groups a certificate offers (ephemeral servers) or has keys for (static clients).
pub(crate) fn cert_groups(cert: &[u8]) -> Vec<u64> {
    group_options(cert, cert_opt::SUPPORTED_GROUP)
        .chain(group_options(cert, cert_opt::DH_PUBLIC_KEY))
        .map(|(g, _)| g)
        .collect()
}

#[cfg(test)]
pub(crate) fn cert_accepts_url(cert: &[u8]) -> bool {
    vlu::find_option(cert, cert_opt::ACCEPTS_ANCILLARY).is_some()
}

/// The HMAC and session sequence number wishes of one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub hmac_send_always: bool,
    pub hmac_recv_required: bool,
    pub hmac_len: usize,
    pub sseq_send_always: bool,
    pub sseq_recv_required: bool,
}

impl Default for Policy {
    /// Flash Player's: neither, unless the peer asks (then we do it).
    fn default() -> Self {
        Policy {
            hmac_send_always: false,
            hmac_recv_required: false,
            hmac_len: 16,
            sseq_send_always: false,
            sseq_recv_required: false,
        }
    }
}

fn flags(send_always: bool, recv_required: bool) -> u8 {
    NEG_SEND_ON_REQUEST
        | if send_always { NEG_SEND_ALWAYS } else { 0 }
        | if recv_required { NEG_REQUEST } else { 0 }
}

/// Applies the peer's flags to (send_always, recv_required): what we asked for must be
/// offered; what the peer always sends we check; what the peer requests we send.
fn apply(peer: u8, send_always: &mut bool, recv_required: &mut bool) -> Result<()> {
    if *recv_required && peer & (NEG_SEND_ALWAYS | NEG_SEND_ON_REQUEST) == 0 {
        return Err(RtmfpError::Unsupported(
            "peer will not send what we require",
        ));
    }
    if peer & NEG_SEND_ALWAYS != 0 {
        *recv_required = true;
    }
    if peer & NEG_REQUEST != 0 {
        *send_always = true;
    }
    Ok(())
}

impl Policy {
    /// Negotiates with the peer's key component; the result is this side's policy after it
    /// (what to advertise, if we answer) and the packet protection it means.
    pub(crate) fn negotiate(mut self, peer_component: &[u8]) -> Result<(Policy, Protection)> {
        let sseq = vlu::find_option(peer_component, key_opt::SSEQ)
            .and_then(|v| v.first().copied())
            .unwrap_or(0);
        apply(
            sseq,
            &mut self.sseq_send_always,
            &mut self.sseq_recv_required,
        )?;
        let (hmac, mut peer_len) = match vlu::find_option(peer_component, key_opt::HMAC) {
            Some(v) if !v.is_empty() => {
                let mut rest = &v[1..];
                (v[0], vlu::read(&mut rest).unwrap_or(0))
            }
            _ => (0, 0),
        };
        apply(
            hmac,
            &mut self.hmac_send_always,
            &mut self.hmac_recv_required,
        )?;
        if self.hmac_recv_required
            && !(MIN_HMAC_LEN as u64..=MAX_HMAC_LEN as u64).contains(&peer_len)
        {
            return Err(RtmfpError::Malformed("HMAC length"));
        }
        if !self.hmac_recv_required {
            peer_len = 0;
        }
        let p = Protection {
            tx_hmac: self.hmac_send_always.then_some(self.hmac_len),
            rx_hmac: self.hmac_recv_required.then_some(peer_len as usize),
            tx_seq: self.sseq_send_always,
            rx_seq: self.sseq_recv_required,
        };
        Ok((self, p))
    }

    /// The negotiation options of our key component, in Flash Player's order.
    fn put_negotiation(&self, out: &mut Vec<u8>) {
        let mut h = vec![flags(self.hmac_send_always, self.hmac_recv_required)];
        vlu::put(self.hmac_len as u64, &mut h);
        vlu::put_option(key_opt::HMAC, &h, out);
        vlu::put_option(
            key_opt::SSEQ,
            &[flags(self.sseq_send_always, self.sseq_recv_required)],
            out,
        );
    }

    /// An initiator's component: negotiation, its public key (as Flash does) and the
    /// group select (as rtmfp-cpp's servers look for with a static-key certificate).
    pub(crate) fn initiator_component(&self, key: &DhKey) -> Vec<u8> {
        let mut c = Vec::new();
        self.put_negotiation(&mut c);
        put_public_key(key, &mut c);
        let mut g = Vec::new();
        vlu::put(key.group().id(), &mut g);
        vlu::put_option(key_opt::DH_GROUP_SELECT, &g, &mut c);
        c
    }

    /// A responder's component: the negotiated outcome (no "on request" offers, which are
    /// moot once the initiator has spoken; no HMAC length when we send none), then its
    /// public key. With neither HMAC nor sequence numbers it begins `03 1A 00 00 02 1E 00`,
    /// as AMS's does and as librtmfp insists on.
    pub(crate) fn responder_component(&self, key: &DhKey) -> Vec<u8> {
        let mut c = Vec::new();
        let negotiated = |send: bool, recv: bool| {
            (if send { NEG_SEND_ALWAYS } else { 0 }) | if recv { NEG_REQUEST } else { 0 }
        };
        let mut h = vec![negotiated(self.hmac_send_always, self.hmac_recv_required)];
        let len = if self.hmac_send_always || self.hmac_recv_required {
            self.hmac_len as u64
        } else {
            0
        };
        vlu::put(len, &mut h);
        vlu::put_option(key_opt::HMAC, &h, &mut c);
        vlu::put_option(
            key_opt::SSEQ,
            &[negotiated(self.sseq_send_always, self.sseq_recv_required)],
            &mut c,
        );
        put_public_key(key, &mut c);
        c
    }
}

fn put_public_key(key: &DhKey, out: &mut Vec<u8>) {
    let mut v = Vec::new();
    vlu::put(key.group().id(), &mut v);
    v.extend_from_slice(key.public());
    vlu::put_option(key_opt::DH_PUBLIC_KEY, &v, out);
}

/// The initiator's Diffie-Hellman public key and group: from its component, else (a
/// static-key client that only selects a group) from its certificate.
pub(crate) fn initiator_public_key<'a>(
    skic: &'a [u8],
    cert: &'a [u8],
) -> Result<(DhGroup, &'a [u8])> {
    if let Some((g, k)) = group_options(skic, key_opt::DH_PUBLIC_KEY).next() {
        let g = DhGroup::from_id(g).ok_or(RtmfpError::Unsupported("Diffie-Hellman group"))?;
        return Ok((g, k));
    }
    let (g, _) = group_options(skic, key_opt::DH_GROUP_SELECT)
        .next()
        .ok_or(RtmfpError::Malformed("session key component"))?;
    let group = DhGroup::from_id(g).ok_or(RtmfpError::Unsupported("Diffie-Hellman group"))?;
    group_options(cert, cert_opt::DH_PUBLIC_KEY)
        .find(|(cg, _)| *cg == g)
        .map(|(_, k)| (group, k))
        .ok_or(RtmfpError::Malformed("certificate"))
}

/// The responder's public key for `group` in its component.
pub(crate) fn responder_public_key(skrc: &[u8], group: DhGroup) -> Result<&[u8]> {
    group_options(skrc, key_opt::DH_PUBLIC_KEY)
        .find(|(g, _)| *g == group.id())
        .map(|(_, k)| k)
        .ok_or(RtmfpError::Malformed("session key component"))
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// RFC 7425 §4.6.3/§4.6.4: with near = our component and far = the peer's,
/// encrypt = HMAC(secret, HMAC(far, near)), decrypt = HMAC(secret, HMAC(near, far)) (AES
/// uses the first 16 bytes), and each HMAC key = HMAC(secret, that 32-byte key).
pub(crate) fn derive(secret: &[u8], near: &[u8], far: &[u8]) -> DerivedKeys {
    let encrypt = hmac(secret, &hmac(far, near));
    let decrypt = hmac(secret, &hmac(near, far));
    DerivedKeys {
        encrypt,
        decrypt,
        tx_hmac: hmac(secret, &encrypt),
        rx_hmac: hmac(secret, &decrypt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn flash_client_certificate_and_peer_id() {
        let key = DhKey::generate(DhGroup::Modp1024, &mut StdRng::seed_from_u64(3));
        let cert = initiator_cert(std::slice::from_ref(&key));
        assert_eq!(cert.len(), 132);
        assert_eq!(cert[..4], [0x81, 0x02, 0x1d, 0x02]);
        assert_eq!(peer_id(&cert), <[u8; 32]>::from(Sha256::digest(&cert)));
        assert_eq!(cert_groups(&cert), vec![2]);
        // Bytes after a marker are not part of the identity.
        let mut extended = cert.clone();
        extended.extend_from_slice(&[0, 1, 2, 3]);
        assert_eq!(peer_id(&extended), peer_id(&cert));
    }

    #[test]
    fn discriminators() {
        let e = epd_url("rtmfp://127.0.0.1/live");
        assert_eq!(e[..2], [0x17, 0x0a]);
        assert_eq!(
            parse_epd(&e).expect("epd").url,
            Some(&b"rtmfp://127.0.0.1/live"[..])
        );
        let id = [9u8; 32];
        assert_eq!(
            parse_epd(&epd_peer_id(&id)).expect("epd").peer_id,
            Some(&id[..])
        );
        assert_eq!(
            parse_epd(&epd_hostname("h")).expect("epd").hostname,
            Some(&b"h"[..])
        );
        assert!(parse_epd(&[0x02, 0x33, 0x00]).is_err());
        let c = responder_cert(&[DhGroup::Modp2048, DhGroup::Modp1024], &[0; 64]);
        assert_eq!(cert_groups(&c), vec![14, 2]);
        assert!(cert_accepts_url(&c));
    }

    #[test]
    fn negotiation_follows_the_peer() {
        let off = Policy::default();
        let strict = Policy {
            hmac_recv_required: true,
            sseq_recv_required: true,
            ..off
        };
        let mut rng = StdRng::seed_from_u64(4);
        let key = DhKey::generate(DhGroup::Modp1024, &mut rng);
        // Both off (Flash Player and MonaServer): plain checksums.
        let (_, p) = off.negotiate(&off.initiator_component(&key)).expect("ok");
        assert_eq!(p, Protection::default());
        // A strict initiator: the responder sends HMACs and sequence numbers, checks none.
        let (r, p) = off
            .negotiate(&strict.initiator_component(&key))
            .expect("ok");
        assert_eq!(
            p,
            Protection {
                tx_hmac: Some(16),
                rx_hmac: None,
                tx_seq: true,
                rx_seq: false
            }
        );
        // And the initiator, reading the responder's answer, expects them.
        let (_, pi) = strict.negotiate(&r.responder_component(&key)).expect("ok");
        assert_eq!(
            pi,
            Protection {
                tx_hmac: None,
                rx_hmac: Some(16),
                tx_seq: false,
                rx_seq: true
            }
        );
        // A peer that will never send what we require is refused.
        let mut flash_like = Vec::new();
        vlu::put_option(key_opt::HMAC, &[0, 0], &mut flash_like);
        vlu::put_option(key_opt::SSEQ, &[0], &mut flash_like);
        assert!(strict.negotiate(&flash_like).is_err());
        assert!(off.negotiate(&flash_like).is_ok());
        // A responder that does neither says so as AMS does (librtmfp checks these bytes).
        let (quiet, _) = off.negotiate(&flash_like).expect("ok");
        assert!(quiet
            .responder_component(&key)
            .starts_with(b"\x03\x1a\x00\x00\x02\x1e\x00"));
    }

    #[test]
    fn both_sides_derive_mirrored_keys() {
        let mut rng = StdRng::seed_from_u64(5);
        let a = DhKey::generate(DhGroup::Modp1024, &mut rng);
        let b = DhKey::generate(DhGroup::Modp1024, &mut rng);
        let p = Policy::default();
        let skic = p.initiator_component(&a);
        let skrc = p.responder_component(&b);
        let (g, ka) = initiator_public_key(&skic, &[]).expect("key");
        assert_eq!(g, DhGroup::Modp1024);
        let s_r = b.shared_secret(ka).expect("secret");
        let s_i = a
            .shared_secret(responder_public_key(&skrc, g).expect("key"))
            .expect("secret");
        let i = derive(&s_i, &skic, &skrc);
        let r = derive(&s_r, &skrc, &skic);
        assert_eq!(i.encrypt, r.decrypt);
        assert_eq!(i.decrypt, r.encrypt);
        assert_eq!(i.tx_hmac, r.rx_hmac);
        assert_ne!(i.encrypt, i.decrypt);
        // A static-key initiator that only selects a group: the key comes from its cert.
        let mut select = Vec::new();
        vlu::put_option(key_opt::DH_GROUP_SELECT, &[2], &mut select);
        let cert = initiator_cert(std::slice::from_ref(&a));
        assert_eq!(
            initiator_public_key(&select, &cert).expect("key").1,
            a.public()
        );
    }
}
