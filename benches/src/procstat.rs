//! CPU time (of the server, of our threads, of a core) and resident memory, from /proc.

use std::time::Instant;

/// CPU time (user + system) of a process, in seconds, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// Time on a CPU of every thread of process `pid`, in seconds, from the first field of
/// /proc/PID/task/*/schedstat: the scheduler's nanosecond count, where /proc/PID/stat
/// counts 10 ms ticks (0.07 % of a core over 15 s, too coarse for a process that uses
/// about 1 %). Like stat, it includes softirq work done in the thread's context (this
/// kernel has no IRQ_TIME_ACCOUNTING). A thread that exits between two samples is left
/// out of the second.
pub fn run_seconds(pid: u32) -> Option<f64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns: u64 = 0;
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}

/// CPU time (user + system) of one of our threads, in seconds, from
/// /proc/self/task/TID/stat.
pub fn thread_cpu_seconds(tid: i32) -> Option<f64> {
    stat_cpu_seconds(&format!("/proc/self/task/{tid}/stat"))
}

/// Time on a CPU of thread `tid` of process `pid`, in seconds, from its schedstat (see
/// [`run_seconds`]: nanoseconds, where stat counts 10 ms ticks).
pub fn task_run_seconds(pid: u32, tid: u32) -> Option<f64> {
    schedstat_seconds(&format!("/proc/{pid}/task/{tid}/schedstat"))
}

/// [`task_run_seconds`] of one of our threads.
pub fn thread_run_seconds(tid: i32) -> Option<f64> {
    schedstat_seconds(&format!("/proc/self/task/{tid}/schedstat"))
}

fn schedstat_seconds(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// The calling thread's id, for [`thread_cpu_seconds`].
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

fn stat_cpu_seconds(path: &str) -> Option<f64> {
    let ticks = parse_stat_cpu_ticks(&std::fs::read_to_string(path).ok()?)?;
    Some(ticks as f64 / clock_ticks())
}

/// utime + stime, in clock ticks, from the text of a /proc stat file (process or thread).
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// One thread of a process: its name (/proc/PID/task/TID/comm, at most 15 bytes) and CPU
/// seconds (user + system).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCpu {
    pub tid: u32,
    pub name: String,
    pub cpu_seconds: f64,
}

/// Every thread of process `pid` with its CPU time, from /proc/PID/task. None when the
/// process is gone or /proc is unreadable; a thread that exits while we read is left out.
pub fn threads_cpu(pid: u32) -> Option<Vec<ThreadCpu>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let (Ok(comm), Some(cpu_seconds)) = (
            std::fs::read_to_string(path.join("comm")),
            stat_cpu_seconds(&path.join("stat").to_string_lossy()),
        ) else {
            continue;
        };
        out.push(ThreadCpu {
            tid,
            name: comm.trim_end_matches('\n').to_string(),
            cpu_seconds,
        });
    }
    Some(out)
}

/// Each thread's CPU between two [`threads_cpu`] samples `secs` apart, in % of one core,
/// for the threads in both samples whose name starts with `prefix`, in name order (workers
/// by number: `strata-w2` before `strata-w10`).
pub fn threads_cpu_pct(
    before: &[ThreadCpu],
    after: &[ThreadCpu],
    secs: f64,
    prefix: &str,
) -> Vec<(String, f64)> {
    if secs <= 0.0 {
        return Vec::new();
    }
    let mut out: Vec<(String, f64)> = after
        .iter()
        .filter(|t| t.name.starts_with(prefix))
        .filter_map(|t| {
            let b = before.iter().find(|b| b.tid == t.tid)?;
            Some((
                t.name.clone(),
                (t.cpu_seconds - b.cpu_seconds) / secs * 100.0,
            ))
        })
        .collect();
    out.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The listen-queue counters of a network namespace (`TcpExt: ListenOverflows ListenDrops`):
/// connections dropped because a listener's accept queue was full, and all drops at listen
/// sockets (overflows included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenCounters {
    pub overflows: u64,
    pub drops: u64,
}

/// The listen counters of the network namespace process `pid` is in (/proc/PID/net/netstat),
/// or of ours (/proc/net/netstat) without a pid.
pub fn listen_counters(pid: Option<u32>) -> Option<ListenCounters> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/net/netstat"),
        None => "/proc/net/netstat".into(),
    };
    parse_listen_counters(&std::fs::read_to_string(path).ok()?)
}

/// ListenOverflows and ListenDrops from the text of /proc/net/netstat: a `TcpExt:` line of
/// names, then a `TcpExt:` line of values in the same order.
fn parse_listen_counters(netstat: &str) -> Option<ListenCounters> {
    let mut tcp_ext = netstat.lines().filter_map(|l| l.strip_prefix("TcpExt:"));
    let names: Vec<&str> = tcp_ext.next()?.split_whitespace().collect();
    let values: Vec<&str> = tcp_ext.next()?.split_whitespace().collect();
    if names.len() != values.len() {
        return None;
    }
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(ListenCounters {
        overflows: get("ListenOverflows")?,
        drops: get("ListenDrops")?,
    })
}

/// Seconds core `cpu` has been busy (user, nice, system, irq and softirq, whoever ran), from
/// /proc/stat. Softirq work that the kernel charges to no task (ksoftirqd aside, or kernels
/// with CONFIG_IRQ_TIME_ACCOUNTING) shows up here and not in any thread's stat.
pub fn core_busy_seconds(cpu: usize) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq: guest time is already inside user.
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    Some(busy as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// VmRSS of a process in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// This process's CPU time (all threads), in seconds.
pub fn self_cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if r != 0 {
        return 0.0;
    }
    // SAFETY: initialised by the successful call (and zeroed before it).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A CPU sample: wall time, the server's CPU seconds and ours.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub at: Instant,
    pub server: Option<f64>,
    pub load: f64,
}

impl CpuSample {
    pub fn take(pid: Option<u32>) -> Self {
        CpuSample {
            at: Instant::now(),
            server: pid.and_then(cpu_seconds),
            load: self_cpu_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(rss_kib(pid).is_some_and(|kb| kb > 0));
        assert!(thread_cpu_seconds(current_tid()).is_some());
        assert!(core_busy_seconds(0).is_some());
        let threads = threads_cpu(pid).expect("our threads");
        assert!(threads.iter().any(|t| t.tid == current_tid() as u32));
        assert!(listen_counters(None).is_some());
        assert!(listen_counters(Some(pid)).is_some());
        assert!(threads_cpu(u32::MAX).is_none());
        assert!(listen_counters(Some(u32::MAX)).is_none());
    }

    #[test]
    fn stat_cpu_ticks() {
        let stat = "1234 (strata-w0) S 1 1234 1234 0 -1 4194368 100 0 0 0 250 37 0 0 20 0 3 0 \
                    555 1000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(287));
        // A name with spaces and a ')' in it.
        let odd = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9";
        assert_eq!(parse_stat_cpu_ticks(odd), Some(7));
        assert_eq!(parse_stat_cpu_ticks(""), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis 1 2 3"), None);
        let bad = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ten 4 0";
        assert_eq!(parse_stat_cpu_ticks(bad), None);
        let huge = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 1 0";
        assert_eq!(parse_stat_cpu_ticks(huge), None);
    }

    #[test]
    fn listen_counters_from_netstat() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPTimeouts\n\
                    TcpExt: 0 12 15 7\n\
                    IpExt: InNoRoutes ListenOverflows\n\
                    IpExt: 0 99\n";
        assert_eq!(
            parse_listen_counters(text),
            Some(ListenCounters {
                overflows: 12,
                drops: 15
            })
        );
        assert_eq!(parse_listen_counters(""), None);
        // Names without values, values cut short, a counter missing, a value not a number.
        assert_eq!(
            parse_listen_counters("TcpExt: ListenOverflows ListenDrops\n"),
            None
        );
        assert_eq!(
            parse_listen_counters("TcpExt: ListenOverflows ListenDrops\nTcpExt: 3\n"),
            None
        );
        assert_eq!(
            parse_listen_counters("TcpExt: ListenOverflows Other\nTcpExt: 3 4\n"),
            None
        );
        assert_eq!(
            parse_listen_counters("TcpExt: ListenOverflows ListenDrops\nTcpExt: 3 x\n"),
            None
        );
    }

    #[test]
    fn worker_cpu_between_samples() {
        let t = |tid, name: &str, cpu_seconds| ThreadCpu {
            tid,
            name: name.into(),
            cpu_seconds,
        };
        let before = [
            t(1, "stratad", 1.0),
            t(2, "strata-w0", 2.0),
            t(3, "strata-w10", 0.0),
            t(4, "strata-w2", 1.0),
        ];
        let after = [
            t(1, "stratad", 9.0),
            t(2, "strata-w0", 3.0),
            t(3, "strata-w10", 2.0),
            t(4, "strata-w2", 1.5),
            t(5, "strata-w3", 4.0),
        ];
        let pct = threads_cpu_pct(&before, &after, 2.0, "strata-w");
        assert_eq!(
            pct,
            vec![
                ("strata-w0".to_string(), 50.0),
                ("strata-w2".to_string(), 25.0),
                ("strata-w10".to_string(), 100.0)
            ]
        );
        assert!(threads_cpu_pct(&before, &after, 2.0, "nginx").is_empty());
        assert!(threads_cpu_pct(&before, &after, 0.0, "strata-w").is_empty());
    }
}
