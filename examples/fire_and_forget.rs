//! Fire-and-forget: `send` from a hot loop, then `flush` before exiting; and the
//! "await-forget" strategy, which waits up to a time budget for each outcome and swallows it.
//!
//! ```sh
//! cargo run --release --example fire_and_forget --features mock
//! cargo run --release --example fire_and_forget --features mock -- localhost:9092
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use kprod::{Producer, ProducerRecord};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, _cluster) = common::bootstrap(&[("events", 3)])?;
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .linger(Duration::from_millis(5))
        .build()?;

    // `send` returns once the record is in the producer's buffer. With `Bytes` values it
    // allocates nothing and takes no lock; when the buffer is full it blocks (up to
    // `max_block`), and an error hands the record back.
    let value = Bytes::from_static(b"{\"event\":\"page_view\",\"path\":\"/\"}");
    let n = 200_000;
    let start = Instant::now();
    for _ in 0..n {
        producer.send("events", (), value.clone())?;
    }
    // Nothing is reported per record, so wait for every outcome before relying on them.
    producer.flush(Duration::from_secs(30))?;
    let m = producer.metrics();
    println!(
        "fire-and-forget: {n} sent in {:?}: {} acknowledged, {} failed, {} batches",
        start.elapsed(),
        m.records_acked,
        m.records_failed,
        m.batches_sent
    );

    // Await-forget: each call waits at most 50 ms for its record's outcome, then moves on;
    // outcomes are only counted in the metrics.
    for i in 0..10 {
        let record = ProducerRecord::new("events").value(format!("audit {i}"));
        producer.send_await_forget(record, Duration::from_millis(50));
    }
    let m = producer.metrics();
    println!(
        "await-forget: {} delivered, {} failed, {} still pending at their budget",
        m.forget_delivered, m.forget_failed, m.forget_timed_out
    );

    producer.close(Duration::from_secs(10))?;
    Ok(())
}
