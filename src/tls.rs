//! TLS settings and their rustls configuration.
//!
//! kprod speaks TLS through rustls with the *ring* crypto provider: pure Rust and assembly
//! built by `cc`, no cmake and no system OpenSSL (aws-lc-rs, rustls' default, needs cmake on
//! some platforms and a much larger C build). rustls is sans-IO, like the engine core: the core
//! feeds it the bytes the driver read and takes the bytes to write, so TLS is a state of the
//! connection and not of the socket.
//!
//! Trust comes from [`TlsConfig::ca`] (PEM file, directory of PEM files, or PEM text), else the
//! system's trust store. The broker's certificate is checked against the host name in its
//! address (the bootstrap address, or the one the cluster advertises), which is also sent as
//! SNI; only [`TlsConfig::verify_hostname`]`(false)` turns the name check off (the chain is
//! still verified), and the producer logs a warning when it is off.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::Error;

/// How connections to brokers are secured (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// Neither TLS nor SASL (the default).
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` (case-insensitive).
    ///
    /// ```
    /// use kprod::tls::SecurityProtocol;
    /// assert_eq!(SecurityProtocol::from_name("sasl_ssl"), Some(SecurityProtocol::SaslSsl));
    /// assert!(SecurityProtocol::SaslSsl.tls() && SecurityProtocol::SaslSsl.sasl());
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The property value naming it.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// PEM data: a file (or, for trust, a directory of files) or the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// A path (`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`).
    Path(PathBuf),
    /// PEM text (`ssl.ca.pem`, `ssl.certificate.pem`, `ssl.key.pem`).
    Text(String),
}

/// TLS settings, used when [`SecurityProtocol::tls`] is on.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate authorities to trust. Default: none given, the system's trust store.
    pub ca: Option<Pem>,
    /// This client's certificate chain, for brokers that require one (mTLS). Default: none.
    pub certificate: Option<Pem>,
    /// The private key of [`certificate`](Self::certificate) (PKCS#8, PKCS#1 or SEC1, not
    /// encrypted). Default: none.
    pub key: Option<Pem>,
    /// Check that the broker's certificate names the host connected to
    /// (`ssl.endpoint.identification.algorithm=https`). Default: on.
    pub verify_hostname: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca: None,
            certificate: None,
            key: None,
            verify_hostname: true,
        }
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key text is a secret; a path is not.
        let key = match &self.key {
            Some(Pem::Text(_)) => Some("Pem::Text(***)".to_string()),
            Some(Pem::Path(p)) => Some(format!("{p:?}")),
            None => None,
        };
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca)
            .field("certificate", &self.certificate)
            .field("key", &key)
            .field("verify_hostname", &self.verify_hostname)
            .finish()
    }
}

fn read(option: &str, pem: &Pem) -> Result<Vec<u8>, Error> {
    match pem {
        Pem::Text(t) => Ok(t.as_bytes().to_vec()),
        Pem::Path(p) => {
            std::fs::read(p).map_err(|e| Error::config(option, format!("{}: {e}", p.display())))
        }
    }
}

fn certificates(option: &str, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::config(option, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config(option, "no PEM certificate found"));
    }
    Ok(certs)
}

/// The certificates of a PEM file, a directory of them, or PEM text.
pub(crate) fn trust(option: &str, pem: &Pem) -> Result<Vec<CertificateDer<'static>>, Error> {
    if let Pem::Path(dir) = pem {
        if dir.is_dir() {
            let mut all = Vec::new();
            let entries = std::fs::read_dir(dir)
                .map_err(|e| Error::config(option, format!("{}: {e}", dir.display())))?;
            for e in entries.flatten() {
                let p = e.path();
                let bytes = std::fs::read(&p).unwrap_or_default();
                // Files that are not certificates (hash links' targets are, README files are
                // not) are skipped, as OpenSSL's CApath does.
                if let Ok(c) = certificates(option, &bytes) {
                    all.extend(c);
                }
            }
            if all.is_empty() {
                return Err(Error::config(
                    option,
                    format!("no PEM certificate in directory {}", dir.display()),
                ));
            }
            return Ok(all);
        }
    }
    certificates(option, &read(option, pem)?)
}

fn private_key(option: &str, pem: &Pem) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read(option, pem)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(Error::config(
            option,
            "the private key is encrypted, which kprod does not support; decrypt it first \
             (openssl pkey -in key.pem -out key-plain.pem)",
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        Error::config(
            option,
            "no PEM private key found (PKCS#8, PKCS#1 RSA or SEC1 EC)",
        )
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `tls`: trust, the verifier, the client certificate.
/// Files are read here, once; errors name the option.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(pem) => {
            for c in trust("ssl_ca", pem)? {
                roots
                    .add(c)
                    .map_err(|e| Error::config("ssl_ca", format!("bad CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(Error::config(
                    "ssl_ca",
                    "no CA given and the system trust store is empty or unreadable",
                ));
            }
        }
    }
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::config("ssl_ca", e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.verify_hostname {
        webpki
    } else {
        Arc::new(AnyName(webpki))
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("security_protocol", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.certificate, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("ssl_certificate", &read("ssl_certificate", cert)?)?;
            let key = private_key("ssl_key", key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config("ssl_key", e.to_string()))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(Error::config("ssl_key", "a certificate needs its key")),
        (None, Some(_)) => {
            return Err(Error::config(
                "ssl_certificate",
                "a key needs its certificate",
            ))
        }
    };
    Ok(Arc::new(config))
}

/// The name a broker's certificate must carry: the host of `host:port` (an IP address is
/// checked against the certificate's IP addresses).
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is not a valid TLS server name"))
}

/// Verifies the chain but not the name (`verify_hostname(false)`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What went wrong in a TLS handshake, as far as the application can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's certificate is not signed by a trusted authority.
    NotTrusted,
    /// The broker's certificate does not name the host connected to.
    HostnameMismatch,
    /// The broker's certificate has expired (or is not valid yet).
    Expired,
    /// The broker refused the handshake (e.g. it requires a client certificate this client
    /// does not have, or does not trust the one it has).
    Refused,
    /// Another failure (protocol versions, cipher suites, a corrupt stream).
    Other,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsFailure::NotTrusted => "certificate not trusted",
            TlsFailure::HostnameMismatch => "certificate does not match the host name",
            TlsFailure::Expired => "certificate expired or not yet valid",
            TlsFailure::Refused => "handshake refused by the broker",
            TlsFailure::Other => "TLS failure",
        })
    }
}

/// The failure a rustls error means.
pub(crate) fn classify(e: &rustls::Error) -> TlsFailure {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => {
                TlsFailure::NotTrusted
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::HostnameMismatch,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsFailure::Expired,
            _ => TlsFailure::NotTrusted,
        },
        rustls::Error::AlertReceived(_) => TlsFailure::Refused,
        _ => TlsFailure::Other,
    }
}

/// The mock's TLS: a server configuration from a certificate chain and key (PEM), optionally
/// requiring client certificates signed by `client_ca`.
#[cfg(feature = "mock")]
pub(crate) fn server_config(
    certificate: &Pem,
    key: &Pem,
    client_ca: Option<&Pem>,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let chain = certificates("tls_certificate", &read("tls_certificate", certificate)?)?;
    let key = private_key("tls_key", key)?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("tls", e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in trust("tls_client_ca", ca)? {
                roots
                    .add(c)
                    .map_err(|e| Error::config("tls_client_ca", e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::config("tls_client_ca", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::config("tls_key", e.to_string()))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_address() {
        assert_eq!(
            server_name("broker-1.example.com:9093").unwrap(),
            ServerName::try_from("broker-1.example.com").unwrap()
        );
        assert!(matches!(
            server_name("127.0.0.1:9093").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:9093").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn bad_files_are_config_errors_naming_the_option() {
        let t = TlsConfig {
            ca: Some(Pem::Path("/nonexistent/ca.pem".into())),
            ..TlsConfig::default()
        };
        let e = client_config(&t).unwrap_err().to_string();
        assert!(
            e.contains("ssl_ca") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let t = TlsConfig {
            ca: Some(Pem::Text("not pem".into())),
            ..TlsConfig::default()
        };
        assert!(client_config(&t)
            .unwrap_err()
            .to_string()
            .contains("ssl_ca"));
        let encrypted = Pem::Text(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .into(),
        );
        let e = private_key("ssl_key", &encrypted).unwrap_err().to_string();
        assert!(e.contains("ssl_key") && e.contains("encrypted"), "{e}");
        let t = TlsConfig {
            key: Some(encrypted),
            ..TlsConfig::default()
        };
        assert!(!format!("{t:?}").contains("AAAA"));
    }
}
