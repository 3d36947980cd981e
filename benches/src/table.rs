//! The comparison table of `benches/compare`: reads `SERVER-N.json` reports from a directory
//! and prints one row per server and load, with stratad/nginx ratios.

use std::collections::BTreeMap;
use std::path::Path;

use crate::report::Report;

/// Reports by load (N), then by server name, in the order servers should be listed.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<usize, Vec<(String, Report)>>, String> {
    let mut out: BTreeMap<usize, Vec<(String, Report)>> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        let Some(stem) = path
            .file_name()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_suffix(".json"))
        else {
            continue;
        };
        let Some((server, n)) = stem.rsplit_once('-') else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else { continue };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        match serde_json::from_str::<Report>(&text) {
            Ok(r) => out.entry(n).or_default().push((server.to_string(), r)),
            Err(e) => eprintln!("{}: {e}", path.display()),
        }
    }
    let rank = |s: &str| match s {
        "stratad" => 0,
        "nginx" => 1,
        _ => 2,
    };
    for v in out.values_mut() {
        v.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then(a.0.cmp(&b.0)));
    }
    Ok(out)
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

pub fn render(by_n: &BTreeMap<usize, Vec<(String, Report)>>) -> String {
    let header = [
        "N",
        "server",
        "playing",
        "failed",
        "cpu %",
        "Mbit/s",
        "Gbit/s/core",
        "RSS MiB",
        "KiB/viewer",
        "ttfv p50",
        "ttfv p99",
        "stalls",
        "load cpu %",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for (n, reports) in by_n {
        for (server, r) in reports {
            rows.push(vec![
                n.to_string(),
                server.clone(),
                r.playing.to_string(),
                r.failed.to_string(),
                f(r.server_cpu_pct, 1),
                f(r.delivered_mbps, 0),
                f(r.gbps_per_core, 2),
                f(r.server_rss_steady_kib.map(|k| k as f64 / 1024.0), 1),
                f(r.kib_per_viewer, 1),
                f(r.first_video_ms.map(|p| p.p50), 0),
                f(r.first_video_ms.map(|p| p.p99), 0),
                r.stalls.to_string(),
                format!(
                    "{} ({} players)",
                    r.video_stalls, r.players_with_video_stalls
                ),
                f(r.load_cpu_pct, 1),
            ]);
        }
        let get = |name: &str| reports.iter().find(|(s, _)| s == name).map(|(_, r)| r);
        if let (Some(a), Some(b)) = (get("stratad"), get("nginx")) {
            rows.push(vec![
                n.to_string(),
                "stratad/nginx".into(),
                String::new(),
                String::new(),
                ratio(a.server_cpu_pct, b.server_cpu_pct),
                ratio(a.delivered_mbps, b.delivered_mbps),
                ratio(a.gbps_per_core, b.gbps_per_core),
                ratio(
                    a.server_rss_steady_kib.map(|k| k as f64),
                    b.server_rss_steady_kib.map(|k| k as f64),
                ),
                ratio(a.kib_per_viewer, b.kib_per_viewer),
                ratio(
                    a.first_video_ms.map(|p| p.p50),
                    b.first_video_ms.map(|p| p.p50),
                ),
                ratio(
                    a.first_video_ms.map(|p| p.p99),
                    b.first_video_ms.map(|p| p.p99),
                ),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (k, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
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
        out += "| ";
        out += &line.join(" | ");
        out += " |\n";
        if k == 0 {
            let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out += "| ";
            out += &dashes.join(" | ");
            out += " |\n";
        }
    }
    out += "ttfv: connect to first video picture, ms. KiB/viewer: RSS growth / players playing.\n\
         stalls: gaps > 500 ms in a player's media; video stalls: between its video pictures.\n";
    out
}
