//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), both sides, without sockets.
//!
//! ```text
//!  client                                          server
//!  n,,n=user,r=CNONCE                   ───►
//!                                       ◄───        r=CNONCE+SNONCE,s=SALT,i=ITERATIONS
//!  c=biws,r=CNONCE+SNONCE,p=PROOF       ───►        (checks the proof against StoredKey)
//!                                       ◄───        v=SERVER-SIGNATURE   (or e=ERROR)
//!  (checks the signature: the server knew the credential)
//! ```
//!
//! The client side ([`ScramClient`]) is what the producer runs; the server side
//! (`ScramServer`, with credentials stored salted as Kafka stores them) is the mock's.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

use super::{SaslError, Step};

/// Fewest iterations accepted from a server (Kafka's own minimum).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most iterations accepted from a server: Kafka allows up to 16,384; a server asking far more
/// would hold the I/O thread in the key derivation.
pub const MAX_ITERATIONS: u32 = 100_000;
/// Longest server message parsed.
const MAX_MESSAGE: usize = 4096;

/// The hash a SCRAM mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Hash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// `Hi(password, salt, i)`: PBKDF2 with the mechanism's HMAC.
pub(crate) fn salted_password(hash: Hash, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0; hash.len()];
    let n = std::num::NonZeroU32::new(iterations.max(1)).expect("not zero");
    pbkdf2::derive(hash.pbkdf2(), n, salt, password.as_bytes(), &mut out);
    out
}

fn hmac(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hash.hmac(), key), data)
        .as_ref()
        .to_vec()
}

fn h(hash: Hash, data: &[u8]) -> Vec<u8> {
    digest::digest(hash.digest(), data).as_ref().to_vec()
}

/// Equal in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A user name as SCRAM writes it: `=` and `,` escaped.
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// A fresh client nonce: 24 random bytes, base64 (printable, no comma).
fn nonce() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system's random source works");
    B64.encode(b)
}

/// The `key=value` attributes of a SCRAM message, in order.
fn attributes(msg: &[u8]) -> Result<Vec<(u8, &str)>, SaslError> {
    if msg.len() > MAX_MESSAGE {
        return Err(SaslError::Malformed("message too long"));
    }
    let s = std::str::from_utf8(msg).map_err(|_| SaslError::Malformed("not UTF-8"))?;
    s.split(',')
        .map(|a| match a.as_bytes() {
            [k, b'=', ..] if k.is_ascii_alphabetic() => Ok((*k, &a[2..])),
            _ => Err(SaslError::Malformed("attribute is not k=value")),
        })
        .collect()
}

/// The keys both sides derive from the salted password.
struct Keys {
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Keys {
    fn new(hash: Hash, salted: &[u8]) -> Keys {
        let client_key = hmac(hash, salted, b"Client Key");
        Keys {
            stored_key: h(hash, &client_key),
            server_key: hmac(hash, salted, b"Server Key"),
            client_key,
        }
    }
}

enum ClientState {
    Initial,
    SentFirst { client_first_bare: String },
    SentFinal { server_signature: Vec<u8> },
    Done,
}

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    hash: Hash,
    user: String,
    password: super::Secret,
    nonce: String,
    state: ClientState,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("hash", &self.hash)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// An exchange for `user` with `password`, with a fresh random nonce.
    pub fn new(hash: Hash, user: &str, password: &str) -> Self {
        Self::with_nonce(hash, user, password, &nonce())
    }

    /// With a given nonce: for test vectors only (a nonce must never repeat).
    pub(crate) fn with_nonce(hash: Hash, user: &str, password: &str, nonce: &str) -> Self {
        ScramClient {
            hash,
            user: escape(user),
            password: super::Secret::new(password),
            nonce: nonce.to_string(),
            state: ClientState::Initial,
        }
    }

    /// `client-first-message`: `n,,n=user,r=nonce`.
    pub fn client_first(&mut self) -> Vec<u8> {
        let bare = format!("n={},r={}", self.user, self.nonce);
        let msg = format!("n,,{bare}").into_bytes();
        self.state = ClientState::SentFirst {
            client_first_bare: bare,
        };
        msg
    }

    /// The server's message: the client's next, or done once the server's signature is
    /// verified.
    pub(crate) fn step(&mut self, server: &[u8]) -> Result<Step, SaslError> {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::Initial => Err(SaslError::Malformed("server spoke first")),
            ClientState::SentFirst { client_first_bare } => {
                self.client_final(&client_first_bare, server)
            }
            ClientState::SentFinal { server_signature } => {
                let attrs = attributes(server)?;
                match attrs.first() {
                    Some((b'e', why)) => Err(SaslError::Server(why.to_string())),
                    Some((b'v', sig)) => {
                        let sig = B64
                            .decode(sig)
                            .map_err(|_| SaslError::Malformed("signature is not base64"))?;
                        if same(&sig, &server_signature) {
                            Ok(Step::Done)
                        } else {
                            Err(SaslError::BadServerSignature)
                        }
                    }
                    _ => Err(SaslError::Malformed("server-final has no v= or e=")),
                }
            }
            ClientState::Done => Err(SaslError::AfterEnd),
        }
    }

    fn client_final(&mut self, client_first_bare: &str, server: &[u8]) -> Result<Step, SaslError> {
        let attrs = attributes(server)?;
        let (nonce, salt, iterations) = match attrs.as_slice() {
            [(b'm', _), ..] => return Err(SaslError::Malformed("unsupported mandatory extension")),
            [(b'e', why), ..] => return Err(SaslError::Server(why.to_string())),
            [(b'r', r), (b's', s), (b'i', i), ..] => (*r, *s, *i),
            _ => return Err(SaslError::Malformed("server-first is not r=,s=,i=")),
        };
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(SaslError::NonceMismatch);
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| SaslError::Malformed("salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| SaslError::Malformed("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(SaslError::Iterations(iterations));
        }
        let without_proof = format!("c=biws,r={nonce}");
        let server_first = std::str::from_utf8(server).expect("checked by attributes");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let salted = salted_password(self.hash, self.password.expose(), &salt, iterations);
        let keys = Keys::new(self.hash, &salted);
        let signature = hmac(self.hash, &keys.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = keys
            .client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.state = ClientState::SentFinal {
            server_signature: hmac(self.hash, &keys.server_key, auth_message.as_bytes()),
        };
        Ok(Step::Send(
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
        ))
    }
}

/// A SCRAM credential as a server stores it: never the password.
#[cfg(any(test, feature = "mock"))]
#[derive(Clone)]
pub(crate) struct StoredCredential {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

#[cfg(any(test, feature = "mock"))]
impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[cfg(any(test, feature = "mock"))]
impl StoredCredential {
    /// The credential for `password`, salted with a fresh random salt.
    pub fn new(hash: Hash, password: &str, iterations: u32) -> Self {
        let salt = B64.decode(nonce()).expect("nonce is base64");
        let keys = Keys::new(hash, &salted_password(hash, password, &salt, iterations));
        StoredCredential {
            salt,
            iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }
    }

    /// Whether `password` is the one this credential was made from (for PLAIN).
    pub fn matches(&self, hash: Hash, password: &str) -> bool {
        let keys = Keys::new(
            hash,
            &salted_password(hash, password, &self.salt, self.iterations),
        );
        same(&keys.stored_key, &self.stored_key)
    }
}

/// How a server's exchange stands.
#[cfg(any(test, feature = "mock"))]
enum ServerState {
    Initial,
    SentFirst {
        user: String,
        credential: StoredCredential,
        auth_prefix: String,
        nonce: String,
    },
    Done,
}

/// The server side of one SCRAM exchange (the mock broker's).
#[cfg(any(test, feature = "mock"))]
pub(crate) struct ScramServer {
    hash: Hash,
    state: ServerState,
    /// How the server signs, for tests of the client's check: `true` signs with a wrong key.
    pub forge_signature: bool,
}

/// What a server answers a client's SCRAM message.
#[cfg(any(test, feature = "mock"))]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerStep {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as this user: send this final message.
    Done { user: String, message: Vec<u8> },
    /// Refused (the reason is for the broker's error message).
    Failed(String),
}

#[cfg(any(test, feature = "mock"))]
impl ScramServer {
    pub fn new(hash: Hash) -> Self {
        ScramServer {
            hash,
            state: ServerState::Initial,
            forge_signature: false,
        }
    }

    /// The client's message; `lookup` finds a user's credential.
    pub fn step(
        &mut self,
        client: &[u8],
        lookup: impl Fn(&str) -> Option<StoredCredential>,
    ) -> ServerStep {
        let fail = |why: &str| ServerStep::Failed(why.to_string());
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Initial => {
                // gs2-header: n or y (no channel binding), optional authzid, then the bare
                // message.
                let Ok(s) = std::str::from_utf8(client) else {
                    return fail("client-first is not UTF-8");
                };
                let mut parts = s.splitn(3, ',');
                let (Some(cb), Some(_authzid), Some(bare)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return fail("client-first has no gs2 header");
                };
                if cb != "n" && cb != "y" {
                    return fail("channel binding is not supported");
                }
                let Ok(attrs) = attributes(bare.as_bytes()) else {
                    return fail("malformed client-first");
                };
                let (user, cnonce) = match attrs.as_slice() {
                    [(b'n', u), (b'r', r), ..] if !r.is_empty() => (*u, *r),
                    _ => return fail("client-first is not n=,r="),
                };
                let user = user.replace("=2C", ",").replace("=3D", "=");
                let Some(credential) = lookup(&user) else {
                    return fail("Authentication failed: invalid user credentials");
                };
                let nonce = format!("{cnonce}{}", nonce());
                let first = format!(
                    "r={nonce},s={},i={}",
                    B64.encode(&credential.salt),
                    credential.iterations
                );
                let auth_prefix = format!("{bare},{first}");
                self.state = ServerState::SentFirst {
                    user,
                    credential,
                    auth_prefix,
                    nonce,
                };
                ServerStep::Continue(first.into_bytes())
            }
            ServerState::SentFirst {
                user,
                credential,
                auth_prefix,
                nonce,
            } => {
                let Ok(attrs) = attributes(client) else {
                    return fail("malformed client-final");
                };
                let (c, r, p) = match attrs.as_slice() {
                    [(b'c', c), (b'r', r), .., (b'p', p)] => (*c, *r, *p),
                    _ => return fail("client-final is not c=,r=,...,p="),
                };
                if c != "biws" && c != "eSws" {
                    return fail("unexpected channel binding");
                }
                if r != nonce {
                    return fail("nonce mismatch");
                }
                let Ok(proof) = B64.decode(p) else {
                    return fail("proof is not base64");
                };
                let s = std::str::from_utf8(client).expect("checked by attributes");
                let without_proof = &s[..s.len() - p.len() - ",p=".len()];
                let auth_message = format!("{auth_prefix},{without_proof}");
                let signature = hmac(self.hash, &credential.stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return fail("Authentication failed: invalid user credentials");
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                if !same(&h(self.hash, &client_key), &credential.stored_key) {
                    return fail("Authentication failed: invalid user credentials");
                }
                let key = if self.forge_signature {
                    b"not the server key".to_vec()
                } else {
                    credential.server_key
                };
                let sig = hmac(self.hash, &key, auth_message.as_bytes());
                ServerStep::Done {
                    user,
                    message: format!("v={}", B64.encode(sig)).into_bytes(),
                }
            }
            ServerState::Done => fail("exchange already complete"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: the SCRAM-SHA-256 exchange for user "user", password "pencil".
    #[test]
    fn rfc_7677_test_vector() {
        let mut c = ScramClient::with_nonce(Hash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let expected: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(c.step(server_first), Ok(Step::Send(expected.to_vec())));
        assert_eq!(
            c.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(Step::Done)
        );
        assert_eq!(c.step(b"v=x"), Err(SaslError::AfterEnd));
    }

    fn vector_client() -> ScramClient {
        let mut c = ScramClient::with_nonce(Hash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        c.client_first();
        c.step(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        c
    }

    #[test]
    fn a_wrong_server_signature_or_error_fails() {
        let mut c = vector_client();
        assert_eq!(
            c.step(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslError::BadServerSignature)
        );
        let mut c = vector_client();
        assert_eq!(
            c.step(b"e=invalid-proof"),
            Err(SaslError::Server("invalid-proof".into()))
        );
    }

    #[test]
    fn bad_server_first_messages_are_refused() {
        let cases: &[(&[u8], SaslError)] = &[
            (b"r=someoneelse,s=QUJD,i=4096", SaslError::NonceMismatch),
            (b"r=abc,s=QUJD,i=4096", SaslError::NonceMismatch),
            (b"r=abcdef,s=QUJD,i=10", SaslError::Iterations(10)),
            (
                b"r=abcdef,s=QUJD,i=4294967295",
                SaslError::Iterations(u32::MAX),
            ),
            (
                b"m=ext,r=abcdef,s=QUJD,i=4096",
                SaslError::Malformed("unsupported mandatory extension"),
            ),
            (
                b"r=abcdef,s=!!!,i=4096",
                SaslError::Malformed("salt is not base64"),
            ),
            (
                b"r=abcdef,i=4096",
                SaslError::Malformed("server-first is not r=,s=,i="),
            ),
            (b"\xff", SaslError::Malformed("not UTF-8")),
            (b"", SaslError::Malformed("attribute is not k=value")),
        ];
        for (msg, want) in cases {
            let mut c = ScramClient::with_nonce(Hash::Sha512, "u", "p", "abc");
            c.client_first();
            assert_eq!(
                c.step(msg).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn client_and_server_agree_and_a_wrong_password_is_refused() {
        for hash in [Hash::Sha256, Hash::Sha512] {
            let stored = StoredCredential::new(hash, "pw,=x", 4096);
            let lookup = |u: &str| (u == "al=ice,").then(|| stored.clone());
            let run = |password: &str, forge: bool| -> Result<String, String> {
                let mut c = ScramClient::new(hash, "al=ice,", password);
                let mut s = ScramServer::new(hash);
                s.forge_signature = forge;
                let ServerStep::Continue(first) = s.step(&c.client_first(), lookup) else {
                    return Err("server refused client-first".into());
                };
                let Step::Send(fin) = c.step(&first).map_err(|e| e.to_string())? else {
                    return Err("client done early".into());
                };
                match s.step(&fin, lookup) {
                    ServerStep::Done { user, message } => {
                        assert_eq!(c.step(&message).map_err(|e| e.to_string())?, Step::Done);
                        Ok(user)
                    }
                    ServerStep::Failed(why) => Err(why),
                    ServerStep::Continue(_) => Err("server wants more".into()),
                }
            };
            assert_eq!(run("pw,=x", false), Ok("al=ice,".into()));
            assert!(run("wrong", false)
                .unwrap_err()
                .contains("invalid user credentials"));
            assert!(run("pw,=x", true)
                .unwrap_err()
                .contains("signature is wrong"));
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = ScramClient::new(Hash::Sha256, "u", "sekrit");
        assert!(!format!("{c:?}").contains("sekrit"));
        let s = StoredCredential::new(Hash::Sha256, "sekrit", 4096);
        assert!(!format!("{s:?}").contains("sekrit"));
    }
}
