//! Security settings: `security.protocol`, TLS (`ssl.*`) and SASL (`sasl.*`), their builder
//! setters, their librdkafka and Java property names, and their checks.

use std::path::PathBuf;

use std::sync::Arc;

use super::ProducerConfigBuilder;
use crate::error::Error;
use crate::sasl::oauth::{OAuthMethod, TokenProvider};
use crate::sasl::{Mechanism, SaslConfig, Secret};
use crate::tls::{Pem, SecurityProtocol, TlsConfig};

/// How connections are secured: the protocol, TLS settings, SASL settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityConfig {
    /// `security.protocol`. Default: [`SecurityProtocol::Plaintext`].
    pub protocol: SecurityProtocol,
    /// TLS settings (used with `SSL` and `SASL_SSL`).
    pub tls: TlsConfig,
    /// SASL settings (required with `SASL_PLAINTEXT` and `SASL_SSL`).
    pub sasl: Option<SaslConfig>,
}

impl SecurityConfig {
    /// Checks the combination (files are read when the producer starts, and by
    /// [`build_config`](ProducerConfigBuilder::build_config)).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match (&self.sasl, self.protocol.sasl()) {
            (None, true) => {
                return Err(Error::config(
                    "sasl_mechanism",
                    format!("{} needs a SASL mechanism", self.protocol.name()),
                ))
            }
            (Some(_), false) => {
                return Err(Error::config(
                    "security_protocol",
                    format!(
                        "SASL settings are given but the protocol is {} (use SASL_SSL or \
                         SASL_PLAINTEXT)",
                        self.protocol.name()
                    ),
                ))
            }
            (Some(s), true) => s
                .validate()
                .map_err(|why| Error::config("sasl_username", why))?,
            (None, false) => {}
        }
        if self.protocol.tls() {
            crate::tls::client_config(&self.tls)?;
        }
        Ok(())
    }
}

/// What the SASL setters have given so far; assembled by `build_config`.
#[derive(Debug, Clone, Default)]
pub(super) struct SaslParts {
    mechanism: Option<Mechanism>,
    username: Option<String>,
    password: Option<Secret>,
    /// The mechanism a `sasl.jaas.config` login module implies, if any.
    jaas_mechanism: Option<Mechanism>,
    /// OAUTHBEARER: librdkafka's unsecured-token settings.
    oauth_config: Option<String>,
    /// OAUTHBEARER: `sasl.oauthbearer.method` is `oidc`.
    oidc: bool,
    oidc_endpoint: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<Secret>,
    oidc_scope: Option<String>,
    oidc_extensions: Vec<(String, String)>,
    /// OAUTHBEARER: the application's provider, or an OIDC configuration given whole.
    oauth_method: Option<OAuthMethod>,
}

impl SaslParts {
    fn given(&self) -> bool {
        self.mechanism.is_some()
            || self.username.is_some()
            || self.password.is_some()
            || self.oauth_config.is_some()
            || self.oauth_method.is_some()
            || self.oidc
    }

    /// Where OAUTHBEARER tokens come from.
    fn oauth(&self) -> Result<OAuthMethod, Error> {
        if let Some(m) = &self.oauth_method {
            return Ok(m.clone());
        }
        if self.oidc {
            return self.oidc_method();
        }
        match &self.oauth_config {
            Some(c) => Ok(OAuthMethod::Unsecured(c.clone())),
            None => Err(Error::config(
                "sasl.oauthbearer.method",
                "OAUTHBEARER needs a token source: sasl.oauthbearer.method=oidc with its \
                 endpoint and client credentials, sasl.oauthbearer.config for unsecured test \
                 tokens, or a token provider",
            )),
        }
    }

    #[cfg(feature = "oidc")]
    fn oidc_method(&self) -> Result<OAuthMethod, Error> {
        let need = |v: &Option<String>, key: &str| {
            v.clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::config(key, "required with sasl.oauthbearer.method=oidc"))
        };
        let mut o = crate::sasl::oidc::OidcConfig::new(
            &need(&self.oidc_endpoint, "sasl.oauthbearer.token.endpoint.url")?,
            &need(&self.oidc_client_id, "sasl.oauthbearer.client.id")?,
            self.oidc_client_secret.clone().ok_or_else(|| {
                Error::config(
                    "sasl.oauthbearer.client.secret",
                    "required with sasl.oauthbearer.method=oidc",
                )
            })?,
        );
        o.scope = self.oidc_scope.clone();
        o.extensions = self.oidc_extensions.clone();
        Ok(OAuthMethod::Oidc(o))
    }

    #[cfg(not(feature = "oidc"))]
    fn oidc_method(&self) -> Result<OAuthMethod, Error> {
        let _ = (
            &self.oidc_endpoint,
            &self.oidc_client_id,
            &self.oidc_client_secret,
        );
        let _ = (&self.oidc_scope, &self.oidc_extensions);
        Err(Error::config(
            "sasl.oauthbearer.method",
            "oidc needs kprod built with its `oidc` feature",
        ))
    }

    /// The SASL settings, if any were given.
    pub(super) fn build(&self) -> Result<Option<SaslConfig>, Error> {
        if !self.given() {
            return Ok(None);
        }
        let mechanism = self.mechanism.or(self.jaas_mechanism).ok_or_else(|| {
            Error::config(
                "sasl_mechanism",
                "credentials are given but no mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
            )
        })?;
        if let Some(j) = self.jaas_mechanism {
            if j != mechanism {
                return Err(Error::config(
                    "sasl.jaas.config",
                    format!("its login module is for {j}, but the mechanism is {mechanism}"),
                ));
            }
        }
        if mechanism == Mechanism::OAuthBearer {
            return Ok(Some(SaslConfig::oauthbearer(self.oauth()?)));
        }
        Ok(Some(SaslConfig::new(
            mechanism,
            &self.username.clone().unwrap_or_default(),
            self.password.clone().unwrap_or_default(),
        )))
    }
}

/// Properties whose values are secrets: never echoed in an error.
pub(super) fn is_secret(key: &str) -> bool {
    matches!(
        key,
        "sasl.password"
            | "sasl.jaas.config"
            | "ssl.key.pem"
            | "ssl.keystore.key"
            | "ssl.key.password"
    )
}

impl ProducerConfigBuilder {
    /// How connections are secured (`security.protocol`): TLS, SASL, both or neither.
    /// Default: [`SecurityProtocol::Plaintext`].
    ///
    /// ```
    /// use kprod::sasl::Mechanism;
    /// use kprod::tls::SecurityProtocol;
    /// let c = kprod::Producer::builder()
    ///     .bootstrap_servers("broker:9093")
    ///     .security_protocol(SecurityProtocol::SaslPlaintext)
    ///     .sasl_mechanism(Mechanism::ScramSha512)
    ///     .sasl_username("alice")
    ///     .sasl_password("s3cret")
    ///     .build_config()?;
    /// assert!(!format!("{c:?}").contains("s3cret"));
    /// # Ok::<(), kprod::Error>(())
    /// ```
    pub fn security_protocol(mut self, protocol: SecurityProtocol) -> Self {
        self.c.security.protocol = protocol;
        self
    }

    /// Trusts the certificate authorities in this PEM file, or in every PEM file of this
    /// directory (`ssl.ca.location`). Default: none, the system's trust store.
    pub fn ssl_ca_location(mut self, path: impl Into<PathBuf>) -> Self {
        self.c.security.tls.ca = Some(Pem::Path(path.into()));
        self
    }

    /// Trusts the certificate authorities in this PEM text (`ssl.ca.pem`). Default: none, the
    /// system's trust store.
    pub fn ssl_ca_pem(mut self, pem: &str) -> Self {
        self.c.security.tls.ca = Some(Pem::Text(pem.to_string()));
        self
    }

    /// This client's certificate chain, PEM file (`ssl.certificate.location`), for brokers
    /// that require client certificates. Default: none.
    pub fn ssl_certificate_location(mut self, path: impl Into<PathBuf>) -> Self {
        self.c.security.tls.certificate = Some(Pem::Path(path.into()));
        self
    }

    /// This client's certificate chain, PEM text (`ssl.certificate.pem`). Default: none.
    pub fn ssl_certificate_pem(mut self, pem: &str) -> Self {
        self.c.security.tls.certificate = Some(Pem::Text(pem.to_string()));
        self
    }

    /// The client certificate's private key, PEM file (`ssl.key.location`): PKCS#8, PKCS#1 or
    /// SEC1; an encrypted key is refused with a clear error. Default: none.
    pub fn ssl_key_location(mut self, path: impl Into<PathBuf>) -> Self {
        self.c.security.tls.key = Some(Pem::Path(path.into()));
        self
    }

    /// The client certificate's private key, PEM text (`ssl.key.pem`). Default: none.
    pub fn ssl_key_pem(mut self, pem: &str) -> Self {
        self.c.security.tls.key = Some(Pem::Text(pem.to_string()));
        self
    }

    /// Whether a broker's certificate must name the host connected to
    /// (`ssl.endpoint.identification.algorithm`: `https` on, `none` off). The chain is always
    /// verified; turning the name check off is logged as a warning. Default: on.
    pub fn ssl_verify_hostname(mut self, on: bool) -> Self {
        self.c.security.tls.verify_hostname = on;
        self
    }

    /// The SASL mechanism (`sasl.mechanism`, librdkafka's `sasl.mechanisms`). Default: none
    /// (required with `SASL_PLAINTEXT` and `SASL_SSL`).
    pub fn sasl_mechanism(mut self, mechanism: Mechanism) -> Self {
        self.sasl.mechanism = Some(mechanism);
        self
    }

    /// The SASL user name (`sasl.username`). Default: none.
    pub fn sasl_username(mut self, username: &str) -> Self {
        self.sasl.username = Some(username.to_string());
        self
    }

    /// The SASL password (`sasl.password`); kept out of logs, `Debug` and errors. Default:
    /// none.
    pub fn sasl_password(mut self, password: impl Into<Secret>) -> Self {
        self.sasl.password = Some(password.into());
        self
    }

    /// OAUTHBEARER with librdkafka's unsecured test tokens (`sasl.oauthbearer.config`):
    /// `principal=NAME [scope=A,B] [lifeSeconds=N] [extension_KEY=VALUE]...`; only a broker
    /// configured to accept unsigned tokens takes them. Default: none.
    pub fn sasl_oauthbearer_config(mut self, config: &str) -> Self {
        self.sasl.oauth_config = Some(config.to_string());
        self
    }

    /// OAUTHBEARER with tokens from the application's `provider` (called off the I/O
    /// threads: when the producer starts, then at 80% of each token's lifetime). Sets the
    /// mechanism. Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kprod::sasl::oauth::OAuthToken;
    /// let b = kprod::Producer::builder()
    ///     .bootstrap_servers("broker:9098")
    ///     .security_protocol(kprod::tls::SecurityProtocol::SaslSsl)
    ///     .sasl_oauthbearer_token_provider(|| -> Result<OAuthToken, String> {
    ///         Ok(OAuthToken::new("eyJh.eyJz.sig", Duration::from_secs(900), "app"))
    ///     });
    /// assert!(b.build_config().is_ok());
    /// ```
    pub fn sasl_oauthbearer_token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.sasl.mechanism = Some(Mechanism::OAuthBearer);
        self.sasl.oauth_method = Some(OAuthMethod::Provider(Arc::new(provider)));
        self
    }

    /// OAUTHBEARER with OIDC client credentials (`sasl.oauthbearer.method=oidc` and its
    /// properties). Sets the mechanism. Default: none.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub fn sasl_oauthbearer_oidc(mut self, config: crate::sasl::oidc::OidcConfig) -> Self {
        self.sasl.mechanism = Some(Mechanism::OAuthBearer);
        self.sasl.oauth_method = Some(OAuthMethod::Oidc(config));
        self
    }

    /// Sets a security property by its librdkafka or Java name: `Ok(false)` if `key` is not
    /// one.
    pub(super) fn security_property(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        let shown = if is_secret(key) { "***" } else { value };
        let bad = |why: &str| Error::config(key, format!("{shown:?}: {why}"));
        let pem_only = |v: &str| {
            if v.eq_ignore_ascii_case("PEM") {
                Ok(())
            } else {
                Err(bad(
                    "kprod reads PEM only (convert JKS or PKCS#12 with keytool or openssl)",
                ))
            }
        };
        let tls = &mut self.c.security.tls;
        match key {
            "security.protocol" => {
                self.c.security.protocol = SecurityProtocol::from_name(value)
                    .ok_or_else(|| bad("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"))?;
            }
            // librdkafka's "probe" means the system's store, as no CA does here.
            "ssl.ca.location" if value == "probe" => tls.ca = None,
            "ssl.ca.location" | "ssl.truststore.location" => tls.ca = Some(Pem::Path(value.into())),
            "ssl.ca.pem" | "ssl.truststore.certificates" => tls.ca = Some(Pem::Text(value.into())),
            "ssl.certificate.location" => tls.certificate = Some(Pem::Path(value.into())),
            "ssl.certificate.pem" | "ssl.keystore.certificate.chain" => {
                tls.certificate = Some(Pem::Text(value.into()))
            }
            "ssl.key.location" => tls.key = Some(Pem::Path(value.into())),
            "ssl.key.pem" | "ssl.keystore.key" => tls.key = Some(Pem::Text(value.into())),
            // A PEM keystore file holds the chain and the key.
            "ssl.keystore.location" => {
                tls.certificate = Some(Pem::Path(value.into()));
                tls.key = Some(Pem::Path(value.into()));
            }
            "ssl.truststore.type" | "ssl.keystore.type" => pem_only(value)?,
            "ssl.key.password" | "ssl.keystore.password" | "ssl.truststore.password" => {
                if !value.is_empty() {
                    return Err(bad(
                        "encrypted keys and stores are not supported: give the key unencrypted \
                         (openssl pkey -in key.pem -out key-plain.pem)",
                    ));
                }
            }
            "ssl.endpoint.identification.algorithm" => {
                tls.verify_hostname = match value.to_ascii_lowercase().as_str() {
                    "https" => true,
                    "none" | "" => false,
                    _ => return Err(bad("expected https or none")),
                }
            }
            "sasl.mechanism" | "sasl.mechanisms" => {
                self.sasl.mechanism = Some(Mechanism::from_name(value).ok_or_else(|| {
                    bad("expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
                })?);
            }
            "sasl.oauthbearer.config" => self.sasl.oauth_config = Some(value.to_string()),
            // librdkafka requires this for unsecured tokens; kprod uses them whenever
            // sasl.oauthbearer.config is the token source.
            "enable.sasl.oauthbearer.unsecure.jwt" => {
                if !matches!(value, "true" | "false") {
                    return Err(bad("expected true or false"));
                }
            }
            "sasl.oauthbearer.method" => {
                self.sasl.oidc = match value.to_ascii_lowercase().as_str() {
                    "oidc" => true,
                    "default" => false,
                    _ => return Err(bad("expected default or oidc")),
                }
            }
            "sasl.oauthbearer.token.endpoint.url" => {
                self.sasl.oidc_endpoint = Some(value.to_string())
            }
            "sasl.oauthbearer.client.id" => self.sasl.oidc_client_id = Some(value.to_string()),
            "sasl.oauthbearer.client.secret" => {
                self.sasl.oidc_client_secret = Some(Secret::new(value))
            }
            "sasl.oauthbearer.scope" => self.sasl.oidc_scope = Some(value.to_string()),
            "sasl.oauthbearer.extensions" => {
                let mut ext = Vec::new();
                for kv in value.split(',').filter(|s| !s.trim().is_empty()) {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| bad("expected key=value,key=value"))?;
                    ext.push((k.trim().to_string(), v.trim().to_string()));
                }
                self.sasl.oidc_extensions = ext;
            }
            "sasl.username" => self.sasl.username = Some(value.to_string()),
            "sasl.password" => self.sasl.password = Some(Secret::new(value)),
            "sasl.jaas.config" => {
                let j = parse_jaas(value).map_err(|why| bad(&why))?;
                self.sasl.jaas_mechanism = j.mechanism;
                self.sasl.username = j.username.or(self.sasl.username.take());
                self.sasl.password = j.password.map(Secret::new).or(self.sasl.password.take());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What a JAAS login line gives.
#[derive(Debug, Default, PartialEq, Eq)]
struct Jaas {
    mechanism: Option<Mechanism>,
    username: Option<String>,
    password: Option<String>,
}

/// Parses a Java `sasl.jaas.config` line for PLAIN or SCRAM:
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username="u"
/// password="p";`. Errors never quote the line (it holds the password).
fn parse_jaas(line: &str) -> Result<Jaas, String> {
    let line = line.trim();
    let line = line
        .strip_suffix(';')
        .ok_or("a JAAS login line ends with `;`")?;
    let (module, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("expected `<LoginModule> required key=\"value\" ...;`")?;
    let mechanism = match module.rsplit('.').next() {
        Some("PlainLoginModule") => Some(Mechanism::Plain),
        Some("ScramLoginModule") => None,
        _ => return Err("kprod knows PlainLoginModule and ScramLoginModule".into()),
    };
    let rest = rest.trim_start();
    let rest = ["required", "requisite", "sufficient", "optional"]
        .iter()
        .find_map(|f| rest.strip_prefix(f))
        .ok_or("the login module's flag (`required`) is missing")?;
    let mut out = Jaas {
        mechanism,
        ..Jaas::default()
    };
    let mut s = rest.trim_start();
    while !s.is_empty() {
        let (k, after) = s.split_once('=').ok_or("expected key=\"value\"")?;
        let k = k.trim();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            v.push(c);
                        }
                    }
                    Some((i, '"')) => break i,
                    Some((_, c)) => v.push(c),
                    None => return Err(format!("the value of `{k}` has no closing quote")),
                }
            };
            (v, &q[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        match k {
            "username" => out.username = Some(v),
            "password" => out.password = Some(v),
            _ => {} // other options (e.g. tokenauth) are not kprod's
        }
        s = next.trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_lines_give_user_and_password() {
        let j = parse_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="p\"w d";"#,
        )
        .unwrap();
        assert_eq!(
            j,
            Jaas {
                mechanism: Some(Mechanism::Plain),
                username: Some("alice".into()),
                password: Some("p\"w d".into()),
            }
        );
        let j = parse_jaas(
            "org.apache.kafka.common.security.scram.ScramLoginModule required\n  username=bob password=\"x\" ;",
        )
        .unwrap();
        assert_eq!((j.mechanism, j.username.as_deref()), (None, Some("bob")));
        for bad in [
            "PlainLoginModule required username=\"a\" password=\"b\"",
            "com.example.Other required;",
            "org.PlainLoginModule username=\"a\";",
            "org.PlainLoginModule required password=\"unterminated;",
        ] {
            let e = parse_jaas(bad).unwrap_err();
            assert!(!e.contains("unterminated"), "{e}");
        }
    }

    fn build(props: &[(&str, &str)]) -> Result<crate::ProducerConfig, Error> {
        ProducerConfigBuilder::new()
            .bootstrap_servers("b:9092")
            .from_properties(props.iter().copied())?
            .build_config()
    }

    #[test]
    fn properties_by_their_librdkafka_and_java_names() {
        let c = build(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanisms", "SCRAM-SHA-256"),
            ("sasl.username", "u"),
            ("sasl.password", "pw"),
        ])
        .unwrap();
        assert_eq!(c.security.protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(
            c.security.sasl,
            Some(SaslConfig::new(Mechanism::ScramSha256, "u", "pw"))
        );
        let c = build(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="a" password="b";"#,
            ),
        ])
        .unwrap();
        assert_eq!(
            c.security.sasl,
            Some(SaslConfig::new(Mechanism::Plain, "a", "b"))
        );
    }

    #[test]
    fn wrong_combinations_are_named_and_secrets_never_echoed() {
        let option = |r: Result<crate::ProducerConfig, Error>| match r.unwrap_err() {
            Error::Config { option, reason } => {
                assert!(!reason.contains("hunter2"), "{reason}");
                option
            }
            e => panic!("{e}"),
        };
        assert_eq!(
            option(build(&[("security.protocol", "SASL_SSL2")])),
            "security.protocol"
        );
        assert_eq!(
            option(build(&[("security.protocol", "SASL_PLAINTEXT")])),
            "sasl_mechanism"
        );
        assert_eq!(
            option(build(&[
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "u")
            ])),
            "security_protocol"
        );
        assert_eq!(
            option(build(&[("sasl.mechanism", "GSSAPI")])),
            "sasl.mechanism"
        );
        assert_eq!(
            option(build(&[("ssl.key.password", "hunter2")])),
            "ssl.key.password"
        );
        assert_eq!(
            option(build(&[("sasl.jaas.config", "hunter2")])),
            "sasl.jaas.config"
        );
        assert_eq!(
            option(build(&[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-256"),
                (
                    "sasl.jaas.config",
                    r#"x.PlainLoginModule required username="u" password="hunter2";"#
                )
            ])),
            "sasl.jaas.config"
        );
        assert_eq!(
            option(build(&[("ssl.truststore.type", "JKS")])),
            "ssl.truststore.type"
        );
        assert_eq!(
            option(build(&[
                ("security.protocol", "SSL"),
                ("ssl.ca.location", "/nonexistent/ca.pem")
            ])),
            "ssl_ca"
        );
    }
}
