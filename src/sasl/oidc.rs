//! OIDC client credentials (RFC 6749 section 4.4) for SASL/OAUTHBEARER, as librdkafka's
//! `sasl.oauthbearer.method=oidc` and Java's OAuthBearerLoginCallbackHandler do: a POST of
//! `grant_type=client_credentials` (and `scope`) to the token endpoint, the client id and
//! secret in HTTP Basic authentication, and the token's lifetime from `expires_in` (else the
//! JWT's `exp`). A small synchronous HTTP client (ureq, on rustls and ring) — no async
//! runtime — run by the token refresher thread, never an I/O thread.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::oauth::{jwt_claims, OAuthToken, TokenProvider};
use super::Secret;
use crate::tls::Pem;

/// Where and how to ask for tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `sasl.oauthbearer.token.endpoint.url`.
    pub token_endpoint: String,
    /// `sasl.oauthbearer.client.id`.
    pub client_id: String,
    /// `sasl.oauthbearer.client.secret`; kept out of `Debug`, logs and errors.
    pub client_secret: Secret,
    /// `sasl.oauthbearer.scope`, if any.
    pub scope: Option<String>,
    /// `sasl.oauthbearer.extensions`: SASL extensions sent with every token.
    pub extensions: Vec<(String, String)>,
    /// Certificate authorities for an `https` endpoint; default: Mozilla's roots.
    pub ca: Option<Pem>,
    /// Longest one token request may take. Default 10 s.
    pub timeout: Duration,
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

impl OidcConfig {
    /// Client credentials for `token_endpoint`.
    pub fn new(token_endpoint: &str, client_id: &str, client_secret: impl Into<Secret>) -> Self {
        OidcConfig {
            token_endpoint: token_endpoint.to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.into(),
            scope: None,
            extensions: Vec::new(),
            ca: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The provider behind `sasl.oauthbearer.method=oidc`.
pub(crate) struct OidcProvider {
    config: OidcConfig,
    agent: ureq::Agent,
}

impl OidcProvider {
    pub fn new(config: &OidcConfig) -> Result<Self, String> {
        let url = &config.token_endpoint;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("token endpoint {url:?} is not an http(s) URL"));
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &config.ca {
            let certs = crate::tls::trust("ssl_ca", ca).map_err(|e| e.to_string())?;
            let certs: Vec<_> = certs
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::from(certs));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(OidcProvider {
            config: config.clone(),
            agent,
        })
    }
}

/// `application/x-www-form-urlencoded` (RFC 6749 appendix B), for the Basic credentials.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl TokenProvider for OidcProvider {
    fn token(&self) -> Result<OAuthToken, String> {
        let c = &self.config;
        let url = &c.token_endpoint;
        let basic = B64.encode(format!(
            "{}:{}",
            form_encode(&c.client_id),
            form_encode(c.client_secret.expose())
        ));
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &c.scope {
            form.push(("scope", scope));
        }
        let resp = self
            .agent
            .post(url)
            .header("Authorization", &format!("Basic {basic}"))
            .header("Accept", "application/json")
            .send_form(form)
            .map_err(|e| format!("token endpoint {url}: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .with_config()
            .limit(256 * 1024)
            .read_to_string()
            .map_err(|e| format!("token endpoint {url}: reading the answer: {e}"))?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|_| format!("token endpoint {url} answered {status} without JSON"))?;
        if !status.is_success() {
            let why = json
                .get("error_description")
                .or_else(|| json.get("error"))
                .and_then(|v| v.as_str())
                .unwrap_or("no error description");
            return Err(format!("token endpoint {url} answered {status}: {why}"));
        }
        let token = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("token endpoint {url}: no access_token in the answer"))?;
        let claims: Option<serde_json::Value> =
            jwt_claims(token).and_then(|b| serde_json::from_slice(&b).ok());
        let claim = |k: &str| claims.as_ref().and_then(|c| c.get(k).cloned());
        // The sooner of `expires_in` and the JWT's own `exp` (which the broker checks).
        let by_answer = json
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .map(|s| SystemTime::now() + Duration::from_secs(s));
        let by_claim = claim("exp")
            .and_then(|v| v.as_u64())
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp));
        let expires_at = match (by_answer, by_claim) {
            (Some(a), Some(b)) => a.min(b),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => return Err(format!("token endpoint {url}: the token has no lifetime")),
        };
        let principal = claim("sub")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| c.client_id.clone());
        Ok(OAuthToken {
            value: Secret::new(token),
            expires_at,
            principal,
            extensions: c.extensions.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_form_encoded_and_secrets_hidden() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        let c = OidcConfig::new("https://idp/token", "id", "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(OidcProvider::new(&OidcConfig::new("ftp://x", "i", "s")).is_err());
    }
}
