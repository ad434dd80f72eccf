//! Every completion fires exactly once — on success, failure, timeout, flush, close and drop —
//! over random interleavings of `send`, `send_with`, `produce_async`, `flush`, `purge` (both
//! scopes), injected faults, and an ending by `close` (with a random timeout) or by drop. Runs against kprod's own mock
//! cluster (in-process), so faults can be armed between any two calls.
//!
//! Checked for every case:
//! - each `send_with` callback ran exactly once, and each `produce_async` handle yielded one
//!   result, by the time `close`/drop returned;
//! - after a `flush` that returned `Ok`, every callback of a record sent before it had run;
//! - `records_acked + records_failed == records_sent` (the fire-and-forget ones included), and
//!   nothing is still in flight;
//! - every record a callback or handle reported delivered is stored in the cluster;
//! - a send after close is refused with `Closed` and its callback never runs;
//! - no `kprod-*` thread is left;
//! - in half the cases, with two interceptors registered (one counting, one that panics in
//!   every fifth `on_acknowledgement`): `on_acknowledgement` saw exactly one outcome per record
//!   that passed `on_send` (the refused send after close included), no delivered offset twice,
//!   every stored record carries the header `on_send` added, and the panics are counted in
//!   `metrics()` without a completion lost; with the feature `opentelemetry`, traced too (every
//!   span recorded): one ended span per record past `on_send`, its outcome matching, and a
//!   `traceparent` on every stored record.
//!
//! One test in this binary: it counts the process's threads by name.
#![cfg(all(feature = "mock", target_os = "linux"))]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::protocol::{ApiKey, ErrorCode};
use kprod::{
    DeliveryHandle, DeliveryResult, Error, Header, Producer, ProducerInterceptor, ProducerRecord,
    PurgeScope,
};
use proptest::prelude::*;
use support::threads::threads_reach;

const TOPIC: &str = "t";
const PARTITIONS: i32 = 4;

#[derive(Debug, Clone)]
enum Fault {
    /// The next `n` Produce requests answer a retriable error.
    Retriable(u8),
    /// The next Produce request answers an error no retry can fix.
    Fatal,
    /// Broker 1 drops the connection on its `n`th request from now.
    DropConnection(u32),
    /// Broker 1 stops answering (true) or answers again (false).
    Stall(bool),
    /// Broker 2 goes down (true) or comes back (false).
    Down(bool),
}

#[derive(Debug, Clone)]
enum Op {
    Send(u8),
    SendWith(u8),
    ProduceAsync(u8),
    /// Wait for the oldest pending handle.
    WaitOne,
    /// Flush with a short (may time out) or a long timeout.
    Flush {
        long: bool,
    },
    Fault(Fault),
    /// Purge what is buffered, or that and what is in flight.
    Purge {
        in_flight: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum End {
    Close(Duration),
    Drop,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1u8..4).prop_map(Fault::Retriable),
        Just(Fault::Fatal),
        (1u32..4).prop_map(Fault::DropConnection),
        any::<bool>().prop_map(Fault::Stall),
        any::<bool>().prop_map(Fault::Down),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..50).prop_map(Op::Send),
        3 => (1u8..50).prop_map(Op::SendWith),
        3 => (1u8..50).prop_map(Op::ProduceAsync),
        1 => Just(Op::WaitOne),
        2 => any::<bool>().prop_map(|long| Op::Flush { long }),
        2 => fault().prop_map(Op::Fault),
        1 => any::<bool>().prop_map(|in_flight| Op::Purge { in_flight }),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        Just(End::Close(Duration::ZERO)),
        Just(End::Close(Duration::from_millis(50))),
        Just(End::Close(Duration::from_secs(5))),
        Just(End::Drop),
    ]
}

/// Counts what it sees: records past `on_send` (each stamped with a header), outcomes, and
/// delivered offsets seen twice.
#[derive(Default)]
struct Counting {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    offsets: parking_lot::Mutex<HashSet<(i32, i64)>>,
    twice: AtomicU64,
}

impl ProducerInterceptor for Counting {
    fn on_send(&self, record: &mut ProducerRecord) -> Result<(), String> {
        record.headers.push(Header::new("seen", "1"));
        self.sent.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn on_acknowledgement(&self, result: &DeliveryResult) {
        match result {
            Ok(md) => {
                if !self.offsets.lock().insert((md.partition, md.offset)) {
                    self.twice.fetch_add(1, Ordering::SeqCst);
                }
                self.acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Panics in every fifth `on_acknowledgement`, counting its panics.
#[derive(Default)]
struct Panicky {
    seen: AtomicU64,
    panicked: AtomicU64,
}

impl ProducerInterceptor for Panicky {
    fn on_acknowledgement(&self, _: &DeliveryResult) {
        if self.seen.fetch_add(1, Ordering::SeqCst) % 5 == 4 {
            self.panicked.fetch_add(1, Ordering::SeqCst);
            panic!("an interceptor that panics (on purpose)");
        }
    }
}

/// Record ids are their values, so what the cluster stored can be matched to completions.
fn record(id: usize) -> ProducerRecord {
    ProducerRecord::new(TOPIC)
        .key(format!("k{}", id % 7))
        .value(id.to_string())
}

/// Runs one case; returns a description of the first broken promise.
fn run_case(ops: &[Op], end: End, intercepted: bool) -> Result<(), TestCaseError> {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic(TOPIC, PARTITIONS)
        .build()
        .unwrap();
    let (counting, panicky) = (Arc::new(Counting::default()), Arc::new(Panicky::default()));
    let mut builder = Producer::builder();
    if intercepted {
        builder = builder
            .interceptor(counting.clone())
            .interceptor(panicky.clone());
    }
    #[cfg(feature = "opentelemetry")]
    let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    // Kept for the case: the SDK shuts a provider down when its handle is dropped.
    #[cfg(feature = "opentelemetry")]
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    #[cfg(feature = "opentelemetry")]
    if intercepted {
        builder = builder.opentelemetry(kprod::otel::OpenTelemetry::new().traces(&provider));
    }
    let producer = builder
        .bootstrap_servers(&cluster.bootstrap_servers())
        .io_threads(2)
        .callback_threads(2)
        .linger(Duration::from_millis(2))
        .request_timeout(Duration::from_millis(400))
        .delivery_timeout(Duration::from_millis(1500))
        .metadata_timeout(Duration::from_millis(1500))
        .retry_backoff(Duration::from_millis(10))
        .retry_backoff_max(Duration::from_millis(50))
        .build()
        .unwrap();

    // callbacks[id]: how often record id's callback ran; delivered: ids reported acknowledged.
    let callbacks: Arc<Vec<AtomicU32>> =
        Arc::new((0..64 * 50).map(|_| AtomicU32::new(0)).collect());
    let delivered = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let mut handles: std::collections::VecDeque<(usize, DeliveryHandle)> = Default::default();
    let mut with_callback = Vec::new();
    let mut next_id = 0usize;

    let settle =
        |id: usize, r: &kprod::DeliveryResult, delivered: &parking_lot::Mutex<HashSet<usize>>| {
            if r.is_ok() {
                delivered.lock().insert(id);
            }
        };

    for op in ops {
        match op {
            Op::Send(n) => {
                for _ in 0..*n {
                    producer.send_record(record(next_id)).unwrap();
                    next_id += 1;
                }
            }
            Op::SendWith(n) => {
                for _ in 0..*n {
                    let id = next_id;
                    next_id += 1;
                    let (cbs, del) = (callbacks.clone(), delivered.clone());
                    producer
                        .send_with(record(id), move |r| {
                            if r.is_ok() {
                                del.lock().insert(id);
                            }
                            cbs[id].fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap();
                    with_callback.push(id);
                }
            }
            Op::ProduceAsync(n) => {
                for _ in 0..*n {
                    let id = next_id;
                    next_id += 1;
                    handles.push_back((id, producer.produce_async(record(id)).unwrap()));
                }
            }
            Op::WaitOne => {
                if let Some((id, h)) = handles.pop_front() {
                    let r = h.wait_timeout(Duration::from_secs(10));
                    let r = r.map_err(|_| {
                        TestCaseError::fail(format!("record {id}: no completion within 10 s"))
                    })?;
                    settle(id, &r, &delivered);
                }
            }
            Op::Flush { long } => {
                let ok = producer
                    .flush(if *long {
                        Duration::from_secs(8)
                    } else {
                        Duration::from_millis(20)
                    })
                    .is_ok();
                // The delivery timeout (1.5 s) bounds every record, so a long flush succeeds.
                prop_assert!(ok || !*long, "flush(8 s) timed out");
                if ok {
                    for &id in &with_callback {
                        let n = callbacks[id].load(Ordering::SeqCst);
                        prop_assert_eq!(n, 1, "record {}: callbacks run after flush", id);
                    }
                    prop_assert_eq!(producer.metrics().in_flight, 0);
                }
            }
            Op::Purge { in_flight } => {
                let scope = if *in_flight {
                    PurgeScope::BufferedAndInFlight
                } else {
                    PurgeScope::Buffered
                };
                let r = producer.purge(scope, Duration::from_secs(5));
                prop_assert!(r.is_ok(), "purge: {:?}", r);
                if !*in_flight {
                    continue;
                }
                // Nothing sent before it is outstanding: every record has completed (its
                // callback may still be running).
                let m = producer.metrics();
                prop_assert_eq!(m.in_flight, 0, "after purging everything: {:?}", m);
            }
            Op::Fault(f) => match f {
                Fault::Retriable(n) => cluster.fail_requests(
                    ApiKey::PRODUCE.0,
                    &vec![ErrorCode::NOT_ENOUGH_REPLICAS; *n as usize],
                ),
                Fault::Fatal => cluster
                    .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::TOPIC_AUTHORIZATION_FAILED]),
                Fault::DropConnection(n) => cluster.drop_connection_on_request(1, *n),
                Fault::Stall(on) => cluster.stall(1, *on),
                Fault::Down(true) => cluster.broker_down(2),
                Fault::Down(false) => cluster.broker_up(2),
            },
        }
    }

    let started = Instant::now();
    let m = match end {
        End::Close(t) => {
            let _ = producer.close(t);
            // close(t) returns within t plus the time to fail what is pending and join threads.
            prop_assert!(
                started.elapsed() < t + Duration::from_secs(3),
                "close({:?}) took {:?}",
                t,
                started.elapsed()
            );
            // A send after close is refused and its callback never runs.
            let ran = Arc::new(AtomicU32::new(0));
            let r2 = ran.clone();
            let e = producer
                .send_with(record(0), move |_| {
                    r2.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap_err();
            prop_assert!(matches!(e.error, Error::Closed { .. }), "{:?}", e.error);
            let m = producer.metrics();
            if intercepted {
                prop_assert_eq!(
                    m.interceptor_panics,
                    panicky.panicked.load(Ordering::SeqCst),
                    "panics counted"
                );
            }
            drop(producer);
            prop_assert_eq!(ran.load(Ordering::SeqCst), 0);
            Some(m)
        }
        End::Drop => {
            // Dropping closes, bounded by the delivery timeout. A dropped producer's metrics
            // cannot be read; its callbacks and handles still can.
            drop(producer);
            prop_assert!(
                started.elapsed() < Duration::from_millis(1500) + Duration::from_secs(3),
                "drop took {:?}",
                started.elapsed()
            );
            None
        }
    };

    // Every callback ran exactly once.
    for &id in &with_callback {
        let n = callbacks[id].load(Ordering::SeqCst);
        prop_assert_eq!(n, 1, "record {}: callback ran {} times", id, n);
    }
    // Every handle yields its result at once.
    for (id, h) in handles.drain(..) {
        let r = h
            .try_result()
            .map_err(|_| TestCaseError::fail(format!("record {id}: handle pending after close")))?;
        settle(id, &r, &delivered);
    }
    if let Some(m) = m {
        prop_assert_eq!(m.records_sent, next_id as u64);
        prop_assert_eq!(
            m.records_acked + m.records_failed,
            m.records_sent,
            "acked + failed == sent: {:?}",
            m
        );
        prop_assert_eq!(m.in_flight, 0);
    }
    // Whatever was reported delivered is in the cluster.
    let mut stored = HashSet::new();
    for p in 0..PARTITIONS {
        for r in cluster.records(TOPIC, p) {
            let v = r.value.expect("value");
            stored.insert(std::str::from_utf8(&v).unwrap().parse::<usize>().unwrap());
        }
    }
    for id in delivered.lock().iter() {
        prop_assert!(
            stored.contains(id),
            "record {} reported delivered, not stored",
            id
        );
    }
    if intercepted {
        // One outcome per record past on_send: every sent one, and the send refused after
        // close.
        let sent = counting.sent.load(Ordering::SeqCst);
        let refused_after_close = matches!(end, End::Close(_)) as u64;
        prop_assert_eq!(sent, next_id as u64 + refused_after_close);
        let (acked, failed) = (
            counting.acked.load(Ordering::SeqCst),
            counting.failed.load(Ordering::SeqCst),
        );
        prop_assert_eq!(acked + failed, sent, "on_acknowledgement once per record");
        #[cfg(feature = "opentelemetry")]
        {
            // Each record's span ended once, with the outcome the interceptor saw.
            let ended = spans.get_finished_spans().unwrap();
            let errors = ended
                .iter()
                .filter(|s| matches!(s.status, opentelemetry::trace::Status::Error { .. }))
                .count() as u64;
            prop_assert_eq!(ended.len() as u64, sent, "one ended span per record");
            prop_assert_eq!(errors, failed, "failed records' spans are errors");
            for p in 0..PARTITIONS {
                for r in cluster.records(TOPIC, p) {
                    prop_assert!(
                        r.headers.iter().any(|h| h.key == "traceparent"),
                        "a stored record without its traceparent"
                    );
                }
            }
        }
        prop_assert_eq!(
            counting.twice.load(Ordering::SeqCst),
            0,
            "an offset acked twice"
        );
        prop_assert!(
            acked <= stored.len() as u64,
            "{} acked, {} stored",
            acked,
            stored.len()
        );
        // What on_send added reached the broker.
        for p in 0..PARTITIONS {
            for r in cluster.records(TOPIC, p) {
                prop_assert!(
                    r.headers.iter().any(|h| h.key == "seen"),
                    "a stored record without the interceptor's header"
                );
            }
        }
    }
    // No thread outlives close or drop.
    prop_assert_eq!(threads_reach(0), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_completion_fires_exactly_once(
        ops in prop::collection::vec(op(), 1..24),
        end in end(),
        intercepted in any::<bool>(),
    ) {
        run_case(&ops, end, intercepted)?;
    }
}
