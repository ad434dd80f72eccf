//! Every delivery error says whether its record is in the log ([`DeliveryStatus`], librdkafka's
//! `rd_kafka_message_status`), and what it says is true: checked against the mock broker's log
//! in each case that can leave a record there or not — never sent, refused, sent and not
//! answered, purged buffered and in flight, closed in flight, delivered with and without acks.
//! (The deterministic simulation checks the same promise under its faults: a record said not
//! to be persisted is never in the log.)
#![cfg(feature = "mock")]

use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::protocol::{ApiKey, ErrorCode};
use kprod::{Acks, DeliveryHandle, DeliveryStatus, Error, Producer, ProducerRecord, PurgeScope};

const T: &str = "status";

fn cluster() -> MockCluster {
    MockCluster::builder().topic(T, 1).build().unwrap()
}

fn producer(c: &MockCluster) -> kprod::ProducerConfigBuilder {
    Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .linger(Duration::ZERO)
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn in_log(c: &MockCluster, value: &str) -> usize {
    c.records(T, 0)
        .iter()
        .filter(|r| r.value.as_deref() == Some(value.as_bytes()))
        .count()
}

fn send(p: &Producer, value: &str) -> DeliveryHandle {
    p.produce_async(ProducerRecord::new(T).value(value))
        .unwrap()
}

#[test]
fn delivered_records_are_persisted_and_acks_0_only_possibly() {
    let c = cluster();
    let p = producer(&c).build().unwrap();
    let m = p.produce(T, "k", "acked").unwrap();
    assert_eq!(m.status(), DeliveryStatus::Persisted);
    assert_eq!(DeliveryStatus::of(&Ok(m)), DeliveryStatus::Persisted);
    p.close(Duration::from_secs(5)).unwrap();

    let p = producer(&c)
        .acks(Acks::None)
        .idempotence(false)
        .build()
        .unwrap();
    let m = p.produce(T, "k", "unacked").unwrap();
    assert_eq!(m.offset, -1);
    assert_eq!(m.status(), DeliveryStatus::PossiblyPersisted);
    p.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_definite_refusal_is_not_persisted() {
    let c = cluster();
    let p = producer(&c).build().unwrap();
    p.produce(T, "k", "warm-up").unwrap();
    c.fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::INVALID_RECORD]);
    let e = send(&p, "refused").wait().unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::INVALID_RECORD), "{e}");
    assert_eq!(e.delivery_status(), DeliveryStatus::NotPersisted, "{e}");
    assert_eq!(in_log(&c, "refused"), 0);
    p.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn never_sent_is_not_persisted() {
    let c = MockCluster::builder()
        .topic(T, 1)
        .auto_create_topics(false, 1)
        .build()
        .unwrap();
    let p = producer(&c)
        .metadata_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = p
        .produce_async(ProducerRecord::new("no-such-topic").value("x"))
        .unwrap()
        .wait()
        .unwrap_err();
    assert_eq!(e.delivery_status(), DeliveryStatus::NotPersisted, "{e}");

    p.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn purged_while_buffered_is_not_persisted() {
    let c = cluster();
    let p = producer(&c).max_in_flight(1).build().unwrap();
    p.produce(T, "k", "warm-up").unwrap();
    let broker = c.partition_leader(T, 0).unwrap();
    c.stall(broker, true);
    let before = c.request_count(ApiKey::PRODUCE.0);
    let first = send(&p, "in-flight");
    wait_for("the request", Duration::from_secs(5), || {
        c.request_count(ApiKey::PRODUCE.0) > before
    });
    let second = send(&p, "buffered");
    p.purge(PurgeScope::Buffered, Duration::from_secs(5))
        .unwrap();
    let e = second.wait().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Purged {
                in_flight: false,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.delivery_status(), DeliveryStatus::NotPersisted, "{e}");
    c.stall(broker, false);
    assert_eq!(first.wait().unwrap().status(), DeliveryStatus::Persisted);
    p.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(in_log(&c, "buffered"), 0);
    p.close(Duration::from_secs(5)).unwrap();
}

/// The broker writes the record but answers later than the request timeout; the record fails
/// at its delivery timeout: possibly persisted — and it is in fact in the log.
#[test]
fn sent_and_unanswered_is_possibly_persisted_and_may_really_be_there() {
    let c = cluster();
    let p = producer(&c)
        .idempotence(false)
        .request_timeout(Duration::from_millis(300))
        .delivery_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    p.produce(T, "k", "warm-up").unwrap();
    let broker = c.partition_leader(T, 0).unwrap();
    c.set_latency(broker, Duration::from_secs(2));
    let e = send(&p, "unanswered").wait().unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert_eq!(
        e.delivery_status(),
        DeliveryStatus::PossiblyPersisted,
        "{e}"
    );
    assert!(e.delivery_status().may_be_in_log());
    assert!(in_log(&c, "unanswered") > 0, "the broker wrote it");
    c.set_latency(broker, Duration::ZERO);
    p.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn purged_in_flight_is_possibly_persisted() {
    let c = cluster();
    let p = producer(&c).build().unwrap();
    p.produce(T, "k", "warm-up").unwrap();
    let broker = c.partition_leader(T, 0).unwrap();
    c.stall(broker, true);
    let before = c.request_count(ApiKey::PRODUCE.0);
    let h = send(&p, "in-flight");
    wait_for("the request", Duration::from_secs(5), || {
        c.request_count(ApiKey::PRODUCE.0) > before
    });
    p.purge(PurgeScope::BufferedAndInFlight, Duration::from_secs(5))
        .unwrap();
    let e = h.wait().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Purged {
                in_flight: true,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.delivery_status(),
        DeliveryStatus::PossiblyPersisted,
        "{e}"
    );
    c.stall(broker, false);
    p.close(Duration::from_secs(5)).unwrap();
}

/// At close, a record in flight may be in the log; one still buffered behind it is not.
#[test]
fn closed_in_flight_is_possibly_persisted_and_buffered_is_not() {
    let c = cluster();
    let p = producer(&c).max_in_flight(1).build().unwrap();
    p.produce(T, "k", "warm-up").unwrap();
    let broker = c.partition_leader(T, 0).unwrap();
    c.stall(broker, true);
    let before = c.request_count(ApiKey::PRODUCE.0);
    let first = send(&p, "in-flight");
    wait_for("the request", Duration::from_secs(5), || {
        c.request_count(ApiKey::PRODUCE.0) > before
    });
    let second = send(&p, "behind");
    let e = p.close(Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    let a = first.wait().unwrap_err();
    assert_eq!(
        a.delivery_status(),
        DeliveryStatus::PossiblyPersisted,
        "{a}"
    );
    let b = second.wait().unwrap_err();
    assert_eq!(b.delivery_status(), DeliveryStatus::NotPersisted, "{b}");
    c.stall(broker, false);
}
