//! The mock's TLS and SASL server side, proven by librdkafka 2.12 (OpenSSL, its own SCRAM
//! client, which checks the server's signature): over every combination of {plaintext, TLS,
//! mTLS} × {none, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512} librdkafka produces idempotently into
//! kprod's mock and reads the records back; a wrong password, an unknown user, an untrusted
//! broker certificate and a missing client certificate fail for librdkafka too.
#![cfg(feature = "mock")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::sasl::Mechanism;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use support::certs::pki;
use support::readback::read_back_with;
use support::secure::{as_strs, Listener, Tls, PASSWORD, USER, WAIT};

const TOPIC: &str = "rd-secured";

#[derive(Default)]
struct Seen {
    ok: AtomicUsize,
    failed: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

struct Ctx(Arc<Seen>);
impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0
            .errors
            .lock()
            .unwrap()
            .push(format!("{error}: {reason}"));
    }
}
impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::SeqCst),
            Err(_) => self.0.failed.fetch_add(1, Ordering::SeqCst),
        };
    }
}

/// librdkafka's idempotent producer with `props`; sends `n` records and polls until each has
/// its report (or `WAIT` passes). Returns what it saw.
fn produce(
    cluster: &MockCluster,
    props: &[(String, String)],
    n: usize,
    timeout_ms: &str,
) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", cluster.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.timeout.ms", timeout_ms);
    for (k, v) in props {
        c.set(k, v);
    }
    let p: BaseProducer<Ctx> = c
        .create_with_context(Ctx(seen.clone()))
        .expect("librdkafka");
    for i in 0..n {
        let v = format!("rd #{i}");
        let r = BaseRecord::<(), str, ()>::with_opaque_to(TOPIC, ())
            .partition((i % 2) as i32)
            .payload(&v);
        p.send(r).map_err(|(e, _)| e).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while seen.ok.load(Ordering::SeqCst) + seen.failed.load(Ordering::SeqCst) < n
        && Instant::now() < deadline
    {
        p.poll(Duration::from_millis(20));
    }
    let _ = p.flush(Duration::from_secs(1));
    seen
}

#[test]
fn librdkafka_produces_and_reads_back_over_every_listener() {
    for l in Listener::all() {
        let cluster = l
            .cluster(MockCluster::builder().topic(TOPIC, 2))
            .build()
            .unwrap();
        let props = l.good_props();
        let seen = produce(&cluster, &props, 60, "20000");
        assert_eq!(
            seen.ok.load(Ordering::SeqCst),
            60,
            "{l:?}: {:?}",
            seen.errors.lock().unwrap()
        );
        // The mock stored them, idempotently (a producer id on every record).
        let stored: Vec<_> = (0..2).flat_map(|p| cluster.records(TOPIC, p)).collect();
        assert_eq!(stored.len(), 60, "{l:?}");
        assert!(stored.iter().all(|r| r.producer_id >= 0), "{l:?}");
        let got = read_back_with(
            &cluster.bootstrap_servers(),
            &as_strs(&props),
            TOPIC,
            2,
            60,
            WAIT,
        );
        assert_eq!(got.len(), 60, "{l:?}");
        // Each partition holds its records once, in the order sent, with their values.
        for p in 0..2 {
            let values: Vec<String> = got
                .iter()
                .filter(|g| g.partition == p)
                .map(|g| String::from_utf8(g.value.clone().unwrap()).unwrap())
                .collect();
            let sent: Vec<String> = (0..60)
                .filter(|i| i % 2 == p as usize)
                .map(|i| format!("rd #{i}"))
                .collect();
            assert_eq!(values, sent, "{l:?}: partition {p}");
        }
        assert!(cluster.errors().is_empty(), "{l:?}: {:?}", cluster.errors());
        assert_eq!(cluster.authentication_failures(), 0, "{l:?}");
    }
}

/// librdkafka's records fail, its error callback names `expect`, and the mock stored nothing.
fn fails_for_librdkafka(cluster: &MockCluster, props: &[(String, String)], expect: &[&str]) {
    let seen = produce(cluster, props, 5, "3000");
    assert_eq!(seen.ok.load(Ordering::SeqCst), 0);
    assert_eq!(seen.failed.load(Ordering::SeqCst), 5);
    let errors = seen.errors.lock().unwrap().join("\n");
    assert!(
        expect.iter().any(|e| errors.contains(e)),
        "wanted one of {expect:?} in:\n{errors}"
    );
    assert_eq!(
        cluster.end_offset(TOPIC, 0) + cluster.end_offset(TOPIC, 1),
        0
    );
}

#[test]
fn wrong_credentials_and_untrusted_certificates_fail_for_librdkafka_too() {
    for mechanism in Mechanism::WITH_PASSWORD {
        let l = Listener {
            tls: Tls::Server,
            sasl: Some(mechanism),
        };
        for (user, password) in [(USER, "wrong-pw"), ("mallory", PASSWORD)] {
            let cluster = l
                .cluster(MockCluster::builder().topic(TOPIC, 2))
                .build()
                .unwrap();
            fails_for_librdkafka(
                &cluster,
                &l.props(user, password),
                &["Authentication", "authentication"],
            );
            assert!(cluster.authentication_failures() >= 1, "{mechanism} {user}");
        }
    }
    // The mock signs SCRAM with the wrong key: librdkafka checks the signature and refuses.
    let l = Listener {
        tls: Tls::None,
        sasl: Some(Mechanism::ScramSha256),
    };
    let cluster = l
        .cluster(MockCluster::builder().topic(TOPIC, 2))
        .sasl_forge_scram_signature(true)
        .build()
        .unwrap();
    fails_for_librdkafka(&cluster, &l.good_props(), &["ServerSignature", "signature"]);
    // A broker certificate from a CA librdkafka does not trust.
    let pki = pki();
    let tls = Listener {
        tls: Tls::Server,
        sasl: None,
    };
    let cluster = MockCluster::builder()
        .topic(TOPIC, 2)
        .tls(&pki.untrusted_broker.cert, &pki.untrusted_broker.key)
        .build()
        .unwrap();
    fails_for_librdkafka(&cluster, &tls.good_props(), &["certificate verify failed"]);
    // A listener that requires a client certificate, and a client without one.
    let cluster = Listener {
        tls: Tls::Mutual,
        sasl: None,
    }
    .cluster(MockCluster::builder().topic(TOPIC, 2))
    .build()
    .unwrap();
    fails_for_librdkafka(&cluster, &tls.good_props(), &["certificate required"]);
}
