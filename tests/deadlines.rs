//! Every record ends within its deadline: a producer id refused for
//! good, or retried. Against kprod's mock cluster
//! (librdkafka talks to it in tests/mock_cluster.rs) and a closed port.
#![cfg(all(feature = "mock", target_os = "linux"))]

use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::protocol::{ApiKey, ErrorCode};
use kprod::{Deadline, Error, Producer, ProducerRecord};

fn record() -> ProducerRecord {
    ProducerRecord::new("t").value("v")
}

/// InitProducerId refused with CLUSTER_AUTHORIZATION_FAILED (a principal without
/// IdempotentWrite): the waiting record fails at once with the code, not retriable; later
/// sends fail at the call; close is prompt. Before, the handle was still pending after 20 s
/// and close(3 s) timed out.
#[test]
fn producer_id_refused_for_good_fails_every_record_with_the_code() {
    let c = MockCluster::builder().topic("t", 2).build().unwrap();
    c.fail_requests(
        ApiKey::INIT_PRODUCER_ID.0,
        &[ErrorCode::CLUSTER_AUTHORIZATION_FAILED],
    );
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .delivery_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let t = Instant::now();
    let waiting: Vec<_> = (0..10)
        .map(|_| p.produce_async(record()).unwrap())
        .collect();
    let e = p.produce_record(record()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Kafka {
                code: ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retriable());
    for h in waiting {
        let r = h
            .wait_timeout(Duration::from_secs(5))
            .expect("completed in time");
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Kafka {
                    code: ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Later sends are refused at the call, the record handed back.
    match p.send_record(record()) {
        Err(e) => assert!(
            e.to_string().contains("CLUSTER_AUTHORIZATION_FAILED"),
            "{e}"
        ),
        Ok(()) => panic!("a send after the fatal error was accepted"),
    }
    let t = Instant::now();
    p.close(Duration::from_secs(3)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(
        c.request_count(ApiKey::PRODUCE.0),
        0,
        "nothing sent without an id"
    );
}

/// InitProducerId failing retriably without end: the records fail at their delivery
/// timeout, the requests back off (doubling), and close is prompt. A few retriable failures
/// and then success: the record is delivered.
#[test]
fn producer_id_retried_with_backoff_within_the_delivery_timeout() {
    let c = MockCluster::builder().topic("t", 2).build().unwrap();
    c.fail_requests(
        ApiKey::INIT_PRODUCER_ID.0,
        &[ErrorCode::COORDINATOR_LOAD_IN_PROGRESS; 10_000],
    );
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .delivery_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_secs(2))
        .retry_backoff(Duration::from_millis(50))
        .retry_backoff_max(Duration::from_millis(800))
        .build()
        .unwrap();
    let t = Instant::now();
    let e = p.produce_record(record()).unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(
            e,
            Error::Timeout {
                deadline: Deadline::Delivery,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    // 50, 100, 200, 400, 800, 800 ms ... (±20%): about 6 asks in 3 s, not one per turn.
    let asks = c.request_count(ApiKey::INIT_PRODUCER_ID.0);
    assert!(
        (3..=12).contains(&asks),
        "{asks} InitProducerId requests in {took:?}"
    );
    let t = Instant::now();
    p.close(Duration::from_secs(3)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    let c = MockCluster::builder().topic("t", 2).build().unwrap();
    c.fail_requests(
        ApiKey::INIT_PRODUCER_ID.0,
        &[ErrorCode::COORDINATOR_NOT_AVAILABLE; 3],
    );
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .retry_backoff(Duration::from_millis(20))
        .build()
        .unwrap();
    let md = p.produce_record(record()).unwrap();
    assert_eq!(md.offset, 0);
    assert_eq!(c.request_count(ApiKey::INIT_PRODUCER_ID.0), 4);
    p.close(Duration::from_secs(3)).unwrap();
}
