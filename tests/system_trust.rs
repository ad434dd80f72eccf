//! With no CA given, kprod trusts the system's store (rustls-native-certs, which reads
//! `SSL_CERT_FILE` when it is set, as OpenSSL does): pointed at the test CA, a producer with
//! no `ssl.ca.*` reaches the TLS mock; the real system store does not know the test CA.
//! One test in its own process, since it sets the environment.
#![cfg(feature = "mock")]

mod support;

use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::tls::{SecurityProtocol, TlsFailure};
use kprod::{Error, Producer, ProducerRecord};

fn produce(cluster: &MockCluster) -> Result<(), Error> {
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .security_protocol(SecurityProtocol::Ssl)
        .metadata_timeout(Duration::from_secs(2))
        .build()?;
    let r = p
        .produce_record(ProducerRecord::new("t").value("v"))
        .map(|_| ());
    p.close(Duration::from_secs(10)).unwrap();
    r
}

#[test]
fn without_a_ca_the_system_store_is_trusted() {
    let pki = support::certs::pki();
    let cluster = MockCluster::builder()
        .tls(&pki.broker.cert, &pki.broker.key)
        .build()
        .unwrap();
    // The machine's own store: the test CA is not in it.
    match produce(&cluster) {
        Err(Error::Tls { kind, .. }) => assert_eq!(kind, TlsFailure::NotTrusted),
        // A machine with no readable store at all is refused at build.
        Err(Error::Config { option, .. }) => assert_eq!(option, "ssl_ca"),
        other => panic!("{other:?}"),
    }
    let file = std::env::temp_dir().join(format!("kprod-system-ca-{}.pem", std::process::id()));
    std::fs::write(&file, &pki.ca).unwrap();
    std::env::set_var("SSL_CERT_FILE", &file);
    produce(&cluster).unwrap();
    std::env::remove_var("SSL_CERT_FILE");
    std::fs::remove_file(&file).unwrap();
}
