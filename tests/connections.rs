//! Connecting: names resolve off the I/O thread, and every address a name resolves to is
//! tried. Against kprod's mock cluster, with a resolver of the test's own
//! (`ProducerConfigBuilder::resolver`).
#![cfg(feature = "mock")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::{Producer, ProducerRecord};

/// One I/O thread serves two brokers; resolving broker B's name takes 2 s. Before, the lookup
/// ran on the I/O thread, so every partition it served waited. Now records for broker A are
/// acknowledged while B's name is still resolving, and B's records follow once it resolves.
#[test]
fn a_slow_name_delays_no_record_bound_for_another_broker() {
    let c = MockCluster::builder()
        .brokers(2)
        .topic("t", 2)
        .build()
        .unwrap();
    let (a, b) = (c.broker_addr(1), c.broker_addr(2));
    let part_of = |broker: i32| (0..2).find(|&p| c.partition_leader("t", p) == Some(broker));
    let (pa, pb) = (part_of(1).unwrap(), part_of(2).unwrap());
    let slow_port = b.port();
    let lookups = Arc::new(AtomicUsize::new(0));
    let seen = lookups.clone();
    let p = Producer::builder()
        .bootstrap_servers(&a.to_string())
        .io_threads(1)
        .linger(Duration::ZERO)
        .resolver(
            move |host: &str, port: u16| -> std::io::Result<Vec<SocketAddr>> {
                seen.fetch_add(1, Ordering::SeqCst);
                if port == slow_port {
                    std::thread::sleep(Duration::from_secs(2));
                }
                Ok(vec![SocketAddr::new(host.parse().unwrap(), port)])
            },
        )
        .build()
        .unwrap();
    let record = |part| ProducerRecord::new("t").partition(part).value("v");
    // Warm up: metadata known, broker A connected.
    p.produce_record(record(pa)).unwrap();
    let t = Instant::now();
    let to_b = p.produce_async(record(pb)).unwrap();
    // B's name is resolving now (2 s); A's records go meanwhile.
    for _ in 0..20 {
        let md = p.produce_record(record(pa)).unwrap();
        assert_eq!(md.partition, pa);
    }
    let a_took = t.elapsed();
    assert!(
        a_took < Duration::from_millis(1500),
        "A's 20 records took {a_took:?}"
    );
    assert!(!to_b.is_done(), "B's record done before its name resolved");
    let md = to_b.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(md.partition, pb);
    let b_took = t.elapsed();
    assert!(
        b_took >= Duration::from_secs(2),
        "B's record took {b_took:?}"
    );
    assert!(lookups.load(Ordering::SeqCst) >= 2);
    p.close(Duration::from_secs(5)).unwrap();
}

/// A name resolving to a dead address first and a live one second: the second is tried, and
/// reached. Before, only the first resolved address was ever tried.
#[test]
fn every_resolved_address_is_tried_in_turn() {
    let c = MockCluster::builder().topic("t", 1).build().unwrap();
    let live = c.broker_addr(1);
    // An address nothing listens on: bind, note it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&format!("kafka.test:{}", live.port()))
        .resolver(
            move |host: &str, port: u16| -> std::io::Result<Vec<SocketAddr>> {
                match host {
                    "kafka.test" => Ok(vec![dead, SocketAddr::new(live.ip(), port)]),
                    other => Ok(vec![SocketAddr::new(other.parse().unwrap(), port)]),
                }
            },
        )
        .build()
        .unwrap();
    let md = p
        .produce_record(ProducerRecord::new("t").value("v"))
        .unwrap();
    assert_eq!((md.partition, md.offset), (0, 0));
    p.close(Duration::from_secs(5)).unwrap();
}

/// A name that resolves to nothing fails its connection, and the records fail at their
/// deadline with the reason in the log, not a panic or a stuck thread.
#[test]
fn a_name_that_does_not_resolve_ends_in_the_metadata_deadline() {
    let p = Producer::builder()
        .bootstrap_servers("nowhere.invalid:9092")
        .metadata_timeout(Duration::from_secs(2))
        .resolver(
            |host: &str, _port: u16| -> std::io::Result<Vec<SocketAddr>> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host}: no such host"),
                ))
            },
        )
        .build()
        .unwrap();
    let t = Instant::now();
    let e = p
        .produce_record(ProducerRecord::new("t").value("v"))
        .unwrap_err();
    assert!(e.to_string().contains("metadata"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    p.close(Duration::from_secs(5)).unwrap();
}

/// KIP-951: a partition's leader moves; the old leader answers NOT_LEADER_OR_FOLLOWER naming
/// the new leader (Produce v10+). The record goes to the new leader with no Metadata request
/// in between. Before, kprod decoded the hint, ignored it, and waited for a refresh.
#[test]
fn a_leader_hint_routes_records_without_a_metadata_round_trip() {
    use kprod::protocol::ApiKey;
    let c = MockCluster::builder()
        .brokers(3)
        .topic("t", 1)
        .build()
        .unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .metadata_max_age(Duration::from_secs(600))
        .build()
        .unwrap();
    let record = || ProducerRecord::new("t").partition(0).value("v");
    assert_eq!(p.produce_record(record()).unwrap().offset, 0);
    let old = c.partition_leader("t", 0).unwrap();
    let new = c.broker_ids().into_iter().find(|&b| b != old).unwrap();
    let metadata_before = c.request_count(ApiKey::METADATA.0);
    c.set_partition_leader("t", 0, new);
    let md = p.produce_record(record()).unwrap();
    assert_eq!(md.offset, 1);
    assert_eq!(
        c.request_count(ApiKey::METADATA.0),
        metadata_before,
        "a Metadata request went out"
    );
    let m = p.metrics();
    assert_eq!(m.leader_hints, 1, "{m:?}");
    // Later records go straight to the new leader: one NOT_LEADER answer in all.
    for i in 2..10 {
        assert_eq!(p.produce_record(record()).unwrap().offset, i);
    }
    assert_eq!(p.metrics().retries, 1);
    assert_eq!(c.request_count(ApiKey::METADATA.0), metadata_before);
    p.close(Duration::from_secs(5)).unwrap();
}

/// Metadata v13 (KIP-1102) can fail a whole response (REBOOTSTRAP_REQUIRED): such an answer
/// describes nothing, so the producer asks again after its backoff and delivers once an answer
/// describes the cluster — it neither takes the empty answer as the cluster's state nor drops
/// the connection.
#[test]
fn a_whole_metadata_response_error_is_asked_again() {
    use kprod::protocol::{ApiKey, ErrorCode};
    let c = MockCluster::builder().topic("t", 1).build().unwrap();
    c.fail_requests(ApiKey::METADATA.0, &[ErrorCode::REBOOTSTRAP_REQUIRED; 2]);
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .linger(Duration::ZERO)
        .retry_backoff(Duration::from_millis(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let meta = p.produce("t", (), "v").expect("delivered after the errors");
    assert_eq!(meta.partition, 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    // The fault took effect: v13 was used and the two failed answers were asked again.
    assert!(c.api_versions_used(ApiKey::METADATA.0).contains(&13));
    assert!(c.request_count(ApiKey::METADATA.0) >= 3);
    assert!(c.errors().is_empty(), "{:?}", c.errors());
    p.close(Duration::from_secs(5)).unwrap();
}
