//! Counting the producer's threads (`kprod-*`) by name, from `/proc/self/task`.

use std::time::{Duration, Instant};

/// Threads of this process whose name starts with `kprod-`.
pub fn kprod_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("kprod-"))
        .count()
}

/// The count once it equals `want`, or whatever it is after 5 s. Threads name themselves
/// once running, and a joined thread's `/proc` entry goes a moment after `join` returns (the
/// kernel reaps it after waking the joiner), so the count converges shortly after a spawn
/// or a `close`.
pub fn threads_reach(want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = kprod_threads();
        if n == want || Instant::now() >= deadline {
            return n;
        }
        std::thread::yield_now();
    }
}
