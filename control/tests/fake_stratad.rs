//! The fake stratad the other tests drive stratactl against: it must keep each line whole
//! and answer `subscribe` before sending events, as stratad does (one thread writes each
//! client's lines there). A response spliced into an event line is lost: the client then
//! waits for it until its timeout, which is how `events_stream_until_interrupted` failed.

mod common;

use common::{wait_for, FakeStratad, Scratch};
use control::protocol::{ServerLine, PROTOCOL_VERSION};
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Enough lines each way that two writers on one socket would interleave somewhere.
const LINES: u64 = 2_000;

/// Shuts the socket down when the reading side fails, so the threads still writing to it
/// (ours and the fake's) get an error instead of blocking on a full buffer for ever.
struct ShutdownOnDrop(UnixStream);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

#[test]
fn responses_and_events_never_share_a_line() {
    let dir = Scratch::new("fake-lines");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let stream = UnixStream::connect(&fake.path).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let guard = ShutdownOnDrop(stream.try_clone().expect("clone"));
    let mut reader = BufReader::new(stream);
    writeln!(
        writer,
        r#"{{"v":{PROTOCOL_VERSION},"id":1,"method":"subscribe"}}"#
    )
    .expect("send");
    wait_for(Duration::from_secs(5), || {
        (fake.subscribers() > 0).then_some(())
    })
    .expect("subscribed");

    std::thread::scope(|s| {
        s.spawn(|| {
            for client in 0..LINES {
                let event = format!(
                    r#"{{"event":"connect","ts":1.0,"client":{client},"addr":"127.0.0.1:5"}}"#
                );
                fake.broadcast(event.as_bytes());
            }
        });
        s.spawn(move || {
            for id in 2..LINES + 2 {
                let sent = writeln!(
                    writer,
                    r#"{{"v":{PROTOCOL_VERSION},"id":{id},"method":"status"}}"#
                );
                if sent.is_err() {
                    break; // the reader failed and shut the socket down
                }
            }
        });
        let _guard = guard;
        let (mut responses, mut events) = (Vec::new(), 0);
        let mut line = String::new();
        while responses.len() < (LINES + 1) as usize || events < LINES {
            line.clear();
            let n = reader.read_line(&mut line).expect("every line arrives");
            assert!(n > 0, "the fake closed the connection");
            match serde_json::from_str::<ServerLine>(line.trim_end()) {
                Ok(ServerLine::Response(r)) => responses.push(r.id),
                Ok(ServerLine::Event(_)) => {
                    assert!(
                        responses.contains(&1),
                        "an event came before the subscribe response"
                    );
                    events += 1;
                }
                other => panic!("a line that is not whole: {line:?} ({other:?})"),
            }
        }
        assert_eq!(responses.first(), Some(&1));
        assert_eq!(responses.len() as u64, LINES + 1);
    });
}
