//! A real broker behind a TLS stack that is not rustls: tansu 0.6 (plaintext; its own TLS
//! does not serve, tansu-io/tansu#624) behind stunnel4, OpenSSL-based, from Debian's packages.
//! kprod verifies the CA and the host name, produces idempotently, and librdkafka (OpenSSL)
//! reads the records back through the same TLS endpoint; a certificate from an untrusted CA,
//! one for another host and an expired one each end every record with the matching
//! `Error::Tls` within the metadata deadline.
//!
//! SASL against a real broker is not tested: tansu 0.6's memory storage keeps no SCRAM
//! credentials (every user is unknown), it offers no PLAIN, and after a failed SCRAM exchange
//! it serves the connection anyway.
//!
//! Needs `tansu` and `stunnel4` (`scripts/test.sh` installs both and runs this with
//! `--features tansu-tests`).
#![cfg(feature = "tansu-tests")]

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kprod::tls::TlsFailure;
use kprod::{Error, Producer, ProducerRecord};

use support::certs::{pki, Pair};
use support::readback::read_back_with;

const TOPIC: &str = "over-tls";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kprod-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// tansu on a free port, telling clients to connect to `advertised`.
fn tansu(advertised_port: u16) -> (Proc, u16) {
    let port = free_port();
    let bin = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .args([
            "--advertised-listener-url",
            &format!("tcp://localhost:{advertised_port}"),
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{bin}` ({e}); scripts/test.sh installs it"));
    let p = Proc(child);
    wait_listening(port, "tansu");
    let status = Command::new(&bin)
        .args(["topic", "create", TOPIC, "--partitions", "2"])
        .args(["--broker", &format!("tcp://127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "tansu topic create");
    (p, port)
}

/// stunnel4 on `port` with `pair`, forwarding to `backend`.
fn stunnel(port: u16, pair: &Pair, backend: u16, tag: &str) -> Proc {
    let dir = temp_dir(&format!("stunnel-{tag}"));
    std::fs::write(dir.join("cert.pem"), &pair.cert).unwrap();
    std::fs::write(dir.join("key.pem"), &pair.key).unwrap();
    let conf = format!(
        "foreground = yes\npid =\ndebug = 3\n\n[kafka]\naccept = 127.0.0.1:{port}\n\
         connect = 127.0.0.1:{backend}\ncert = {}\nkey = {}\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    std::fs::write(dir.join("stunnel.conf"), conf).unwrap();
    let bin = if Command::new("stunnel4").arg("-version").output().is_ok() {
        "stunnel4"
    } else {
        "stunnel"
    };
    let child = Command::new(bin)
        .arg(dir.join("stunnel.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin} ({e}); scripts/test.sh installs stunnel4"));
    let p = Proc(child);
    wait_listening(port, "stunnel");
    p
}

fn props(ca: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SSL".to_string()),
        ("ssl.ca.pem", ca.to_string()),
    ]
}

fn producer(bootstrap: &str, ca: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(bootstrap)
        .from_properties(props(ca))
        .unwrap()
        .metadata_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[test]
fn kprod_produces_to_tansu_behind_openssl_and_librdkafka_reads_it_back() {
    let pki = pki();
    let tls_port = free_port();
    let (_tansu, backend) = tansu(tls_port);
    let _tunnel = stunnel(tls_port, &pki.broker, backend, "good");
    let bootstrap = format!("localhost:{tls_port}");
    let p = producer(&bootstrap, &pki.ca);
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let r = ProducerRecord::new(TOPIC)
                .partition(i % 2)
                .key(format!("k{i}"))
                .value(format!("over tls #{i}"));
            p.produce_async(r).unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let md = h
            .wait_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("record {i} not done"))
            .unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert_eq!(md.offset, i as i64 / 2);
    }
    p.close(Duration::from_secs(10)).unwrap();
    let owned = props(&pki.ca);
    let extra: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let got = read_back_with(&bootstrap, &extra, TOPIC, 2, 200, Duration::from_secs(30));
    assert_eq!(got.len(), 200);
    for g in &got {
        let i = g.offset * 2 + g.partition as i64;
        assert_eq!(
            g.value.as_deref(),
            Some(format!("over tls #{i}").as_bytes())
        );
        assert_eq!(g.key.as_deref(), Some(format!("k{i}").as_bytes()));
    }
}

#[test]
fn bad_certificates_in_front_of_tansu_end_every_record_with_the_kind() {
    let pki = pki();
    let cases = [
        (
            "untrusted CA",
            &pki.untrusted_broker,
            TlsFailure::NotTrusted,
        ),
        (
            "wrong host",
            &pki.wrong_host_broker,
            TlsFailure::HostnameMismatch,
        ),
        ("expired", &pki.expired_broker, TlsFailure::Expired),
    ];
    let tls_port = free_port();
    let (_tansu, backend) = tansu(tls_port);
    for (what, pair, kind) in cases {
        let port = free_port();
        let _tunnel = stunnel(port, pair, backend, what.replace(' ', "-").as_str());
        let p = producer(&format!("localhost:{port}"), &pki.ca);
        let t = Instant::now();
        let handles: Vec<_> = (0..10)
            .map(|i| {
                p.produce_async(ProducerRecord::new(TOPIC).value(format!("{i}")))
                    .unwrap()
            })
            .collect();
        for h in handles {
            let r = h
                .wait_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("{what}: a record outlived its deadline"));
            match r {
                Err(Error::Tls { kind: k, .. }) if k == kind => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{what}: {:?}",
            t.elapsed()
        );
        p.close(Duration::from_secs(10)).unwrap();
    }
}
