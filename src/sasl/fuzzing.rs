//! Entry points for the SASL fuzz targets (`fuzz/fuzz_targets/scram.rs`, `sasl.rs`): every
//! parser of what a peer sends, on arbitrary bytes. Not API.

use std::sync::Arc;
use std::time::Duration;

use super::oauth::{jwt_claims, unsecured_token, OAuthClient, OAuthToken};
use super::scram::{Hash, ScramClient};
use super::Step;

/// Splits `data` into `n` messages at 0xFF bytes.
fn messages(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |&b| b == 0xff).collect()
}

/// The client side of SCRAM: a server-first message, then a server-final one.
pub fn scram_client(data: &[u8]) {
    let parts = messages(data, 2);
    let hash = if data.first().is_some_and(|b| b & 1 == 1) {
        Hash::Sha512
    } else {
        Hash::Sha256
    };
    let mut c = ScramClient::with_nonce(hash, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    c.client_first();
    if let Ok(Step::Send(_)) = c.step(parts[0]) {
        if let Some(last) = parts.get(1) {
            let _ = c.step(last);
        }
    }
}

/// The server side of SCRAM (the mock's): a client-first message, then a client-final one.
#[cfg(feature = "mock")]
pub fn scram_server(data: &[u8]) {
    use super::scram::{ScramServer, ServerStep, StoredCredential};
    use std::sync::OnceLock;
    static CRED: OnceLock<StoredCredential> = OnceLock::new();
    let cred = CRED.get_or_init(|| StoredCredential::new(Hash::Sha256, "pencil", 4096));
    let parts = messages(data, 2);
    let mut s = ScramServer::new(Hash::Sha256);
    let lookup = |u: &str| (u == "user").then(|| cred.clone());
    if let ServerStep::Continue(_) = s.step(parts[0], lookup) {
        if let Some(last) = parts.get(1) {
            let _ = s.step(last, lookup);
        }
    }
}

/// OAUTHBEARER and the rest: a broker's answer to the client's token, JWT claims,
/// librdkafka-style unsecured-token settings, the mock's validation of a client message, and a
/// `sasl.jaas.config` line.
pub fn sasl(data: &[u8]) {
    let token = Arc::new(OAuthToken::new("t", Duration::from_secs(60), "p"));
    let mut c = OAuthClient::new(token);
    c.start();
    let _ = c.step(data);
    let text = String::from_utf8_lossy(data);
    let _ = jwt_claims(&text);
    let _ = unsecured_token(&text);
    #[cfg(feature = "mock")]
    let _ = crate::mock::fuzz_oauthbearer(data);
    let _ = crate::ProducerConfigBuilder::new()
        .bootstrap_servers("b:1")
        .from_properties([("sasl.jaas.config", text.as_ref())]);
}
