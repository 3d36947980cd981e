//! RTMFP players (`strata-load --rtmfp`): the client role of `dataplane::proto::rtmfp`
//! (`RtmfpNetClient`), one UDP socket per player (so the server sees one address per
//! player, as from distinct hosts), on one epoll instance per thread. Each connects to
//! `rtmfp://HOST:PORT/APP` at the RTMP URL's host and port (stratad serves RTMFP on UDP
//! there), creates a stream and plays it; its media goes through the same
//! [`PlayerStats`] as an RTMP player's, so first-video latency and stalls read alike.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmfp::net_client::{command_of, ClientState, KeyOffer, RtmfpNetClient};
use dataplane::proto::rtmp::msg_type;

use crate::epoll::{Epoll, ERR, IN};
use crate::load::{Counters, LoadConfig, Shared, ThreadResult};
use crate::player::PlayerStats;

/// epoll events taken per wait.
const EVENTS: usize = 1024;
/// Longest sleep: the RTMFP timers (acks, retransmissions, keepalives) of a thread's
/// players are looked at at least this often.
const TICK: Duration = Duration::from_millis(5);
/// Datagrams read from one socket per wake-up, so one busy player cannot starve the rest.
/// A player acknowledges after its reads, so this also bounds how late its acks are: with
/// 64, a join's catch-up bursts made turns of up to 235 ms at 1,000 players, late enough
/// for the server's retransmission timer; with 16 the longest were 40–112 ms.
const READS_PER_WAKE: usize = 16;
/// Each player's SO_RCVBUF unless `--rcvbuf` says otherwise (UDP has no autotuning: the
/// kernel's default is 208 KiB, about 90 datagrams). A viewer drains its socket on a CPU
/// of its own; here one thread drains a thousand, up to a turn late while a join keeps its
/// core busy, and the server's datagrams land at once on loopback. With the default, the
/// players' sockets dropped 16,000–58,000 datagrams in each 1,000-viewer join, whose
/// repair (retransmission timeouts, halved windows) read as the server's stalls. 1 MiB
/// is about 4 s of the 2.15 Mbit/s stream (the kernel caps it at `net.core.rmem_max`,
/// which the tuning profiles raise); `Counters::socket_drops` says if it was not enough.
const DEFAULT_RCVBUF: usize = 1 << 20;
/// The least time a turn gives players in the handshake (see the turn's loop).
const HANDSHAKE_MIN: Duration = Duration::from_millis(2);
/// How often a thread sums its sockets' drops (`Counters::socket_drops`).
const DROPS_EVERY: Duration = Duration::from_millis(250);
/// The Flash Player version our connect announces.
const FLASH_VER: &str = "WIN 11,2,202,235";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The RTMFP handshake.
    Session,
    Connecting,
    CreatingStream,
    PlayRequested,
    Playing,
    Ended,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Session => "handshake",
            Phase::Connecting => "connect sent",
            Phase::CreatingStream => "createStream sent",
            Phase::PlayRequested => "play sent",
            Phase::Playing | Phase::Ended => "playing",
        }
    }
}

struct RtmfpPlayer {
    sock: UdpSocket,
    client: RtmfpNetClient,
    phase: Phase,
    stats: PlayerStats,
}

/// Runs thread `t`'s share of the RTMFP players (`i % threads == t`) until `deadline` or
/// `stop`, as `load::run_thread` does for RTMP.
pub fn run_thread(
    cfg: &LoadConfig,
    t: usize,
    t0: Instant,
    deadline: Instant,
    shared: &Shared,
) -> std::io::Result<ThreadResult> {
    if let Some(&cpu) = cfg.cpus.get(t % cfg.cpus.len().max(1)) {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let server: SocketAddr = cfg.url.resolve().map_err(std::io::Error::other)?;
    let tc_url = format!("rtmfp://{}:{}/{}", cfg.url.host, cfg.url.port, cfg.url.app);
    let counters = &shared.counters[t];
    let mine: Vec<usize> = (t..cfg.players).step_by(cfg.threads.max(1)).collect();
    let ep = Epoll::new()?;
    let mut players: Vec<RtmfpPlayer> = Vec::with_capacity(mine.len());
    // Each client's keys (Diffie-Hellman, milliseconds each) are made before the clock
    // starts: made on the way, 500 joining at once waited for each other's keys in this
    // one thread (about 2 s), which read as the server's time to first video.
    let keys = match cfg.rtmfp_flash_keys {
        true => KeyOffer::FlashPlayer,
        false => KeyOffer::Both,
    };
    let mut prepared: Vec<RtmfpNetClient> = mine
        .iter()
        .map(|&i| {
            let seed = (i as u64) << 32 ^ u64::from(std::process::id());
            RtmfpNetClient::with_keys(server, seed, keys)
        })
        .collect();
    prepared.reverse();
    let mut next = 0;
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut bytes = 0u64;
    let ms = |at: Instant| at.saturating_duration_since(t0).as_millis() as u64;
    let mut last_turn = Instant::now();
    let mut drops_read = last_turn;

    loop {
        let now = Instant::now();
        if now >= deadline || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        while next < mine.len() && t0 + cfg.start_offset(mine[next]) <= now {
            counters.started.fetch_add(1, Ordering::Relaxed);
            let opened = UdpSocket::bind(source_addr(server, mine[next])).and_then(|s| {
                s.set_nonblocking(true)?;
                let rcvbuf = match cfg.rcvbuf {
                    0 => DEFAULT_RCVBUF,
                    n => n,
                };
                socket2::SockRef::from(&s).set_recv_buffer_size(rcvbuf)?;
                ep.ctl(
                    libc::EPOLL_CTL_ADD,
                    s.as_raw_fd(),
                    IN | ERR,
                    players.len() as u64,
                )?;
                Ok(s)
            });
            match opened {
                Ok(sock) => {
                    let Some(mut client) = prepared.pop() else {
                        break;
                    };
                    // Its own start time: the players before it took some of this turn.
                    let now = Instant::now();
                    client.start(ms(now), &tc_url);
                    let mut p = RtmfpPlayer {
                        sock,
                        client,
                        phase: Phase::Session,
                        stats: PlayerStats {
                            started: Some(now),
                            ..PlayerStats::default()
                        },
                    };
                    flush(&mut p, ms(now), &mut out);
                    players.push(p);
                }
                Err(e) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    shared.note_error(format!("udp socket: {e}"));
                }
            }
            next += 1;
        }
        let until_next = mine
            .get(next)
            .map(|&i| (t0 + cfg.start_offset(i)).saturating_duration_since(now));
        let wait = until_next
            .unwrap_or(TICK)
            .min(TICK)
            .min(deadline.saturating_duration_since(now));
        let n = ep.wait(&mut events, wait.as_millis() as i32);
        let now = Instant::now();
        let now_ms = ms(now);
        // From one wake to the next: a turn this long delays every player of the thread,
        // and a gap counted then may be the tool's, not the server's.
        counters.longest_turn_us.fetch_max(
            now.duration_since(last_turn).as_micros() as u64,
            Ordering::Relaxed,
        );
        last_turn = now;
        // Players past the handshake first; then those in it, for no longer than the
        // first took (at least `HANDSHAKE_MIN`). A handshake's Diffie-Hellman costs about
        // a millisecond, and a join's hundreds of them in one turn held every playing
        // player's reading and acknowledgements for hundreds of milliseconds: the
        // server's retransmission timeouts fired and its congestion windows collapsed, and
        // the gaps that followed read as the server's stalls. A real viewer has its own
        // CPU for its one handshake. Those left wait in the socket (the epoll is
        // level-triggered, so the next wait returns at once).
        let mut handshakes_from = None;
        for handshaking in [false, true] {
            for ev in &events[..n] {
                let Some(p) = players.get_mut(ev.u64 as usize) else {
                    continue;
                };
                if p.phase == Phase::Ended || (p.phase == Phase::Session) != handshaking {
                    continue;
                }
                if handshaking {
                    let from = *handshakes_from.get_or_insert_with(Instant::now);
                    let budget = from.duration_since(now).max(HANDSHAKE_MIN);
                    if from.elapsed() >= budget {
                        break;
                    }
                }
                for _ in 0..READS_PER_WAKE {
                    match p.sock.recv_from(&mut buf) {
                        Ok((len, from)) => {
                            bytes += len as u64;
                            p.stats.bytes_in += len as u64;
                            p.client.handle(now_ms, from, &buf[..len]);
                        }
                        Err(_) => break,
                    }
                }
                advance(p, &tc_url, &cfg.url, now, counters, shared);
                flush(p, now_ms, &mut out);
            }
        }
        // Timers: acknowledgements, retransmissions, keepalives.
        for p in players.iter_mut().filter(|p| p.phase != Phase::Ended) {
            if p.client.poll_timeout().is_some_and(|at| at <= now_ms) {
                p.client.handle_timeout(now_ms);
                advance(p, &tc_url, &cfg.url, now, counters, shared);
                flush(p, now_ms, &mut out);
            }
        }
        counters.bytes.store(bytes, Ordering::Relaxed);
        if now.duration_since(drops_read) >= DROPS_EVERY {
            drops_read = now;
            counters
                .socket_drops
                .store(socket_drops(&players), Ordering::Relaxed);
        }
    }
    counters
        .socket_drops
        .store(socket_drops(&players), Ordering::Relaxed);
    let end = Instant::now();
    let mut result = ThreadResult::default();
    // Players stuck in the handshake while dropping the server's answers: say so, or the run
    // reads as a server that never answered (a certificate it cannot use, see
    // --rtmfp-flash-keys).
    let stuck: Vec<u64> = players
        .iter()
        .filter(|p| p.phase == Phase::Session)
        .map(|p| p.client.dropped_before_session())
        .filter(|&n| n > 0)
        .collect();
    if !stuck.is_empty() {
        shared.note_error(format!(
            "rtmfp: {} players still in the handshake dropped {} datagrams from the server \
             (answers they could not use; a server that reads one key may need \
             --rtmfp-flash-keys)",
            stuck.len(),
            stuck.iter().sum::<u64>()
        ));
    }
    for mut p in players {
        if p.phase != Phase::Ended {
            p.stats.close_at(end);
            p.stats.phase = p.phase.name();
            // Say goodbye (once, unacknowledged), so the server frees the session now
            // rather than at its idle timeout, before the next run.
            p.client.close(ms(end));
            flush(&mut p, ms(end), &mut out);
        }
        result.players.push(p.stats);
    }
    Ok(result)
}

/// `SO_MEMINFO` (asm-generic/socket.h; the libc crate does not define it).
const SO_MEMINFO: libc::c_int = 55;
/// The length of `SO_MEMINFO`'s array (`SK_MEMINFO_VARS`).
const MEMINFO_VARS: usize = 9;

/// Datagrams the kernel dropped at the players' sockets, summed (`SK_MEMINFO_DROPS`: the
/// receive buffer was full, or memory was short).
fn socket_drops(players: &[RtmfpPlayer]) -> u64 {
    players.iter().map(|p| dropped_at(&p.sock)).sum()
}

/// Datagrams the kernel dropped at `sock` (0 if it cannot tell).
fn dropped_at(sock: &UdpSocket) -> u64 {
    let mut info = [0u32; MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes, and the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let drops = libc::SK_MEMINFO_DROPS as usize;
    match rc == 0 && len as usize > drops * 4 {
        true => u64::from(info[drops]),
        false => 0,
    }
}

/// Players per source address: stratad admits at most 256 RTMFP sessions per IP address
/// (a protection), so against a loopback server the players come from 127.1.x.y, one
/// address per `PLAYERS_PER_ADDRESS` players, as from distinct hosts.
const PLAYERS_PER_ADDRESS: usize = 100;

fn source_addr(server: SocketAddr, player: usize) -> SocketAddr {
    match server {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            let k = player / PLAYERS_PER_ADDRESS + 1;
            SocketAddr::from(([127, 1, (k >> 8) as u8, (k & 0xff) as u8], 0))
        }
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

/// Sends what the client has due (a full socket buffer drops the datagram: RTMFP repairs
/// it as it would a loss).
fn flush(p: &mut RtmfpPlayer, now_ms: u64, out: &mut Vec<u8>) {
    // Bounded: the client's output is limited by its congestion window.
    while let Some(to) = p.client.poll_transmit(now_ms, out) {
        let _ = p.sock.send_to(out, to);
    }
}

/// Moves the player along on what the server sent: connect, createStream, play, then
/// media into the stats.
fn advance(
    p: &mut RtmfpPlayer,
    tc_url: &str,
    url: &crate::url::RtmpUrl,
    now: Instant,
    counters: &Counters,
    shared: &Shared,
) {
    let failed = match p.client.state() {
        ClientState::Failed(why) | ClientState::Closed(why) => Some(why.clone()),
        ClientState::Connected if p.phase == Phase::Session => {
            p.stats.tcp_connected = Some(now);
            counters.connected.fetch_add(1, Ordering::Relaxed);
            p.phase = Phase::Connecting;
            let object = Amf0Value::object([
                ("app", Amf0Value::string(url.app.as_str())),
                ("flashVer", Amf0Value::string(FLASH_VER)),
                ("tcUrl", Amf0Value::string(tc_url)),
                ("fpad", Amf0Value::Boolean(false)),
                ("capabilities", Amf0Value::Number(235.0)),
                ("audioCodecs", Amf0Value::Number(3575.0)),
                ("videoCodecs", Amf0Value::Number(252.0)),
                ("videoFunction", Amf0Value::Number(1.0)),
                ("objectEncoding", Amf0Value::Number(0.0)),
            ]);
            p.client.send_command(
                0,
                &[Amf0Value::string("connect"), Amf0Value::Number(1.0), object],
            );
            None
        }
        _ => None,
    };
    let mut failed = failed;
    while let Some(m) = p.client.recv() {
        if matches!(m.type_id, msg_type::AUDIO | msg_type::VIDEO) {
            let had_video = p.stats.first_video.is_some();
            let stalls = p.stats.stalls;
            p.stats.on_media(m.type_id, &m.payload, now);
            if p.phase == Phase::PlayRequested {
                p.phase = Phase::Playing;
                p.stats.play_started.get_or_insert(now);
                counters.playing.fetch_add(1, Ordering::Relaxed);
            }
            if !had_video && p.stats.first_video.is_some() {
                counters.first_video.fetch_add(1, Ordering::Relaxed);
            }
            let new = p.stats.stalls - stalls;
            if new > 0 {
                counters.stalls.fetch_add(u64::from(new), Ordering::Relaxed);
            }
            continue;
        }
        let Some(c) = command_of(&m) else { continue };
        match (p.phase, c.name.as_str()) {
            (Phase::Connecting, "_result") if c.transaction_id == 1.0 => {
                p.phase = Phase::CreatingStream;
                p.client.send_command(
                    0,
                    &[
                        Amf0Value::string("createStream"),
                        Amf0Value::Number(2.0),
                        Amf0Value::Null,
                    ],
                );
            }
            (Phase::CreatingStream, "_result") if c.transaction_id == 2.0 => {
                let Some(Amf0Value::Number(id)) = c.args.first() else {
                    failed.get_or_insert("createStream: no stream id".into());
                    continue;
                };
                p.phase = Phase::PlayRequested;
                p.stats.play_sent = Some(now);
                p.client.send_command(
                    *id as u32,
                    &[
                        Amf0Value::string("play"),
                        Amf0Value::Number(0.0),
                        Amf0Value::Null,
                        Amf0Value::string(url.stream.as_str()),
                    ],
                );
            }
            (_, "_error") => {
                failed.get_or_insert(c.info_str("code").unwrap_or("_error").to_string());
            }
            (_, "onStatus") => {
                let code = c.info_str("code").unwrap_or("");
                if code == "NetStream.Play.Start" && p.phase == Phase::PlayRequested {
                    p.phase = Phase::Playing;
                    p.stats.play_started.get_or_insert(now);
                    counters.playing.fetch_add(1, Ordering::Relaxed);
                } else if c.info_str("level") == Some("error")
                    || code == "NetStream.Play.StreamNotFound"
                {
                    failed.get_or_insert(code.to_string());
                }
            }
            _ => {}
        }
    }
    if let Some(why) = failed {
        if p.phase != Phase::Session {
            counters.connected.fetch_sub(1, Ordering::Relaxed);
        }
        if p.phase == Phase::Playing {
            counters.playing.fetch_sub(1, Ordering::Relaxed);
        }
        p.stats.close_at(now);
        p.stats.phase = p.phase.name();
        p.phase = Phase::Ended;
        counters.failed.fetch_add(1, Ordering::Relaxed);
        shared.note_error(format!("rtmfp: {why}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket sent more than its receive buffer holds, unread, counts the datagrams the
    /// kernel dropped (and one that was never full counts none).
    #[test]
    fn a_full_socket_counts_its_drops() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let quiet = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket2::SockRef::from(&rx)
            .set_recv_buffer_size(4096)
            .expect("rcvbuf");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = rx.local_addr().expect("addr");
        let datagram = [7u8; 1200];
        for _ in 0..200 {
            tx.send_to(&datagram, to).expect("send");
        }
        tx.send_to(&datagram, quiet.local_addr().expect("addr"))
            .expect("send");
        let dropped = dropped_at(&rx);
        // Loopback delivers at once: the buffer (a few KiB) held a handful at most.
        assert!(dropped >= 150, "dropped {dropped}");
        assert!(dropped < 200, "dropped {dropped}");
        assert_eq!(dropped_at(&quiet), 0);
    }
}
