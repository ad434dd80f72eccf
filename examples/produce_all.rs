//! `produce_all`: send a batch of records and wait for all of them; results come back in input
//! order, so a partial failure says exactly which records failed and why, while the others keep
//! their metadata. Retriable failures are tried once more.
//!
//! ```sh
//! cargo run --example produce_all --features mock
//! cargo run --example produce_all --features mock -- localhost:9092
//! ```

use std::time::Duration;

use kprod::{Producer, ProducerRecord};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, _cluster) = common::bootstrap(&[("orders", 3)])?;
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .max_request_size(64 * 1024)
        .batch_size(32 * 1024)
        .build()?;
    // Learn the topic's partitions first, so a bad partition is refused at the call.
    producer.produce("orders", "warm-up", ())?;

    let records: Vec<ProducerRecord> = vec![
        ProducerRecord::new("orders")
            .key("o-1")
            .value("{\"qty\":1}"),
        ProducerRecord::new("orders")
            .key("o-2")
            .value("{\"qty\":2}"),
        // Partition 99 does not exist: refused at the call.
        ProducerRecord::new("orders").partition(99).value("lost?"),
        // Larger than max_request_size: refused at the call.
        ProducerRecord::new("orders").value(vec![b'x'; 100 * 1024]),
        // A tombstone (no value) for key o-0.
        ProducerRecord::new("orders").key("o-0"),
    ];
    let results = producer.produce_all(records.clone());

    for (i, md) in results.successes() {
        println!("#{i}: {}/{} offset {}", md.topic, md.partition, md.offset);
    }
    let mut retry = Vec::new();
    for (i, e) in results.failures() {
        println!("#{i}: failed: {e} (retriable: {})", e.is_retriable());
        if e.is_retriable() {
            retry.push(records[i].clone());
        }
    }
    if !retry.is_empty() {
        let again = producer.produce_all(retry);
        println!(
            "retried: {} of {} now delivered",
            again.successes().count(),
            again.results().len()
        );
    }
    println!(
        "{} of {} delivered",
        results.successes().count(),
        results.results().len()
    );
    producer.close(Duration::from_secs(10))?;
    Ok(())
}
