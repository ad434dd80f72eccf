//! The mock's secured listeners: TLS (rustls, the connection thread's stream wrapped) and SASL
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), as a Kafka broker's authenticator does it.
//!
//! On a SASL listener a connection may send ApiVersions, SaslHandshake and SaslAuthenticate
//! until it has authenticated; any other request closes it unanswered, and so does a failed
//! authentication (after the error answer). With a session lifetime, the broker tells it in
//! SaslAuthenticate (KIP-368) and closes a connection whose session has expired when its next
//! request other than a re-authentication arrives, as Kafka's `connections.max.reauth.ms` does.
//! Credentials are stored as SCRAM stores them: salted, never the password.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::messages::sasl_authenticate::{
    SaslAuthenticateRequest, SaslAuthenticateResponse,
};
use crate::protocol::messages::sasl_handshake::{SaslHandshakeRequest, SaslHandshakeResponse};
use crate::protocol::messages::Request;
use crate::protocol::{decode_request, encode_response, ApiKey, ErrorCode, RequestHeader};
use crate::sasl::scram::{Hash, ScramServer, ServerStep, StoredCredential};
use crate::sasl::Mechanism;

/// Iterations of the stored SCRAM credentials (Kafka's default).
const ITERATIONS: u32 = 4096;

/// A connection's byte stream: plain TCP, or TLS over it.
pub(crate) enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Wire {
    /// The name a TLS client sent (SNI), once the handshake is done.
    pub fn server_name(&self) -> Option<String> {
        match self {
            Wire::Plain(_) => None,
            Wire::Tls(t) => t.conn.server_name().map(str::to_string),
        }
    }

    /// The socket beneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(t) => &t.sock,
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(t) => t.flush(),
        }
    }
}

/// One user's credentials, per SCRAM hash.
#[derive(Debug, Clone)]
struct User {
    sha256: StoredCredential,
    sha512: StoredCredential,
}

/// A SASL listener's settings.
#[derive(Debug, Clone)]
pub(crate) struct SaslServer {
    pub mechanisms: Vec<Mechanism>,
    users: HashMap<String, User>,
    /// Session lifetime told to clients; `None`: no re-authentication asked.
    pub session_lifetime: Option<Duration>,
    /// Sign SCRAM exchanges with a wrong key (a broker that does not know the credential).
    pub forge_scram_signature: bool,
}

impl SaslServer {
    pub fn new(
        mechanisms: Vec<Mechanism>,
        users: &[(String, String)],
        session_lifetime: Option<Duration>,
        forge_scram_signature: bool,
    ) -> Self {
        let users = users
            .iter()
            .map(|(name, password)| {
                let user = User {
                    sha256: StoredCredential::new(Hash::Sha256, password, ITERATIONS),
                    sha512: StoredCredential::new(Hash::Sha512, password, ITERATIONS),
                };
                (name.clone(), user)
            })
            .collect();
        SaslServer {
            mechanisms,
            users,
            session_lifetime,
            forge_scram_signature,
        }
    }

    fn credential(&self, hash: Hash, user: &str) -> Option<StoredCredential> {
        let u = self.users.get(user)?;
        Some(match hash {
            Hash::Sha256 => u.sha256.clone(),
            Hash::Sha512 => u.sha512.clone(),
        })
    }
}

/// What the connection does with a request.
pub(crate) enum Gate {
    /// Serve it as usual.
    Serve,
    /// Send this answer.
    Answer(Vec<u8>),
    /// Send this answer, then close (a failed authentication).
    AnswerAndClose(Vec<u8>, String),
    /// Close without answering.
    Close(String),
}

/// A connection's authentication state.
#[derive(Default)]
pub(crate) struct Session {
    /// The mechanism chosen by SaslHandshake, waiting for SaslAuthenticate.
    mechanism: Option<Mechanism>,
    scram: Option<ScramServer>,
    /// OAUTHBEARER: the token was refused with an error status; the client's `\x01` comes
    /// next, answered with the failure.
    oauth_refused: Option<String>,
    /// Authenticated; with a lifetime, until when.
    authenticated: Option<Option<Instant>>,
    /// Re-authentications completed.
    pub reauthentications: u64,
    /// The SASL extensions (KIP-342) of the OAUTHBEARER exchange that just succeeded, for the
    /// cluster to record.
    pub oauth_extensions: Vec<(String, String)>,
}

impl Session {
    /// Decides what happens to a request on a SASL listener.
    pub fn gate(
        &mut self,
        sasl: &SaslServer,
        h: &RequestHeader,
        body: &[u8],
        now: Instant,
    ) -> Gate {
        let (v, cid) = (h.api_version, h.correlation_id);
        match h.api_key {
            ApiKey::API_VERSIONS => Gate::Serve,
            ApiKey::SASL_HANDSHAKE => {
                let Ok(req) = decode_request::<SaslHandshakeRequest>(body, v) else {
                    return Gate::Close("malformed SaslHandshake".into());
                };
                if v < 1 {
                    return Gate::Close("SaslHandshake v0 (raw SASL tokens) is not served".into());
                }
                let offered: Vec<String> = sasl
                    .mechanisms
                    .iter()
                    .map(|m| m.name().to_string())
                    .collect();
                let chosen = Mechanism::from_name(&req.mechanism)
                    .filter(|m| sasl.mechanisms.contains(m) && m.name() == req.mechanism);
                let resp = SaslHandshakeResponse {
                    error_code: if chosen.is_some() {
                        0
                    } else {
                        ErrorCode::UNSUPPORTED_SASL_MECHANISM.code()
                    },
                    mechanisms: offered,
                };
                let out = encode::<SaslHandshakeRequest>(&resp, v, cid);
                match chosen {
                    Some(m) => {
                        self.mechanism = Some(m);
                        self.oauth_refused = None;
                        self.scram = m.scram().map(|hash| {
                            let mut s = ScramServer::new(hash);
                            s.forge_signature = sasl.forge_scram_signature;
                            s
                        });
                        Gate::Answer(out)
                    }
                    None => Gate::AnswerAndClose(
                        out,
                        format!("unsupported SASL mechanism {:?}", req.mechanism),
                    ),
                }
            }
            ApiKey::SASL_AUTHENTICATE => {
                let Ok(req) = decode_request::<SaslAuthenticateRequest>(body, v) else {
                    return Gate::Close("malformed SaslAuthenticate".into());
                };
                let Some(mechanism) = self.mechanism else {
                    let resp = failure(
                        ErrorCode::ILLEGAL_SASL_STATE,
                        "SaslAuthenticate before SaslHandshake",
                    );
                    return Gate::AnswerAndClose(
                        encode::<SaslAuthenticateRequest>(&resp, v, cid),
                        "SaslAuthenticate before SaslHandshake".into(),
                    );
                };
                // The session ends at the configured lifetime, or when the token does, if
                // sooner (as Kafka bounds an OAUTHBEARER session by its token).
                let mut lifetime = sasl.session_lifetime;
                let step = match (&mut self.scram, mechanism) {
                    (Some(s), _) => {
                        let hash = mechanism.scram().expect("a SCRAM mechanism");
                        s.step(&req.auth_bytes, |u| sasl.credential(hash, u))
                    }
                    (None, Mechanism::OAuthBearer) => match self.oauth_refused.take() {
                        Some(why) => ServerStep::Failed(why),
                        None => match oauthbearer(&req.auth_bytes) {
                            Ok((user, left, extensions)) => {
                                lifetime = lifetime.map(|l| l.min(left));
                                self.oauth_extensions = extensions;
                                ServerStep::Done {
                                    user,
                                    message: Vec::new(),
                                }
                            }
                            Err(why) => {
                                self.oauth_refused = Some(why);
                                self.mechanism = Some(mechanism);
                                let resp = SaslAuthenticateResponse {
                                    auth_bytes: br#"{"status":"invalid_token"}"#.to_vec().into(),
                                    ..SaslAuthenticateResponse::default()
                                };
                                return Gate::Answer(encode::<SaslAuthenticateRequest>(
                                    &resp, v, cid,
                                ));
                            }
                        },
                    },
                    (None, _) => plain(sasl, &req.auth_bytes),
                };
                match step {
                    ServerStep::Continue(token) => {
                        let resp = SaslAuthenticateResponse {
                            auth_bytes: token.into(),
                            ..SaslAuthenticateResponse::default()
                        };
                        Gate::Answer(encode::<SaslAuthenticateRequest>(&resp, v, cid))
                    }
                    ServerStep::Done { message, .. } => {
                        if self.authenticated.is_some() {
                            self.reauthentications += 1;
                        }
                        self.mechanism = None;
                        self.scram = None;
                        self.authenticated = Some(lifetime.map(|l| now + l));
                        let resp = SaslAuthenticateResponse {
                            auth_bytes: message.into(),
                            session_lifetime_ms: lifetime.map_or(0, |l| l.as_millis() as i64),
                            ..SaslAuthenticateResponse::default()
                        };
                        Gate::Answer(encode::<SaslAuthenticateRequest>(&resp, v, cid))
                    }
                    ServerStep::Failed(why) => {
                        let msg = format!(
                            "Authentication failed during authentication due to invalid \
                             credentials with SASL mechanism {mechanism}"
                        );
                        let resp = failure(ErrorCode::SASL_AUTHENTICATION_FAILED, &msg);
                        Gate::AnswerAndClose(
                            encode::<SaslAuthenticateRequest>(&resp, v, cid),
                            format!("authentication failed: {why}"),
                        )
                    }
                }
            }
            api => match self.authenticated {
                None => Gate::Close(format!("{} before authentication", api.name())),
                Some(Some(until)) if now >= until => {
                    Gate::Close(format!("{} after the SASL session expired", api.name()))
                }
                Some(_) if self.mechanism.is_some() => {
                    Gate::Close(format!("{} in the middle of re-authentication", api.name()))
                }
                Some(_) => Gate::Serve,
            },
        }
    }
}

fn failure(code: ErrorCode, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse {
        error_code: code.code(),
        error_message: Some(message.to_string()),
        ..SaslAuthenticateResponse::default()
    }
}

fn encode<R: Request>(resp: &R::Response, v: i16, cid: i32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response::<R>(resp, v, cid, &mut out).expect("a version the mock offers");
    out
}

/// PLAIN (RFC 4616): `authzid \0 user \0 password`, checked against the stored SHA-256
/// credential.
fn plain(sasl: &SaslServer, token: &[u8]) -> ServerStep {
    let mut parts = token.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return ServerStep::Failed("malformed PLAIN token".into());
    };
    let (Ok(authzid), Ok(user), Ok(password)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(user),
        std::str::from_utf8(password),
    ) else {
        return ServerStep::Failed("PLAIN token is not UTF-8".into());
    };
    if !authzid.is_empty() && authzid != user {
        return ServerStep::Failed("authorization id differs from the user".into());
    }
    match sasl.credential(Hash::Sha256, user) {
        Some(c) if c.matches(Hash::Sha256, password) => ServerStep::Done {
            user: user.to_string(),
            message: Vec::new(),
        },
        _ => ServerStep::Failed("invalid user name or password".into()),
    }
}

/// OAUTHBEARER's client message (RFC 7628): `n,[a=authzid],\x01auth=Bearer TOKEN\x01[k=v\x01]...
/// \x01`, with an unsecured JWT (`alg` none) that names a subject and has not expired, as
/// Kafka's unsecured validator accepts. The principal, the time the token has left, and the
/// SASL extensions sent with it.
pub(crate) type OAuthAccepted = (String, Duration, Vec<(String, String)>);

/// Validates an OAUTHBEARER client message; see [`OAuthAccepted`].
pub(crate) fn oauthbearer(message: &[u8]) -> Result<OAuthAccepted, String> {
    let m = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_string())?;
    let rest = m.strip_prefix("n,").ok_or("no gs2 header")?;
    let (_authzid, rest) = rest.split_once(',').ok_or("no gs2 header")?;
    let body = rest
        .strip_prefix('\x01')
        .and_then(|r| r.strip_suffix("\x01\x01"))
        .ok_or("not \\x01-separated")?;
    let mut token = None;
    let mut extensions = Vec::new();
    for kv in body.split('\x01') {
        let (k, v) = kv.split_once('=').ok_or("a key without a value")?;
        if k == "auth" {
            token = v.strip_prefix("Bearer ");
        } else if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!("bad extension key {k:?}"));
        } else {
            extensions.push((k.to_string(), v.to_string()));
        }
    }
    let token = token.ok_or("no auth=Bearer")?;
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a JWT".into());
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json = |part: &str| -> Result<serde_json::Value, String> {
        let bytes = b64.decode(part).map_err(|_| "not base64url".to_string())?;
        serde_json::from_slice(&bytes).map_err(|_| "not JSON".to_string())
    };
    let (header, claims) = (json(header)?, json(claims)?);
    if header.get("alg").and_then(|a| a.as_str()) != Some("none") || !sig.is_empty() {
        return Err("only unsecured tokens (alg none) are validated here".into());
    }
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or("no subject")?;
    let exp = claims
        .get("exp")
        .and_then(|e| e.as_f64())
        .ok_or("no expiry")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if exp <= now {
        return Err("the token has expired".into());
    }
    Ok((
        sub.to_string(),
        Duration::from_secs_f64(exp - now),
        extensions,
    ))
}

/// The TLS settings of a listener, as given to the builder.
#[derive(Debug, Clone)]
pub(crate) struct TlsServer {
    pub config: Arc<rustls::ServerConfig>,
}

impl TlsServer {
    /// Wraps an accepted socket.
    pub fn wrap(&self, stream: TcpStream) -> std::io::Result<Wire> {
        let conn =
            rustls::ServerConnection::new(self.config.clone()).map_err(std::io::Error::other)?;
        Ok(Wire::Tls(Box::new(rustls::StreamOwned::new(conn, stream))))
    }
}
