//! host.ini: the upstream server groups of an intermediate or edge application, in the
//! LiveStreamCast format verbatim (../shared/seeds/livestreamcast-architecture.txt):
//!
//! ```text
//! #server group name primaryIP;secondaryIP appToConnect
//! server1 10.41.1.215;10.200.1.169 livestreamcast_origin
//! server2 10.41.1.216;10.41.1.216 livestreamcast_origin/instance
//! ```
//!
//! A line starting with `#` is a comment; every other non-blank line is one group. The seed's
//! own examples put a space in a label (`server 1 192.168.1.1;...`), so the label is every
//! word before the `primary;secondary` word, and the application is the one word after it.
//! Addresses are IPs or hostnames, each with an optional `:port` (1935 when absent); IPv6
//! needs brackets (`[::1]:1935`). The file is untrusted input: any malformed line is an
//! error naming the file, the line and what is wrong, never a panic.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::config::DEFAULT_PORT;

/// One upstream server: a host (IP or name, resolved when connecting) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UpstreamAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One server group: a label, a primary and a secondary (which may be the same machine),
/// and the upstream application with its optional instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamGroup {
    pub(crate) label: String,
    pub(crate) primary: UpstreamAddr,
    pub(crate) secondary: UpstreamAddr,
    pub(crate) app: String,
    pub(crate) instance: Option<String>,
    /// The line of host.ini it came from, for messages that point the operator at it.
    pub(crate) line: usize,
}

impl fmt::Display for UpstreamGroup {
    /// The group as a host.ini line, which parses back to the same group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {};{} {}",
            self.label, self.primary, self.secondary, self.app
        )?;
        if let Some(instance) = &self.instance {
            write!(f, "/{instance}")?;
        }
        Ok(())
    }
}

/// A malformed host.ini, naming the file, the line (1-based) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {reason}")]
pub struct HostIniError {
    pub path: String,
    /// 0 when the error concerns the whole file (unreadable, no groups).
    pub line: usize,
    pub reason: String,
}

/// Reads and parses a host.ini file.
pub(crate) fn load(path: &std::path::Path) -> Result<Vec<UpstreamGroup>, HostIniError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| HostIniError {
        path: name.clone(),
        line: 0,
        reason: format!("cannot read: {e}"),
    })?;
    parse(&bytes, &name)
}

/// Parses host.ini bytes; `path` only names the file in errors. At least one group is
/// required: an intermediate or edge without upstreams could never play anything.
pub(crate) fn parse(bytes: &[u8], path: &str) -> Result<Vec<UpstreamGroup>, HostIniError> {
    let error = |line: usize, reason: String| HostIniError {
        path: path.to_string(),
        line,
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        // Point at the line holding the first bad byte.
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        error(line, "not UTF-8 text".into())
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut groups: Vec<UpstreamGroup> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let group = parse_line(line, number).map_err(|reason| error(number, reason))?;
        if let Some(first) = groups.iter().find(|g| g.label == group.label) {
            return Err(error(
                number,
                format!(
                    "group {:?} is already defined on line {}",
                    group.label, first.line
                ),
            ));
        }
        groups.push(group);
    }
    if groups.is_empty() {
        return Err(error(
            0,
            "no server groups (expected lines like `server1 10.0.0.1;10.0.0.2 app`)".into(),
        ));
    }
    Ok(groups)
}

fn parse_line(line: &str, number: usize) -> Result<UpstreamGroup, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(at) = words.iter().position(|w| w.contains(';')) else {
        return Err(format!(
            "expected `label primary;secondary application`, found no `primary;secondary` \
             in {line:?}"
        ));
    };
    if at == 0 {
        return Err("the group has no label before `primary;secondary`".into());
    }
    let label = words[..at].join(" ");
    let app_words = &words[at + 1..];
    let app_word = match app_words {
        [] => return Err("no upstream application after `primary;secondary`".into()),
        [one] => *one,
        [_, extra, ..] => {
            return Err(format!(
                "unexpected {extra:?} after the application (one application per line)"
            ))
        }
    };
    let (primary, secondary) = words[at].split_once(';').unwrap_or((words[at], ""));
    let primary = parse_addr(primary).map_err(|e| format!("primary address: {e}"))?;
    let secondary = parse_addr(secondary).map_err(|e| format!("secondary address: {e}"))?;
    let (app, instance) = parse_app(app_word)?;
    Ok(UpstreamGroup {
        label,
        primary,
        secondary,
        app,
        instance,
        line: number,
    })
}

pub(super) fn parse_app(word: &str) -> Result<(String, Option<String>), String> {
    let mut parts = word.split('/');
    let app = parts.next().unwrap_or_default();
    let instance = parts.next();
    if parts.next().is_some() {
        return Err(format!(
            "application {word:?}: expected `app` or `app/instance`"
        ));
    }
    if app.is_empty() || instance.is_some_and(str::is_empty) {
        return Err(format!("application {word:?} has an empty part"));
    }
    if word.contains(';') {
        return Err(format!("application {word:?} contains ';'"));
    }
    Ok((app.to_string(), instance.map(str::to_string)))
}

pub(super) fn parse_addr(text: &str) -> Result<UpstreamAddr, String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!("{text:?}: '[' without ']'"));
        };
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("{text:?}: {v6:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{text:?}: expected ':port' after ']'"))?,
            ),
        };
        (v6, port)
    } else {
        match text.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => {
                return Err(format!(
                    "{text:?}: an IPv6 address needs brackets, like [::1]:1935"
                ))
            }
            None => (text, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{text:?}: port {p:?} is not 1..=65535")),
            Ok(n) => n,
        },
    };
    if host.parse::<IpAddr>().is_err() && !valid_hostname(host) {
        return Err(format!("{host:?} is neither an IP address nor a hostname"));
    }
    Ok(UpstreamAddr {
        host: host.to_string(),
        port,
    })
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens. An
/// all-numeric name that is not an IP (`10.0.0.300`) is a typo, not a host.
fn valid_hostname(host: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label_ok)
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests;
