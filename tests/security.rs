//! kprod over TLS and SASL, against kprod's mock (whose server side librdkafka proves in
//! `tests/librdkafka_security.rs`): every combination of {plaintext, TLS, mTLS} × {none,
//! PLAIN, SCRAM-SHA-256, SCRAM-SHA-512} produces idempotently and librdkafka reads it back
//! through the same listener; every way authentication or TLS can fail ends every record with
//! the matching typed error within its deadline, with no hot reconnect loop; re-authentication
//! renews the session on an open connection without losing or reordering a record.
#![cfg(feature = "mock")]

mod support;

use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::sasl::Mechanism;
use kprod::tls::TlsFailure;
use kprod::{Error, Producer, ProducerRecord};

use support::certs::{pki, Pair};
use support::readback::read_back_with;
use support::secure::{as_strs, Listener, Tls, PASSWORD, USER, WAIT};

const TOPIC: &str = "secured";

fn producer(cluster: &MockCluster, props: &[(String, String)]) -> Result<Producer, Error> {
    Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .from_properties(as_strs(props))?
        .metadata_timeout(Duration::from_secs(2))
        .delivery_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(2))
        .linger(Duration::from_millis(1))
        .build()
}

#[test]
fn every_listener_takes_kprod_records_and_librdkafka_reads_them_back() {
    for l in Listener::all() {
        let cluster = l
            .cluster(MockCluster::builder().topic(TOPIC, 2))
            .build()
            .unwrap();
        let props = l.good_props();
        let p = producer(&cluster, &props).unwrap();
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let r = ProducerRecord::new(TOPIC)
                    .partition(i % 2)
                    .value(format!("{l:?} #{i}"));
                p.produce_async(r).unwrap()
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let md = h
                .wait_timeout(WAIT)
                .unwrap_or_else(|_| panic!("{l:?}: record {i} not done"))
                .unwrap_or_else(|e| panic!("{l:?}: record {i}: {e}"));
            assert_eq!(md.offset, i as i64 / 2, "{l:?}");
        }
        let m = p.metrics();
        assert_eq!(m.authentications >= 1, l.sasl.is_some(), "{l:?}: {m:?}");
        assert_eq!(m.authentication_failures + m.tls_failures, 0, "{l:?}");
        p.close(WAIT).unwrap();
        let got = read_back_with(
            &cluster.bootstrap_servers(),
            &as_strs(&props),
            TOPIC,
            2,
            100,
            WAIT,
        );
        assert_eq!(got.len(), 100, "{l:?}: librdkafka read {}", got.len());
        for (part, recs) in [0, 1].map(|q| (q, got.iter().filter(move |g| g.partition == q))) {
            for (n, g) in recs.enumerate() {
                let i = n as i32 * 2 + part;
                assert_eq!(g.value.as_deref(), Some(format!("{l:?} #{i}").as_bytes()));
            }
        }
        assert!(cluster.errors().is_empty(), "{l:?}: {:?}", cluster.errors());
        assert_eq!(cluster.authentication_failures(), 0, "{l:?}");
    }
}

/// Sends `n` records and returns each outcome and how long the last took.
fn outcomes(p: &Producer, n: usize) -> (Vec<Result<(), Error>>, Duration) {
    let t = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            p.produce_async(ProducerRecord::new(TOPIC).value(format!("r{i}")))
                .unwrap()
        })
        .collect();
    let out = handles
        .into_iter()
        .map(|h| {
            h.wait_timeout(WAIT)
                .unwrap_or_else(|_| panic!("a record outlived its deadlines"))
                .map(|_| ())
        })
        .collect();
    (out, t.elapsed())
}

/// Every record fails with an error `check` accepts, non-retriable, within the metadata
/// deadline (2 s) and a margin, never quoting a secret.
fn all_fail_with(p: &Producer, check: impl Fn(&Error) -> bool) {
    let (out, took) = outcomes(p, 20);
    for (i, o) in out.iter().enumerate() {
        let e = o.as_ref().expect_err("a record went through");
        assert!(check(e), "record {i}: {e:?}");
        assert!(!e.is_retriable(), "{e}");
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains(PASSWORD) && !shown.contains("wrong-pw"),
            "{shown}"
        );
    }
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn refused_authentication_ends_every_record_with_the_reason() {
    let base = Listener {
        tls: Tls::None,
        sasl: Some(Mechanism::ScramSha256),
    };
    // (what, cluster, client properties, what the message says)
    type Case = (
        &'static str,
        kprod::mock::MockClusterBuilder,
        Listener,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "wrong password",
            base.cluster(MockCluster::builder()),
            base,
            USER,
            "invalid credentials",
        ),
        (
            "unknown user",
            base.cluster(MockCluster::builder()),
            base,
            "mallory",
            "invalid credentials",
        ),
        (
            "wrong password, PLAIN",
            base.cluster(MockCluster::builder()),
            Listener {
                sasl: Some(Mechanism::Plain),
                ..base
            },
            USER,
            "invalid credentials",
        ),
        (
            "mechanism not enabled",
            base.cluster(MockCluster::builder())
                .sasl_mechanisms(&[Mechanism::Plain]),
            Listener {
                sasl: Some(Mechanism::ScramSha512),
                ..base
            },
            USER,
            "does not enable SCRAM-SHA-512",
        ),
        (
            "forged server signature",
            base.cluster(MockCluster::builder())
                .sasl_forge_scram_signature(true),
            Listener {
                sasl: Some(Mechanism::ScramSha512),
                ..base
            },
            USER,
            "signature is wrong",
        ),
    ];
    capture_logs();
    for (what, cluster, client, user, says) in cases {
        let cluster = cluster.build().unwrap();
        let password = if what == "wrong password" || what == "wrong password, PLAIN" {
            "wrong-pw"
        } else {
            PASSWORD
        };
        let p = producer(&cluster, &client.props(user, password)).unwrap();
        let mech = client.sasl.unwrap().name();
        all_fail_with(&p, |e| match e {
            Error::Authentication {
                mechanism, message, ..
            } => *mechanism == mech && message.contains(says),
            _ => false,
        });
        // Backed off, not a hot loop: 100 ms doubling to 1 s gives about 6 attempts in the
        // 2 s the records waited.
        let m = p.metrics();
        assert!(
            (1..=12).contains(&m.authentication_failures),
            "{what}: {} failures",
            m.authentication_failures
        );
        p.close(WAIT).unwrap();
        if what != "forged server signature" {
            assert!(cluster.authentication_failures() >= 1, "{what}");
        }
        // Nothing was served without authentication.
        assert_eq!(cluster.end_offset(TOPIC, 0), 0, "{what}");
        assert_eq!(cluster.request_count(3), 0, "{what}: Metadata served");
        // The failures were logged, and no line names the password.
        let logs = LOGS.lock().unwrap();
        assert!(
            logs.iter().all(|(_, m)| !m.contains(password)),
            "{what}: a log line holds the password"
        );
    }
    assert!(
        LOGS.lock()
            .unwrap()
            .iter()
            .any(|(_, m)| m.contains("invalid credentials")),
        "the refusals were not logged"
    );
}

#[test]
fn tls_failures_end_every_record_with_the_kind() {
    let pki = pki();
    let tls = Listener {
        tls: Tls::Server,
        sasl: None,
    };
    let mutual = Listener {
        tls: Tls::Mutual,
        sasl: None,
    };
    let with_cert = |pair: &Pair| MockCluster::builder().tls(&pair.cert, &pair.key);
    let mut untrusted_client = mutual.good_props();
    for (k, v) in &mut untrusted_client {
        if k == "ssl.certificate.pem" {
            *v = pki.untrusted_client.cert.clone();
        }
        if k == "ssl.key.pem" {
            *v = pki.untrusted_client.key.clone();
        }
    }
    type Case = (
        &'static str,
        kprod::mock::MockClusterBuilder,
        Vec<(String, String)>,
        TlsFailure,
    );
    let cases: Vec<Case> = vec![
        (
            "untrusted CA",
            with_cert(&pki.untrusted_broker),
            tls.good_props(),
            TlsFailure::NotTrusted,
        ),
        (
            "wrong host",
            with_cert(&pki.wrong_host_broker),
            tls.good_props(),
            TlsFailure::HostnameMismatch,
        ),
        (
            "expired",
            with_cert(&pki.expired_broker),
            tls.good_props(),
            TlsFailure::Expired,
        ),
        (
            "no client certificate",
            mutual.cluster(MockCluster::builder()),
            tls.good_props(),
            TlsFailure::Refused,
        ),
        (
            "untrusted client certificate",
            mutual.cluster(MockCluster::builder()),
            untrusted_client,
            TlsFailure::Refused,
        ),
        (
            "plaintext broker",
            MockCluster::builder(),
            tls.good_props(),
            TlsFailure::Refused,
        ),
    ];
    for (what, cluster, props, kind) in cases {
        let cluster = cluster.build().unwrap();
        let p = producer(&cluster, &props).unwrap();
        all_fail_with(
            &p,
            |e| matches!(e, Error::Tls { kind: k, .. } if *k == kind),
        );
        let m = p.metrics();
        assert!((1..=12).contains(&m.tls_failures), "{what}: {m:?}");
        p.close(WAIT).unwrap();
        assert_eq!(cluster.end_offset(TOPIC, 0), 0, "{what}");
    }
}

/// Connecting by name sends the name as SNI (the name is what the certificate is checked
/// against); an IP address sends none, as TLS requires.
#[test]
fn the_host_name_is_sent_as_sni() {
    let l = Listener {
        tls: Tls::Server,
        sasl: None,
    };
    let cluster = l.cluster(MockCluster::builder()).build().unwrap();
    let by_name = format!("localhost:{}", cluster.broker_addr(1).port());
    let p = Producer::builder()
        .bootstrap_servers(&by_name)
        .from_properties(as_strs(&l.good_props()))
        .unwrap()
        .build()
        .unwrap();
    p.produce_record(ProducerRecord::new(TOPIC).value("v"))
        .unwrap();
    p.close(WAIT).unwrap();
    // The bootstrap connection by name; the broker's advertised 127.0.0.1 sends no SNI.
    assert_eq!(cluster.tls_server_names(), ["localhost"]);
}

/// What the library logged in this test binary (every test's lines, in parallel).
static LOGS: std::sync::Mutex<Vec<(log::Level, String)>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LOGS.lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).expect("one logger");
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn logged(level: log::Level, text: &str) -> bool {
    LOGS.lock()
        .unwrap()
        .iter()
        .any(|(l, m)| *l == level && m.contains(text))
}

#[test]
fn host_name_verification_is_off_only_when_asked() {
    let pki = pki();
    let cluster = MockCluster::builder()
        .tls(&pki.wrong_host_broker.cert, &pki.wrong_host_broker.key)
        .build()
        .unwrap();
    let mut props = Listener {
        tls: Tls::Server,
        sasl: None,
    }
    .good_props();
    props.push((
        "ssl.endpoint.identification.algorithm".into(),
        "none".into(),
    ));
    capture_logs();
    let p = producer(&cluster, &props).unwrap();
    // Turning verification off is said, at warning level, when the producer is built.
    assert!(
        logged(log::Level::Warn, "host name verification is off"),
        "no warning that verification is off: {:?}",
        LOGS.lock().unwrap()
    );
    let (out, _) = outcomes(&p, 10);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    p.close(WAIT).unwrap();
    // The chain is still verified.
    let cluster = MockCluster::builder()
        .tls(&pki.untrusted_broker.cert, &pki.untrusted_broker.key)
        .build()
        .unwrap();
    let p = producer(&cluster, &props).unwrap();
    all_fail_with(&p, |e| {
        matches!(
            e,
            Error::Tls {
                kind: TlsFailure::NotTrusted,
                ..
            }
        )
    });
}

#[test]
fn trust_and_keys_from_files_and_the_secrets_stay_hidden() {
    let pki = pki();
    let dir = std::env::temp_dir().join(format!("kprod-tls-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cas")).unwrap();
    std::fs::write(dir.join("cas/ca.pem"), &pki.ca).unwrap();
    std::fs::write(dir.join("cas/README"), "not a certificate").unwrap();
    std::fs::write(dir.join("client.pem"), &pki.client.cert).unwrap();
    std::fs::write(dir.join("client.key"), &pki.client.key).unwrap();
    let l = Listener {
        tls: Tls::Mutual,
        sasl: Some(Mechanism::ScramSha512),
    };
    let cluster = l.cluster(MockCluster::builder()).build().unwrap();
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .security_protocol(kprod::tls::SecurityProtocol::SaslSsl)
        .ssl_ca_location(dir.join("cas"))
        .ssl_certificate_location(path("client.pem"))
        .ssl_key_location(path("client.key"))
        .from_properties([(
            "sasl.jaas.config",
            format!(
                "org.apache.kafka.common.security.scram.ScramLoginModule required \
                 username=\"{USER}\" password=\"{PASSWORD}\";"
            ),
        )])
        .unwrap()
        .sasl_mechanism(Mechanism::ScramSha512);
    let shown = format!("{p:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    let p = p.build().unwrap();
    let (out, _) = outcomes(&p, 10);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    p.close(WAIT).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// KIP-368: the broker says sessions last 2 s; for `KPROD_REAUTH_SECS` (default 30) seconds
/// of continuous produce the connection re-authenticates before each session ends, and every
/// record is delivered once, in order, on the connections it started with.
#[test]
fn sessions_are_renewed_without_dropping_or_reordering_a_record() {
    let secs: u64 = std::env::var("KPROD_REAUTH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let l = Listener {
        tls: Tls::Server,
        sasl: Some(Mechanism::ScramSha256),
    };
    let cluster = l
        .cluster(MockCluster::builder().topic(TOPIC, 1))
        .sasl_session_lifetime(Duration::from_secs(2))
        .build()
        .unwrap();
    let p = producer(&cluster, &l.good_props()).unwrap();
    let start = Instant::now();
    let mut handles = Vec::new();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        handles.push(
            p.produce_async(ProducerRecord::new(TOPIC).value(i.to_string()))
                .unwrap(),
        );
        i += 1;
        if i % 50 == 0 {
            // Keep requests flowing without piling up: wait for the last one sent.
            let h = handles.pop().unwrap();
            let md = h.wait().unwrap();
            assert_eq!(md.offset as u64, i - 1);
        }
    }
    for h in handles {
        h.wait().unwrap();
    }
    let m = p.metrics();
    p.close(WAIT).unwrap();
    let stored: Vec<String> = cluster
        .records(TOPIC, 0)
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..i).map(|n| n.to_string()).collect();
    assert!(stored == want, "{} stored, {} sent", stored.len(), i);
    // A renewal every 1.7–1.9 s on each of the two connections (control and produce may be
    // one): at least one per 2 s of the run.
    let at_least = secs / 2;
    assert!(
        m.reauthentications >= at_least,
        "{} re-authentications in {secs} s",
        m.reauthentications
    );
    assert_eq!(cluster.reauthentications(), m.reauthentications);
    assert_eq!(m.disconnects, 0, "a connection dropped: {m:?}");
    assert!(cluster.errors().is_empty(), "{:?}", cluster.errors());
}

/// OAUTHBEARER with the application's provider: tokens of 3 s, a broker whose sessions end
/// with the token. The refresher replaces each token before it expires and the connection
/// re-authenticates with the new one, with no record lost and no connection dropped.
#[test]
fn oauthbearer_tokens_are_refreshed_and_sessions_renewed_with_them() {
    use kprod::sasl::oauth::{unsecured_token, OAuthToken};
    let cluster = MockCluster::builder()
        .topic(TOPIC, 1)
        .sasl_mechanisms(&[Mechanism::OAuthBearer])
        .sasl_session_lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let fetched = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let f = fetched.clone();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .security_protocol(kprod::tls::SecurityProtocol::SaslPlaintext)
        .sasl_oauthbearer_token_provider(move || -> Result<OAuthToken, String> {
            f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(unsecured_token("principal=app lifeSeconds=3")?.extension("traceId", "t1"))
        })
        .metadata_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(8) {
        let md = p
            .produce_record(ProducerRecord::new(TOPIC).value(n.to_string()))
            .unwrap();
        assert_eq!(md.offset as u64, n);
        n += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let m = p.metrics();
    p.close(WAIT).unwrap();
    assert!(m.token_refreshes >= 2, "{m:?}");
    assert!(m.reauthentications >= 2, "{m:?}");
    assert_eq!(m.disconnects, 0, "{m:?}");
    assert_eq!(cluster.end_offset(TOPIC, 0) as u64, n);
    assert!(cluster.errors().is_empty(), "{:?}", cluster.errors());
    // The provider's SASL extension reached the broker with every authentication.
    let ext = cluster.sasl_extensions();
    assert!(ext.len() as u64 > m.reauthentications, "{ext:?}");
    assert!(
        ext.iter()
            .all(|e| e == &[("traceId".to_string(), "t1".to_string())]),
        "{ext:?}"
    );
}

#[test]
fn oauthbearer_refusals_and_a_failing_provider_are_clear() {
    use kprod::sasl::oauth::OAuthToken;
    let cluster = MockCluster::builder()
        .sasl_mechanisms(&[Mechanism::OAuthBearer])
        .build()
        .unwrap();
    // A token the broker does not accept: every record says so.
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .security_protocol(kprod::tls::SecurityProtocol::SaslPlaintext)
        .sasl_oauthbearer_token_provider(|| -> Result<OAuthToken, String> {
            Ok(OAuthToken::new(
                "not.a-valid.jwt",
                Duration::from_secs(600),
                "x",
            ))
        })
        .metadata_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    all_fail_with(&p, |e| {
        matches!(e, Error::Authentication { mechanism: "OAUTHBEARER", message, .. }
            if message.contains("invalid_token"))
    });
    p.close(WAIT).unwrap();
    // A provider that cannot give a first token: build says why.
    let e = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .security_protocol(kprod::tls::SecurityProtocol::SaslPlaintext)
        .sasl_oauthbearer_token_provider(|| -> Result<OAuthToken, String> {
            Err("the identity provider is unreachable".into())
        })
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Authentication { message, .. } if message.contains("unreachable")),
        "{e}"
    );
}

/// A producer without TLS in front of a TLS listener that answers the plaintext request with
/// a TLS alert (as OpenSSL-based terminators do): every record fails saying what to change.
#[test]
fn plaintext_to_a_tls_listener_says_to_use_tls() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            // TLS 1.2 record: fatal alert, handshake_failure.
            let _ = s.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
        }
    });
    let p = Producer::builder()
        .bootstrap_servers(&addr.to_string())
        .metadata_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
        .delivery_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    all_fail_with(
        &p,
        |e| matches!(e, Error::Tls { message, .. } if message.contains("use security.protocol SSL")),
    );
}

/// `openssl` with `args`, its stdin `input`: its stdout.
fn openssl(args: &[&str], input: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl command (scripts/install-deps.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Client keys as PKCS#8 (EC), SEC1 (EC) and PKCS#1 (RSA), each with a certificate from the
/// broker's trusted CA, authenticate over mTLS; an encrypted key is refused at build with a
/// clear error.
#[test]
fn client_keys_in_pkcs8_sec1_and_pkcs1_and_encrypted_ones_refused() {
    let pki = pki();
    let l = Listener {
        tls: Tls::Mutual,
        sasl: None,
    };
    let cluster = l.cluster(MockCluster::builder()).build().unwrap();
    let sec1 = openssl(&["ec", "-outform", "PEM"], &pki.client.key);
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "{sec1}");
    // An RSA client: the key from openssl, the certificate signed here by the CA.
    let rsa_pkcs8 = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        "",
    );
    let rsa_cert = support::certs::client_cert_for(&rsa_pkcs8);
    let pkcs1 = openssl(&["rsa", "-traditional"], &rsa_pkcs8);
    assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"), "{pkcs1}");
    for (what, cert, key) in [
        ("PKCS#8 EC", &pki.client.cert, &pki.client.key),
        ("SEC1 EC", &pki.client.cert, &sec1),
        ("PKCS#1 RSA", &rsa_cert, &pkcs1),
    ] {
        let props = vec![
            ("security.protocol".to_string(), "SSL".to_string()),
            ("ssl.ca.pem".to_string(), pki.ca.clone()),
            ("ssl.certificate.pem".to_string(), cert.clone()),
            ("ssl.key.pem".to_string(), key.clone()),
        ];
        let p = producer(&cluster, &props).unwrap();
        let (out, _) = outcomes(&p, 5);
        assert!(out.iter().all(Result::is_ok), "{what}: {out:?}");
        p.close(WAIT).unwrap();
    }
    let encrypted = openssl(
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:hunter2",
        ],
        &pki.client.key,
    );
    let e = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .security_protocol(kprod::tls::SecurityProtocol::Ssl)
        .ssl_ca_pem(&pki.ca)
        .ssl_certificate_pem(&pki.client.cert)
        .ssl_key_pem(&encrypted)
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("encrypted") && e.contains("ssl_key"), "{e}");
    assert!(!e.contains("BEGIN"), "{e}");
}

/// The mock's SASL listener serves nothing before authentication: a Metadata request as the
/// first request closes the connection unanswered (ApiVersions is answered).
#[test]
fn the_mock_serves_nothing_before_authentication() {
    use kprod::protocol::encode_request;
    use kprod::protocol::messages::api_versions::ApiVersionsRequest;
    use kprod::protocol::messages::metadata::MetadataRequest;
    use std::io::{Read, Write};
    let cluster = MockCluster::builder()
        .sasl_mechanisms(&[Mechanism::Plain])
        .sasl_user(USER, PASSWORD)
        .build()
        .unwrap();
    let addr = cluster.broker_addr(1);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut wire = Vec::new();
    encode_request(&ApiVersionsRequest::kprod(), 3, 1, Some("t"), &mut wire).unwrap();
    s.write_all(&wire).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).unwrap();
    wire.clear();
    encode_request(
        &MetadataRequest::for_topics(["t"]),
        12,
        2,
        Some("t"),
        &mut wire,
    )
    .unwrap();
    s.write_all(&wire).unwrap();
    let mut rest = Vec::new();
    let n = s.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "the mock answered Metadata before authentication");
    let deadline = Instant::now() + WAIT;
    while cluster.errors().is_empty() {
        assert!(Instant::now() < deadline, "no error recorded");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        cluster.errors()[0].contains("Metadata before authentication"),
        "{:?}",
        cluster.errors()
    );
}
