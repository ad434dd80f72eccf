//! `send()` from a hot loop allocates nothing beyond the record's own bytes: counted by a
//! global allocator that counts the calling thread's allocations only.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use counting_alloc::{counted, Counting};
use kprod::{Producer, ProducerRecord};
use rdkafka::mocking::MockCluster;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn send_allocates_nothing_beyond_the_records_bytes() {
    const N: usize = 100_000;
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("hot", 3, 1).unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .queue_capacity(N)
        .acks(kprod::Acks::Leader)
        .build()
        .unwrap();
    // The topic's metadata and the rings are set up by the first record.
    p.produce("hot", "k", "v").unwrap();
    let key = Bytes::from_static(b"key-0123");
    let value = Bytes::from(vec![7u8; 100]);
    // A `Bytes` made from a Vec allocates its shared header on the first clone: do it here.
    drop(value.clone());
    let owned = counted(|| {
        for _ in 0..N {
            p.send("hot", key.clone(), value.clone()).unwrap();
        }
    });
    assert_eq!(
        owned, 0,
        "send() with Bytes allocated {owned} times in {N} calls"
    );
    // Borrowed slices are copied: one allocation for the key, one for the value, no more.
    let borrowed = counted(|| {
        for _ in 0..1000 {
            p.send("hot", &b"key-0123"[..], &[7u8; 100][..]).unwrap();
        }
    });
    assert_eq!(borrowed, 2000);
    // A whole record for a topic named at run time: shared, the name is not copied, and a
    // callback that captures nothing needs no box.
    let name: Arc<str> = String::from("hot").into();
    let records = counted(|| {
        for _ in 0..1000 {
            let r = ProducerRecord::new(name.clone()).key(key.clone());
            p.send_with(r.value(value.clone()), |r| drop(r.unwrap()))
                .unwrap();
        }
    });
    assert_eq!(
        records, 0,
        "send_with() allocated {records} times in 1000 calls"
    );
    // Owned, each record's name is a copy: one allocation each.
    let owned_names = counted(|| {
        for _ in 0..1000 {
            let r = ProducerRecord::new(String::from("hot")).key(key.clone());
            p.send_record(r.value(value.clone())).unwrap();
        }
    });
    assert_eq!(owned_names, 1000);
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(p.metrics().records_acked, N as u64 + 3001);
    p.close(Duration::from_secs(30)).unwrap();
}
