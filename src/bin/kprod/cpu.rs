//! Client CPU time: user + system time of this process — threads that have exited included —
//! leaving out an embedded mock cluster's threads (named `km…`) so the broker's work is not
//! billed to the client. And the process's memory figures from /proc/self/status.

use std::time::Duration;

/// utime + stime ticks from a `stat` line ("pid (comm) state ..." — comm may hold spaces or
/// parentheses, so split at the last ')'), with the comm.
fn ticks(stat: &str) -> Option<(&str, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(').map_or("", |(_, c)| c);
    // After the comm: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU time used so far by this process (Linux `/proc/self/stat`, which keeps the time of
/// threads that have exited; USER_HZ = 100 ticks per second), less the time of its live
/// threads whose name starts with `exclude_prefix` (`/proc/self/task/*/stat`) — so an excluded
/// thread must outlive both readings. `None` where /proc is unavailable.
pub fn client_cpu(exclude_prefix: Option<&str>) -> Option<Duration> {
    let (_, mut total) = ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    if let Some(prefix) = exclude_prefix {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let Ok(task) = task else { continue };
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue; // the thread exited meanwhile
            };
            if let Some((comm, t)) = ticks(&stat) {
                if comm.starts_with(prefix) {
                    total = total.saturating_sub(t);
                }
            }
        }
    }
    Some(Duration::from_millis(total * 10))
}

/// A size line of /proc/self/status (`"VmRSS:"`, `"VmHWM:"`, ...), in bytes; `None` where
/// /proc is unavailable.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
