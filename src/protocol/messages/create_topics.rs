//! CreateTopics (key 19), versions 2–7 (flexible from 5): creates topics with a partition
//! count, a replication factor or a manual assignment, and per-topic configs.
//!
//! Versions 0 and 1 were removed in Kafka 4.0; from v5 the response also describes the created
//! topic (partitions, replication factor, configs) and from v7 carries its topic id.

use super::{Request, Response};
use crate::protocol::api::ApiKey;
use crate::protocol::codec::{put_tagged_field, DecodeError, Reader, Uuid, Writer};

/// A manual placement of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableReplicaAssignment {
    /// The partition index.
    pub partition_index: i32,
    /// The brokers to place its replicas on; the first is the preferred leader.
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::prelude::any::<i32>(), 0..4)")
    )]
    pub broker_ids: Vec<i32>,
}

/// A topic config to set at creation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopicConfig {
    /// Config name, such as `cleanup.policy`.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Config value, or null.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub value: Option<String>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopic {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Partition count, or -1 for a manual assignment or the broker's default (v4+).
    pub num_partitions: i32,
    /// Replication factor, or -1 for a manual assignment or the broker's default (v4+).
    pub replication_factor: i16,
    /// A manual assignment, or empty for automatic placement.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<CreatableReplicaAssignment>(), 0..3)"
        )
    )]
    pub assignments: Vec<CreatableReplicaAssignment>,
    /// Topic configs.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<CreatableTopicConfig>(), 0..3)"
        )
    )]
    pub configs: Vec<CreatableTopicConfig>,
}

impl Default for CreatableTopic {
    /// An unnamed topic with the broker's default partition count and replication factor.
    fn default() -> Self {
        CreatableTopic {
            name: String::new(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        }
    }
}

impl CreatableTopic {
    /// A topic with `partitions` partitions and the broker's default replication factor.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        CreatableTopic {
            name: name.into(),
            num_partitions: partitions,
            ..Default::default()
        }
    }
}

/// The CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreateTopicsRequest {
    /// The topics to create.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<CreatableTopic>(), 0..3)"
        )
    )]
    pub topics: Vec<CreatableTopic>,
    /// How long the broker may take, in ms.
    pub timeout_ms: i32,
    /// Only check that the topics could be created.
    pub validate_only: bool,
}

impl Default for CreateTopicsRequest {
    /// No topics, a 60 s timeout, really create.
    fn default() -> Self {
        CreateTopicsRequest {
            topics: Vec::new(),
            timeout_ms: 60_000,
            validate_only: false,
        }
    }
}

impl Request for CreateTopicsRequest {
    type Response = CreateTopicsResponse;
    const API_KEY: ApiKey = ApiKey::CREATE_TOPICS;
    const MIN_VERSION: i16 = 2;
    const MAX_VERSION: i16 = 7;
    const FLEXIBLE_FROM: i16 = 5;

    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= Self::FLEXIBLE_FROM;
        out.put_array_len(Some(self.topics.len()), fl);
        for t in &self.topics {
            out.put_string(&t.name, fl);
            out.put_i32(t.num_partitions);
            out.put_i16(t.replication_factor);
            out.put_array_len(Some(t.assignments.len()), fl);
            for a in &t.assignments {
                out.put_i32(a.partition_index);
                out.put_array_len(Some(a.broker_ids.len()), fl);
                for b in &a.broker_ids {
                    out.put_i32(*b);
                }
                out.put_empty_tags(fl);
            }
            out.put_array_len(Some(t.configs.len()), fl);
            for c in &t.configs {
                out.put_string(&c.name, fl);
                out.put_nullable_string(c.value.as_deref(), fl);
                out.put_empty_tags(fl);
            }
            out.put_empty_tags(fl);
        }
        out.put_i32(self.timeout_ms);
        out.put_bool(self.validate_only);
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= Self::FLEXIBLE_FROM;
        let topics = r.vec(fl, 11, "topics", |r| {
            let name = r.string(fl, "topic name")?;
            let num_partitions = r.i32("num partitions")?;
            let replication_factor = r.i16("replication factor")?;
            let assignments = r.vec(fl, 5, "assignments", |r| {
                let partition_index = r.i32("partition index")?;
                let broker_ids = r.vec(fl, 4, "broker ids", |r| r.i32("broker id"))?;
                r.skip_tags(fl)?;
                Ok(CreatableReplicaAssignment {
                    partition_index,
                    broker_ids,
                })
            })?;
            let configs = r.vec(fl, 2, "configs", |r| {
                let name = r.string(fl, "config name")?;
                let value = r.nullable_string(fl, "config value")?;
                r.skip_tags(fl)?;
                Ok(CreatableTopicConfig { name, value })
            })?;
            r.skip_tags(fl)?;
            Ok(CreatableTopic {
                name,
                num_partitions,
                replication_factor,
                assignments,
                configs,
            })
        })?;
        let timeout_ms = r.i32("timeout")?;
        let validate_only = r.bool("validate only")?;
        r.skip_tags(fl)?;
        Ok(CreateTopicsRequest {
            topics,
            timeout_ms,
            validate_only,
        })
    }
}

/// A config of a created topic (v5+).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopicConfigs {
    /// Config name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Config value, or null (for example when sensitive).
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub value: Option<String>,
    /// Whether the config is read-only.
    pub read_only: bool,
    /// Where the value comes from (Kafka's `ConfigSource`), -1 if unknown.
    pub config_source: i8,
    /// Whether the value is sensitive.
    pub is_sensitive: bool,
}

impl Default for CreatableTopicConfigs {
    fn default() -> Self {
        CreatableTopicConfigs {
            name: String::new(),
            value: None,
            read_only: false,
            config_source: -1,
            is_sensitive: false,
        }
    }
}

/// The outcome for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreatableTopicResult {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// The new topic's id (v7+).
    #[cfg_attr(test, proptest(strategy = "super::strategies::uuid()"))]
    pub topic_id: Uuid,
    /// Error code, 0 on success.
    pub error_code: i16,
    /// Error message, or null.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub error_message: Option<String>,
    /// Why `configs` is absent, if it is (v5+, tagged 0).
    pub topic_config_error_code: i16,
    /// Partition count (v5+), -1 if unknown.
    pub num_partitions: i32,
    /// Replication factor (v5+), -1 if unknown.
    pub replication_factor: i16,
    /// The topic's configs (v5+), or null.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::option::of(proptest::collection::vec(proptest::prelude::any::<CreatableTopicConfigs>(), 0..3))"
        )
    )]
    pub configs: Option<Vec<CreatableTopicConfigs>>,
}

impl Default for CreatableTopicResult {
    fn default() -> Self {
        CreatableTopicResult {
            name: String::new(),
            topic_id: Uuid::ZERO,
            error_code: 0,
            error_message: None,
            topic_config_error_code: 0,
            num_partitions: -1,
            replication_factor: -1,
            configs: None,
        }
    }
}

/// The CreateTopics response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CreateTopicsResponse {
    /// Quota throttle.
    pub throttle_time_ms: i32,
    /// One result per topic asked for.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<CreatableTopicResult>(), 0..3)"
        )
    )]
    pub topics: Vec<CreatableTopicResult>,
}

impl Response for CreateTopicsResponse {
    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= CreateTopicsRequest::FLEXIBLE_FROM;
        out.put_i32(self.throttle_time_ms);
        out.put_array_len(Some(self.topics.len()), fl);
        for t in &self.topics {
            out.put_string(&t.name, fl);
            if version >= 7 {
                out.put_uuid(&t.topic_id);
            }
            out.put_i16(t.error_code);
            out.put_nullable_string(t.error_message.as_deref(), fl);
            if version >= 5 {
                out.put_i32(t.num_partitions);
                out.put_i16(t.replication_factor);
                out.put_array_len(t.configs.as_ref().map(Vec::len), fl);
                for c in t.configs.iter().flatten() {
                    out.put_string(&c.name, fl);
                    out.put_nullable_string(c.value.as_deref(), fl);
                    out.put_bool(c.read_only);
                    out.put_i8(c.config_source);
                    out.put_bool(c.is_sensitive);
                    out.put_empty_tags(fl);
                }
            }
            if fl {
                // Tagged fields: the config error code (tag 0) only when set.
                if t.topic_config_error_code != 0 {
                    out.put_uvarint(1);
                    put_tagged_field(out, 0, |o| o.put_i16(t.topic_config_error_code));
                } else {
                    out.put_uvarint(0);
                }
            }
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= CreateTopicsRequest::FLEXIBLE_FROM;
        let throttle_time_ms = r.i32("throttle time")?;
        let topics = r.vec(fl, 5, "topics", |r| {
            let mut t = CreatableTopicResult {
                name: r.string(fl, "topic name")?,
                ..Default::default()
            };
            if version >= 7 {
                t.topic_id = r.uuid("topic id")?;
            }
            t.error_code = r.i16("error code")?;
            t.error_message = r.nullable_string(fl, "error message")?;
            if version >= 5 {
                t.num_partitions = r.i32("num partitions")?;
                t.replication_factor = r.i16("replication factor")?;
                t.configs = r.nullable_vec(fl, 5, "configs", |r| {
                    let c = CreatableTopicConfigs {
                        name: r.string(fl, "config name")?,
                        value: r.nullable_string(fl, "config value")?,
                        read_only: r.bool("read only")?,
                        config_source: r.i8("config source")?,
                        is_sensitive: r.bool("is sensitive")?,
                    };
                    r.skip_tags(fl)?;
                    Ok(c)
                })?;
            }
            let mut config_error = 0;
            r.tagged_fields(fl, |tag, r| {
                if tag == 0 {
                    config_error = r.i16("topic config error code")?;
                    Ok(true)
                } else {
                    Ok(false)
                }
            })?;
            t.topic_config_error_code = config_error;
            Ok(t)
        })?;
        r.skip_tags(fl)?;
        Ok(CreateTopicsResponse {
            throttle_time_ms,
            topics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_request, decode_response, encode_request, encode_response};

    // Every request field exists from v2 on. The response gains fields at v5 (description,
    // tagged config error) and v7 (topic id): v7 carries them all.
    super::super::roundtrip_tests!(
        CreateTopicsRequest,
        CreateTopicsResponse,
        full_req = 2..=7,
        full_resp = 7..=7
    );

    #[test]
    fn response_fields_outside_a_version_decode_to_defaults() {
        let resp = CreateTopicsResponse {
            throttle_time_ms: 5,
            topics: vec![CreatableTopicResult {
                name: "t".into(),
                topic_id: Uuid([9; 16]),
                error_code: 36,
                error_message: Some("exists".into()),
                topic_config_error_code: 29,
                num_partitions: 3,
                replication_factor: 1,
                configs: Some(vec![CreatableTopicConfigs {
                    name: "cleanup.policy".into(),
                    value: Some("delete".into()),
                    ..Default::default()
                }]),
            }],
        };
        for v in 2..=7 {
            let mut out = Vec::new();
            encode_response::<CreateTopicsRequest>(&resp, v, 11, &mut out).unwrap();
            let (cid, back) = decode_response::<CreateTopicsRequest>(&out[4..], v).unwrap();
            assert_eq!(cid, 11);
            let t = &back.topics[0];
            assert_eq!(
                (t.error_code, t.error_message.as_deref()),
                (36, Some("exists"))
            );
            assert_eq!(t.topic_id == resp.topics[0].topic_id, v >= 7, "v{v}");
            assert_eq!(t.num_partitions, if v >= 5 { 3 } else { -1 }, "v{v}");
            assert_eq!(t.topic_config_error_code, if v >= 5 { 29 } else { 0 });
            assert_eq!(t.configs.is_some(), v >= 5);
        }
    }

    #[test]
    fn request_frame_roundtrip_classic_and_flexible() {
        let req = CreateTopicsRequest {
            topics: vec![
                CreatableTopic::new("a", 3),
                CreatableTopic {
                    name: "b".into(),
                    assignments: vec![CreatableReplicaAssignment {
                        partition_index: 0,
                        broker_ids: vec![2, 1],
                    }],
                    configs: vec![CreatableTopicConfig {
                        name: "retention.ms".into(),
                        value: None,
                    }],
                    ..Default::default()
                },
            ],
            timeout_ms: 1000,
            validate_only: true,
        };
        for v in [2, 4, 5, 7] {
            let mut out = Vec::new();
            encode_request(&req, v, 3, Some("c"), &mut out).unwrap();
            let (h, body) = crate::protocol::decode_request_header(&out[4..]).unwrap();
            assert_eq!((h.api_key, h.api_version), (ApiKey::CREATE_TOPICS, v));
            let back: CreateTopicsRequest = decode_request(body, v).unwrap();
            assert_eq!(back, req);
        }
        let mut out = Vec::new();
        assert!(encode_request(&req, 1, 3, None, &mut out).is_err());
    }
}
