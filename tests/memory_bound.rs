//! Memory stays bounded by the configured buffer under a slow broker (issue #4): 100 MB of
//! records go through a producer with an 8 MiB buffer to brokers 200 ms away (a fault proxy
//! adds 100 ms each way); senders block for room, and the process's peak RSS grows by no more
//! than the buffer (twice: records waiting and their encoded batches in flight) plus a
//! constant. Then `close` under that latency leaves no thread behind.
//!
//! One test in this binary: it measures the whole process.
#![cfg(all(feature = "mock", target_os = "linux"))]

mod support;

use std::time::Duration;

use bytes::Bytes;
use kprod::mock::MockCluster;
use kprod::Producer;
use support::fault_proxy::FaultProxy;
use support::threads::threads_reach;

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
    let bootstrap = proxies
        .iter()
        .map(|p| p.addr().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .buffer_memory(BUFFER)
        .linger(Duration::from_millis(5))
        .build()
        .unwrap();
    p.produce("slow", "warm", "up").unwrap();

    let baseline = status_kib("VmRSS:");
    // Reset the peak-RSS mark to now.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
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
    eprintln!(
        "{RECORDS} × {SIZE} B through a 200 ms RTT in {elapsed:?}; peak RSS grew {grew_mib:.1} MiB \
         (buffer {} MiB, total sent {} MiB)",
        BUFFER >> 20,
        (RECORDS * SIZE) >> 20
    );
    let limit_mib = 2.0 * (BUFFER >> 20) as f64 + 32.0;
    assert!(
        grew_mib <= limit_mib,
        "peak RSS grew {grew_mib:.1} MiB, over 2 × buffer + 32 MiB = {limit_mib} MiB"
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
}
