//! LiveStreamCast's tiers end to end (issue 9): two origins (ffmpeg publishes to both, as an
//! encoder with a backup URL does), one intermediate, two edges, each a stratad of its own
//! on 127.0.0.2 ... .6 with a host.ini in the seed's format. Viewers (ffmpeg, rtmpdump and
//! our client with plain play) on both edges. Then `kill -9` of the origin the chain streams
//! from: every edge viewer keeps its connection and gets video again within 1.5 s, with no
//! duplicate or backwards timestamp; the origin comes back, joins the bottom of the list,
//! and the stream stays where it is. Also the reconnect rule: 3 attempts at a down primary,
//! then the secondary, seen in the control socket's events.

use control::client::{ControlClient, Unsolicited};
use control::protocol::{Call, Reply};
use e2e::bounds;
use e2e::media_probe::probe_streams;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{free_addr_on, Server};
use e2e::tiers::{check_viewer, host, origin_at, tier, watch, watch_via, MAX_GAP};
use e2e::tools::{rtmpdump, ChildGuard};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn wait_file_grows(path: &std::path::Path, child: &mut ChildGuard, what: &str) {
    let deadline = Instant::now() + bounds::STREAM_UP;
    while std::fs::metadata(path).map_or(0, |m| m.len()) < 64 * 1024 {
        assert!(Instant::now() < deadline, "{what} received too little");
        assert!(child.is_running(), "{what} ended:\n{}", child.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn killing_the_origin_the_chain_streams_from_costs_viewers_only_a_gap() {
    let dir = ScratchDir::new("tiers-failover");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let mut origins = [Some(origin_at(a_addr)), Some(origin_at(b_addr))];
    let mut publishers = [
        Some(publish_sample(&format!("rtmp://{a_addr}/lsc_origin/cam"))),
        Some(publish_sample(&format!("rtmp://{b_addr}/lsc_origin/cam"))),
    ];
    let intermediate = tier(
        &dir,
        "lsc_intermediate",
        "intermediate",
        host(4),
        &[
            ("server1", a_addr, a_addr, "lsc_origin"),
            ("server2", b_addr, b_addr, "lsc_origin"),
        ],
        1000,
    );
    let i_addr = intermediate.addr();
    let edges = [5, 6].map(|h| {
        tier(
            &dir,
            "lsc_edge",
            "edge",
            host(h),
            &[("server1", i_addr, i_addr, "lsc_intermediate")],
            1000,
        )
    });

    // Every kind of viewer on both edges.
    let mut recorders: Vec<Recorder> = edges
        .iter()
        .map(|e| Recorder::start(&e.url("lsc_edge/cam")))
        .collect();
    let dumps_dir = ScratchDir::new("tiers-failover-dumps");
    let mut dumps: Vec<(PathBuf, ChildGuard)> = edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let path = dumps_dir.join(&format!("edge{i}.flv"));
            let child = rtmpdump(&e.url("lsc_edge/cam"), &path, &[]);
            (path, child)
        })
        .collect();
    for r in &mut recorders {
        r.assert_keeps_receiving(bounds::STREAM_UP);
    }
    for (path, child) in &mut dumps {
        wait_file_grows(path, child, "rtmpdump on an edge");
    }
    let until = Instant::now() + Duration::from_secs(9);
    // Our client on both edges: plain play, and the seed's subscribers (FCSubscribe and
    // FMSubscribe answered with onFMSubscribe Play.Start, then play).
    let watchers: Vec<_> = edges
        .iter()
        .flat_map(|e| {
            [None, Some("FCSubscribe"), Some("FMSubscribe")]
                .map(|how| (how, watch_via(e.addr(), "lsc_edge", how, until)))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    // Which origin the chain streams from: the intermediate's list.
    let line = intermediate
        .wait_log_line(&["upstream plays"], bounds::MESSAGE)
        .expect("the intermediate plays from an origin");
    let current = if line.contains("group=server1") { 0 } else { 1 };
    let other = 1 - current;
    let killed = Instant::now();
    if let Some(mut o) = origins[current].take() {
        o.signal(libc::SIGKILL);
        assert!(o.wait_exit(Duration::from_secs(5)).is_some());
    }
    if let Some(mut p) = publishers[current].take() {
        p.kill();
    }
    assert!(
        intermediate
            .wait_log_line(&["stream switched upstream"], Duration::from_secs(5))
            .is_some_and(|l| l.contains(&format!("group=server{}", other + 1))),
        "the intermediate did not switch to the other origin:\n{}",
        intermediate.log()
    );
    // `stratactl upstreams` on the intermediate: the other group streams, the dead one
    // is being retried.
    let socket = intermediate.control_socket().expect("socket").to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    let upstreams = match control.request(Call::Upstreams).expect("upstreams") {
        Reply::Upstreams { upstreams } => upstreams,
        other => panic!("upstreams answered {other:?}"),
    };
    let active: Vec<_> = upstreams.iter().filter(|u| u.active).collect();
    assert_eq!(active.len(), 1, "{upstreams:?}");
    assert_eq!(
        active[0].group,
        format!("server{}", other + 1),
        "{upstreams:?}"
    );
    assert_eq!(active[0].state, "streaming", "{upstreams:?}");
    let dead = upstreams
        .iter()
        .find(|u| u.group == format!("server{}", current + 1))
        .expect("the killed group is listed");
    assert!(!dead.active && dead.position.is_none(), "{upstreams:?}");

    for (n, (how, w)) in watchers.into_iter().enumerate() {
        let i = n / 3;
        let how = how.unwrap_or("play");
        let seen = w
            .join()
            .expect("watcher thread")
            .unwrap_or_else(|e| panic!("{e}"));
        let context = || {
            let lines = |s: &Server| {
                let log = s.log();
                log.lines()
                    .filter(|l| l.contains("upstream") || l.contains("failing over"))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            format!(
                "intermediate:\n{}\nedge {i}:\n{}",
                lines(&intermediate),
                lines(&edges[i])
            )
        };
        match check_viewer(&format!("edge {i} {how} viewer"), &seen, killed, MAX_GAP) {
            Ok(gap) => {
                println!("edge {i} {how} viewer: largest gap between video frames {gap:?}")
            }
            Err(e) => panic!("{e}\n{}", context()),
        }
    }
    for r in &mut recorders {
        assert!(
            r.child.is_running(),
            "an ffmpeg viewer stopped:\n{}",
            r.child.stderr()
        );
        r.assert_keeps_receiving(Duration::from_secs(10));
    }
    for (_, child) in &mut dumps {
        assert!(
            child.is_running(),
            "an rtmpdump viewer stopped:\n{}",
            child.stderr()
        );
    }
    // What ffmpeg and rtmpdump received holds video and audio.
    let files = recorders
        .iter()
        .map(|r| r.path.clone())
        .chain(dumps.iter().map(|(p, _)| p.clone()));
    for file in files {
        let kinds: Vec<String> = probe_streams(&file.display().to_string())
            .into_iter()
            .map(|s| s.codec_type)
            .collect();
        assert!(
            kinds.iter().any(|k| k == "video") && kinds.iter().any(|k| k == "audio"),
            "{} holds {kinds:?}, not video and audio",
            file.display()
        );
    }

    // The origin comes back where it was: it answers, goes to the bottom of the list, and
    // the stream stays on the other one.
    let back = origin_at(if current == 0 { a_addr } else { b_addr });
    let _publisher_back = publish_sample(&back.url("lsc_origin/cam"));
    assert!(
        intermediate
            .wait_log_line(&["upstream answered; parked"], Duration::from_secs(20))
            .is_some(),
        "the origin that came back did not rejoin the list:\n{}",
        intermediate.log()
    );
    // (That line may be the one logged at the start, when the group first answered and was
    // parked: what says it is back is its place in the list.) It rejoins when its retry
    // comes (back-off up to 5 s), at the bottom of the list: after the group that streams.
    let position = |upstreams: &[control::protocol::UpstreamInfo], group: usize| {
        upstreams
            .iter()
            .find(|u| u.stream != "*" && u.group == format!("server{}", group + 1))
            .and_then(|u| u.position)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let upstreams = loop {
        let upstreams = match control.request(Call::Upstreams).expect("upstreams") {
            Reply::Upstreams { upstreams } => upstreams,
            other => panic!("upstreams answered {other:?}"),
        };
        if position(&upstreams, current).is_some() || Instant::now() > deadline {
            break upstreams;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        position(&upstreams, current).is_some()
            && position(&upstreams, current) > position(&upstreams, other),
        "the origin that came back is not at the bottom of the list: {upstreams:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let log = intermediate.log();
    assert_eq!(
        log.matches("stream switched upstream").count(),
        1,
        "the stream moved when the origin came back:\n{log}"
    );
    for r in &mut recorders {
        r.assert_keeps_receiving(Duration::from_secs(10));
    }
}

/// Events until one `event` whose reason contains `needle` (bounded).
fn attempts_seen(events: &mut ControlClient, until: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_unsolicited(left).expect("events") {
            Some((_, Unsolicited::Event(e))) if e.event == "upstream_attempt" => {
                seen.push(e.reason.unwrap_or_default())
            }
            Some((_, Unsolicited::Event(e))) if e.event == until => return seen,
            Some(_) => {}
            None => panic!("no {until} event; attempts seen: {seen:?}"),
        }
    }
}

#[test]
fn three_attempts_at_a_down_primary_then_the_secondary() {
    let dir = ScratchDir::new("tiers-reconnect");
    let origin = origin_at(free_addr_on(host(3)));
    let _publisher = publish_sample(&origin.url("lsc_origin/cam"));
    // Nothing listens on the primary.
    let down = free_addr_on(host(2));
    let edge = tier(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[("server1", down, origin.addr(), "lsc_origin")],
        1000,
    );
    let socket = edge.control_socket().expect("control socket").to_path_buf();
    let mut events = ControlClient::connect(&socket).expect("control");
    events.request(Call::Subscribe).expect("subscribe");
    let mut viewer = Recorder::start(&edge.url("lsc_edge/cam"));
    let attempts = attempts_seen(&mut events, "upstream_connect");
    let expected: Vec<String> = (1..=3)
        .map(|n| format!("group server1 primary {down} attempt {n}"))
        .chain(std::iter::once(format!(
            "group server1 secondary {} attempt 4",
            origin.addr()
        )))
        .collect();
    assert_eq!(attempts, expected);
    viewer.assert_keeps_receiving(bounds::STREAM_UP);
}

#[test]
fn an_upstream_that_goes_silent_is_left_after_the_idle_interval() {
    let dir = ScratchDir::new("tiers-idle");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let origins = [origin_at(a_addr), origin_at(b_addr)];
    let _publishers = [
        publish_sample(&format!("rtmp://{a_addr}/lsc_origin/cam")),
        publish_sample(&format!("rtmp://{b_addr}/lsc_origin/cam")),
    ];
    let edge = tier(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[
            ("server1", a_addr, a_addr, "lsc_origin"),
            ("server2", b_addr, b_addr, "lsc_origin"),
        ],
        500,
    );
    let mut recorder = Recorder::start(&edge.url("lsc_edge/cam"));
    recorder.assert_keeps_receiving(bounds::STREAM_UP);
    let until = Instant::now() + Duration::from_secs(6);
    let watcher = watch(edge.addr(), "lsc_edge", until);
    std::thread::sleep(Duration::from_secs(2));
    let line = edge
        .wait_log_line(&["upstream plays"], bounds::MESSAGE)
        .expect("the edge plays from an origin");
    let current = if line.contains("group=server1") { 0 } else { 1 };

    // The origin freezes (SIGSTOP): its connection stays open but nothing comes.
    let frozen = Instant::now();
    origins[current].signal(libc::SIGSTOP);
    let switched = edge.wait_log_line(&["stream switched upstream"], Duration::from_secs(5));
    origins[current].signal(libc::SIGCONT);
    assert!(
        switched.is_some_and(|l| l.contains(&format!("group=server{}", 2 - current))),
        "the edge did not leave the silent origin:\n{}",
        edge.log()
    );
    assert!(
        edge.log().contains("no media for 500 ms"),
        "the switch was not for inactivity:\n{}",
        edge.log()
    );
    let seen = watcher
        .join()
        .expect("watcher thread")
        .unwrap_or_else(|e| panic!("{e}"));
    match check_viewer("edge viewer", &seen, frozen, MAX_GAP) {
        Ok(gap) => println!("idle failover: largest gap between video frames {gap:?}"),
        Err(e) => panic!("{e}\n{}", edge.log()),
    }
    recorder.assert_keeps_receiving(Duration::from_secs(10));
}
