//! SASL/OAUTHBEARER (RFC 7628, KIP-255): the client's message, tokens and where they come
//! from.
//!
//! The client sends one message, `n,,\x01auth=Bearer <token>\x01[key=value\x01]...\x01`; the
//! broker answers with nothing (accepted) or with a JSON error status. Tokens come from a
//! [`TokenProvider`] — the application's own (an OAuth client, a cloud signer such as AWS
//! MSK's IAM one), the built-in OIDC client credentials flow (feature `oidc`), or librdkafka's
//! unsecured test tokens ([`unsecured_token`]). A provider is never called on an I/O thread:
//! the producer asks it once when it starts (an error there fails `build`), then a refresher
//! thread asks again at 80% of each token's lifetime and keeps the last good token until it
//! expires.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;

use super::{SaslError, Secret, Step};

/// An OAuth 2 bearer token with what the broker needs beside it.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// The token itself (usually a JWT); kept out of `Debug` and logs.
    pub value: Secret,
    /// When it stops being valid.
    pub expires_at: SystemTime,
    /// Who it names (the JWT's `sub`, or what the provider says).
    pub principal: String,
    /// SASL extensions sent with it (KIP-342), e.g. a cluster's logical id.
    pub extensions: Vec<(String, String)>,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

impl OAuthToken {
    /// A token valid for `lifetime` from now.
    pub fn new(value: impl Into<Secret>, lifetime: Duration, principal: &str) -> Self {
        OAuthToken {
            value: value.into(),
            expires_at: SystemTime::now() + lifetime,
            principal: principal.to_string(),
            extensions: Vec::new(),
        }
    }

    /// With a SASL extension.
    pub fn extension(mut self, key: &str, value: &str) -> Self {
        self.extensions.push((key.to_string(), value.to_string()));
        self
    }

    /// Time left before it expires (zero once expired).
    pub fn remaining(&self) -> Duration {
        self.expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// Checks what the protocol restricts: the token's characters (RFC 6750) and the
    /// extensions' keys and values (KIP-342, `auth` reserved).
    pub(crate) fn validate(&self) -> Result<(), String> {
        let t = self.value.expose();
        let token_char = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
        if t.is_empty() || !t.chars().all(token_char) {
            return Err("the token is empty or has characters a bearer token cannot".into());
        }
        for (k, v) in &self.extensions {
            if k == "auth" || k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(format!(
                    "extension key {k:?} must be letters only and not `auth`"
                ));
            }
            if !v
                .chars()
                .all(|c| matches!(c, '\x21'..='\x7e' | ' ' | '\t' | '\r' | '\n'))
            {
                return Err(format!(
                    "extension {k:?} has a value with control characters"
                ));
            }
        }
        Ok(())
    }

    /// The client's whole SASL message.
    pub(crate) fn initial_response(&self) -> Vec<u8> {
        let mut m = format!("n,,\x01auth=Bearer {}\x01", self.value.expose());
        for (k, v) in &self.extensions {
            m.push_str(&format!("{k}={v}\x01"));
        }
        m.push('\x01');
        m.into_bytes()
    }
}

/// Where OAUTHBEARER tokens come from. Called off the I/O threads: once when the producer
/// starts, then whenever the current token is 80% through its lifetime. Errors are strings
/// for the log and for the records that cannot be sent; never put a secret in one.
///
/// A closure `Fn() -> Result<OAuthToken, String>` is a provider:
///
/// ```
/// use std::time::Duration;
/// use kprod::sasl::oauth::{OAuthToken, TokenProvider};
/// let provider = || -> Result<OAuthToken, String> {
///     // e.g. sign a request with the cloud's SDK here
///     Ok(OAuthToken::new("eyJhbGciOi.eyJzdWIiOi.c2ln", Duration::from_secs(900), "app")
///         .extension("logicalCluster", "lkc-123"))
/// };
/// assert_eq!(provider.token().unwrap().principal, "app");
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// A fresh token.
    fn token(&self) -> Result<OAuthToken, String>;
}

impl<F> TokenProvider for F
where
    F: Fn() -> Result<OAuthToken, String> + Send + Sync + 'static,
{
    fn token(&self) -> Result<OAuthToken, String> {
        self()
    }
}

/// How OAUTHBEARER tokens are obtained.
#[derive(Clone)]
pub enum OAuthMethod {
    /// librdkafka's unsecured JWTs for testing (`sasl.oauthbearer.config=principal=...`):
    /// signed by nobody; only a broker configured to accept unsecured tokens takes them.
    Unsecured(String),
    /// The application's provider.
    Provider(Arc<dyn TokenProvider>),
    /// OIDC client credentials (feature `oidc`).
    #[cfg(feature = "oidc")]
    Oidc(super::oidc::OidcConfig),
}

impl fmt::Debug for OAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuthMethod::Unsecured(c) => f.debug_tuple("Unsecured").field(c).finish(),
            OAuthMethod::Provider(_) => f.write_str("Provider(..)"),
            #[cfg(feature = "oidc")]
            OAuthMethod::Oidc(o) => f.debug_tuple("Oidc").field(o).finish(),
        }
    }
}

impl PartialEq for OAuthMethod {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OAuthMethod::Unsecured(a), OAuthMethod::Unsecured(b)) => a == b,
            (OAuthMethod::Provider(a), OAuthMethod::Provider(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "oidc")]
            (OAuthMethod::Oidc(a), OAuthMethod::Oidc(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for OAuthMethod {}

impl OAuthMethod {
    /// The provider this method stands for.
    pub(crate) fn provider(&self) -> Result<Arc<dyn TokenProvider>, String> {
        match self {
            OAuthMethod::Unsecured(config) => {
                let config = config.clone();
                unsecured_token(&config)?;
                Ok(Arc::new(move || unsecured_token(&config)))
            }
            OAuthMethod::Provider(p) => Ok(p.clone()),
            #[cfg(feature = "oidc")]
            OAuthMethod::Oidc(o) => Ok(Arc::new(super::oidc::OidcProvider::new(o)?)),
        }
    }
}

/// An unsecured JWT (`{"alg":"none"}`), as librdkafka makes for testing from
/// `sasl.oauthbearer.config`: `principal=NAME` (required), `scope=A,B` or `scope=A B`,
/// `lifeSeconds=N` (default 3600), `scopeClaimName=NAME` (default `scope`), and
/// `extension_KEY=VALUE` for SASL extensions.
///
/// ```
/// use kprod::sasl::oauth::unsecured_token;
/// let t = unsecured_token("principal=alice lifeSeconds=60 extension_traceId=123").unwrap();
/// assert_eq!(t.principal, "alice");
/// assert_eq!(t.extensions, [("traceId".to_string(), "123".to_string())]);
/// assert!(unsecured_token("lifeSeconds=60").is_err());
/// ```
pub fn unsecured_token(config: &str) -> Result<OAuthToken, String> {
    let mut principal = None;
    let mut scope: Vec<String> = Vec::new();
    let mut life = 3600u64;
    let mut scope_claim = "scope".to_string();
    let mut extensions = Vec::new();
    for part in config.split_whitespace() {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("sasl.oauthbearer.config: {part:?} is not key=value"))?;
        match k {
            "principal" => principal = Some(v.to_string()),
            "scope" => scope.extend(v.split(',').filter(|s| !s.is_empty()).map(String::from)),
            "lifeSeconds" => {
                life = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("sasl.oauthbearer.config: lifeSeconds must be a positive integer")?
            }
            "scopeClaimName" => scope_claim = v.to_string(),
            _ => match k.strip_prefix("extension_") {
                Some(key) => extensions.push((key.to_string(), v.to_string())),
                None => return Err(format!("sasl.oauthbearer.config: unknown key {k:?}")),
            },
        }
    }
    let principal = principal
        .filter(|p| !p.is_empty())
        .ok_or("sasl.oauthbearer.config needs principal=NAME")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = format!(
        "{{\"sub\":{},\"iat\":{now},\"exp\":{}",
        json_string(&principal),
        now + life
    );
    if !scope.is_empty() {
        let list: Vec<String> = scope.iter().map(|s| json_string(s)).collect();
        claims.push_str(&format!(
            ",{}:[{}]",
            json_string(&scope_claim),
            list.join(",")
        ));
    }
    claims.push('}');
    let jwt = format!(
        "{}.{}.",
        B64URL.encode(br#"{"alg":"none"}"#),
        B64URL.encode(claims.as_bytes())
    );
    let token = OAuthToken {
        value: Secret::new(jwt),
        // What the broker will read from the claims (whole seconds), not a moment later.
        expires_at: UNIX_EPOCH + Duration::from_secs(now + life),
        principal,
        extensions,
    };
    token.validate()?;
    Ok(token)
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The claims part of a JWT, decoded (not verified), if `token` is one.
pub(crate) fn jwt_claims(token: &str) -> Option<Vec<u8>> {
    let mut parts = token.split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    parts.next()?;
    B64URL.decode(claims.trim_end_matches('=')).ok()
}

/// One OAUTHBEARER exchange's client side.
#[derive(Debug)]
pub(crate) struct OAuthClient {
    token: Option<Arc<OAuthToken>>,
}

impl OAuthClient {
    pub fn new(token: Arc<OAuthToken>) -> Self {
        OAuthClient { token: Some(token) }
    }

    pub fn start(&mut self) -> Vec<u8> {
        self.token
            .take()
            .map_or_else(Vec::new, |t| t.initial_response())
    }

    /// An empty answer is success; anything else is the broker's error status (JSON).
    pub fn step(&mut self, server: &[u8]) -> Result<Step, SaslError> {
        if server.is_empty() {
            Ok(Step::Done)
        } else {
            let status = String::from_utf8_lossy(&server[..server.len().min(512)]).into_owned();
            Err(SaslError::Server(status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_response_is_rfc_7628s() {
        let t = OAuthToken::new("abc.def.", Duration::from_secs(60), "p").extension("x", "1");
        assert_eq!(
            t.initial_response(),
            b"n,,\x01auth=Bearer abc.def.\x01x=1\x01\x01"
        );
        assert!(!format!("{t:?}").contains("abc.def"));
        assert!(t.validate().is_ok());
        for bad in [
            OAuthToken::new("has space", Duration::from_secs(1), "p"),
            OAuthToken::new("ok", Duration::from_secs(1), "p").extension("auth", "x"),
            OAuthToken::new("ok", Duration::from_secs(1), "p").extension("k9", "x"),
            OAuthToken::new("ok", Duration::from_secs(1), "p").extension("k", "\x01"),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unsecured_tokens_are_librdkafkas() {
        let t = unsecured_token("principal=al\"ice scope=read,write lifeSeconds=30").unwrap();
        let claims = String::from_utf8(jwt_claims(t.value.expose()).unwrap()).unwrap();
        assert!(claims.starts_with(r#"{"sub":"al\"ice","iat":"#), "{claims}");
        assert!(
            claims.ends_with(r#","scope":["read","write"]}"#),
            "{claims}"
        );
        assert!(t.remaining() <= Duration::from_secs(30));
        assert!(t.value.expose().ends_with('.'));
        for bad in [
            "",
            "principal=",
            "principal=a lifeSeconds=0",
            "principal=a what=1",
            "x",
        ] {
            assert!(unsecured_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_error_status_fails_the_exchange() {
        let t = Arc::new(OAuthToken::new("t", Duration::from_secs(60), "p"));
        let mut c = OAuthClient::new(t.clone());
        assert_eq!(c.start(), t.initial_response());
        assert_eq!(c.step(b""), Ok(Step::Done));
        let mut c = OAuthClient::new(t);
        c.start();
        assert_eq!(
            c.step(br#"{"status":"invalid_token"}"#),
            Err(SaslError::Server(r#"{"status":"invalid_token"}"#.into()))
        );
    }
}
