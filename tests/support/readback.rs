//! Reads a topic back with librdkafka's consumer (explicit assignment, from the beginning).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One record as librdkafka's consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl<M: Message> From<&M> for Got {
    fn from(msg: &M) -> Got {
        let timestamp = match msg.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
            Timestamp::NotAvailable => -1,
        };
        Got {
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp,
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers: msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// librdkafka's consumer, verifying CRCs, committing nothing; `extra` are more properties
/// (security).
fn consumer_with(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", "kprod-readback")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "10");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("librdkafka consumer")
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    consumer_with(bootstrap, &[])
}

/// Reads partitions `0..partitions` of `topic` until `want` records arrived or `timeout`
/// passed; sorted by (partition, offset).
pub fn read_back(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    timeout: Duration,
) -> Vec<Got> {
    read_back_with(bootstrap, &[], topic, partitions, want, timeout)
}

/// [`read_back`] with more consumer properties (`security.protocol`, `ssl.*`, `sasl.*`).
pub fn read_back_with(
    bootstrap: &str,
    extra: &[(&str, &str)],
    topic: &str,
    partitions: i32,
    want: usize,
    timeout: Duration,
) -> Vec<Got> {
    let consumer = consumer_with(bootstrap, extra);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + timeout;
    while got.len() < want && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        got.push(Got::from(
            &msg.unwrap_or_else(|e| panic!("consumer error {e}")),
        ));
    }
    got.sort_by_key(|r| (r.partition, r.offset));
    got
}

/// Reads every record of partitions `0..partitions` of `topic`: each partition up to the
/// larger of its high watermark (as the broker reports it when called) and `at_least[p]` (an
/// end offset known to exist, e.g. one past the last offset a producer was acknowledged —
/// some brokers report their watermark late), and at least `min_records` in all (records
/// acknowledged without an offset). Sorted by (partition, offset).
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    at_least: &[i64],
    min_records: usize,
    timeout: Duration,
) -> Vec<Got> {
    let consumer = consumer(bootstrap);
    let deadline = Instant::now() + timeout;
    let mut end = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
        end.push(high.max(at_least.get(p as usize).copied().unwrap_or(0)));
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    // Per partition: the next offset to read.
    let mut next = vec![0i64; partitions as usize];
    let mut got = Vec::new();
    while (0..partitions as usize).any(|p| next[p] < end[p]) || got.len() < min_records {
        assert!(
            Instant::now() < deadline,
            "{topic}: read {} records up to {next:?}, wanted {min_records} and {end:?}, \
             before the deadline",
            got.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let g = Got::from(&msg.unwrap_or_else(|e| panic!("consumer error {e}")));
        next[g.partition as usize] = g.offset + 1;
        got.push(g);
    }
    got.sort_by_key(|r| (r.partition, r.offset));
    got
}
