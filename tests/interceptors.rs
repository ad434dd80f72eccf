//! Interceptors (issue #19): what `on_send` adds reaches the broker and librdkafka's consumer
//! reads it back; a refusal or a panic in `on_send` fails that call with the interceptor's
//! reason and hands the record back; panics in `on_acknowledgement` lose no completion.
//! (`tests/completions.rs` checks `on_acknowledgement` fires once per record across every
//! outcome.)
#![cfg(feature = "mock")]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::{DeliveryResult, Error, Header, Producer, ProducerInterceptor, ProducerRecord};
use support::readback::read_back;

const TOPIC: &str = "icpt";
const WAIT: Duration = Duration::from_secs(20);

/// Stamps each record with a `trace` header derived from its value, and counts outcomes.
#[derive(Default)]
struct Tracer {
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ProducerInterceptor for Tracer {
    fn on_send(&self, record: &mut ProducerRecord) -> Result<(), String> {
        let v = record.value.clone().unwrap_or_default();
        let trace = format!("trace-{}", String::from_utf8_lossy(&v));
        record.headers.push(Header::new("trace", trace));
        Ok(())
    }
    fn on_acknowledgement(&self, result: &DeliveryResult) {
        let n = if result.is_ok() {
            &self.acked
        } else {
            &self.failed
        };
        n.fetch_add(1, Ordering::SeqCst);
    }
    fn name(&self) -> &str {
        "tracer"
    }
}

#[test]
fn headers_added_by_on_send_are_read_back_by_librdkafka() {
    let cluster = MockCluster::builder().topic(TOPIC, 3).build().unwrap();
    let tracer = Arc::new(Tracer::default());
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .interceptor(tracer.clone())
        .build()
        .unwrap();
    // Every way of sending goes through the interceptors.
    let n = 400;
    let mut handles = Vec::new();
    for i in 0..n {
        let v = i.to_string();
        match i % 4 {
            0 => p.send(TOPIC, format!("k{i}"), v).unwrap(),
            1 => p
                .send_with(ProducerRecord::new(TOPIC).value(v), |r| {
                    r.unwrap();
                })
                .unwrap(),
            2 => handles.push(
                p.produce_async(ProducerRecord::new(TOPIC).value(v))
                    .unwrap(),
            ),
            _ => {
                let md = p.produce(TOPIC, (), v).unwrap();
                assert!(md.offset >= 0);
            }
        }
    }
    for h in handles {
        h.wait().unwrap();
    }
    p.flush(WAIT).unwrap();
    p.close(WAIT).unwrap();
    assert_eq!(tracer.acked.load(Ordering::SeqCst), n);
    assert_eq!(tracer.failed.load(Ordering::SeqCst), 0);
    let got = read_back(&cluster.bootstrap_servers(), TOPIC, 3, n as usize, WAIT);
    assert_eq!(got.len(), n as usize);
    for g in &got {
        let value = String::from_utf8(g.value.clone().unwrap()).unwrap();
        let want = format!("trace-{value}").into_bytes();
        assert_eq!(
            g.headers,
            vec![("trace".to_string(), Some(want))],
            "record {value}"
        );
    }
}

/// Refuses records whose value starts with `bad`, panics on `boom`, and appends its name to
/// a header otherwise (so the order of interceptors shows).
struct Gate {
    name: &'static str,
    saw: AtomicU64,
}

impl ProducerInterceptor for Gate {
    fn on_send(&self, record: &mut ProducerRecord) -> Result<(), String> {
        self.saw.fetch_add(1, Ordering::SeqCst);
        let v = record.value.clone().unwrap_or_default();
        if v.starts_with(b"bad") {
            return Err("values starting with `bad` are not allowed".into());
        }
        if v.starts_with(b"boom") {
            panic!("on_send panics (on purpose)");
        }
        record.headers.push(Header::new("via", self.name));
        Ok(())
    }
    fn name(&self) -> &str {
        self.name
    }
}

#[test]
fn a_refusal_or_a_panic_in_on_send_fails_the_call_and_hands_the_record_back() {
    let cluster = MockCluster::builder().topic(TOPIC, 1).build().unwrap();
    let (first, second) = (
        Arc::new(Gate {
            name: "first",
            saw: AtomicU64::new(0),
        }),
        Arc::new(Gate {
            name: "second",
            saw: AtomicU64::new(0),
        }),
    );
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .interceptor(first.clone())
        .interceptor(second.clone())
        .build()
        .unwrap();
    let e = p
        .send_record(ProducerRecord::new(TOPIC).key("k").value("bad value"))
        .unwrap_err();
    match &e.error {
        Error::Interceptor {
            interceptor,
            reason,
        } => {
            assert_eq!(interceptor, "first");
            assert!(reason.contains("not allowed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.error.is_retriable());
    assert_eq!(e.record.value.as_deref(), Some(&b"bad value"[..]));
    assert_eq!(e.record.key.as_deref(), Some(&b"k"[..]));
    // The first refused it: the second never saw it.
    assert_eq!(second.saw.load(Ordering::SeqCst), 0);
    // A blocking produce() gets the same refusal.
    let e = p.produce(TOPIC, (), "bad again").unwrap_err();
    assert!(matches!(e, Error::Interceptor { .. }), "{e:?}");
    // A panic is caught: the call fails, the record comes back, the producer goes on.
    let e = p
        .send_record(ProducerRecord::new(TOPIC).value("boom"))
        .unwrap_err();
    assert!(
        matches!(&e.error, Error::Interceptor { reason, .. } if reason.contains("panicked")),
        "{:?}",
        e.error
    );
    assert_eq!(e.record.value.as_deref(), Some(&b"boom"[..]));
    let md = p.produce(TOPIC, (), "fine").unwrap();
    p.close(WAIT).unwrap();
    // The first gate panicked; the second never saw that record.
    assert_eq!(p.metrics().interceptor_panics, 1);
    // Only the accepted record was written, with both interceptors' headers in order.
    let stored = cluster.records(TOPIC, 0);
    assert_eq!(stored.len(), 1);
    assert_eq!(md.offset, 0);
    let via: Vec<_> = stored[0]
        .headers
        .iter()
        .map(|h| h.value.clone().unwrap())
        .collect();
    assert_eq!(via, [&b"first"[..], &b"second"[..]]);
}

/// Panics in every `on_acknowledgement`.
struct AlwaysPanics;

impl ProducerInterceptor for AlwaysPanics {
    fn on_acknowledgement(&self, _: &DeliveryResult) {
        panic!("on_acknowledgement panics (on purpose)");
    }
}

#[test]
fn panics_in_on_acknowledgement_lose_no_completion() {
    let cluster = MockCluster::builder().topic(TOPIC, 2).build().unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .interceptor(AlwaysPanics)
        .build()
        .unwrap();
    let callbacks = Arc::new(AtomicU64::new(0));
    let n = 300u64;
    let mut handles = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            let c = callbacks.clone();
            p.send_with(ProducerRecord::new(TOPIC).value(i.to_string()), move |r| {
                r.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        } else {
            handles.push(
                p.produce_async(ProducerRecord::new(TOPIC).value(i.to_string()))
                    .unwrap(),
            );
        }
    }
    for h in handles {
        h.wait_timeout(WAIT).unwrap().unwrap();
    }
    p.flush(WAIT).unwrap();
    assert_eq!(callbacks.load(Ordering::SeqCst), n / 2);
    let m = p.metrics();
    assert_eq!(m.interceptor_panics, n);
    assert_eq!(m.callback_panics, 0);
    assert_eq!(m.records_acked, n);
    p.close(WAIT).unwrap();
    assert_eq!(
        cluster.records(TOPIC, 0).len() + cluster.records(TOPIC, 1).len(),
        n as usize
    );
}
