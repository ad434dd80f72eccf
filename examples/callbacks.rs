//! Delivery callbacks: `send_with` runs a closure with each record's outcome, exactly once, on
//! the producer's callback pool (never on an I/O thread). Here they count successes and
//! failures; with the embedded cluster, the second half's request is refused on purpose.
//!
//! ```sh
//! cargo run --example callbacks --features mock
//! cargo run --example callbacks --features mock -- localhost:9092
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kprod::protocol::{ApiKey, ErrorCode};
use kprod::{Producer, ProducerRecord};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, cluster) = common::bootstrap(&[("payments", 1)])?;
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .linger(Duration::from_millis(2))
        .callback_threads(2)
        .build()?;

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let send = |range: std::ops::Range<u64>| -> Result<(), kprod::SendError> {
        for i in range {
            let record = ProducerRecord::new("payments")
                .key(format!("account-{}", i % 10))
                .value(format!("{{\"amount\":{i}}}"));
            let (ok, failed) = (ok.clone(), failed.clone());
            producer.send_with(record, move |result| match result {
                Ok(_) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // Every failure says why, and whether a retry could help.
                    if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("first failure: {e} (retriable: {})", e.is_retriable());
                    }
                }
            })?;
        }
        Ok(())
    };
    send(0..500)?;
    producer.flush(Duration::from_secs(30))?;
    if let Some(c) = &cluster {
        // The next Produce request is refused with an error no retry can fix.
        c.fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::TOPIC_AUTHORIZATION_FAILED]);
    }
    send(500..1_000)?;
    // After flush, every callback of every record sent before it has run.
    producer.flush(Duration::from_secs(30))?;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "{ok} delivered, {failed} failed, {} callbacks in all",
        ok + failed
    );
    assert_eq!(ok + failed, 1_000, "every callback runs exactly once");
    producer.close(Duration::from_secs(10))?;
    Ok(())
}
