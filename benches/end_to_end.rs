//! End to end against an in-process broker: records sent and acknowledged, per codec, and the
//! blocking `produce()` round trip.
//!
//! ```text
//! cargo bench --features mock --bench end_to_end
//! ```
//! The broker is a `kprod::mock::MockCluster` in sink mode in the same process (it decodes and
//! acknowledges every batch, keeps nothing), so its threads share the machine with the
//! producer's: these figures track kprod's own changes; the side-by-side with librdkafka is
//! `benches/vs_librdkafka.rs`.
//! - `send_flush/<codec>`: 10,000 × 100 B `send()` calls then `flush()`, linger 5 ms; time per
//!   record until every one is acknowledged.
//! - `produce/100B`: one blocking `produce()` at linger 0, acks=1: the round trip.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kprod::mock::MockCluster;
use kprod::{Acks, Compression, Producer};

const RECORDS: u64 = 10_000;

fn cluster() -> MockCluster {
    MockCluster::builder()
        .topic("e2e", 3)
        .sink(true)
        .build()
        .expect("mock cluster")
}

/// JSON-like values from a pool, compressible as real payloads are.
fn values() -> Vec<Bytes> {
    (0..256u64)
        .map(|i| {
            let mut v = format!(
                "{{\"id\":{i},\"user\":\"u{}\",\"amount\":{}.{:02},\"ok\":true,\"note\":\"",
                i * 7919 % 5000,
                i * 104_729 % 1000,
                i % 100
            )
            .into_bytes();
            v.resize(100, b'x');
            Bytes::from(v)
        })
        .collect()
}

fn send_flush(c: &mut Criterion) {
    let cluster = cluster();
    let values = values();
    let mut g = c.benchmark_group("send_flush");
    g.throughput(Throughput::Elements(RECORDS));
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let p = Producer::builder()
            .bootstrap_servers(&cluster.bootstrap_servers())
            .compression(codec)
            .linger(Duration::from_millis(5))
            .build()
            .expect("producer");
        p.produce("e2e", (), "warm-up").expect("warm-up");
        g.bench_function(BenchmarkId::from_parameter(codec.name()), |b| {
            b.iter(|| {
                let before = p.metrics().records_acked;
                for i in 0..RECORDS {
                    p.send("e2e", (), values[i as usize % values.len()].clone())
                        .expect("send");
                }
                p.flush(Duration::from_secs(60)).expect("flush");
                assert_eq!(p.metrics().records_acked - before, RECORDS);
            })
        });
        p.close(Duration::from_secs(10)).expect("close");
    }
    g.finish();
}

fn produce(c: &mut Criterion) {
    let cluster = cluster();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .acks(Acks::Leader)
        .linger(Duration::ZERO)
        .build()
        .expect("producer");
    p.produce("e2e", (), "warm-up").expect("warm-up");
    let value = values()[0].clone();
    let mut g = c.benchmark_group("produce");
    g.throughput(Throughput::Elements(1));
    g.bench_function("100B", |b| {
        b.iter(|| p.produce("e2e", (), value.clone()).expect("produce"))
    });
    g.finish();
    p.close(Duration::from_secs(10)).expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = send_flush, produce
}
criterion_main!(benches);
