//! Produce (key 0), versions 3–11 (flexible from 9). Versions below 3 carry the legacy
//! message-set format and are not implemented.

use bytes::Bytes;

use super::{Request, Response};
use crate::protocol::api::ApiKey;
use crate::protocol::codec::{put_tagged_field, DecodeError, Reader, Writer};

/// Records for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PartitionProduceData {
    /// Partition index.
    pub index: i32,
    /// One or more encoded record batches, or null.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_bytes()"))]
    pub records: Option<Bytes>,
}

/// Records for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TopicProduceData {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Per-partition records.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<PartitionProduceData>(), 0..3)"
        )
    )]
    pub partition_data: Vec<PartitionProduceData>,
}

/// The Produce request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProduceRequest {
    /// Transactional id, or null.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub transactional_id: Option<String>,
    /// 0 (no response), 1 (leader) or -1 (all in-sync replicas).
    pub acks: i16,
    /// How long the broker may wait for replication, in ms.
    pub timeout_ms: i32,
    /// Per-topic records.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<TopicProduceData>(), 0..3)"
        )
    )]
    pub topic_data: Vec<TopicProduceData>,
}

impl Request for ProduceRequest {
    type Response = ProduceResponse;
    const API_KEY: ApiKey = ApiKey::PRODUCE;
    const MIN_VERSION: i16 = 3;
    const MAX_VERSION: i16 = 11;
    const FLEXIBLE_FROM: i16 = 9;

    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= Self::FLEXIBLE_FROM;
        out.put_nullable_string(self.transactional_id.as_deref(), fl);
        out.put_i16(self.acks);
        out.put_i32(self.timeout_ms);
        out.put_array_len(Some(self.topic_data.len()), fl);
        for t in &self.topic_data {
            out.put_string(&t.name, fl);
            out.put_array_len(Some(t.partition_data.len()), fl);
            for p in &t.partition_data {
                out.put_i32(p.index);
                out.put_nullable_bytes(p.records.as_deref(), fl);
                out.put_empty_tags(fl);
            }
            out.put_empty_tags(fl);
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= Self::FLEXIBLE_FROM;
        let transactional_id = r.nullable_string(fl, "transactional id")?;
        let acks = r.i16("acks")?;
        let timeout_ms = r.i32("timeout")?;
        let topic_data = r.vec(fl, 2, "topic data", |r| {
            let name = r.string(fl, "topic name")?;
            let partition_data = r.vec(fl, 5, "partition data", |r| {
                let index = r.i32("partition index")?;
                let records = r.nullable_bytes(fl, "records")?.map(Bytes::copy_from_slice);
                r.skip_tags(fl)?;
                Ok(PartitionProduceData { index, records })
            })?;
            r.skip_tags(fl)?;
            Ok(TopicProduceData {
                name,
                partition_data,
            })
        })?;
        r.skip_tags(fl)?;
        Ok(ProduceRequest {
            transactional_id,
            acks,
            timeout_ms,
            topic_data,
        })
    }
}

/// A record that caused its batch to be rejected (v8+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct BatchIndexAndErrorMessage {
    /// The record's index in its batch.
    pub batch_index: i32,
    /// Why it was rejected.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub batch_index_error_message: Option<String>,
}

/// A partition's new leader, sent with NOT_LEADER_OR_FOLLOWER (v10+, KIP-951).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct LeaderIdAndEpoch {
    /// Leader id, -1 if unknown.
    pub leader_id: i32,
    /// Leader epoch, -1 if unknown.
    pub leader_epoch: i32,
}

impl Default for LeaderIdAndEpoch {
    fn default() -> Self {
        LeaderIdAndEpoch {
            leader_id: -1,
            leader_epoch: -1,
        }
    }
}

/// The outcome for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PartitionProduceResponse {
    /// Partition index.
    pub index: i32,
    /// Error code, 0 on success.
    pub error_code: i16,
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// The broker's append time if the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// The partition's log start offset (v5+), -1 if unknown.
    pub log_start_offset: i64,
    /// Records that caused the batch to be dropped (v8+).
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<BatchIndexAndErrorMessage>(), 0..3)"
        )
    )]
    pub record_errors: Vec<BatchIndexAndErrorMessage>,
    /// A summary of the error (v8+).
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub error_message: Option<String>,
    /// The new leader (v10+, tagged 0).
    pub current_leader: LeaderIdAndEpoch,
}

impl Default for PartitionProduceResponse {
    fn default() -> Self {
        PartitionProduceResponse {
            index: 0,
            error_code: 0,
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
            error_message: None,
            current_leader: LeaderIdAndEpoch::default(),
        }
    }
}

/// The outcome for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TopicProduceResponse {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Per-partition outcomes.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<PartitionProduceResponse>(), 0..3)"
        )
    )]
    pub partition_responses: Vec<PartitionProduceResponse>,
}

/// A broker endpoint (v10+, tagged 0), for leaders named in `current_leader`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct NodeEndpoint {
    /// Broker id.
    pub node_id: i32,
    /// Host.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub host: String,
    /// Port.
    pub port: i32,
    /// Rack.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub rack: Option<String>,
}

/// The Produce response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProduceResponse {
    /// Per-topic outcomes.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<TopicProduceResponse>(), 0..3)"
        )
    )]
    pub responses: Vec<TopicProduceResponse>,
    /// Quota throttle.
    pub throttle_time_ms: i32,
    /// Endpoints of leaders named in the partitions (v10+, tagged 0).
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<NodeEndpoint>(), 0..2)"
        )
    )]
    pub node_endpoints: Vec<NodeEndpoint>,
}

impl Response for ProduceResponse {
    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= ProduceRequest::FLEXIBLE_FROM;
        out.put_array_len(Some(self.responses.len()), fl);
        for t in &self.responses {
            out.put_string(&t.name, fl);
            out.put_array_len(Some(t.partition_responses.len()), fl);
            for p in &t.partition_responses {
                out.put_i32(p.index);
                out.put_i16(p.error_code);
                out.put_i64(p.base_offset);
                out.put_i64(p.log_append_time_ms);
                if version >= 5 {
                    out.put_i64(p.log_start_offset);
                }
                if version >= 8 {
                    out.put_array_len(Some(p.record_errors.len()), fl);
                    for e in &p.record_errors {
                        out.put_i32(e.batch_index);
                        out.put_nullable_string(e.batch_index_error_message.as_deref(), fl);
                        out.put_empty_tags(fl);
                    }
                    out.put_nullable_string(p.error_message.as_deref(), fl);
                }
                if fl {
                    if version >= 10 && p.current_leader != LeaderIdAndEpoch::default() {
                        out.put_uvarint(1);
                        put_tagged_field(out, 0, |o| {
                            o.put_i32(p.current_leader.leader_id);
                            o.put_i32(p.current_leader.leader_epoch);
                            o.put_empty_tags(true);
                        });
                    } else {
                        out.put_uvarint(0);
                    }
                }
            }
            out.put_empty_tags(fl);
        }
        out.put_i32(self.throttle_time_ms);
        if fl {
            if version >= 10 && !self.node_endpoints.is_empty() {
                out.put_uvarint(1);
                put_tagged_field(out, 0, |o| {
                    o.put_array_len(Some(self.node_endpoints.len()), true);
                    for n in &self.node_endpoints {
                        o.put_i32(n.node_id);
                        o.put_string(&n.host, true);
                        o.put_i32(n.port);
                        o.put_nullable_string(n.rack.as_deref(), true);
                        o.put_empty_tags(true);
                    }
                });
            } else {
                out.put_uvarint(0);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= ProduceRequest::FLEXIBLE_FROM;
        let responses = r.vec(fl, 2, "responses", |r| {
            let name = r.string(fl, "topic name")?;
            let partition_responses = r.vec(fl, 22, "partition responses", |r| {
                let mut p = PartitionProduceResponse {
                    index: r.i32("partition index")?,
                    error_code: r.i16("error code")?,
                    base_offset: r.i64("base offset")?,
                    log_append_time_ms: r.i64("log append time")?,
                    ..Default::default()
                };
                if version >= 5 {
                    p.log_start_offset = r.i64("log start offset")?;
                }
                if version >= 8 {
                    p.record_errors = r.vec(fl, 5, "record errors", |r| {
                        let e = BatchIndexAndErrorMessage {
                            batch_index: r.i32("batch index")?,
                            batch_index_error_message: r.nullable_string(fl, "record error")?,
                        };
                        r.skip_tags(fl)?;
                        Ok(e)
                    })?;
                    p.error_message = r.nullable_string(fl, "error message")?;
                }
                r.tagged_fields(fl, |tag, r| {
                    if tag != 0 || version < 10 {
                        return Ok(false);
                    }
                    p.current_leader = LeaderIdAndEpoch {
                        leader_id: r.i32("leader id")?,
                        leader_epoch: r.i32("leader epoch")?,
                    };
                    r.skip_tags(true)?;
                    Ok(true)
                })?;
                Ok(p)
            })?;
            r.skip_tags(fl)?;
            Ok(TopicProduceResponse {
                name,
                partition_responses,
            })
        })?;
        let throttle_time_ms = r.i32("throttle time")?;
        let mut node_endpoints = Vec::new();
        r.tagged_fields(fl, |tag, r| {
            if tag != 0 || version < 10 {
                return Ok(false);
            }
            node_endpoints = r.vec(true, 10, "node endpoints", |r| {
                let n = NodeEndpoint {
                    node_id: r.i32("node id")?,
                    host: r.string(true, "host")?,
                    port: r.i32("port")?,
                    rack: r.nullable_string(true, "rack")?,
                };
                r.skip_tags(true)?;
                Ok(n)
            })?;
            Ok(true)
        })?;
        Ok(ProduceResponse {
            responses,
            throttle_time_ms,
            node_endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    super::super::roundtrip_tests!(
        ProduceRequest,
        ProduceResponse,
        full_req = 3..=11,
        full_resp = 10..=11
    );

    #[test]
    fn v9_request_golden_bytes() {
        let req = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topic_data: vec![TopicProduceData {
                name: "t".into(),
                partition_data: vec![PartitionProduceData {
                    index: 2,
                    records: Some(Bytes::from_static(b"xy")),
                }],
            }],
        };
        let mut out = Vec::new();
        req.encode(9, &mut out);
        #[rustfmt::skip]
        let want = [
            0x00,                   // null transactional id (compact)
            0xff, 0xff,             // acks -1
            0x00, 0x00, 0x75, 0x30, // timeout 30000
            0x02,                   // 1 topic
            0x02, b't',             // "t"
            0x02,                   // 1 partition
            0x00, 0x00, 0x00, 0x02, // index 2
            0x03, b'x', b'y',       // records
            0x00, 0x00, 0x00,       // tags: partition, topic, request
        ];
        assert_eq!(out, want);
    }
}
