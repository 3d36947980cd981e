//! Prometheus text exposition (format 0.0.4) of stratad's status and streams, and of the
//! manager's own counters. Written by hand: it is a few lines of text.

use crate::protocol::{ServerStatus, StreamInfo, UpstreamInfo};
use std::fmt::Write as _;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The manager's own counters, shown beside stratad's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagerCounters {
    /// Events received, by event name.
    pub events: Vec<(String, u64)>,
    /// Auth decisions: (action, allowed, count).
    pub auth: Vec<(String, bool, u64)>,
    /// Auth requests answered with the configured default (hook down, slow or busy).
    pub auth_defaulted: u64,
    /// Times the manager connected to stratad.
    pub reconnects: u64,
    /// Client calls answered through the `on_call` hook, by outcome: `result`, `error` (the
    /// hook's own), `failed` (NetConnection.Call.Failed: no hook, hook down or slow, busy).
    pub calls: Vec<(String, u64)>,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The whole exposition. `stratad` is `None` when the manager cannot reach stratad: then
/// only `strata_up 0` and the manager's counters are shown.
pub fn render(
    stratad: Option<(&ServerStatus, &[StreamInfo])>,
    manager: &ManagerCounters,
) -> String {
    let mut w = Writer { out: String::new() };
    w.single(
        "strata_up",
        "gauge",
        "1 when the manager reached stratad for this scrape",
        if stratad.is_some() { 1.0 } else { 0.0 },
    );
    if let Some((s, streams)) = stratad {
        w.single(
            "strata_uptime_seconds",
            "gauge",
            "Seconds since stratad started",
            s.uptime_s,
        );
        w.single(
            "strata_connections",
            "gauge",
            "Open client connections",
            s.connections as f64,
        );
        w.single(
            "strata_streams",
            "gauge",
            "Live streams being published",
            s.streams as f64,
        );
        w.single(
            "strata_bytes_in_total",
            "counter",
            "Bytes received from clients",
            s.bytes_in as f64,
        );
        w.single(
            "strata_bytes_out_total",
            "counter",
            "Bytes sent to clients",
            s.bytes_out as f64,
        );
        w.single(
            "strata_bits_in_per_second",
            "gauge",
            "Receive rate over the last few seconds",
            s.bits_in_per_s,
        );
        w.single(
            "strata_bits_out_per_second",
            "gauge",
            "Send rate over the last few seconds",
            s.bits_out_per_s,
        );
        w.single(
            "strata_dropped_frames_total",
            "counter",
            "Frames dropped for slow viewers",
            s.dropped_frames as f64,
        );
        w.single(
            "strata_recordings_started_total",
            "counter",
            "Recordings started (publish record/append, or record = \"all\")",
            s.recordings_started as f64,
        );
        w.single(
            "strata_recordings_failed_total",
            "counter",
            "Recordings stopped by an error (disk full, unwritable path, slow disk)",
            s.recordings_failed as f64,
        );

        w.family(
            "strata_worker_load",
            "gauge",
            "Share of the last interval a worker was busy (0..1)",
        );
        for wk in &s.workers {
            w.sample(
                "strata_worker_load",
                &[("worker", &wk.id.to_string())],
                wk.load,
            );
        }
        w.family(
            "strata_worker_connections",
            "gauge",
            "Open connections per worker",
        );
        for wk in &s.workers {
            w.sample(
                "strata_worker_connections",
                &[("worker", &wk.id.to_string())],
                wk.connections as f64,
            );
        }
        w.family(
            "strata_worker_bytes_in_total",
            "counter",
            "Bytes received per worker",
        );
        for wk in &s.workers {
            w.sample(
                "strata_worker_bytes_in_total",
                &[("worker", &wk.id.to_string())],
                wk.bytes_in as f64,
            );
        }
        w.family(
            "strata_worker_bytes_out_total",
            "counter",
            "Bytes sent per worker",
        );
        for wk in &s.workers {
            w.sample(
                "strata_worker_bytes_out_total",
                &[("worker", &wk.id.to_string())],
                wk.bytes_out as f64,
            );
        }
        w.family(
            "strata_worker_sends_total",
            "counter",
            "Socket sends per worker (bytes out / sends = mean send size)",
        );
        for wk in &s.workers {
            w.sample(
                "strata_worker_sends_total",
                &[("worker", &wk.id.to_string())],
                wk.sends as f64,
            );
        }

        for (name, help, value) in [
            (
                "strata_worker_so_messages_in_total",
                "Shared-object messages from clients per worker",
                (|wk: &crate::protocol::WorkerStatus| wk.so_messages_in) as fn(&_) -> u64,
            ),
            (
                "strata_worker_so_messages_out_total",
                "Shared-object messages written to clients per worker",
                |wk: &crate::protocol::WorkerStatus| wk.so_messages_out,
            ),
        ] {
            w.family(name, "counter", help);
            for wk in &s.workers {
                w.sample(name, &[("worker", &wk.id.to_string())], value(wk) as f64);
            }
        }
        w.family(
            "strata_worker_rtmfp_sessions",
            "gauge",
            "RTMFP clients open per worker (counted among the connections)",
        );
        for wk in &s.workers {
            w.sample(
                "strata_worker_rtmfp_sessions",
                &[("worker", &wk.id.to_string())],
                wk.rtmfp_sessions as f64,
            );
        }

        let labels = |st: &StreamInfo| {
            [
                ("app", st.app.clone()),
                ("instance", st.instance.clone()),
                ("stream", st.name.clone()),
            ]
        };
        for (name, kind, help, value) in [
            (
                "strata_stream_viewers",
                "gauge",
                "Viewers of a live stream",
                (|st: &StreamInfo| st.viewers as f64) as fn(&StreamInfo) -> f64,
            ),
            (
                "strata_stream_bitrate_in_bits",
                "gauge",
                "Published bitrate of a live stream",
                |st| st.bitrate_in,
            ),
            (
                "strata_stream_bitrate_out_bits",
                "gauge",
                "Bitrate sent to a stream's viewers",
                |st| st.bitrate_out,
            ),
            (
                "strata_stream_gop_frames",
                "gauge",
                "Frames in a stream's cached group of pictures",
                |st| st.gop_frames as f64,
            ),
            (
                "strata_stream_recording",
                "gauge",
                "1 while a stream is being recorded",
                |st| f64::from(u8::from(st.recording.is_some())),
            ),
        ] {
            w.family(name, kind, help);
            for st in streams {
                let l = labels(st);
                let refs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                w.sample(name, &refs, value(st));
            }
        }
    }

    if let Some((_, streams)) = stratad {
        for (name, help, value) in [
            (
                "strata_multicast_datagrams_total",
                "Datagrams a multicast output sent",
                (|m: &crate::protocol::MulticastOutputInfo| m.datagrams)
                    as fn(&crate::protocol::MulticastOutputInfo) -> u64,
            ),
            (
                "strata_multicast_bytes_total",
                "TS bytes a multicast output sent",
                |m| m.bytes,
            ),
            (
                "strata_multicast_dropped_bytes_total",
                "TS bytes a multicast output dropped (queue overflow, failed sends)",
                |m| m.dropped_bytes,
            ),
            (
                "strata_multicast_failures_total",
                "Failed sends of a multicast output",
                |m| m.failures,
            ),
        ] {
            w.family(name, "counter", help);
            for st in streams {
                for m in &st.multicast {
                    let labels = [
                        ("app", st.app.as_str()),
                        ("instance", st.instance.as_str()),
                        ("stream", st.name.as_str()),
                        ("group", m.group.as_str()),
                    ];
                    w.sample(name, &labels, value(m) as f64);
                }
            }
        }
    }

    w.single(
        "strata_manager_reconnects_total",
        "counter",
        "Times the manager (re)connected to stratad",
        manager.reconnects as f64,
    );
    w.family(
        "strata_manager_events_total",
        "counter",
        "Events received from stratad",
    );
    for (event, n) in &manager.events {
        w.sample(
            "strata_manager_events_total",
            &[("event", event)],
            *n as f64,
        );
    }
    w.family(
        "strata_manager_auth_total",
        "counter",
        "Auth decisions sent to stratad",
    );
    for (action, allowed, n) in &manager.auth {
        let result = if *allowed { "allow" } else { "deny" };
        w.sample(
            "strata_manager_auth_total",
            &[("action", action), ("result", result)],
            *n as f64,
        );
    }
    w.single(
        "strata_manager_auth_defaulted_total",
        "counter",
        "Auth requests answered with the configured default (hook down, slow or busy)",
        manager.auth_defaulted as f64,
    );
    w.family(
        "strata_manager_calls_total",
        "counter",
        "Client calls answered through the on_call hook, by outcome",
    );
    for (outcome, n) in &manager.calls {
        w.sample(
            "strata_manager_calls_total",
            &[("outcome", outcome)],
            *n as f64,
        );
    }
    w.out
}

/// One gauge's value for a group, if it has one.
type UpstreamValue = fn(&UpstreamInfo) -> Option<f64>;

/// Gauges of every relay pull's upstream groups, push and standing FCAddChild link
/// (`stratactl upstreams` and `upstreams --links`; a standing link is labelled
/// `stream="*"`), appended to a scrape. Their events (connect, failover, recovery,
/// registration, push) are counted by `strata_manager_events_total{event="upstream_..."}`.
pub fn render_upstreams(upstreams: &[UpstreamInfo]) -> String {
    let mut w = Writer { out: String::new() };
    let families: [(&str, &str, UpstreamValue); 5] = [
        (
            "strata_upstream_active",
            "1 for the group a pulled stream comes from now, a push that publishes or a \
             standing link that is registered, else 0",
            |u| Some(if u.active { 1.0 } else { 0.0 }),
        ),
        (
            "strata_upstream_failed_attempts",
            "Failed connection attempts in a row at a group",
            |u| Some(f64::from(u.attempts)),
        ),
        (
            "strata_upstream_list_position",
            "A group's place in the failover list (0 is first); absent when not in it",
            |u| u.position.map(|p| p as f64),
        ),
        (
            "strata_upstream_state_since_seconds",
            "Unix time of a group's last change of state",
            |u| Some(u.since),
        ),
        (
            "strata_upstream_listed_streams",
            "Live streams a standing link's group lists (addStream / removeStream)",
            |u| (u.stream == "*").then_some(u.streams.len() as f64),
        ),
    ];
    for (name, help, value) in families {
        w.family(name, "gauge", help);
        for u in upstreams {
            let worker = u.worker.to_string();
            let labels = [
                ("app", u.app.as_str()),
                ("stream", u.stream.as_str()),
                ("worker", worker.as_str()),
                ("group", u.group.as_str()),
                ("state", u.state.as_str()),
            ];
            if let Some(v) = value(u) {
                w.sample(name, &labels, v);
            }
        }
    }
    w.out
}

/// One parsed sample: name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Checks that `text` is well-formed exposition text: every line is blank, a comment, or
/// `name{label="value",...} number`. Returns the samples as (name, labels, value). Used by
/// tests, and useful to anyone checking a scrape.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .ok_or_else(|| bad("no value"))?;
        let name = &line[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            loop {
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .ok_or_else(|| bad("open labels"))?;
                if after[start..].starts_with('}') {
                    rest = &after[start + 1..];
                    break;
                }
                let eq = after[start..]
                    .find("=\"")
                    .ok_or_else(|| bad("label without value"))?;
                let key = &after[start..start + eq];
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(bad("bad label name"));
                }
                for _ in 0..eq + 2 {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => return Err(bad("dangling escape")),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => return Err(bad("unterminated label value")),
                    }
                }
                labels.push((key.to_string(), value));
                if let Some((_, ',')) = chars.peek() {
                    chars.next();
                }
            }
        }
        let mut parts = rest.split_ascii_whitespace();
        let value = parts.next().ok_or_else(|| bad("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad("value is not a number"))?,
        };
        if let Some(ts) = parts.next() {
            ts.parse::<i64>().map_err(|_| bad("bad timestamp"))?;
        }
        if parts.next().is_some() {
            return Err(bad("trailing text"));
        }
        if !rest.starts_with(' ') {
            return Err(bad("no space before the value"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::WorkerStatus;

    fn status() -> ServerStatus {
        ServerStatus {
            version: "0.1.0".into(),
            protocol: 1,
            pid: 7,
            uptime_s: 12.5,
            workers: vec![WorkerStatus {
                id: 0,
                connections: 3,
                bytes_in: 10,
                bytes_out: 20,
                sends: 2,
                so_messages_in: 5,
                so_messages_out: 9,
                rtmfp_sessions: 2,
                load: 0.25,
            }],
            connections: 3,
            streams: 1,
            bytes_in: 10,
            bytes_out: 20,
            bits_in_per_s: 1000.0,
            bits_out_per_s: 3000.0,
            dropped_frames: 4,
            recordings_started: 2,
            recordings_failed: 1,
        }
    }

    fn stream(name: &str) -> StreamInfo {
        StreamInfo {
            app: "live".into(),
            instance: "_definst_".into(),
            name: name.into(),
            publisher: Some("127.0.0.1:5000".into()),
            publisher_client: Some(1),
            video_codec: Some("h264".into()),
            audio_codec: None,
            bitrate_in: 1e6,
            bitrate_out: 3e6,
            viewers: 3,
            gop_frames: 50,
            since: 0.0,
            recording: Some("/srv/media/live/_definst_/cam.flv".into()),
            multicast: Vec::new(),
        }
    }

    #[test]
    fn exposition_parses_and_labels_viewers_by_stream() {
        let text = render(
            Some((&status(), &[stream("cam \"1\"\\x")])),
            &ManagerCounters::default(),
        );
        let samples = parse(&text).expect(&text);
        let viewers = samples
            .iter()
            .find(|(n, _, _)| n == "strata_stream_viewers")
            .expect("viewer gauge");
        assert!(viewers
            .1
            .contains(&("stream".into(), "cam \"1\"\\x".into())));
        assert_eq!(viewers.2, 3.0);
        assert!(samples
            .iter()
            .any(|(n, l, v)| n == "strata_worker_load" && l[0].1 == "0" && *v == 0.25));
        let value = |name: &str| samples.iter().find(|(n, _, _)| n == name).map(|s| s.2);
        assert_eq!(value("strata_recordings_started_total"), Some(2.0));
        assert_eq!(value("strata_recordings_failed_total"), Some(1.0));
        assert_eq!(value("strata_stream_recording"), Some(1.0));
        assert!(samples
            .iter()
            .any(|(n, _, v)| n == "strata_worker_so_messages_out_total" && *v == 9.0));
    }

    #[test]
    fn multicast_outputs_count_per_group() {
        let mut st = stream("cam");
        st.multicast.push(crate::protocol::MulticastOutputInfo {
            group: "239.1.1.1:5000".into(),
            rtp: true,
            state: "sending".into(),
            datagrams: 70,
            bytes: 92_120,
            dropped_bytes: 0,
            failures: 1,
        });
        let text = render(Some((&status(), &[st])), &ManagerCounters::default());
        let samples = parse(&text).expect(&text);
        let bytes = samples
            .iter()
            .find(|(n, _, _)| n == "strata_multicast_bytes_total")
            .expect("bytes per output");
        assert!(bytes.1.contains(&("group".into(), "239.1.1.1:5000".into())));
        assert_eq!(bytes.2, 92_120.0);
        let failures = samples
            .iter()
            .find(|(n, _, _)| n == "strata_multicast_failures_total")
            .expect("failures per output");
        assert_eq!(failures.2, 1.0);
    }

    #[test]
    fn without_stratad_only_up_zero_and_manager_counters() {
        let text = render(
            None,
            &ManagerCounters {
                reconnects: 2,
                ..Default::default()
            },
        );
        let samples = parse(&text).expect(&text);
        assert!(samples.contains(&("strata_up".into(), vec![], 0.0)));
        assert!(!samples.iter().any(|(n, _, _)| n == "strata_connections"));
    }

    #[test]
    fn call_outcomes_are_counted() {
        let text = render(
            None,
            &ManagerCounters {
                calls: vec![("result".into(), 3), ("failed".into(), 1)],
                ..Default::default()
            },
        );
        let samples = parse(&text).expect(&text);
        assert!(samples.contains(&(
            "strata_manager_calls_total".into(),
            vec![("outcome".into(), "result".into())],
            3.0
        )));
    }

    #[test]
    fn upstream_gauges_parse_and_name_each_group() {
        let up = |group: &str, active, position| UpstreamInfo {
            app: "lsc_edge".into(),
            stream: "cam".into(),
            worker: 1,
            group: group.into(),
            primary: "127.0.0.2:1935".into(),
            secondary: "127.0.0.2:1935".into(),
            address: "127.0.0.2:1935".into(),
            state: if active { "streaming" } else { "waiting" }.into(),
            attempts: if active { 0 } else { 3 },
            active,
            position,
            since: 1.5,
            streams: Vec::new(),
        };
        let text = render_upstreams(&[up("server1", true, Some(0)), up("server2", false, None)]);
        let samples = parse(&text).expect("well-formed");
        let find = |name: &str, group: &str| {
            samples
                .iter()
                .find(|(n, l, _)| n == name && l.iter().any(|(k, v)| k == "group" && v == group))
                .map(|s| s.2)
        };
        assert_eq!(find("strata_upstream_active", "server1"), Some(1.0));
        assert_eq!(find("strata_upstream_active", "server2"), Some(0.0));
        assert_eq!(
            find("strata_upstream_failed_attempts", "server2"),
            Some(3.0)
        );
        assert_eq!(find("strata_upstream_list_position", "server1"), Some(0.0));
        assert_eq!(find("strata_upstream_list_position", "server2"), None);
        assert_eq!(find("strata_upstream_listed_streams", "server1"), None);
        assert!(text.contains("state=\"waiting\""), "{text}");
    }

    #[test]
    fn standing_links_show_their_state_and_how_many_streams_they_list() {
        let link = |group: &str, registered: bool, streams: &[&str]| UpstreamInfo {
            app: "lsc_edge".into(),
            stream: "*".into(),
            worker: 0,
            group: group.into(),
            primary: "127.0.0.2:1935".into(),
            secondary: "127.0.0.3:1935".into(),
            address: "127.0.0.2:1935".into(),
            state: if registered { "registered" } else { "waiting" }.into(),
            attempts: if registered { 0 } else { 4 },
            active: registered,
            position: None,
            since: 2.5,
            streams: streams.iter().map(|s| s.to_string()).collect(),
        };
        let text = render_upstreams(&[
            link("server1", true, &["cam", "news"]),
            link("server2", false, &[]),
        ]);
        let samples = parse(&text).expect("well-formed");
        let find = |name: &str, group: &str| {
            samples
                .iter()
                .find(|(n, l, _)| {
                    n == name
                        && l.iter().any(|(k, v)| k == "group" && v == group)
                        && l.iter().any(|(k, v)| k == "stream" && v == "*")
                })
                .map(|s| s.2)
        };
        assert_eq!(find("strata_upstream_listed_streams", "server1"), Some(2.0));
        assert_eq!(find("strata_upstream_listed_streams", "server2"), Some(0.0));
        assert_eq!(find("strata_upstream_active", "server1"), Some(1.0));
        assert_eq!(find("strata_upstream_active", "server2"), Some(0.0));
        assert_eq!(
            find("strata_upstream_failed_attempts", "server2"),
            Some(4.0)
        );
        assert!(text.contains("state=\"registered\""), "{text}");
    }

    #[test]
    fn the_checker_refuses_bad_lines() {
        for bad in [
            "metric",
            "metric{a=\"1\" 2",
            "1metric 2",
            "metric{a=1} 2",
            "metric two",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("# HELP x y\nx{a=\"b\",c=\"d\"} 1.5 123\n").is_ok());
    }
}
