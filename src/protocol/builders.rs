//! Constructors for the generated message types, where kprod's own code wants more than
//! `Default` (the types themselves come from `src/protocol/spec`).

use super::codec::Uuid;
use super::messages::api_versions::ApiVersionsRequest;
use super::messages::metadata::{MetadataRequest, MetadataRequestTopic};

impl ApiVersionsRequest {
    /// The request kprod opens every connection with: it names itself `kprod` at this crate's
    /// version (brokers log and report it, KIP-511).
    ///
    /// ```
    /// use kprod::protocol::messages::api_versions::ApiVersionsRequest;
    /// assert_eq!(ApiVersionsRequest::kprod().client_software_name, "kprod");
    /// ```
    pub fn kprod() -> Self {
        ApiVersionsRequest {
            client_software_name: "kprod".into(),
            client_software_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

impl MetadataRequest {
    /// A request for the named topics (auto-creation allowed).
    ///
    /// ```
    /// use kprod::protocol::messages::metadata::MetadataRequest;
    /// let r = MetadataRequest::for_topics(["a", "b"]);
    /// assert_eq!(r.topics.unwrap()[1].name.as_deref(), Some("b"));
    /// ```
    pub fn for_topics<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        MetadataRequest {
            topics: Some(
                names
                    .into_iter()
                    .map(|n| MetadataRequestTopic {
                        topic_id: Uuid::ZERO,
                        name: Some(n.as_ref().to_owned()),
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }
}

#[cfg(any(test, feature = "mock"))]
impl super::messages::create_topics::CreatableTopic {
    /// A topic with `partitions` partitions and the broker's default replication factor.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        super::messages::create_topics::CreatableTopic {
            name: name.into(),
            num_partitions: partitions,
            ..Default::default()
        }
    }
}
