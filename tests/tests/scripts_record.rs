//! A script records its server-side stream (issue 13): `Stream.record("record")` before
//! `play` records what the stream plays, through the server's recorder, to the file a
//! client's play of the stream's name opens; the playlist's end stops it
//! (NetStream.Record.Start, then .Stop, to the script); ffprobe and ffmpeg read the file
//! whole and clean, and `Stream.length` gives its duration as the file's.

use dataplane::proto::amf0::Amf0Value;
use e2e::flv_source::probe_clean_duration;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::vod_fixture::make_clip;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_script_records_its_server_stream() {
    let dir = ScratchDir::new("scripts-record");
    let root = dir.join("root");
    make_clip(&root.join("rec/_definst_/clip.flv"));
    let apps = dir.join("apps");
    std::fs::create_dir_all(apps.join("rec")).expect("mkdir");
    std::fs::write(
        apps.join("rec/main.asc"),
        "var codes = [];\n\
         application.onAppStart = function () {\n\
           var s = Stream.get('show');\n\
           s.onStatus = function (info) { codes.push(info.code); trace('show: ' + info.code); };\n\
           s.record('record');\n\
           s.play('clip', 0, -1);\n\
         };\n\
         Client.prototype.codes = function () { return codes.filter(function (c) { return /Record/.test(c); }); };\n\
         Client.prototype.len = function (name) { return Stream.length(name); };\n",
    )
    .expect("write");
    let server = Server::start_with(ServerOptions {
        config: Some(format!(
            "[vod]\nroot = {:?}\n[scripts]\ndir = {:?}\nload_on_startup = [\"rec\"]\n",
            root.display().to_string(),
            apps.display().to_string()
        )),
        ..ServerOptions::default()
    });
    assert!(server
        .wait_log_line(&["show: NetStream.Record.Start"], WAIT)
        .is_some());
    assert!(server
        .wait_log_line(&["recording finished", "show"], WAIT)
        .is_some());
    let file = root.join("rec/_definst_/show.flv");
    let recorded = probe_clean_duration(&file);
    assert!((3.0..5.0).contains(&recorded), "recorded {recorded} s");

    let mut c = RtmpClient::connected(server.addr(), "rec").expect("connect");
    let call = |c: &mut RtmpClient, method: &str, args: &[Amf0Value]| {
        let r = c.call(method, args, WAIT).expect("an answer");
        assert_eq!(r.name, "_result", "{r:?}");
        r.args.first().cloned()
    };
    let codes = call(&mut c, "codes", &[]);
    assert_eq!(
        codes,
        Some(Amf0Value::StrictArray(vec![
            Amf0Value::string("NetStream.Record.Start"),
            Amf0Value::string("NetStream.Record.Stop"),
        ])),
    );
    let Some(Amf0Value::Number(len)) = call(&mut c, "len", &[Amf0Value::string("show")]) else {
        panic!("a number")
    };
    assert!(
        (len - recorded).abs() < 0.5,
        "Stream.length {len} vs {recorded}"
    );
    assert_eq!(
        call(&mut c, "len", &[Amf0Value::string("nothing")]),
        Some(Amf0Value::Number(0.0))
    );
}
