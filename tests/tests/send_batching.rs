//! Batched sends (`live.send_batch_ms`, issue 3): real players (ffmpeg, rtmpdump) keep
//! receiving the live stream while stratad sends each of them about one batch per window
//! instead of one send per message. The count comes from stratad's own `sends` counter,
//! read through the control socket.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::rtmpdump;
use std::path::Path;
use std::time::{Duration, Instant};

const BATCH_MS: u64 = 200;
/// Long enough to hold many batches, so the window's edges weigh little.
const WINDOW: Duration = Duration::from_secs(4);

/// Sends and bytes out so far, all workers.
fn sends_and_bytes(socket: &Path) -> (u64, u64) {
    let reply = ControlClient::connect(socket)
        .and_then(|mut c| c.request(Call::Status))
        .unwrap_or_else(|e| panic!("control call: {e}"));
    match reply {
        Reply::Status(s) => (
            s.workers.iter().map(|w| w.sends).sum(),
            s.workers.iter().map(|w| w.bytes_out).sum(),
        ),
        other => panic!("status answered {other:?}"),
    }
}

#[test]
fn each_viewer_gets_about_one_send_per_batch_window() {
    let server = Server::start_with(ServerOptions {
        workers: 1,
        config: Some(format!("[live]\nsend_batch_ms = {BATCH_MS}\n")),
        ..ServerOptions::default()
    });
    let socket = server
        .control_socket()
        .expect("the harness gives every server a control socket")
        .to_path_buf();
    let url = server.url("live/batched");
    let _publisher = publish_sample(&url);
    let mut recorders = [Recorder::start(&url), Recorder::start(&url)];
    let dir = ScratchDir::new("rtmpdump-batched");
    let dump_path = dir.join("dump.flv");
    let mut dump = rtmpdump(&url, &dump_path, &[]);
    // Past the fast-start burst: every viewer is receiving live media.
    for r in &mut recorders {
        r.assert_keeps_receiving(bounds::STREAM_UP);
    }
    let viewers = recorders.len() + 1;

    let (sends0, bytes0) = sends_and_bytes(&socket);
    let t0 = Instant::now();
    std::thread::sleep(WINDOW);
    let (sends1, bytes1) = sends_and_bytes(&socket);
    let secs = t0.elapsed().as_secs_f64();

    for r in &mut recorders {
        r.assert_keeps_receiving(bounds::MESSAGE);
    }
    assert!(dump.is_running(), "rtmpdump exited:\n{}", dump.stderr());
    let dumped = std::fs::metadata(&dump_path).map_or(0, |m| m.len());
    assert!(dumped > 64 * 1024, "rtmpdump wrote only {dumped} bytes");

    // The sample carries its video frames and ~43 AAC frames a second: sent one by one,
    // that is dozens of sends per viewer per second. Batched, it is one per window (the
    // publisher's connection adds an acknowledgement now and then).
    let per_viewer = (sends1 - sends0) as f64 / secs / viewers as f64;
    let batches = 1000.0 / BATCH_MS as f64;
    let mean_send = (bytes1 - bytes0) as f64 / (sends1 - sends0).max(1) as f64;
    eprintln!("{per_viewer:.2} sends per viewer per second, mean send {mean_send:.0} B");
    assert!(
        per_viewer <= batches * 1.5 + 0.5,
        "{per_viewer:.1} sends per viewer per second, expected about {batches} \
         (mean send {mean_send:.0} B)"
    );
    assert!(
        per_viewer >= batches * 0.5,
        "{per_viewer:.1} sends per viewer per second: viewers should get every batch \
         (about {batches} a second)"
    );
}
