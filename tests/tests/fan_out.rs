//! Fan-out: hundreds of viewers on one stream, and several streams in several applications,
//! all receiving at once.

use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::Server;
use e2e::tools::rtmpdump;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VIEWERS: usize = 200;
/// Bound on the whole crowd reaching "receiving video".
const CROWD_TIMEOUT: Duration = Duration::from_secs(60);
/// Each viewer thread's stack: it holds little more than a few frames.
const VIEWER_STACK: usize = 256 * 1024;

/// One viewer thread: connect, play, receive video, then keep draining until told to stop
/// (so all viewers are connected at the same time).
fn viewer(
    addr: SocketAddr,
    app: &str,
    name: &str,
    received: &AtomicUsize,
    stop: &AtomicBool,
) -> Result<(), String> {
    let deadline = Instant::now() + CROWD_TIMEOUT;
    let mut client = RtmpClient::connected(addr, app).map_err(|e| format!("connect: {e}"))?;
    client.play(name).map_err(|e| format!("play: {e}"))?;
    client
        .wait_first_video(CROWD_TIMEOUT)
        .map_err(|e| format!("first video: {e}"))?;
    received.fetch_add(1, Ordering::SeqCst);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        client
            .read_message(Duration::from_secs(5))
            .map_err(|e| format!("after first video: {e}"))?;
    }
    Ok(())
}

#[test]
fn two_hundred_viewers_and_real_players_on_one_stream_all_receive() {
    let mut server = Server::start();
    let url = server.url("live/test");
    let _publisher = publish_sample(&url);
    let mut ffmpeg_viewer = Recorder::start(&url);
    let dir = ScratchDir::new("rtmpdump");
    let dump_path = dir.join("dump.flv");
    let mut dump = rtmpdump(&url, &dump_path, &[]);

    let received = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let addr = server.addr();
    let threads: Vec<_> = (0..VIEWERS)
        .map(|i| {
            let (received, stop, errors) = (received.clone(), stop.clone(), errors.clone());
            std::thread::Builder::new()
                .name(format!("viewer-{i}"))
                .stack_size(VIEWER_STACK)
                .spawn(move || {
                    if let Err(e) = viewer(addr, "live", "test", &received, &stop) {
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!("viewer {i}: {e}"));
                        // Unblock the main thread's wait: a failed viewer is counted too.
                        received.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .expect("spawn viewer thread")
        })
        .collect();

    let deadline = Instant::now() + CROWD_TIMEOUT;
    while received.load(Ordering::SeqCst) < VIEWERS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // All of them connected at once; the real players receive at the same time.
    ffmpeg_viewer.assert_keeps_receiving(Duration::from_secs(10));
    assert!(dump.is_running(), "rtmpdump exited:\n{}", dump.stderr());
    let dumped = std::fs::metadata(&dump_path).map(|m| m.len()).unwrap_or(0);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let errors = errors.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        errors.is_empty(),
        "{} of {VIEWERS} viewers failed:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert_eq!(
        received.load(Ordering::SeqCst),
        VIEWERS,
        "viewers receiving video"
    );
    assert!(dumped > 64 * 1024, "rtmpdump recorded only {dumped} bytes");
    server.assert_alive();
}

#[test]
fn five_streams_in_three_applications_all_receive() {
    let mut server = Server::start();
    let streams = [
        ("live", "one"),
        ("live", "two"),
        ("news", "three"),
        ("news", "four"),
        ("sports", "five"),
    ];
    let _publishers: Vec<_> = streams
        .iter()
        .map(|(app, name)| publish_sample(&server.url(&format!("{app}/{name}"))))
        .collect();

    // Two viewers per stream, all connected before any is read.
    let mut viewers = Vec::new();
    for (app, name) in streams {
        for _ in 0..2 {
            let mut client = RtmpClient::connected(server.addr(), app).expect("connect");
            client.play(name).expect("play");
            viewers.push((format!("{app}/{name}"), client));
        }
    }
    for (stream, client) in &mut viewers {
        client
            .wait_first_video(bounds::STREAM_UP)
            .unwrap_or_else(|e| panic!("viewer of {stream}: no video: {e}"));
        client
            .wait_media(8, bounds::MESSAGE)
            .unwrap_or_else(|e| panic!("viewer of {stream}: no audio: {e}"));
    }
    // And they keep receiving, together.
    for (stream, client) in &mut viewers {
        for _ in 0..25 {
            client
                .wait_first_video(bounds::MESSAGE)
                .unwrap_or_else(|e| panic!("viewer of {stream} stopped receiving: {e}"));
        }
    }
    server.assert_alive();
}
