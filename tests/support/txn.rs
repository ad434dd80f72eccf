//! What the transaction tests share: the topics, the sentinel that ends every read, and
//! librdkafka's consumer reading a log back at an isolation level.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kprod::{Producer, ProducerRecord};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);
pub const SENTINEL: &str = "--sentinel--";
pub const GROUP: &str = "kprod-txn-group";
pub const TOPICS: [(&str, i32); 3] = [("tx-a", 3), ("tx-b", 2), ("tx-c", 1)];

/// (topic, partition) → values, in the order they must appear.
pub type Log = BTreeMap<(String, i32), Vec<String>>;

/// Writes the sentinel to every partition, without a transaction.
pub fn write_sentinels(bootstrap: &str) {
    let p = Producer::builder()
        .bootstrap_servers(bootstrap)
        .build()
        .unwrap();
    for (t, n) in TOPICS {
        for part in 0..n {
            p.produce_record(ProducerRecord::new(t).partition(part).value(SENTINEL))
                .unwrap();
        }
    }
    p.close(T).unwrap();
}

/// Every value librdkafka's consumer (with `isolation`) reads from every partition up to the
/// sentinel, in offset order.
pub fn read(bootstrap: &str, isolation: &str) -> Log {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kprod-txn-readback")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "10")
        .set("isolation.level", isolation)
        .create()
        .expect("librdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    let mut log = Log::new();
    for (t, n) in TOPICS {
        for p in 0..n {
            tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
            log.insert((t.to_string(), p), Vec::new());
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut open = log.len();
    let mut ended = BTreeSet::new();
    let deadline = Instant::now() + T;
    while open > 0 {
        assert!(
            Instant::now() < deadline,
            "{isolation}: {open} partitions short of the sentinel; read {:?}",
            log.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg.unwrap_or_else(|e| panic!("consumer: {e}"));
        let key = (msg.topic().to_string(), msg.partition());
        let value = String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned();
        assert!(
            !ended.contains(&key),
            "{key:?}: a record after the sentinel"
        );
        if value == SENTINEL {
            ended.insert(key);
            open -= 1;
        } else {
            log.get_mut(&key).expect("assigned").push(value);
        }
    }
    log
}

/// Every partition, empty.
pub fn read_template() -> Log {
    let mut log = Log::new();
    for (t, n) in TOPICS {
        for p in 0..n {
            log.insert((t.to_string(), p), Vec::new());
        }
    }
    log
}

/// A small deterministic random source (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Asserts two logs are equal, naming per partition what is missing, extra or out of order
/// (a few of each) rather than printing both.
pub fn assert_same_log(got: &Log, want: &Log, what: &str) {
    let mut problems = Vec::new();
    for (k, w) in want {
        let g = got.get(k).map(Vec::as_slice).unwrap_or_default();
        if g == w.as_slice() {
            continue;
        }
        let missing: Vec<&String> = w.iter().filter(|v| !g.contains(v)).take(5).collect();
        let extra: Vec<&String> = g.iter().filter(|v| !w.contains(v)).take(5).collect();
        problems.push(format!(
            "{k:?}: {} read, {} wanted; missing {missing:?}, extra {extra:?}{}",
            g.len(),
            w.len(),
            if missing.is_empty() && extra.is_empty() {
                " (same records, another order or duplicated)"
            } else {
                ""
            }
        ));
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        problems.push(format!("{k:?}: not expected at all"));
    }
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}
