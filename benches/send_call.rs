//! The `send()` call alone: what a hot loop pays per record to enqueue it.
//!
//! ```text
//! cargo bench --features mock --bench send_call
//! ```
//! Against an in-process mock cluster in sink mode (acknowledges at once, keeps nothing), with
//! a buffer large enough that the call does not wait for room. Two parts:
//! - criterion: the time per `send()` of a 100 B `Bytes` value (throughput of the call);
//! - a distribution: 1,000,000 calls timed one by one (p50, p99, p99.9, max; the two clock
//!   reads add ~40 ns), and heap allocations per call made by the calling thread (a counting
//!   global allocator).
//!
//! With `--features mock,opentelemetry` and `KPROD_BENCH_OTEL=RATIO` (0.01 for 1%), the
//! producer reports spans to an SDK tracer provider sampling that ratio of traces
//! (`TraceIdRatioBased`; no exporter, so what is measured is kprod's instrumentation and the
//! SDK's span handling): the cost of OpenTelemetry on the call. With `KPROD_BENCH_OTEL_HEAD`
//! set as well, kprod samples (`OpenTelemetry::head_sampling(RATIO)`) and the provider keeps
//! what it is given; `KPROD_BENCH_OTEL_ROOTS=0` adds `propagate_dropped_roots(false)`.

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;
#[cfg(feature = "opentelemetry")]
#[path = "support/otel.rs"]
mod otel;

use std::time::{Duration, Instant};

use bytes::Bytes;
use counting_alloc::{counted, Counting};
use criterion::{criterion_group, Criterion, Throughput};
use hdrhistogram::Histogram;
use kprod::mock::MockCluster;
use kprod::Producer;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn setup() -> (MockCluster, Producer) {
    let cluster = MockCluster::builder()
        .topic("calls", 3)
        .sink(true)
        .build()
        .expect("mock cluster");
    let b = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .buffer_records(4_000_000)
        .buffer_memory(1 << 30);
    #[cfg(feature = "opentelemetry")]
    let b = match otel::from_env() {
        Some(otel) => b.opentelemetry(otel),
        None => b,
    };
    let p = b.build().expect("producer");
    p.produce("calls", (), "warm-up").expect("warm-up");
    (cluster, p)
}

fn criterion_send(c: &mut Criterion) {
    let (_cluster, p) = setup();
    let value = Bytes::from(vec![b'v'; 100]);
    let mut g = c.benchmark_group("send");
    g.throughput(Throughput::Elements(1));
    g.bench_function("100B_bytes", |b| {
        b.iter(|| p.send("calls", (), value.clone()).expect("send"))
    });
    g.finish();
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// Times 1,000,000 calls one by one and counts the calling thread's allocations.
fn distribution() {
    let (_cluster, p) = setup();
    let value = Bytes::from(vec![b'v'; 100]);
    let n = 1_000_000u64;
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("bounds");
    // Pre-clone: `Bytes::clone` of a Vec-backed value allocates once, when it first becomes
    // shared; after that clones only count references.
    let _shared = value.clone();
    let allocs = counted(|| {
        for _ in 0..n {
            let t = Instant::now();
            p.send("calls", (), value.clone()).expect("send");
            h.saturating_record(t.elapsed().as_nanos() as u64);
        }
    });
    p.flush(Duration::from_secs(60)).expect("flush");
    println!(
        "send() call, {n} × 100 B Bytes, one thread: p50 {} ns p99 {} ns p99.9 {} ns p99.99 {} ns \
         max {} ns; heap allocations per call {:.4} ({allocs} in all)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max(),
        allocs as f64 / n as f64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = criterion_send
}

fn main() {
    // `cargo test --benches` runs each bench once in test mode; keep that short.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    benches();
    distribution();
    Criterion::default().configure_from_args().final_summary();
}
