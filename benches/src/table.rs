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
const COLUMNS: [Column; 12] = [
    ("playing", |r| Some(r.playing as f64), 0, false),
    ("failed", |r| Some(r.failed as f64), 0, false),
    ("cpu %", |r| r.server_cpu_pct, 1, true),
    ("Mbit/s", |r| r.delivered_mbps, 0, true),
    ("Gbit/s/core", |r| r.gbps_per_core, 2, true),
    (
        "RSS MiB",
        |r| r.server_rss_steady_kib.map(|k| k as f64 / 1024.0),
        1,
        true,
    ),
    ("KiB/viewer", |r| r.kib_per_viewer, 1, true),
    ("ttfv p50", |r| r.first_video_ms.map(|p| p.p50), 0, true),
    ("ttfv p99", |r| r.first_video_ms.map(|p| p.p99), 0, true),
    ("stalls", |r| Some(r.stalls as f64), 0, false),
    ("video stalls", |r| Some(r.video_stalls as f64), 0, false),
    ("load cpu %", |r| r.load_cpu_pct, 1, false),
];

pub fn render(by_n: &Results) -> String {
    let mut rows: Vec<Vec<String>> = vec![["N", "server", "runs"]
        .iter()
        .map(|s| s.to_string())
        .chain(COLUMNS.iter().map(|c| c.0.to_string()))
        .collect()];
    for (n, servers) in by_n {
        for (server, rs) in servers {
            let mut row = vec![n.to_string(), server.clone(), rs.len().to_string()];
            row.extend(
                COLUMNS
                    .iter()
                    .map(|(_, get, prec, _)| f(med(rs, get), *prec)),
            );
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
    out += "Medians over the runs. ttfv: connect to first video picture (ms). KiB/viewer: RSS \
            growth from before the players joined to the steady window, per player playing. \
            stalls: gaps > 500 ms in a player's media; video stalls: between its pictures.\n";
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
}
