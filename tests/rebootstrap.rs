//! Re-bootstrapping (KIP-899): every broker the producer knows moves to a new address (the
//! mock re-advertises, the old addresses stop answering); the producer, finding no known
//! broker, starts again from `bootstrap.servers` after `metadata_rebootstrap_trigger`, learns
//! the new addresses from the answer, and delivers everything. With the strategy `none` it
//! keeps knocking on the old addresses and delivers nothing more (the control case).
#![cfg(feature = "mock")]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::{Producer, ProducerRecord};
use support::fault_proxy::FaultProxy;

const TOPIC: &str = "moving";
const PARTITIONS: i32 = 6;

struct Rig {
    cluster: MockCluster,
    /// In front of broker 1, never moved: what `bootstrap.servers` names (a stable DNS name
    /// or load balancer, in a real deployment).
    bootstrap: FaultProxy,
    /// Where the brokers are advertised now.
    advertised: Vec<FaultProxy>,
}

impl Rig {
    fn new() -> Rig {
        let cluster = MockCluster::builder()
            .brokers(3)
            .topic(TOPIC, PARTITIONS)
            .build()
            .unwrap();
        let bootstrap = FaultProxy::start(cluster.broker_addr(1), 1);
        let mut rig = Rig {
            cluster,
            bootstrap,
            advertised: Vec::new(),
        };
        rig.advertise_anew();
        rig
    }

    /// Every broker moves: new proxies start; the old ones are dropped (their ports refuse
    /// connections from now on) and every connection made through the bootstrap address is
    /// cut (the host behind it moved; the address itself still leads to the cluster); only
    /// then are the brokers advertised at their new addresses — so no connection the
    /// producer still has can tell it where they went.
    fn advertise_anew(&mut self) {
        let ids = self.cluster.broker_ids();
        let fresh: Vec<FaultProxy> = ids
            .iter()
            .map(|&b| FaultProxy::start(self.cluster.broker_addr(b), 100 + b as u64))
            .collect();
        self.advertised.clear();
        self.bootstrap.cut_all();
        for (&b, p) in ids.iter().zip(&fresh) {
            self.cluster.set_advertised_addr(b, Some(p.addr()));
        }
        self.advertised = fresh;
    }
}

fn producer(rig: &Rig, strategy: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(&rig.bootstrap.addr().to_string())
        .from_properties([
            ("metadata.recovery.strategy", strategy),
            ("metadata.recovery.rebootstrap.trigger.ms", "1000"),
            ("retry.backoff.ms", "20"),
            ("retry.backoff.max.ms", "200"),
            ("request.timeout.ms", "2000"),
        ])
        .unwrap()
        .linger(Duration::from_millis(2))
        .build()
        .unwrap()
}

fn send(p: &Producer, ids: std::ops::Range<usize>) {
    for i in ids {
        p.send_record(
            ProducerRecord::new(TOPIC)
                .key(format!("k{}", i % 23))
                .value(format!("{i:08}")),
        )
        .unwrap();
    }
}

/// How often each record is stored.
fn stored(cluster: &MockCluster) -> HashMap<usize, usize> {
    let mut n = HashMap::new();
    for p in 0..PARTITIONS {
        for r in cluster.records(TOPIC, p) {
            let i: usize = std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            *n.entry(i).or_default() += 1;
        }
    }
    n
}

#[test]
fn brokers_that_all_moved_are_found_again_through_bootstrap_servers() {
    let mut rig = Rig::new();
    let p = producer(&rig, "rebootstrap");
    send(&p, 0..2_000);
    p.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(p.metrics().rebootstraps, 0);
    rig.advertise_anew();
    send(&p, 2_000..4_000);
    p.flush(Duration::from_secs(30)).unwrap_or_else(|e| {
        panic!("{e}: metrics {:?}", p.metrics());
    });
    let m = p.metrics();
    assert!(m.rebootstraps >= 1, "{m:?}");
    assert_eq!((m.records_acked, m.records_failed), (4_000, 0), "{m:?}");
    let n = stored(&rig.cluster);
    assert!(
        (0..4_000).all(|i| n.get(&i) == Some(&1)),
        "each record stored once"
    );
    eprintln!(
        "re-bootstraps: {}, connects: {}",
        m.rebootstraps, m.connects
    );
}

#[test]
fn without_rebootstrap_the_moved_brokers_are_not_found() {
    let mut rig = Rig::new();
    let p = producer(&rig, "none");
    send(&p, 0..200);
    p.flush(Duration::from_secs(20)).unwrap();
    rig.advertise_anew();
    send(&p, 200..400);
    assert!(
        p.flush(Duration::from_secs(4)).is_err(),
        "delivered without re-bootstrapping?"
    );
    assert_eq!(p.metrics().rebootstraps, 0);
    p.close(Duration::ZERO).ok();
}

/// KIP-1102: a broker answering Metadata with REBOOTSTRAP_REQUIRED sends the producer back to
/// `bootstrap.servers` at once (no trigger wait), and it goes on delivering.
#[test]
fn rebootstrap_required_starts_again_from_bootstrap_servers() {
    use kprod::protocol::{ApiKey, ErrorCode};
    let rig = Rig::new();
    let p = Producer::builder()
        .bootstrap_servers(&rig.bootstrap.addr().to_string())
        .metadata_rebootstrap_trigger(Duration::from_secs(3600))
        .metadata_max_age(Duration::from_millis(200))
        .build()
        .unwrap();
    send(&p, 0..100);
    p.flush(Duration::from_secs(20)).unwrap();
    rig.cluster
        .fail_requests(ApiKey::METADATA.0, &[ErrorCode::REBOOTSTRAP_REQUIRED]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.metrics().rebootstraps == 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", p.metrics());
        std::thread::sleep(Duration::from_millis(5));
    }
    send(&p, 100..200);
    p.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(p.metrics().records_acked, 200);
}
