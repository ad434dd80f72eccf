//! ListOffsets (key 2), versions 1–7 (flexible from 6): a partition's offset for a timestamp,
//! or its earliest (-2) / latest (-1) / max-timestamp (-3, v7+) offset.

use super::{Request, Response};
use crate::protocol::api::ApiKey;
use crate::protocol::codec::{DecodeError, Reader, Writer};

/// A partition asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsPartition {
    /// Partition index.
    pub partition_index: i32,
    /// The leader epoch the client knows (v4+), -1 if none.
    pub current_leader_epoch: i32,
    /// The timestamp to look up, or -1 (latest), -2 (earliest), -3 (max timestamp).
    pub timestamp: i64,
}

impl Default for ListOffsetsPartition {
    fn default() -> Self {
        ListOffsetsPartition {
            partition_index: 0,
            current_leader_epoch: -1,
            timestamp: -1,
        }
    }
}

/// A topic asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsTopic {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Partitions.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<ListOffsetsPartition>(), 0..3)"
        )
    )]
    pub partitions: Vec<ListOffsetsPartition>,
}

/// The ListOffsets request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsRequest {
    /// The requesting broker's id, -1 for clients.
    pub replica_id: i32,
    /// 0 read uncommitted, 1 read committed (v2+).
    pub isolation_level: i8,
    /// Topics.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<ListOffsetsTopic>(), 0..3)"
        )
    )]
    pub topics: Vec<ListOffsetsTopic>,
}

impl Default for ListOffsetsRequest {
    fn default() -> Self {
        ListOffsetsRequest {
            replica_id: -1,
            isolation_level: 0,
            topics: Vec::new(),
        }
    }
}

impl Request for ListOffsetsRequest {
    type Response = ListOffsetsResponse;
    const API_KEY: ApiKey = ApiKey::LIST_OFFSETS;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 7;
    const FLEXIBLE_FROM: i16 = 6;

    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= Self::FLEXIBLE_FROM;
        out.put_i32(self.replica_id);
        if version >= 2 {
            out.put_i8(self.isolation_level);
        }
        out.put_array_len(Some(self.topics.len()), fl);
        for t in &self.topics {
            out.put_string(&t.name, fl);
            out.put_array_len(Some(t.partitions.len()), fl);
            for p in &t.partitions {
                out.put_i32(p.partition_index);
                if version >= 4 {
                    out.put_i32(p.current_leader_epoch);
                }
                out.put_i64(p.timestamp);
                out.put_empty_tags(fl);
            }
            out.put_empty_tags(fl);
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= Self::FLEXIBLE_FROM;
        let mut m = ListOffsetsRequest {
            replica_id: r.i32("replica id")?,
            ..Default::default()
        };
        if version >= 2 {
            m.isolation_level = r.i8("isolation level")?;
        }
        m.topics = r.vec(fl, 2, "topics", |r| {
            let name = r.string(fl, "topic name")?;
            let partitions = r.vec(fl, 12, "partitions", |r| {
                let mut p = ListOffsetsPartition {
                    partition_index: r.i32("partition index")?,
                    ..Default::default()
                };
                if version >= 4 {
                    p.current_leader_epoch = r.i32("current leader epoch")?;
                }
                p.timestamp = r.i64("timestamp")?;
                r.skip_tags(fl)?;
                Ok(p)
            })?;
            r.skip_tags(fl)?;
            Ok(ListOffsetsTopic { name, partitions })
        })?;
        r.skip_tags(fl)?;
        Ok(m)
    }
}

/// A partition's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsPartitionResponse {
    /// Partition index.
    pub partition_index: i32,
    /// Error code.
    pub error_code: i16,
    /// The timestamp of the offset found, -1 if none.
    pub timestamp: i64,
    /// The offset found, -1 if none.
    pub offset: i64,
    /// Leader epoch (v4+), -1 if unknown.
    pub leader_epoch: i32,
}

impl Default for ListOffsetsPartitionResponse {
    fn default() -> Self {
        ListOffsetsPartitionResponse {
            partition_index: 0,
            error_code: 0,
            timestamp: -1,
            offset: -1,
            leader_epoch: -1,
        }
    }
}

/// A topic's answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsTopicResponse {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Partitions.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<ListOffsetsPartitionResponse>(), 0..3)"
        )
    )]
    pub partitions: Vec<ListOffsetsPartitionResponse>,
}

/// The ListOffsets response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListOffsetsResponse {
    /// Quota throttle (v2+).
    pub throttle_time_ms: i32,
    /// Topics.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<ListOffsetsTopicResponse>(), 0..3)"
        )
    )]
    pub topics: Vec<ListOffsetsTopicResponse>,
}

impl Response for ListOffsetsResponse {
    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= ListOffsetsRequest::FLEXIBLE_FROM;
        if version >= 2 {
            out.put_i32(self.throttle_time_ms);
        }
        out.put_array_len(Some(self.topics.len()), fl);
        for t in &self.topics {
            out.put_string(&t.name, fl);
            out.put_array_len(Some(t.partitions.len()), fl);
            for p in &t.partitions {
                out.put_i32(p.partition_index);
                out.put_i16(p.error_code);
                out.put_i64(p.timestamp);
                out.put_i64(p.offset);
                if version >= 4 {
                    out.put_i32(p.leader_epoch);
                }
                out.put_empty_tags(fl);
            }
            out.put_empty_tags(fl);
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= ListOffsetsRequest::FLEXIBLE_FROM;
        let mut m = ListOffsetsResponse::default();
        if version >= 2 {
            m.throttle_time_ms = r.i32("throttle time")?;
        }
        m.topics = r.vec(fl, 2, "topics", |r| {
            let name = r.string(fl, "topic name")?;
            let partitions = r.vec(fl, 22, "partitions", |r| {
                let mut p = ListOffsetsPartitionResponse {
                    partition_index: r.i32("partition index")?,
                    error_code: r.i16("error code")?,
                    timestamp: r.i64("timestamp")?,
                    offset: r.i64("offset")?,
                    ..Default::default()
                };
                if version >= 4 {
                    p.leader_epoch = r.i32("leader epoch")?;
                }
                r.skip_tags(fl)?;
                Ok(p)
            })?;
            r.skip_tags(fl)?;
            Ok(ListOffsetsTopicResponse { name, partitions })
        })?;
        r.skip_tags(fl)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    super::super::roundtrip_tests!(
        ListOffsetsRequest,
        ListOffsetsResponse,
        full_req = 4..=7,
        full_resp = 4..=7
    );
}
