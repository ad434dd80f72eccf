//! Metadata (key 3), versions 1–12: brokers, topics, partitions and their leaders.

use super::{Request, Response};
use crate::protocol::api::ApiKey;
use crate::protocol::codec::{DecodeError, Reader, Uuid, Writer};

/// A topic asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataRequestTopic {
    /// Topic id (v10+); zero when asking by name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::uuid()"))]
    pub topic_id: Uuid,
    /// Topic name (nullable from v10, when asking by id).
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub name: Option<String>,
}

/// The Metadata request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataRequest {
    /// The topics to describe; `None` means all topics.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::option::of(proptest::collection::vec(proptest::prelude::any::<MetadataRequestTopic>(), 0..4))"
        )
    )]
    pub topics: Option<Vec<MetadataRequestTopic>>,
    /// Whether the broker may auto-create the topics (v4+; before v4 brokers always may).
    pub allow_auto_topic_creation: bool,
    /// Ask for the cluster's authorized operations (v8–10).
    pub include_cluster_authorized_operations: bool,
    /// Ask for each topic's authorized operations (v8+).
    pub include_topic_authorized_operations: bool,
}

impl Default for MetadataRequest {
    /// No topics, auto-creation allowed, no authorized operations.
    fn default() -> Self {
        MetadataRequest {
            topics: Some(Vec::new()),
            allow_auto_topic_creation: true,
            include_cluster_authorized_operations: false,
            include_topic_authorized_operations: false,
        }
    }
}

impl MetadataRequest {
    /// A request for the named topics.
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

impl Request for MetadataRequest {
    type Response = MetadataResponse;
    const API_KEY: ApiKey = ApiKey::METADATA;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 12;
    const FLEXIBLE_FROM: i16 = 9;

    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= Self::FLEXIBLE_FROM;
        out.put_array_len(self.topics.as_ref().map(Vec::len), fl);
        for t in self.topics.iter().flatten() {
            if version >= 10 {
                out.put_uuid(&t.topic_id);
                out.put_nullable_string(t.name.as_deref(), fl);
            } else {
                out.put_string(t.name.as_deref().unwrap_or(""), fl);
            }
            out.put_empty_tags(fl);
        }
        if version >= 4 {
            out.put_bool(self.allow_auto_topic_creation);
        }
        if (8..=10).contains(&version) {
            out.put_bool(self.include_cluster_authorized_operations);
        }
        if version >= 8 {
            out.put_bool(self.include_topic_authorized_operations);
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= Self::FLEXIBLE_FROM;
        let mut m = MetadataRequest {
            topics: r.nullable_vec(fl, 1, "topics", |r| {
                let t = if version >= 10 {
                    MetadataRequestTopic {
                        topic_id: r.uuid("topic id")?,
                        name: r.nullable_string(fl, "topic name")?,
                    }
                } else {
                    MetadataRequestTopic {
                        topic_id: Uuid::ZERO,
                        name: Some(r.string(fl, "topic name")?),
                    }
                };
                r.skip_tags(fl)?;
                Ok(t)
            })?,
            ..Default::default()
        };
        if version >= 4 {
            m.allow_auto_topic_creation = r.bool("allow auto topic creation")?;
        }
        if (8..=10).contains(&version) {
            m.include_cluster_authorized_operations = r.bool("include cluster ops")?;
        }
        if version >= 8 {
            m.include_topic_authorized_operations = r.bool("include topic ops")?;
        }
        r.skip_tags(fl)?;
        Ok(m)
    }
}

/// A broker in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataBroker {
    /// Broker id.
    pub node_id: i32,
    /// Host name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub host: String,
    /// Port.
    pub port: i32,
    /// Rack, if assigned.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub rack: Option<String>,
}

/// A partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataPartition {
    /// Partition error code.
    pub error_code: i16,
    /// Partition index.
    pub partition_index: i32,
    /// Leader broker id, -1 if none.
    pub leader_id: i32,
    /// Leader epoch (v7+), -1 if unknown.
    pub leader_epoch: i32,
    /// All replicas.
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::prelude::any::<i32>(), 0..4)")
    )]
    pub replica_nodes: Vec<i32>,
    /// In-sync replicas.
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::prelude::any::<i32>(), 0..4)")
    )]
    pub isr_nodes: Vec<i32>,
    /// Offline replicas (v5+).
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::prelude::any::<i32>(), 0..4)")
    )]
    pub offline_replicas: Vec<i32>,
}

impl Default for MetadataPartition {
    fn default() -> Self {
        MetadataPartition {
            error_code: 0,
            partition_index: 0,
            leader_id: -1,
            leader_epoch: -1,
            replica_nodes: Vec::new(),
            isr_nodes: Vec::new(),
            offline_replicas: Vec::new(),
        }
    }
}

/// A topic's state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataTopic {
    /// Topic error code.
    pub error_code: i16,
    /// Topic name (nullable from v12, when described by id).
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub name: Option<String>,
    /// Topic id (v10+).
    #[cfg_attr(test, proptest(strategy = "super::strategies::uuid()"))]
    pub topic_id: Uuid,
    /// Whether the topic is internal (v1+).
    pub is_internal: bool,
    /// The partitions.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<MetadataPartition>(), 0..4)"
        )
    )]
    pub partitions: Vec<MetadataPartition>,
    /// Authorized operations bitfield (v8+), `i32::MIN` if not requested.
    pub topic_authorized_operations: i32,
}

impl Default for MetadataTopic {
    fn default() -> Self {
        MetadataTopic {
            error_code: 0,
            name: None,
            topic_id: Uuid::ZERO,
            is_internal: false,
            partitions: Vec::new(),
            topic_authorized_operations: i32::MIN,
        }
    }
}

/// The Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MetadataResponse {
    /// Quota throttle (v3+).
    pub throttle_time_ms: i32,
    /// The brokers.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<MetadataBroker>(), 0..4)"
        )
    )]
    pub brokers: Vec<MetadataBroker>,
    /// Cluster id (v2+).
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub cluster_id: Option<String>,
    /// Controller id (v1+), -1 if unknown.
    pub controller_id: i32,
    /// The topics.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<MetadataTopic>(), 0..4)"
        )
    )]
    pub topics: Vec<MetadataTopic>,
    /// Cluster authorized operations (v8–10), `i32::MIN` if not requested.
    pub cluster_authorized_operations: i32,
}

impl Default for MetadataResponse {
    fn default() -> Self {
        MetadataResponse {
            throttle_time_ms: 0,
            brokers: Vec::new(),
            cluster_id: None,
            controller_id: -1,
            topics: Vec::new(),
            cluster_authorized_operations: i32::MIN,
        }
    }
}

fn put_i32_array(out: &mut Vec<u8>, v: &[i32], fl: bool) {
    out.put_array_len(Some(v.len()), fl);
    for x in v {
        out.put_i32(*x);
    }
}

fn i32_array(r: &mut Reader<'_>, fl: bool, what: &'static str) -> Result<Vec<i32>, DecodeError> {
    r.vec(fl, 4, what, |r| r.i32(what))
}

impl Response for MetadataResponse {
    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= MetadataRequest::FLEXIBLE_FROM;
        if version >= 3 {
            out.put_i32(self.throttle_time_ms);
        }
        out.put_array_len(Some(self.brokers.len()), fl);
        for b in &self.brokers {
            out.put_i32(b.node_id);
            out.put_string(&b.host, fl);
            out.put_i32(b.port);
            out.put_nullable_string(b.rack.as_deref(), fl);
            out.put_empty_tags(fl);
        }
        if version >= 2 {
            out.put_nullable_string(self.cluster_id.as_deref(), fl);
        }
        out.put_i32(self.controller_id);
        out.put_array_len(Some(self.topics.len()), fl);
        for t in &self.topics {
            out.put_i16(t.error_code);
            if version >= 12 {
                out.put_nullable_string(t.name.as_deref(), fl);
            } else {
                out.put_string(t.name.as_deref().unwrap_or(""), fl);
            }
            if version >= 10 {
                out.put_uuid(&t.topic_id);
            }
            out.put_bool(t.is_internal);
            out.put_array_len(Some(t.partitions.len()), fl);
            for p in &t.partitions {
                out.put_i16(p.error_code);
                out.put_i32(p.partition_index);
                out.put_i32(p.leader_id);
                if version >= 7 {
                    out.put_i32(p.leader_epoch);
                }
                put_i32_array(out, &p.replica_nodes, fl);
                put_i32_array(out, &p.isr_nodes, fl);
                if version >= 5 {
                    put_i32_array(out, &p.offline_replicas, fl);
                }
                out.put_empty_tags(fl);
            }
            if version >= 8 {
                out.put_i32(t.topic_authorized_operations);
            }
            out.put_empty_tags(fl);
        }
        if (8..=10).contains(&version) {
            out.put_i32(self.cluster_authorized_operations);
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= MetadataRequest::FLEXIBLE_FROM;
        let mut m = MetadataResponse::default();
        if version >= 3 {
            m.throttle_time_ms = r.i32("throttle time")?;
        }
        m.brokers = r.vec(fl, 10, "brokers", |r| {
            let b = MetadataBroker {
                node_id: r.i32("node id")?,
                host: r.string(fl, "host")?,
                port: r.i32("port")?,
                rack: r.nullable_string(fl, "rack")?,
            };
            r.skip_tags(fl)?;
            Ok(b)
        })?;
        if version >= 2 {
            m.cluster_id = r.nullable_string(fl, "cluster id")?;
        }
        m.controller_id = r.i32("controller id")?;
        m.topics = r.vec(fl, 4, "topics", |r| {
            let mut t = MetadataTopic {
                error_code: r.i16("topic error code")?,
                ..Default::default()
            };
            t.name = if version >= 12 {
                r.nullable_string(fl, "topic name")?
            } else {
                Some(r.string(fl, "topic name")?)
            };
            if version >= 10 {
                t.topic_id = r.uuid("topic id")?;
            }
            t.is_internal = r.bool("is internal")?;
            t.partitions = r.vec(fl, 12, "partitions", |r| {
                let mut p = MetadataPartition {
                    error_code: r.i16("partition error code")?,
                    partition_index: r.i32("partition index")?,
                    leader_id: r.i32("leader id")?,
                    ..Default::default()
                };
                if version >= 7 {
                    p.leader_epoch = r.i32("leader epoch")?;
                }
                p.replica_nodes = i32_array(r, fl, "replica nodes")?;
                p.isr_nodes = i32_array(r, fl, "isr nodes")?;
                if version >= 5 {
                    p.offline_replicas = i32_array(r, fl, "offline replicas")?;
                }
                r.skip_tags(fl)?;
                Ok(p)
            })?;
            if version >= 8 {
                t.topic_authorized_operations = r.i32("topic authorized operations")?;
            }
            r.skip_tags(fl)?;
            Ok(t)
        })?;
        if (8..=10).contains(&version) {
            m.cluster_authorized_operations = r.i32("cluster authorized operations")?;
        }
        r.skip_tags(fl)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // v10 carries every request field; no single version carries every response field
    // (cluster operations end at v10, nullable names start at v12), so responses are checked by
    // the byte fixpoint at every version.
    super::super::roundtrip_tests!(
        MetadataRequest,
        MetadataResponse,
        full_req = 10..=10,
        full_resp = 0..0
    );

    #[test]
    fn null_topics_means_all_from_v1() {
        let all = MetadataRequest {
            topics: None,
            ..Default::default()
        };
        let mut out = Vec::new();
        all.encode(1, &mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff]);
        out.clear();
        all.encode(9, &mut out);
        assert_eq!(out, [0x00, 0x01, 0x00, 0x00, 0x00]);
    }
}
