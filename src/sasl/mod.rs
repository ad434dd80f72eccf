//! SASL authentication, without sockets: the mechanisms' client side as state machines that
//! take the broker's token and give the next one.
//!
//! A connection to a SASL listener runs, after ApiVersions: SaslHandshake (the mechanism), then
//! SaslAuthenticate rounds carrying the tokens below (KIP-152), then ordinary traffic. The
//! engine core sends the requests; an exchange (PLAIN, or [`scram::ScramClient`]) decides what they carry and whether the
//! broker's answers are right.
//!
//! - PLAIN (RFC 4616): one message, `\0user\0password`. Only over TLS in production: the
//!   password travels as it is.
//! - SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677): [`scram`]. The password never travels,
//!   and the broker proves it knows the credential: a wrong server signature fails the
//!   connection.
//! - OAUTHBEARER (RFC 7628, KIP-255): [`oauth`]. A bearer token from a [`oauth::TokenProvider`]
//!   (the application's, OIDC client credentials with feature `oidc`, or unsecured test
//!   tokens), refreshed off the I/O threads before it expires.

#[doc(hidden)]
pub mod fuzzing;
pub mod oauth;
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub mod oidc;
pub mod scram;
pub(crate) mod tokens;

use std::fmt;
use std::sync::Arc;

use oauth::{OAuthClient, OAuthMethod, OAuthToken};

/// A password or other secret: kept out of `Debug` output, logs and error messages.
///
/// ```
/// use kprod::sasl::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the code that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// `PLAIN`: user name and password in the clear (use it over TLS).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER`: an OAuth 2 bearer token.
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism kprod speaks.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];

    /// The mechanisms that authenticate with a user name and password.
    pub const WITH_PASSWORD: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    /// The name sent in SaslHandshake (`PLAIN`, `SCRAM-SHA-256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism called `name` (case-insensitive), if kprod speaks it.
    ///
    /// ```
    /// use kprod::sasl::Mechanism;
    /// assert_eq!(Mechanism::from_name("scram-sha-512"), Some(Mechanism::ScramSha512));
    /// assert_eq!(Mechanism::from_name("GSSAPI"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    pub(crate) fn scram(self) -> Option<scram::Hash> {
        match self {
            Mechanism::ScramSha256 => Some(scram::Hash::Sha256),
            Mechanism::ScramSha512 => Some(scram::Hash::Sha512),
            Mechanism::Plain | Mechanism::OAuthBearer => None,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// SASL settings: the mechanism and its credentials.
///
/// ```
/// use kprod::sasl::{Mechanism, SaslConfig};
/// let c = SaslConfig::new(Mechanism::ScramSha256, "alice", "s3cret");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The user name (PLAIN, SCRAM).
    pub username: String,
    /// The password (PLAIN, SCRAM).
    pub password: Secret,
    /// Where tokens come from (OAUTHBEARER).
    pub oauth: Option<OAuthMethod>,
}

impl SaslConfig {
    /// `mechanism` with a user name and password.
    pub fn new(mechanism: Mechanism, username: &str, password: impl Into<Secret>) -> Self {
        SaslConfig {
            mechanism,
            username: username.to_string(),
            password: password.into(),
            oauth: None,
        }
    }

    /// OAUTHBEARER with tokens from `method`.
    pub fn oauthbearer(method: OAuthMethod) -> Self {
        SaslConfig {
            mechanism: Mechanism::OAuthBearer,
            username: String::new(),
            password: Secret::default(),
            oauth: Some(method),
        }
    }

    /// Checks the settings, naming what is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.mechanism == Mechanism::OAuthBearer {
            return match &self.oauth {
                None => Err(
                    "OAUTHBEARER needs a token source: sasl.oauthbearer.config, \
                             sasl.oauthbearer.method=oidc, or a token provider"
                        .into(),
                ),
                Some(OAuthMethod::Unsecured(c)) => oauth::unsecured_token(c).map(|_| ()),
                Some(_) => Ok(()),
            };
        }
        if self.username.is_empty() {
            return Err(format!("{} needs a user name", self.mechanism));
        }
        if self.username.contains('\0') || self.password.expose().contains('\0') {
            return Err("user name and password cannot contain NUL".into());
        }
        Ok(())
    }

    /// A new exchange for one authentication; OAUTHBEARER needs the current `token`.
    pub(crate) fn exchange(&self, token: Option<Arc<OAuthToken>>) -> Result<Exchange, String> {
        if self.mechanism == Mechanism::OAuthBearer {
            let token = token.ok_or("no OAUTHBEARER token")?;
            return Ok(Exchange::OAuth(OAuthClient::new(token)));
        }
        Ok(match self.mechanism.scram() {
            Some(hash) => Exchange::Scram(scram::ScramClient::new(
                hash,
                &self.username,
                self.password.expose(),
            )),
            None => Exchange::Plain {
                username: self.username.clone(),
                password: self.password.clone(),
                sent: false,
            },
        })
    }
}

/// Why an authentication exchange failed on the client's side (the broker's own refusals come
/// as error codes in its answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The broker's message is not what the mechanism expects.
    #[error("malformed server message: {0}")]
    Malformed(&'static str),
    /// The broker's SCRAM nonce does not extend the client's.
    #[error("the server's nonce does not extend the client's")]
    NonceMismatch,
    /// The broker's SCRAM signature is wrong: it does not know the credential.
    #[error("the server's signature is wrong (it does not know this user's credential)")]
    BadServerSignature,
    /// The broker reported an error inside the exchange.
    #[error("the server said: {0}")]
    Server(String),
    /// The iteration count is outside what kprod accepts.
    #[error("iteration count {0} is outside {min}..={max}", min = scram::MIN_ITERATIONS, max = scram::MAX_ITERATIONS)]
    Iterations(u32),
    /// The broker sent another token after the exchange was complete.
    #[error("the server sent a token after the exchange was complete")]
    AfterEnd,
}

/// What the client sends next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// This token, then wait for the broker's answer.
    Send(Vec<u8>),
    /// The exchange is complete and the broker is verified.
    Done,
}

/// One authentication exchange's client side.
#[derive(Debug)]
pub(crate) enum Exchange {
    Plain {
        username: String,
        password: Secret,
        sent: bool,
    },
    Scram(scram::ScramClient),
    OAuth(OAuthClient),
}

impl Exchange {
    /// The first token.
    pub fn start(&mut self) -> Vec<u8> {
        match self {
            Exchange::Plain {
                username,
                password,
                sent,
            } => {
                *sent = true;
                let mut t = Vec::with_capacity(2 + username.len() + password.expose().len());
                t.push(0);
                t.extend_from_slice(username.as_bytes());
                t.push(0);
                t.extend_from_slice(password.expose().as_bytes());
                t
            }
            Exchange::Scram(s) => s.client_first(),
            Exchange::OAuth(o) => o.start(),
        }
    }

    /// The broker's answer to the last token: the next one, or done.
    pub fn step(&mut self, server: &[u8]) -> Result<Step, SaslError> {
        match self {
            // The broker answers PLAIN with an empty token.
            Exchange::Plain { sent: true, .. } if server.is_empty() => Ok(Step::Done),
            Exchange::Plain { .. } => Err(SaslError::AfterEnd),
            Exchange::Scram(s) => s.step(server),
            Exchange::OAuth(o) => o.step(server),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sends_one_token_and_expects_an_empty_answer() {
        let c = SaslConfig::new(Mechanism::Plain, "alice", "pw");
        let mut x = c.exchange(None).unwrap();
        assert_eq!(x.start(), b"\0alice\0pw");
        assert_eq!(x.step(b""), Ok(Step::Done));
        let mut x = c.exchange(None).unwrap();
        x.start();
        assert_eq!(x.step(b"more?"), Err(SaslError::AfterEnd));
    }

    #[test]
    fn settings_are_checked_and_secrets_stay_out_of_debug() {
        assert!(SaslConfig::new(Mechanism::Plain, "", "pw")
            .validate()
            .is_err());
        assert!(SaslConfig::new(Mechanism::Plain, "a\0b", "pw")
            .validate()
            .is_err());
        let c = SaslConfig::new(Mechanism::ScramSha512, "bob", "topsecret");
        assert!(c.validate().is_ok());
        assert!(!format!("{c:?}{:?}", c.exchange(None).unwrap()).contains("topsecret"));
        assert!(SaslConfig::new(Mechanism::OAuthBearer, "", "")
            .validate()
            .is_err());
        let unsecured = SaslConfig::oauthbearer(OAuthMethod::Unsecured("principal=a".into()));
        assert!(unsecured.validate().is_ok());
        assert!(unsecured.exchange(None).is_err());
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
    }
}
