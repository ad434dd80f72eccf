//! Secured mock listeners and the client properties that reach them — the same librdkafka
//! property names for librdkafka and for kprod's `from_properties`.

use std::time::Duration;

use kprod::mock::MockClusterBuilder;
use kprod::sasl::Mechanism;

use super::certs::pki;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-secret";

/// TLS on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    /// The broker has a certificate.
    Server,
    /// And requires the client's (mTLS).
    Mutual,
}

/// A listener's security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub tls: Tls,
    pub sasl: Option<Mechanism>,
}

impl Listener {
    /// Every combination: {plaintext, TLS, mTLS} × {no SASL, PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512, OAUTHBEARER}.
    pub fn all() -> Vec<Listener> {
        let mut v = Vec::new();
        for tls in [Tls::None, Tls::Server, Tls::Mutual] {
            v.push(Listener { tls, sasl: None });
            for m in Mechanism::ALL {
                v.push(Listener { tls, sasl: Some(m) });
            }
        }
        v
    }

    /// The protocol's name, for `security.protocol`.
    pub fn protocol(&self) -> &'static str {
        match (self.tls != Tls::None, self.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }

    /// The mock configured for this listener, with [`USER`] (every mechanism enabled, so a
    /// client's choice is what is tested).
    pub fn cluster(&self, b: MockClusterBuilder) -> MockClusterBuilder {
        let pki = pki();
        let mut b = b;
        if self.tls != Tls::None {
            b = b.tls(&pki.broker.cert, &pki.broker.key);
        }
        if self.tls == Tls::Mutual {
            b = b.tls_client_ca(&pki.ca);
        }
        if self.sasl.is_some() {
            b = b
                .sasl_mechanisms(&Mechanism::ALL)
                .sasl_user(USER, PASSWORD)
                .sasl_user("bob", "bob-secret");
        }
        b
    }

    /// Client properties for this listener as `user` with `password`.
    pub fn props(&self, user: &str, password: &str) -> Vec<(String, String)> {
        let pki = pki();
        let mut p = vec![("security.protocol".to_string(), self.protocol().to_string())];
        let mut set = |k: &str, v: &str| p.push((k.to_string(), v.to_string()));
        if self.tls != Tls::None {
            set("ssl.ca.pem", &pki.ca);
        }
        if self.tls == Tls::Mutual {
            set("ssl.certificate.pem", &pki.client.cert);
            set("ssl.key.pem", &pki.client.key);
        }
        match self.sasl {
            // Unsecured test tokens naming `user` (the mock validates them as Kafka's
            // unsecured validator does; there is no password).
            Some(Mechanism::OAuthBearer) => {
                set("sasl.mechanisms", "OAUTHBEARER");
                set("sasl.oauthbearer.config", &format!("principal={user}"));
                set("enable.sasl.oauthbearer.unsecure.jwt", "true");
                let _ = password;
            }
            Some(m) => {
                set("sasl.mechanisms", m.name());
                set("sasl.username", user);
                set("sasl.password", password);
            }
            None => {}
        }
        p
    }

    /// [`props`](Self::props) for [`USER`].
    pub fn good_props(&self) -> Vec<(String, String)> {
        self.props(USER, PASSWORD)
    }
}

/// `props` as `&str` pairs.
pub fn as_strs(props: &[(String, String)]) -> Vec<(&str, &str)> {
    props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A generous deadline for one exchange.
pub const WAIT: Duration = Duration::from_secs(30);
