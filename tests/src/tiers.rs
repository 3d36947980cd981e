//! The LiveStreamCast tiers' test fixtures (issue 9): origins and lower tiers as separate
//! stratads on 127.0.0.x with a host.ini in the seed's format, and a viewer that records
//! what arrives when, checked for gaps and timestamps across a failover.

use crate::rtmp_client::{info_code, is_avc_sequence_header, RtmpClient};
use crate::scratch_dir::ScratchDir;
use crate::server::{Server, ServerOptions};
use dataplane::proto::amf0::Amf0Value;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const VIDEO: u8 = 9;
pub const AUDIO: u8 = 8;
/// The bound on what a viewer notices of a failover.
pub const MAX_GAP: Duration = Duration::from_millis(1500);

pub fn host(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

pub fn origin_at(addr: SocketAddr) -> Server {
    Server::start_with(ServerOptions {
        config: Some("[[application]]\nname = \"lsc_origin\"\nrole = \"origin\"\n".into()),
        addr: Some(addr),
        ..ServerOptions::default()
    })
}

/// A tier below: `role` with one host.ini line per `(label, primary, secondary, app)`.
pub fn tier(
    dir: &ScratchDir,
    name: &str,
    role: &str,
    at: IpAddr,
    groups: &[(&str, SocketAddr, SocketAddr, &str)],
    idle_ms: u32,
) -> Server {
    tier_with(dir, name, role, at, groups, idle_ms, "")
}

/// `tier` with more application keys (`extra`: TOML lines, e.g. `hot_standby = true\n`).
pub fn tier_with(
    dir: &ScratchDir,
    name: &str,
    role: &str,
    at: IpAddr,
    groups: &[(&str, SocketAddr, SocketAddr, &str)],
    idle_ms: u32,
    extra: &str,
) -> Server {
    let host_ini: PathBuf = dir.join(&format!("{name}-host.ini"));
    let mut text = String::from("#server group name primaryIP;secondaryIP appToConnect\n");
    for (label, primary, secondary, app) in groups {
        text.push_str(&format!("{label} {primary};{secondary} {app}\n"));
    }
    std::fs::write(&host_ini, text).expect("host.ini");
    Server::start_with(ServerOptions {
        config: Some(format!(
            "[[application]]\nname = \"{name}\"\nrole = \"{role}\"\nhost_ini = {:?}\n\
             idle_ms = {idle_ms}\n{extra}",
            host_ini.display().to_string()
        )),
        host: Some(at),
        rust_log: "info,dataplane=debug".into(),
        ..ServerOptions::default()
    })
}

/// What a viewer received: (arrival, type, timestamp, picture). Codec headers are not
/// pictures: a new source's header rightly shares its key frame's timestamp.
pub type Seen = Vec<(Instant, u8, u32, bool)>;

/// Our client plays `name` on `addr`/`app` until `until`, recording every audio and video
/// message; an error if the connection is dropped.
pub fn watch(
    addr: SocketAddr,
    app: &'static str,
    until: Instant,
) -> JoinHandle<Result<Seen, String>> {
    watch_via(addr, app, None, until)
}

/// `watch` of another stream name than `cam` (plain play).
pub fn watch_name(
    addr: SocketAddr,
    app: &'static str,
    name: &'static str,
    until: Instant,
) -> JoinHandle<Result<Seen, String>> {
    play_and_record(addr, app, name, None, until)
}

/// `watch`, as the seed's subscriber does when `subscribe` names its call (`FCSubscribe` or
/// `FMSubscribe`): the call first, its onFMSubscribe must say NetStream.Play.Start, then the
/// play. `None`: a plain `NetStream.play`.
pub fn watch_via(
    addr: SocketAddr,
    app: &'static str,
    subscribe: Option<&'static str>,
    until: Instant,
) -> JoinHandle<Result<Seen, String>> {
    play_and_record(addr, app, "cam", subscribe, until)
}

fn play_and_record(
    addr: SocketAddr,
    app: &'static str,
    name: &'static str,
    subscribe: Option<&'static str>,
    until: Instant,
) -> JoinHandle<Result<Seen, String>> {
    std::thread::spawn(move || {
        let mut client = RtmpClient::connected(addr, app).map_err(|e| e.to_string())?;
        if let Some(method) = subscribe {
            client
                .send_command(0, method, Amf0Value::Null, &[Amf0Value::string(name)])
                .map_err(|e| e.to_string())?;
            let answer = client
                .wait_command(Duration::from_secs(5), "onFMSubscribe", |c| {
                    c.name == "onFMSubscribe"
                })
                .map_err(|e| format!("{method} on {addr}: no onFMSubscribe: {e}"))?;
            let code = info_code(&answer).unwrap_or_default();
            if code != "NetStream.Play.Start" {
                return Err(format!("{method} on {addr} answered {code}"));
            }
        }
        client.play(name).map_err(|e| e.to_string())?;
        let mut seen = Vec::new();
        while Instant::now() < until {
            let wait = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(250));
            match client.read_message(wait) {
                Ok(m) if m.type_id == VIDEO || m.type_id == AUDIO => {
                    let picture = m.type_id == VIDEO && !is_avc_sequence_header(&m.payload);
                    seen.push((Instant::now(), m.type_id, m.timestamp, picture));
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
                Err(e) => return Err(format!("viewer on {addr} lost its connection: {e}")),
            }
        }
        client.shutdown();
        Ok(seen)
    })
}

/// Checks a viewer's record: the largest gap between video messages, video timestamps that
/// only rise, audio ones that never fall, and both video and audio after the kill.
pub fn check_viewer(
    name: &str,
    seen: &Seen,
    killed: Instant,
    max_gap: Duration,
) -> Result<Duration, String> {
    let video: Vec<_> = seen.iter().filter(|s| s.1 == VIDEO && s.3).collect();
    if video.len() <= 50 {
        return Err(format!("{name}: too little video ({})", video.len()));
    }
    let gap = video
        .windows(2)
        .map(|w| {
            (
                w[1].0.duration_since(w[0].0),
                w[1].0.saturating_duration_since(killed),
            )
        })
        .max()
        .unwrap_or_default();
    if gap.0 > max_gap {
        return Err(format!(
            "{name}: a gap of {:?} between video frames (limit {max_gap:?}), ending {:?} \
             after the kill",
            gap.0, gap.1
        ));
    }
    if !video.iter().any(|s| s.0 > killed + Duration::from_secs(2)) {
        return Err(format!("{name}: no video two seconds after the kill"));
    }
    for w in video.windows(2) {
        if w[1].2 <= w[0].2 {
            return Err(format!(
                "{name}: video timestamp {} after {} (duplicate or backwards)",
                w[1].2, w[0].2
            ));
        }
    }
    let audio: Vec<_> = seen.iter().filter(|s| s.1 == AUDIO).collect();
    if audio.len() <= 50 {
        return Err(format!("{name}: too little audio ({})", audio.len()));
    }
    if !audio.iter().any(|s| s.0 > killed + Duration::from_secs(2)) {
        return Err(format!("{name}: no audio two seconds after the kill"));
    }
    if audio.windows(2).any(|w| w[1].2 < w[0].2) {
        return Err(format!("{name}: audio went backwards"));
    }
    Ok(gap.0)
}

/// The failover's cost at a viewer: from the last picture before the new source's first
/// video codec header (a new source starts with one, then its key frame) to that header.
/// The source's own jitter elsewhere does not count. None if no new source started after
/// `killed`.
pub fn switch_gap(seen: &Seen, killed: Instant) -> Option<Duration> {
    let video: Vec<_> = seen.iter().filter(|s| s.1 == VIDEO).collect();
    let header = video.iter().position(|s| !s.3 && s.0 > killed)?;
    let last_picture = video[..header].iter().rev().find(|s| s.3)?;
    Some(video[header].0.duration_since(last_picture.0))
}

/// What a viewer notices of a failover: the largest gap between video pictures that ends in
/// the 3 s after `killed` (the source's own jitter in that window included).
pub fn failover_gap(seen: &Seen, killed: Instant) -> Duration {
    let video: Vec<Instant> = seen
        .iter()
        .filter(|s| s.1 == VIDEO && s.3)
        .map(|s| s.0)
        .collect();
    video
        .windows(2)
        .filter(|w| w[1] > killed && w[1] <= killed + Duration::from_secs(3))
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// The gap a failover itself leaves at a viewer, apart from the source's jitter later in
/// the window: the largest gap between pictures from the last picture before the new
/// source's codec header (see `switch_gap`) to `after` past that header (the new source's
/// first pictures, and the batches that follow while the edge's send batching settles on
/// the new source's rhythm). None if no new source started after `killed`.
pub fn gap_across_switch(seen: &Seen, killed: Instant, after: Duration) -> Option<Duration> {
    let video: Vec<_> = seen.iter().filter(|s| s.1 == VIDEO).collect();
    let header = video.iter().position(|s| !s.3 && s.0 > killed)?;
    let last_picture = video[..header].iter().rev().find(|s| s.3)?.0;
    let until = video[header].0 + after;
    let pictures: Vec<Instant> = video
        .iter()
        .filter(|s| s.3 && s.0 >= last_picture && s.0 <= until)
        .map(|s| s.0)
        .collect();
    pictures.windows(2).map(|w| w[1].duration_since(w[0])).max()
}
