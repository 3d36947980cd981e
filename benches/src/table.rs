//! The comparison table of `benches/compare`: reads `SERVER-N.json` (or, with repeats,
//! `SERVER-N-rK.json`) reports from a directory and prints one row per server and load, each
//! figure the median over the repeats, with stratad/nginx and stratad/base ratios of those
//! medians.

use std::collections::BTreeMap;
use std::path::Path;

use crate::report::Report;

/// Reports by load (N), then by server (stratad, base, nginx, others), repeats together.
pub type Results = BTreeMap<usize, Vec<(String, Vec<Report>)>>;

/// `nginx-2000` or `nginx-2000-r3` → ("nginx", 2000).
fn parse_name(stem: &str) -> Option<(&str, usize)> {
    let base = match stem.rsplit_once("-r") {
        Some((b, k)) if k.parse::<u32>().is_ok() => b,
        _ => stem,
    };
    let (server, n) = base.rsplit_once('-')?;
    Some((server, n.parse().ok()?))
}

pub fn load_dir(dir: &Path) -> Result<Results, String> {
    let mut out: Results = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Some(stem) = path
            .file_name()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_suffix(".json"))
        else {
            continue;
        };
        let Some((server, n)) = parse_name(stem) else {
            continue;
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let report = match serde_json::from_str::<Report>(&text) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                continue;
            }
        };
        let servers = out.entry(n).or_default();
        match servers.iter_mut().find(|(s, _)| s == server) {
            Some((_, v)) => v.push(report),
            None => servers.push((server.to_string(), vec![report])),
        }
    }
    let rank = |s: &str| match s {
        "stratad" => 0,
        "base" => 1,
        "nginx" => 2,
        _ => 3,
    };
    for v in out.values_mut() {
        v.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then(a.0.cmp(&b.0)));
    }
    Ok(out)
}

/// Median of the figures present (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

fn med(rs: &[Report], f: impl Fn(&Report) -> Option<f64>) -> Option<f64> {
    median(rs.iter().filter_map(f).collect())
}

fn f(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

type Column = (&'static str, fn(&Report) -> Option<f64>, usize, bool);

/// Name, figure, decimals, whether a stratad/nginx ratio means something.
const COLUMNS: [Column; 18] = [
    ("playing", |r| Some(r.playing as f64), 0, false),
    ("failed", |r| Some(r.failed as f64), 0, false),
    ("cpu %", |r| r.server_cpu_pct, 1, true),
    ("Mbit/s", |r| r.delivered_mbps, 0, true),
    ("Gbit/s/core", |r| r.gbps_per_core, 2, true),
    ("Mbit/s/viewer", |r| r.mbps_per_viewer, 2, true),
    // Players playing per core of server CPU at the stream's rate (a VOD run's headline).
    (
        "viewers/core",
        |r| match r.server_cpu_pct {
            Some(cpu) if cpu > 0.0 => Some(r.playing as f64 / (cpu / 100.0)),
            _ => None,
        },
        0,
        true,
    ),
    (
        "RSS MiB",
        |r| r.server_rss_steady_kib.map(|k| k as f64 / 1024.0),
        1,
        true,
    ),
    ("KiB/viewer", |r| r.kib_per_viewer, 1, true),
    ("ttfv p50", |r| r.first_video_ms.map(|p| p.p50), 0, true),
    ("ttfv p99", |r| r.first_video_ms.map(|p| p.p99), 0, true),
    // A join storm's headline: the server's part of the first picture's wait.
    (
        "play ttfv p99",
        |r| r.play_to_first_video_ms.map(|p| p.p99),
        0,
        true,
    ),
    ("fps", |r| r.video_fps, 1, false),
    (
        "frames min",
        |r| r.video_pictures_min.map(|n| n as f64),
        0,
        false,
    ),
    ("stalls", |r| Some(r.stalls as f64), 0, false),
    ("video stalls", |r| Some(r.video_stalls as f64), 0, false),
    ("load cpu %", |r| r.load_cpu_pct, 1, false),
    (
        "overflows",
        |r| r.listen_overflows.map(|n| n as f64),
        0,
        false,
    ),
];

/// The `worker cpu %` column: each worker's median over the runs, `w0 / w1 / ...`, or `-`.
fn worker_cpu(rs: &[Report]) -> String {
    let workers = rs
        .iter()
        .map(|r| r.server_workers_cpu_pct.len())
        .max()
        .unwrap_or(0);
    if workers == 0 {
        return "-".into();
    }
    (0..workers)
        .map(|i| {
            f(
                med(rs, |r| r.server_workers_cpu_pct.get(i).map(|w| w.cpu_pct)),
                1,
            )
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

pub fn render(by_n: &Results) -> String {
    let mut rows: Vec<Vec<String>> = vec![["N", "server", "runs"]
        .iter()
        .map(|s| s.to_string())
        .chain(COLUMNS.iter().map(|c| c.0.to_string()))
        .chain(["worker cpu %".to_string()])
        .collect()];
    for (n, servers) in by_n {
        for (server, rs) in servers {
            let mut row = vec![n.to_string(), server.clone(), rs.len().to_string()];
            row.extend(
                COLUMNS
                    .iter()
                    .map(|(_, get, prec, _)| f(med(rs, get), *prec)),
            );
            row.push(worker_cpu(rs));
            rows.push(row);
        }
        let get = |name: &str| servers.iter().find(|(s, _)| s == name).map(|(_, r)| r);
        // stratad against nginx-rtmp, and against `base` (benches/compare --base: the same
        // server built from another commit, for before/after runs).
        for other in ["nginx", "base"] {
            let (Some(a), Some(b)) = (get("stratad"), get(other)) else {
                continue;
            };
            let mut row = vec![n.to_string(), format!("stratad/{other}"), String::new()];
            row.extend(COLUMNS.iter().map(|(_, get, _, meaningful)| {
                if *meaningful {
                    ratio(med(a, get), med(b, get))
                } else {
                    String::new()
                }
            }));
            row.push(String::new());
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (k, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 1 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out += &format!("| {} |\n", cells.join(" | "));
        if k == 0 {
            let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out += &format!("| {} |\n", dashes.join(" | "));
        }
    }
    out += "Medians over the runs. ttfv: connect to first video picture (ms); play ttfv: \
            from the play command. KiB/viewer: RSS growth from before the players joined to \
            the steady window, per player playing. \
            stalls: gaps > 500 ms in a player's media; video stalls: between its pictures. \
            overflows: listen-queue overflows in the server's network namespace during the run. \
            worker cpu %: each stratad worker thread (strata-w0 / strata-w1 / ...). \
            viewers/core: players playing per core of server CPU. fps: each player's video \
            pictures a second from its first to the end (lead included); frames min: the fewest \
            pictures a playing player received.\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_medians() {
        assert_eq!(parse_name("nginx-2000"), Some(("nginx", 2000)));
        assert_eq!(parse_name("stratad-100-r3"), Some(("stratad", 100)));
        assert_eq!(
            parse_name("node-media-server-500"),
            Some(("node-media-server", 500))
        );
        assert_eq!(parse_name("nginx"), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    /// A report as an older strata-load wrote it (no worker or overflow fields), plus `extra`.
    fn report(extra: serde_json::Value) -> Report {
        let mut v = serde_json::json!({
            "url": "rtmp://127.0.0.1:1935/app/s", "players": 10, "threads": 1,
            "ramp_per_s": 0.0, "duration_s": 5.0, "connected": 10, "playing": 10,
            "got_video": 10, "failed": 0, "stalls": 0, "players_with_stalls": 0,
            "max_gap_ms": 0.0, "errors": []
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        serde_json::from_value(v).expect("report")
    }

    #[test]
    fn viewers_per_core_and_frames() {
        let r = report(serde_json::json!({"server_cpu_pct": 50.0, "video_pictures_min": 750}));
        let col = |name: &str| {
            let (_, get, _, _) = COLUMNS.iter().find(|c| c.0 == name).expect("column");
            get(&r)
        };
        assert_eq!(col("viewers/core"), Some(20.0));
        assert_eq!(col("frames min"), Some(750.0));
        let idle = report(serde_json::json!({"server_cpu_pct": 0.0}));
        assert_eq!(
            COLUMNS
                .iter()
                .find(|c| c.0 == "viewers/core")
                .map(|c| (c.1)(&idle)),
            Some(None)
        );
    }

    #[test]
    fn worker_cpu_and_overflow_columns() {
        let workers = |a: f64, b: f64| {
            serde_json::json!({
                "listen_overflows": 3,
                "server_workers_cpu_pct": [
                    {"name": "strata-w0", "cpu_pct": a}, {"name": "strata-w1", "cpu_pct": b}
                ]
            })
        };
        let old = report(serde_json::json!({}));
        assert!(old.server_workers_cpu_pct.is_empty());
        assert_eq!(old.listen_overflows, None);
        let rs = [
            report(workers(10.0, 40.0)),
            report(workers(20.0, 50.0)),
            report(workers(30.0, 60.0)),
        ];
        assert_eq!(worker_cpu(&rs), "20.0 / 50.0");
        assert_eq!(worker_cpu(std::slice::from_ref(&old)), "-");
        let mut by_n = Results::new();
        by_n.insert(
            10,
            vec![("stratad".into(), rs.to_vec()), ("nginx".into(), vec![old])],
        );
        let table = render(&by_n);
        // The last two cells of each line, the header, stratad, nginx.
        let last_two = |line: &str| -> Vec<String> {
            let cells: Vec<String> = line.split('|').map(|c| c.trim().to_string()).collect();
            cells[cells.len() - 3..cells.len() - 1].to_vec()
        };
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(last_two(lines[0]), ["overflows", "worker cpu %"], "{table}");
        assert_eq!(last_two(lines[2]), ["3", "20.0 / 50.0"], "{table}");
        assert_eq!(last_two(lines[3]), ["-", "-"], "{table}");
    }
}
