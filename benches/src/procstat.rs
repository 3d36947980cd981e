//! CPU time (of the server, of our threads, of a core) and resident memory, from /proc.

use std::time::Instant;

/// CPU time (user + system) of a process, in seconds, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system) of one of our threads, in seconds, from
/// /proc/self/task/TID/stat.
pub fn thread_cpu_seconds(tid: i32) -> Option<f64> {
    stat_cpu_seconds(&format!("/proc/self/task/{tid}/stat"))
}

/// The calling thread's id, for [`thread_cpu_seconds`].
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

fn stat_cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
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
    }
}
