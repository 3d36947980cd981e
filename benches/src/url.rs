//! `rtmp://HOST[:PORT]/APP/STREAM` as the load tool takes it.

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    /// Everything between the authority and the last `/` (`live`, or `app/instance`).
    pub app: String,
    pub stream: String,
}

impl RtmpUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{s}: not an rtmp:// URL"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{s}: no application in the URL"))?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{s}: bad port {p:?}"))?,
            ),
            None => (authority, 1935),
        };
        let (app, stream) = path
            .rsplit_once('/')
            .ok_or_else(|| format!("{s}: expected rtmp://HOST:PORT/APP/STREAM"))?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(format!("{s}: expected rtmp://HOST:PORT/APP/STREAM"));
        }
        Ok(RtmpUrl {
            host: host.to_string(),
            port,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }

    /// The tcUrl of `connect`: the URL without the stream name.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }

    pub fn resolve(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_and_stream() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:1936/app/stream").expect("url");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1936));
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("app", "stream"));
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:1936/app");
        let u = RtmpUrl::parse("rtmp://localhost/live/inst/cam").expect("url");
        assert_eq!((u.port, u.app.as_str()), (1935, "live/inst"));
        assert!(RtmpUrl::parse("http://x/a/b").is_err());
        assert!(RtmpUrl::parse("rtmp://x/a").is_err());
    }
}
