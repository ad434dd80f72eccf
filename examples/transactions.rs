//! Transactions: an atomic write to two topics, then the consume-transform-produce loop
//! with `send_offsets_to_transaction` (the consumer is simulated here: a real one — any
//! Kafka consumer with `isolation.level=read_committed` and auto-commit off — supplies the
//! records, its group metadata and positions).
//!
//! ```sh
//! cargo run --example transactions --features mock
//! cargo run --example transactions --features mock -- localhost:9092
//! ```

use std::time::Duration;

use kprod::transaction::{ConsumerGroupMetadata, TransactionOffset};
use kprod::{Producer, TransactionError};

mod common;

const T: Duration = Duration::from_secs(30);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, _cluster) =
        common::bootstrap(&[("orders", 3), ("audit", 1), ("orders-enriched", 3)])?;
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .transactional_id("example-orders-writer")
        .build()?;
    // Once: fences any earlier producer with this id and completes what it left open.
    producer.init_transactions(T)?;

    // 1. An atomic write to two topics: a read_committed consumer sees both or neither.
    producer.begin_transaction()?;
    producer.send("orders", "o-1", "{\"item\":\"book\"}")?;
    producer.send("audit", "o-1", "order o-1 placed")?;
    producer.commit_transaction(T)?;
    println!("committed o-1 to orders and audit");

    // 2. Consume-transform-produce: the output records and the input offsets commit together,
    // so each input record is processed exactly once, even across crashes.
    let group = ConsumerGroupMetadata::new("orders-enricher").member("member-1", 1);
    let mut position = 0i64; // the simulated consumer's position in orders[0]
    for round in 0..3 {
        let polled: Vec<(i64, String)> = (0..5)
            .map(|i| (position + i, format!("order {}", position + i)))
            .collect();
        producer.begin_transaction()?;
        for (offset, order) in &polled {
            producer.send(
                "orders-enriched",
                order.as_bytes(),
                format!("{order}, enriched"),
            )?;
            position = offset + 1;
        }
        producer.send_offsets_to_transaction(
            &[TransactionOffset::new("orders", 0, position)],
            &group,
            T,
        )?;
        match producer.commit_transaction(T) {
            Ok(()) => println!("round {round}: 5 records and offset {position} committed"),
            Err(e) if e.transaction_error() == Some(TransactionError::Abortable) => {
                // Nothing of this round is visible: abort, rewind the consumer, go again.
                producer.abort_transaction(T)?;
                position -= polled.len() as i64;
                println!("round {round}: aborted ({e}); rewound to {position}");
            }
            // Fenced (another instance took over) or fatal: stop.
            Err(e) => return Err(e.into()),
        }
    }
    producer.close(T)?;
    Ok(())
}
