//! Client CPU time: user + system time of this process's threads, leaving out an embedded
//! mock cluster's threads (named `km…`) so the broker's work is not billed to the client.

use std::time::Duration;

/// CPU time used so far by the threads whose name does not start with `exclude_prefix`
/// (Linux: `/proc/self/task/*/stat`, in USER_HZ = 100 ticks per second). Threads that have
/// exited are no longer counted, so take both readings while the producer is running.
/// `None` where /proc is unavailable.
pub fn client_cpu(exclude_prefix: Option<&str>) -> Option<Duration> {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread exited meanwhile
        };
        // "tid (comm) state ppid ..." — comm may hold spaces or parentheses: split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        if exclude_prefix.is_some_and(|p| comm.starts_with(p)) {
            continue;
        }
        // After the comm: state is field 3, utime field 14, stime field 15.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    Some(Duration::from_millis(ticks * 10))
}
