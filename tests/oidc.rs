//! OAUTHBEARER with OIDC client credentials (feature `oidc`): a token endpoint on loopback
//! (a small HTTP server of the test's own) issues tokens of 4 s; the producer asks it with
//! the client id and secret in Basic authentication, refreshes before each token expires, and
//! authenticates to the mock with them. An endpoint that is down, or refuses the client, is a
//! clear error from `build`.
#![cfg(all(feature = "mock", feature = "oidc"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use kprod::mock::MockCluster;
use kprod::sasl::Mechanism;
use kprod::{Error, Producer, ProducerRecord};

/// What the endpoint saw and how it answers.
#[derive(Default)]
struct Endpoint {
    hits: AtomicU32,
    refuse: AtomicBool,
    requests: Mutex<Vec<(String, String)>>,
}

fn unsecured_jwt(sub: &str, life: u64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none"}"#),
        b64.encode(format!(
            r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#,
            now + life
        ))
    )
}

/// Serves `POST /token` on loopback until the listener is dropped with the process.
fn token_endpoint() -> (String, Arc<Endpoint>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let ep = Arc::new(Endpoint::default());
    let state = ep.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut auth, mut len) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_string();
                if l.is_empty() {
                    break;
                }
                let lower = l.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = l["authorization:".len()..].trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            state.hits.fetch_add(1, SeqCst);
            state
                .requests
                .lock()
                .unwrap()
                .push((auth, String::from_utf8_lossy(&body).into_owned()));
            let (status, json) = if state.refuse.load(SeqCst) {
                (
                    "401 Unauthorized",
                    r#"{"error":"invalid_client","error_description":"client authentication failed"}"#
                        .to_string(),
                )
            } else {
                (
                    "200 OK",
                    format!(
                        r#"{{"access_token":"{}","token_type":"Bearer","expires_in":4}}"#,
                        unsecured_jwt("svc-account", 4)
                    ),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    (url, ep)
}

fn builder(cluster: &MockCluster, url: &str) -> kprod::ProducerBuilder {
    Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .from_properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            ("sasl.oauthbearer.token.endpoint.url", url),
            ("sasl.oauthbearer.client.id", "kprod-client"),
            ("sasl.oauthbearer.client.secret", "s3cret&more"),
            ("sasl.oauthbearer.scope", "kafka"),
            ("sasl.oauthbearer.extensions", "logicalCluster=lkc-1"),
        ])
        .unwrap()
        .metadata_timeout(Duration::from_secs(3))
}

#[test]
fn tokens_come_from_the_endpoint_and_are_refreshed_before_they_expire() {
    let (url, ep) = token_endpoint();
    let cluster = MockCluster::builder()
        .topic("oidc", 1)
        .sasl_mechanisms(&[Mechanism::OAuthBearer])
        .sasl_session_lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let p = builder(&cluster, &url).build().unwrap();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(9) {
        p.produce_record(ProducerRecord::new("oidc").value("v"))
            .unwrap();
        n += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = p.metrics();
    p.close(Duration::from_secs(10)).unwrap();
    // Tokens of 3-4 s (the JWT's expiry is in whole seconds), replaced at 80%: about 3 fetches
    // in 9 s, never a lapse (every produce succeeded, no connection dropped).
    let hits = ep.hits.load(SeqCst);
    assert!(hits >= 3, "{hits} token requests");
    assert!(m.token_refreshes >= 2 && m.reauthentications >= 2, "{m:?}");
    assert_eq!(m.disconnects, 0);
    assert_eq!(cluster.end_offset("oidc", 0), n);
    let (auth, body) = ep.requests.lock().unwrap()[0].clone();
    let basic = base64::engine::general_purpose::STANDARD.encode("kprod-client:s3cret%26more");
    assert_eq!(auth, format!("Basic {basic}"));
    assert_eq!(body, "grant_type=client_credentials&scope=kafka");
}

#[test]
fn an_endpoint_that_is_down_or_refuses_is_a_clear_error() {
    let cluster = MockCluster::builder()
        .sasl_mechanisms(&[Mechanism::OAuthBearer])
        .build()
        .unwrap();
    let down = "http://127.0.0.1:1/token";
    let e = builder(&cluster, down).build().unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, Error::Authentication { .. }), "{shown}");
    assert!(shown.contains(down) && !shown.contains("s3cret"), "{shown}");
    let (url, ep) = token_endpoint();
    ep.refuse.store(true, SeqCst);
    let e = builder(&cluster, &url).build().unwrap_err().to_string();
    assert!(
        e.contains("401") && e.contains("client authentication failed"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
}
