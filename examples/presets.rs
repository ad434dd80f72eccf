//! Presets: three starting points, each a builder you can still adjust. The example prints
//! the settings each one chooses, then times 20,000 fire-and-forget records and 200 blocking
//! `produce` calls with each.
//!
//! ```sh
//! cargo run --release --example presets --features mock
//! cargo run --release --example presets --features mock -- localhost:9092
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use kprod::{Producer, ProducerBuilder};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, _cluster) = common::bootstrap(&[("presets", 3)])?;
    type Preset = fn() -> ProducerBuilder;
    let presets: [(&str, Preset); 3] = [
        ("for_high_throughput", ProducerBuilder::for_high_throughput),
        ("for_low_latency", ProducerBuilder::for_low_latency),
        ("for_reliability", ProducerBuilder::for_reliability),
    ];
    let value = Bytes::from(vec![b'v'; 100]);
    for (name, preset) in presets {
        // A preset is a builder: override anything after it.
        let config = preset().bootstrap_servers(&bootstrap).build_config()?;
        println!(
            "{name}: acks {:?}, idempotence {}, linger {:?}, batch {} B, compression {:?}, \
             in flight {}",
            config.acks,
            config.idempotence,
            config.linger,
            config.batch_size,
            config.compression,
            config.max_in_flight
        );
        let producer = Producer::new(config)?;
        producer.produce("presets", (), "warm-up")?;

        let start = Instant::now();
        for _ in 0..20_000 {
            producer.send("presets", (), value.clone())?;
        }
        producer.flush(Duration::from_secs(30))?;
        let send_rate = 20_000.0 / start.elapsed().as_secs_f64();

        let start = Instant::now();
        for _ in 0..200 {
            producer.produce("presets", (), value.clone())?;
        }
        let per_produce = start.elapsed() / 200;
        println!("    send: {send_rate:.0} records/s; produce: {per_produce:?} per call");
        producer.close(Duration::from_secs(10))?;
    }
    Ok(())
}
