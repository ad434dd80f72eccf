//! Quickstart: build a producer, send three records with a blocking `produce`, and print
//! where each landed.
//!
//! ```sh
//! cargo run --example quickstart --features mock                    # embedded mock cluster
//! cargo run --example quickstart --features mock -- localhost:9092  # a real cluster
//! ```
//! On a real cluster the topic `quickstart` must exist (or auto-creation be on).

use std::time::Duration;

use kprod::{Acks, Producer};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A bootstrap address from the command line, or an in-process cluster.
    let (bootstrap, _cluster) = common::bootstrap(&[("quickstart", 3)])?;

    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .acks(Acks::All) // the default; shown for clarity
        .linger(Duration::from_millis(5))
        .build()?; // every option is validated here, once

    for (key, value) in [("alice", "hello"), ("bob", "hallo"), ("alice", "bonjour")] {
        // Blocks until the broker acknowledges the record.
        let md = producer.produce("quickstart", key, value)?;
        println!(
            "{key}={value} -> {}/{} offset {} timestamp {}",
            md.topic, md.partition, md.offset, md.timestamp
        );
    }

    // Optional: dropping the producer closes it too, flushing for up to the delivery timeout.
    producer.close(Duration::from_secs(10))?;
    Ok(())
}
