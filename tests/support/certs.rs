//! Certificates for the TLS tests, made once per test process with rcgen: a CA, a broker
//! certificate for `localhost` and 127.0.0.1 signed by it, a client certificate signed by it
//! (mTLS), and the bad ones — signed by another CA, for another host, expired.

use std::sync::OnceLock;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    SanType,
};

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

#[derive(Debug)]
pub struct Pki {
    /// The CA everything good is signed by.
    pub ca: String,
    /// Another CA, trusted by nobody here.
    pub other_ca: String,
    /// `localhost` and 127.0.0.1, by `ca`.
    pub broker: Pair,
    /// `localhost` and 127.0.0.1, by `other_ca`.
    pub untrusted_broker: Pair,
    /// Only `broker.example.com`, by `ca`.
    pub wrong_host_broker: Pair,
    /// `localhost` and 127.0.0.1, by `ca`, expired in 2021.
    pub expired_broker: Pair,
    /// A client, by `ca`.
    pub client: Pair,
    /// A client, by `other_ca`.
    pub untrusted_client: Pair,
    /// The good CA, to sign more.
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    ip: bool,
    expired: bool,
) -> Pair {
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    if ip {
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("client"),
    );
    if expired {
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A client certificate from the good CA for the key in `key_pem` (PKCS#8).
pub fn client_cert_for(key_pem: &str) -> String {
    let key = KeyPair::from_pem(key_pem).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "kprod-rsa-client");
    p.signed_by(&key, &pki().issuer).unwrap().pem()
}

/// The certificates (made on first use).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let good = ca("kprod test CA");
        let other = ca("someone else's CA");
        let host = ["localhost"];
        Pki {
            ca: good.pem(),
            other_ca: other.pem(),
            broker: leaf(&good, &host, true, false),
            untrusted_broker: leaf(&other, &host, true, false),
            wrong_host_broker: leaf(&good, &["broker.example.com"], false, false),
            expired_broker: leaf(&good, &host, true, true),
            client: leaf(&good, &["kprod-client"], false, false),
            untrusted_client: leaf(&other, &["kprod-client"], false, false),
            issuer: good,
        }
    })
}
