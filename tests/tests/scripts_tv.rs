//! The "TV channel" example (examples/scripts/tv, issue 13): a script plays a programme of
//! files (an FLV, then an MP4) and then the live stream "studio" (published by ffmpeg) on
//! the server-side stream "channel". Two viewers who join 5 s apart receive the same media
//! timestamps at the same wall-clock moment (within 200 ms), across the switch from the
//! files to the live stream; ffmpeg plays the channel as a live stream.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use dataplane::proto::rtmp::msg_type;
use e2e::media_probe::{of_type, probe_packets};
use e2e::publisher::publish_sample;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{workspace_dir, Server, ServerOptions};
use e2e::tools::ffmpeg;
use e2e::vod_fixture::make_clip;

const WAIT: Duration = Duration::from_secs(10);

/// stratad with the examples as its scripts (tv loaded at start) and the programme's files.
fn tv_server(dir: &ScratchDir) -> Server {
    let root = dir.join("root");
    make_clip(&root.join("tv/_definst_/intro.flv"));
    make_clip(&root.join("tv/_definst_/news.mp4"));
    let scripts: PathBuf = workspace_dir().join("examples/scripts");
    Server::start_with(ServerOptions {
        config: Some(format!(
            "[vod]\nroot = {:?}\n[scripts]\ndir = {:?}\nload_on_startup = [\"tv\"]\n",
            root.display().to_string(),
            scripts.display().to_string()
        )),
        ..ServerOptions::default()
    })
}

/// A viewer of "channel" from now until `until`: (arrival, timestamp) of each video message.
fn watch(addr: std::net::SocketAddr, until: Instant) -> Vec<(Instant, u32)> {
    let mut c = RtmpClient::connected(addr, "tv").expect("connects to tv");
    c.play("channel").expect("plays");
    let mut seen = Vec::new();
    // Bounded by the deadline.
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        match c.read_message(left.min(WAIT)) {
            Ok(m) if m.type_id == msg_type::VIDEO => seen.push((Instant::now(), m.timestamp)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    seen
}

#[test]
fn two_viewers_joining_5s_apart_see_the_same_timestamps_at_the_same_moment() {
    let dir = ScratchDir::new("scripts-tv");
    let before_server = Instant::now();
    let server = tv_server(&dir);
    let addr = server.addr();
    // The studio is on the air before the programme reaches it (8 s in).
    let _studio = publish_sample(&format!("rtmp://{addr}/tv/studio"));
    let start = Instant::now();
    let until = start + Duration::from_secs(13);
    let (tx, rx) = mpsc::channel();
    let first = {
        let tx = tx.clone();
        thread::spawn(move || tx.send((0, watch(addr, until))))
    };
    thread::sleep(Duration::from_secs(5));
    let second = thread::spawn(move || tx.send((1, watch(addr, until))));
    let _ = (first.join(), second.join());
    let mut got: Vec<(usize, Vec<(Instant, u32)>)> = rx.try_iter().collect();
    got.sort_by_key(|(i, _)| *i);
    let [(_, a), (_, b)] = &got[..] else {
        panic!("both viewers report");
    };
    assert!(a.len() > 200, "the first viewer plays: {} frames", a.len());
    assert!(b.len() > 100, "the second viewer plays: {} frames", b.len());
    // The second viewer joins the channel where it is, not at its start.
    let b_first = b[0].1;
    assert!(
        b_first >= 3_000,
        "the second viewer starts near 5 s into the channel, not at {b_first} ms"
    );
    // Past its join (the key frame's GOP comes at once), each timestamp reaches both
    // viewers at the same moment.
    let joined = b[0].0 + Duration::from_millis(1_500);
    let mut compared = 0;
    let mut worst = Duration::ZERO;
    for (at_b, ts) in b.iter().filter(|(at, _)| *at > joined) {
        let Some((at_a, _)) = a.iter().find(|(_, t)| t == ts) else {
            continue;
        };
        let gap = if at_a > at_b {
            *at_a - *at_b
        } else {
            *at_b - *at_a
        };
        worst = worst.max(gap);
        compared += 1;
    }
    eprintln!(
        "second viewer from {b_first} ms; {compared} frames compared; worst gap {worst:?}; \
         first viewer up to {} ms",
        a.last().map_or(0, |x| x.1)
    );
    assert!(compared > 100, "only {compared} frames seen by both");
    assert!(
        worst <= Duration::from_millis(200),
        "the same timestamp reached the viewers {worst:?} apart"
    );
    // Timestamps grow across the programme's items (an FLV then an MP4, 4 s each).
    let last = a.last().map_or(0, |x| x.1);
    assert!(
        last >= 8_000,
        "the channel went on past its first item: {last} ms"
    );
    assert!(
        a.windows(2).all(|w| w[1].1 + 100 >= w[0].1),
        "video timestamps never go back"
    );
    // The channel keeps to the clock (its time counts from the script's start, after
    // `before_server`), the live item too: at most a GOP ahead, as its start is sent at once.
    for (at, ts) in a {
        let since = at.duration_since(before_server).as_millis() as u64;
        assert!(
            u64::from(*ts) <= since + 3_000,
            "stream time {ts} ms only {since} ms after the server started"
        );
    }
    let log = server.log();
    assert!(
        log.contains("server stream published"),
        "the log names the server stream"
    );
    assert!(
        log.contains("server stream follows a live stream"),
        "the programme reached the studio"
    );
}

#[test]
fn ffmpeg_plays_the_channel_as_a_live_stream() {
    let dir = ScratchDir::new("scripts-tv-ffmpeg");
    let server = tv_server(&dir);
    let url = format!("rtmp://{}/tv/channel", server.addr());
    let out = dir.join("channel.flv");
    ffmpeg(&[
        "-i",
        &url,
        "-t",
        "3",
        "-c",
        "copy",
        "-f",
        "flv",
        "-y",
        out.to_str().expect("utf-8 path"),
    ])
    .expect_success(Duration::from_secs(30));
    let packets = probe_packets(&out);
    let video = of_type(&packets, "video");
    assert!(video.len() >= 50, "ffmpeg got {} video frames", video.len());
}
