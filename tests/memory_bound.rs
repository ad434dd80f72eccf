//! Memory stays bounded by the configured buffer under a slow broker (issue #4): 100 MB of
//! records go through a producer with an 8 MiB buffer to brokers 200 ms away (a fault proxy
//! adds 100 ms each way); senders block for room, and both the heap in use (a counting global
//! allocator) and the process's peak RSS grow by no more than the buffer plus a constant. Then
//! `close` under that latency leaves no thread behind and gives the memory back.
//!
//! One test in this binary: it measures the whole process.
#![cfg(all(feature = "mock", target_os = "linux"))]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use kprod::mock::MockCluster;
use kprod::Producer;
use support::fault_proxy::{bootstrap_of, FaultProxy};
use support::threads::threads_reach;

/// Bytes allocated and not freed, and the most there have been since the last reset.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping is two
// atomics, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size() as isize);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size as isize - layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: f64 = (1 << 20) as f64;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

#[test]
fn slow_broker_fills_the_buffer_and_memory_stays_bounded() {
    const BUFFER: usize = 8 << 20;
    const RECORDS: usize = 100_000;
    const SIZE: usize = 1024;
    // The heap before anything of the test's exists, compared with the heap once all of it
    // is gone.
    let live_at_start = LIVE.load(Relaxed);
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("slow", 4)
        .sink(true) // the broker keeps no record data: only the client's memory grows
        .build()
        .unwrap();
    let proxies: Vec<FaultProxy> = cluster
        .broker_ids()
        .into_iter()
        .map(|b| {
            let p = FaultProxy::start(cluster.broker_addr(b), b as u64);
            p.set_delay(Duration::from_millis(100));
            cluster.set_advertised_addr(b, Some(p.addr()));
            p
        })
        .collect();
    let bootstrap = bootstrap_of(&proxies);
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .buffer_memory(BUFFER)
        .linger(Duration::from_millis(5))
        .build()
        .unwrap();
    p.produce("slow", "warm", "up").unwrap();

    let baseline = status_kib("VmRSS:");
    // Reset the peak marks to now.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let live_before = LIVE.load(Relaxed);
    PEAK.store(live_before, Relaxed);
    let started = std::time::Instant::now();
    for i in 0..RECORDS {
        // A fresh allocation per record: retaining records would show in RSS.
        let mut v = vec![b'x'; SIZE];
        v[..8].copy_from_slice(&(i as u64).to_be_bytes());
        p.send("slow", (), Bytes::from(v)).unwrap();
    }
    p.flush(Duration::from_secs(300)).unwrap();
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM:");
    let m = p.metrics();
    assert_eq!(m.records_acked, RECORDS as u64 + 1);
    let grew_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    let heap_mib = (PEAK.load(Relaxed) - live_before) as f64 / MIB;
    eprintln!(
        "{RECORDS} × {SIZE} B through a 200 ms RTT in {elapsed:?}: heap in use peaked \
         {heap_mib:.1} MiB above the start, peak RSS grew {grew_mib:.1} MiB (buffer {} MiB, \
         total sent {} MiB)",
        BUFFER >> 20,
        (RECORDS * SIZE) >> 20
    );
    // 32 MiB for the first broker in use, 8 more for the second: each connection keeps its
    // own write buffer (requests are copied there until the socket takes them) and each
    // in-process fault proxy holds its 100 ms of bytes. Keyless records now rotate over all
    // four partitions, so both brokers are in use (before, every record went to one
    // partition: +24 MiB heap, +26-30 MiB RSS, in 10.3 s instead of 5.4 s).
    let limit_mib = (BUFFER >> 20) as f64 + 32.0 + 8.0;
    assert!(
        heap_mib <= limit_mib,
        "heap grew {heap_mib:.1} MiB, over buffer + 40 MiB = {limit_mib} MiB"
    );
    assert!(
        grew_mib <= limit_mib,
        "peak RSS grew {grew_mib:.1} MiB, over buffer + 40 MiB = {limit_mib} MiB"
    );

    // Close with records in flight behind the latency: bounded, and no thread left.
    for _ in 0..1000 {
        p.send("slow", (), Bytes::from(vec![b'y'; SIZE])).unwrap();
    }
    let t = std::time::Instant::now();
    let _ = p.close(Duration::from_millis(50));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "close took {:?}",
        t.elapsed()
    );
    assert_eq!(threads_reach(0), 0, "threads left after close");
    // And the memory comes back: the heap in use is where it was before the test. The proxies
    // and the cluster go too (both join their threads): measured while their threads were
    // still draining, their buffers showed as held (+2.3 MiB in one CI run).
    drop(p);
    drop(proxies);
    drop(cluster);
    let left_mib = (LIVE.load(Relaxed) as f64 - live_at_start as f64) / MIB;
    eprintln!("heap in use after close: {left_mib:+.2} MiB against the start");
    assert!(left_mib < 1.0, "{left_mib:.2} MiB still held after close");
}
