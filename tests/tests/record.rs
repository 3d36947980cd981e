//! Recording live streams to FLV files under the content root: `publish(name, "record")`
//! and `"append"` with their statuses, server-side `record = "all"` with ffmpeg, files that
//! ffprobe and ffmpeg read without an error after a clean stop and after `kill -9`, and a
//! full disk that fails the recording while the live stream's viewer goes on.

use control::client::ControlClient;
use control::protocol::{Call, Reply, ServerStatus, StreamInfo};
use dataplane::proto::amf0::Amf0Value;
use e2e::bounds;
use e2e::flv_source::{probe_clean_duration, read_tags, send_tags, Tag};
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::rtmp_client::RtmpClient;
use e2e::sample_media::sample_flv;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How far a recording's duration may be from what was sent (the bound).
const TOLERANCE_S: f64 = 1.0;

fn server(root: &Path, extra: &str) -> Server {
    Server::start_with(ServerOptions {
        config: Some(format!(
            "[vod]\nroot = {:?}\n{extra}",
            root.display().to_string()
        )),
        ..ServerOptions::default()
    })
}

fn recording(root: &Path, name: &str) -> PathBuf {
    root.join("live")
        .join("_definst_")
        .join(format!("{name}.flv"))
}

/// A publisher of ours on `live`, its publish of `name` as `kind` answered.
fn publisher(server: &Server, name: &str, kind: &str) -> RtmpClient {
    let mut c = RtmpClient::connected(server.addr(), "live").expect("connect");
    c.create_stream().expect("createStream");
    c.publish_as(name, kind).expect("publish");
    c.wait_status("NetStream.Publish.Start", bounds::MESSAGE)
        .expect("Publish.Start");
    c
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOLERANCE_S,
        "{what}: the file lasts {got:.3} s, {want:.3} s were sent"
    );
}

fn control(server: &Server, c: Call) -> Reply {
    let socket = server.control_socket().expect("a control socket");
    ControlClient::connect(socket)
        .and_then(|mut client| client.request(c))
        .unwrap_or_else(|e| panic!("control call: {e}"))
}

fn stream_info(server: &Server, name: &str) -> Option<StreamInfo> {
    match control(server, Call::Streams) {
        // One entry per stream, merged over the workers (only the publisher's records).
        Reply::Streams { streams } => streams.into_iter().find(|s| s.name == name),
        other => panic!("streams answered {other:?}"),
    }
}

fn status(server: &Server) -> ServerStatus {
    match control(server, Call::Status) {
        Reply::Status(s) => s,
        other => panic!("status answered {other:?}"),
    }
}

/// The two numbers of the recorder's onMetaData, the file's first tag: after the header
/// (13), the tag header (11), "onMetaData" (13), the ECMA array header (5), and each key
/// (2 + 8) with its number marker (1).
fn metadata_numbers(file: &Path) -> (f64, f64) {
    let bytes = std::fs::read(file).expect("read recording");
    let number = |at: usize| {
        let raw: [u8; 8] = bytes[at..at + 8].try_into().expect("8 bytes");
        f64::from_be_bytes(raw)
    };
    assert_eq!(
        &bytes[27..37],
        b"onMetaData",
        "the recorder's metadata comes first"
    );
    let duration_at = 13 + 11 + 13 + 5 + 2 + 8 + 1;
    (number(duration_at), number(duration_at + 8 + 2 + 8 + 1))
}

fn sample() -> Vec<Tag> {
    read_tags(&sample_flv())
}

#[test]
fn record_then_append_make_one_file_with_the_duration_sent() {
    let root = ScratchDir::new("content");
    let server = server(root.path(), "");
    let tags = sample();
    let file = recording(root.path(), "show");

    let mut first = publisher(&server, "show", "record");
    first
        .wait_status("NetStream.Record.Start", bounds::MESSAGE)
        .expect("Record.Start");
    let sent = send_tags(&mut first, &tags, 4000, false).expect("send");
    first
        .send_command(
            first.stream_id.unwrap_or(1),
            "closeStream",
            Amf0Value::Null,
            &[],
        )
        .expect("closeStream");
    first
        .wait_status("NetStream.Record.Stop", bounds::MESSAGE)
        .expect("Record.Stop");
    server
        .wait_log_line(&["recording finished", "show"], bounds::MESSAGE)
        .expect("the recording is closed");
    let one = probe_clean_duration(&file);
    assert_close("record", one, f64::from(sent) / 1000.0);
    // A clean end completed the recorder's onMetaData: its duration and the file's size.
    let (duration, filesize) = metadata_numbers(&file);
    assert_close("onMetaData duration", duration, f64::from(sent) / 1000.0);
    assert_eq!(
        filesize as u64,
        std::fs::metadata(&file).expect("file").len()
    );

    // `append` continues the same file after its last tag.
    let mut second = publisher(&server, "show", "append");
    second
        .wait_status("NetStream.Record.Start", bounds::MESSAGE)
        .expect("Record.Start");
    let more = send_tags(&mut second, &tags, 3000, false).expect("send");
    drop(second);
    std::thread::sleep(Duration::from_millis(300));
    let deadline = std::time::Instant::now() + bounds::MESSAGE;
    while server.log().matches("recording finished").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "append never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let both = probe_clean_duration(&file);
    assert_close("record + append", both, f64::from(sent + more) / 1000.0);

    // A live publish records nothing.
    let live = publisher(&server, "nothing", "live");
    drop(live);
    assert!(!recording(root.path(), "nothing").exists());
}

/// A `kill -9` of stratad mid-recording, three times over the same file (each restart
/// appends to what the last one left): every time, the file reads without an error and
/// lasts within a second of everything sent.
#[test]
fn kill_9_mid_recording_leaves_a_playable_file_that_append_continues() {
    let root = ScratchDir::new("content");
    let tags = sample();
    let file = recording(root.path(), "crash");
    let mut total = 0.0;
    for round in 0..3 {
        let mut server = server(root.path(), "");
        let kind = if round == 0 { "record" } else { "append" };
        let mut c = publisher(&server, "crash", kind);
        c.wait_status("NetStream.Record.Start", bounds::MESSAGE)
            .expect("Record.Start");
        // Real time, as a camera sends: then killed with the last second not yet synced.
        let sent = send_tags(&mut c, &tags, 2500 + round * 700, true).expect("send");
        std::thread::sleep(Duration::from_millis(100));
        server.signal(libc::SIGKILL);
        server
            .wait_exit(Duration::from_secs(5))
            .expect("stratad exits on SIGKILL");
        total += f64::from(sent) / 1000.0;
        let got = probe_clean_duration(&file);
        assert_close(&format!("after kill {}", round + 1), got, total);
        // Each round starts a little after the last tag of the previous one.
        total = got;
    }
}

/// Server-side recording with ffmpeg publishing (its muxer cannot ask for "record"):
/// the file plays and lasts what a viewer received.
#[test]
fn record_all_records_an_ffmpeg_publish() {
    let root = ScratchDir::new("content");
    let server = server(
        root.path(),
        "[[application]]\nname = \"live\"\nrecord = \"all\"\n",
    );
    let mut viewer = RtmpClient::connected(server.addr(), "live").expect("connect viewer");
    viewer.create_stream().expect("createStream");
    viewer.play("cam").expect("play");
    let mut ffmpeg = publish_sample(&server.url("live/cam"));
    viewer
        .wait_first_video(bounds::STREAM_UP)
        .expect("the stream goes live");
    // About four seconds, then the publisher leaves; what the viewer got is what was sent.
    let mut first = None;
    let mut last = 0u32;
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        if let Ok(m) = viewer.read_message(Duration::from_millis(500)) {
            if m.type_id == 9 || m.type_id == 8 {
                first.get_or_insert(m.timestamp);
                last = last.max(m.timestamp);
            }
        }
    }
    // Operators see it: the stream's recording in `stratactl streams`, the counter.
    let file = recording(root.path(), "cam");
    assert_eq!(
        stream_info(&server, "cam").and_then(|s| s.recording),
        Some(file.display().to_string())
    );
    assert_eq!(status(&server).recordings_started, 1);
    ffmpeg.interrupt(Duration::from_secs(5));
    server
        .wait_log_line(&["recording finished", "cam"], bounds::MESSAGE)
        .expect("the recording is closed");
    let got = probe_clean_duration(&recording(root.path(), "cam"));
    // The viewer joined on the GOP the publisher had just started: the file has at most
    // that GOP (2 s) more at its start.
    let received = f64::from(last) / 1000.0;
    assert!(
        got + TOLERANCE_S >= received && got <= received + TOLERANCE_S,
        "the file lasts {got:.3} s, the viewer received up to {received:.3} s (from {first:?})"
    );
}

/// Rotation: `record_max_seconds` starts a new file (named with `{time}`) at the key frame
/// after the limit; every file reads without an error.
#[test]
fn record_all_rotates_files_by_duration() {
    let root = ScratchDir::new("content");
    let server = server(
        root.path(),
        "[[application]]\nname = \"live\"\nrecord = \"all\"\nrecord_path = \"{name}-{time}.flv\"\nrecord_max_seconds = 1\n",
    );
    let mut c = publisher(&server, "rot", "live");
    // Paced: each file gets its own second in its name.
    let sent = send_tags(&mut c, &sample(), 6500, true).expect("send");
    drop(c);
    let dir = root.path().join("live").join("_definst_");
    let deadline = std::time::Instant::now() + bounds::MESSAGE;
    let mut files: Vec<PathBuf>;
    loop {
        files = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        let finished = server.log().matches("recording finished").count();
        if finished >= 3 && finished == files.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotation made {files:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let total: f64 = files.iter().map(|f| probe_clean_duration(f)).sum();
    // Each file starts on a key frame (every 2 s in the sample).
    assert_close("all files", total, f64::from(sent) / 1000.0);
}

/// A full disk (a 256 KiB tmpfs as the content root, in a mount namespace of the server's
/// own): the publisher gets Record.Failed, the server logs the path and errno, and an ffmpeg
/// viewer of the stream keeps receiving.
#[test]
fn a_full_disk_fails_the_recording_and_the_stream_goes_on() {
    let root = ScratchDir::new("tmpfs-root");
    let mut server = server_on_tmpfs(root.path(), "256k");
    let mut viewer = Recorder::start(&server.url("live/full"));
    let mut c = publisher(&server, "full", "record");
    c.wait_status("NetStream.Record.Start", bounds::MESSAGE)
        .expect("Record.Start");
    let tags = sample();
    // About 3 s at the sample's rate is more than 256 KiB.
    let _ = send_tags(&mut c, &tags, 3000, true).expect("send");
    let failed = c
        .wait_status("NetStream.Record.Failed", bounds::MESSAGE)
        .expect("Record.Failed");
    assert!(
        format!("{failed:?}").contains("No space left on device"),
        "{failed:?}"
    );
    server
        .wait_log_line(
            &["recording failed", "errno=28", "full.flv"],
            bounds::MESSAGE,
        )
        .expect("the log names the path and errno");
    let counted = status(&server);
    assert_eq!(
        (counted.recordings_started, counted.recordings_failed),
        (1, 1)
    );
    assert_eq!(stream_info(&server, "full").and_then(|s| s.recording), None);
    // The stream goes on: the viewer keeps receiving while the publisher sends.
    let publishing = std::thread::spawn(move || {
        let later: Vec<Tag> = tags
            .into_iter()
            .filter(|t| t.timestamp >= 3000)
            .map(|mut t| {
                t.timestamp -= 3000;
                t
            })
            .collect();
        let sent = send_tags(&mut c, &later, 6000, true);
        (c, sent)
    });
    viewer.assert_keeps_receiving(Duration::from_secs(6));
    let (_c, sent) = publishing.join().expect("publisher thread");
    sent.expect("the publisher was never cut off");
    server.assert_alive();
}

/// stratad in a mount namespace of its own whose content root is a tmpfs of `size`: made
/// by a thread of ours that unshares its mount namespace (as `unshare -m`), mounts the
/// tmpfs and starts the server, which inherits the namespace. The test's own view of the
/// file system is untouched; the mount goes away with the server.
fn server_on_tmpfs(root: &Path, size: &str) -> Server {
    let root = root.to_path_buf();
    let size = size.to_string();
    std::thread::spawn(move || {
        // SAFETY: unshare and mount with valid C strings; they change only this thread's
        // mount namespace (CLONE_NEWNS on a thread unshares its fs context alone).
        unsafe {
            assert_eq!(
                libc::unshare(libc::CLONE_NEWNS),
                0,
                "unshare(CLONE_NEWNS): {} (the test needs root)",
                std::io::Error::last_os_error()
            );
            let none = c"none";
            let slash = c"/";
            // Nothing mounted here propagates back to the host.
            libc::mount(
                none.as_ptr(),
                slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            );
            let target = std::ffi::CString::new(root.display().to_string()).expect("path");
            let options = std::ffi::CString::new(format!("size={size}")).expect("options");
            let tmpfs = c"tmpfs";
            assert_eq!(
                libc::mount(
                    tmpfs.as_ptr(),
                    target.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ),
                0,
                "mount tmpfs: {}",
                std::io::Error::last_os_error()
            );
        }
        server(&root, "")
    })
    .join()
    .expect("server thread")
}

/// A name that would leave the content root is not recorded (Record.NoAccess, a log line)
/// and nothing is written outside the root; the publish itself goes on live.
#[test]
fn names_that_leave_the_content_root_are_not_recorded() {
    let outer = ScratchDir::new("outer");
    let root = outer.join("root");
    std::fs::create_dir_all(&root).expect("root");
    let server = server(&root, "");
    let mut c = publisher(&server, "../../escape", "record");
    let refused = c
        .wait_status("NetStream.Record.NoAccess", bounds::MESSAGE)
        .expect("Record.NoAccess");
    assert!(
        format!("{refused:?}").contains("not a name a recording can take"),
        "{refused:?}"
    );
    server
        .wait_log_line(&["recording refused", "escape"], bounds::MESSAGE)
        .expect("a log line");
    let stray: Vec<_> = std::fs::read_dir(outer.path())
        .expect("outer")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(stray, ["root"], "nothing written beside the root");
    let _ = send_tags(&mut c, &sample(), 500, false).expect("the publish goes on");
}

/// A directory of the root that is a symbolic link out of it is not recorded through
/// (Record.NoAccess, a log line) and nothing appears where the link points; the publish
/// goes on live. (Recording places its files through the same check of the root as VOD.)
#[test]
fn a_link_out_of_the_content_root_is_not_recorded_through() {
    let outer = ScratchDir::new("outer-link");
    let root = outer.join("root");
    let elsewhere = outer.join("elsewhere");
    std::fs::create_dir_all(root.join("live")).expect("root");
    std::fs::create_dir_all(&elsewhere).expect("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, root.join("live").join("_definst_")).expect("link");
    let server = server(&root, "");
    let mut c = publisher(&server, "cam", "record");
    let refused = c
        .wait_status("NetStream.Record.NoAccess", bounds::MESSAGE)
        .expect("Record.NoAccess");
    assert!(
        format!("{refused:?}").contains("leads out of the content root"),
        "{refused:?}"
    );
    server
        .wait_log_line(&["recording refused", "cam"], bounds::MESSAGE)
        .expect("a log line");
    let written = std::fs::read_dir(&elsewhere).expect("elsewhere").count();
    assert_eq!(written, 0, "nothing written through the link");
    let _ = send_tags(&mut c, &sample(), 500, false).expect("the publish goes on");
}

/// A content root that cannot hold directories (a regular file): Record.Failed with the
/// path and errno in the log; a viewer of the stream still gets it live.
#[test]
fn an_unwritable_root_fails_the_recording_and_the_stream_goes_on() {
    let dir = ScratchDir::new("content");
    let root = dir.join("not-a-directory");
    std::fs::write(&root, b"x").expect("a file where the root should be");
    let server = server(&root, "");
    let mut viewer = RtmpClient::connected(server.addr(), "live").expect("connect viewer");
    viewer.create_stream().expect("createStream");
    viewer.play("cam").expect("play");
    let mut c = publisher(&server, "cam", "record");
    c.wait_status("NetStream.Record.Failed", bounds::MESSAGE)
        .expect("Record.Failed");
    server
        .wait_log_line(
            &["recording could not start", "errno=20", "cam.flv"],
            bounds::MESSAGE,
        )
        .expect("the log names the path and errno (ENOTDIR)");
    let _ = send_tags(&mut c, &sample(), 3000, false).expect("send");
    viewer
        .wait_first_video(bounds::MESSAGE)
        .expect("the viewer gets the stream live");
}
