//! SASL/OAUTHBEARER with a token provider of the application's own — the shape an AWS MSK
//! IAM signer, a Azure Event Hubs token or any in-house identity service plugs into.
//!
//! The provider is called off kprod's I/O threads: once when the producer starts (an error
//! fails `build`), then whenever the current token is 80% through its lifetime; the
//! connection re-authenticates with the new token before the broker's session ends.
//!
//! ```sh
//! cargo run --example oauthbearer_provider --features mock   # embedded mock cluster
//! ```
//! Against a real cluster, replace `MskIamSigner::sign` with the real signer (e.g. the
//! `aws-msk-iam-sasl-signer` crate's `generate_auth_token`) and give the bootstrap address.

use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::sasl::oauth::{unsecured_token, OAuthToken, TokenProvider};
use kprod::sasl::Mechanism;
use kprod::tls::SecurityProtocol;
use kprod::Producer;

/// A stand-in for a cloud signer: it "signs" an unsecured token the mock accepts. A real one
/// returns the signed token and its expiry.
struct MskIamSigner {
    region: String,
}

impl MskIamSigner {
    fn sign(&self) -> Result<(String, Duration), String> {
        let t = unsecured_token(&format!("principal=app-in-{} lifeSeconds=900", self.region))?;
        Ok((t.value.expose().to_string(), t.remaining()))
    }
}

impl TokenProvider for MskIamSigner {
    fn token(&self) -> Result<OAuthToken, String> {
        let (token, lifetime) = self.sign()?;
        // MSK's principal is the IAM role. SASL extensions (KIP-342) ride with the token:
        // Confluent Cloud, for one, wants the logical cluster and identity pool ids.
        Ok(OAuthToken::new(token, lifetime, "app-role").extension("logicalCluster", "lkc-123"))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A mock cluster that accepts OAUTHBEARER (with TLS, a real cluster's SASL_SSL).
    let cluster = MockCluster::builder()
        .topic("signed", 1)
        .sasl_mechanisms(&[Mechanism::OAuthBearer])
        .build()?;
    let producer = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .security_protocol(SecurityProtocol::SaslPlaintext)
        .sasl_oauthbearer_token_provider(MskIamSigner {
            region: "eu-west-1".into(),
        })
        .build()?;
    let md = producer.produce("signed", "k", "authenticated with a provider's token")?;
    println!(
        "delivered to {}/{} at offset {}",
        md.topic, md.partition, md.offset
    );
    println!("authentications: {}", producer.metrics().authentications);
    println!("extensions the broker saw: {:?}", cluster.sasl_extensions());
    producer.close(Duration::from_secs(10))?;
    Ok(())
}
