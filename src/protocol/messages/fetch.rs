//! Fetch (key 1), versions 4–12 (flexible from 12; v13+ address topics by id and are not
//! implemented). The producer never fetches; this is here for the broker side of the mock
//! cluster, so that any consumer can read back what was produced, and for tests that read.

use bytes::Bytes;

use super::produce::LeaderIdAndEpoch;
use super::{Request, Response};
use crate::protocol::api::ApiKey;
use crate::protocol::codec::{put_tagged_field, DecodeError, Reader, Writer};

/// A partition to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchPartition {
    /// Partition index.
    pub partition: i32,
    /// The leader epoch the client knows (v9+), -1 if none.
    pub current_leader_epoch: i32,
    /// The offset to fetch from.
    pub fetch_offset: i64,
    /// The epoch of the last fetched record (v12+), -1 if none.
    pub last_fetched_epoch: i32,
    /// The follower's log start offset (v5+), -1 for consumers.
    pub log_start_offset: i64,
    /// At most this many bytes for the partition.
    pub partition_max_bytes: i32,
}

impl Default for FetchPartition {
    fn default() -> Self {
        FetchPartition {
            partition: 0,
            current_leader_epoch: -1,
            fetch_offset: 0,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            partition_max_bytes: 1 << 20,
        }
    }
}

/// A topic to fetch from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchTopic {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub topic: String,
    /// Partitions.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<FetchPartition>(), 0..3)"
        )
    )]
    pub partitions: Vec<FetchPartition>,
}

/// Partitions to drop from an incremental fetch session (v7+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ForgottenTopic {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub topic: String,
    /// Partition indexes.
    #[cfg_attr(
        test,
        proptest(strategy = "proptest::collection::vec(proptest::prelude::any::<i32>(), 0..3)")
    )]
    pub partitions: Vec<i32>,
}

/// The Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchRequest {
    /// Cluster id (v12+, tagged 0), null if unknown.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub cluster_id: Option<String>,
    /// The requesting broker's id, -1 for consumers.
    pub replica_id: i32,
    /// How long the broker may wait for `min_bytes`.
    pub max_wait_ms: i32,
    /// The least data to answer with.
    pub min_bytes: i32,
    /// The most data to answer with.
    pub max_bytes: i32,
    /// 0 read uncommitted, 1 read committed.
    pub isolation_level: i8,
    /// Fetch session id (v7+), 0 for none.
    pub session_id: i32,
    /// Fetch session epoch (v7+), -1 for a full fetch without a session.
    pub session_epoch: i32,
    /// Topics to fetch.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<FetchTopic>(), 0..3)"
        )
    )]
    pub topics: Vec<FetchTopic>,
    /// Partitions leaving the session (v7+).
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<ForgottenTopic>(), 0..2)"
        )
    )]
    pub forgotten_topics_data: Vec<ForgottenTopic>,
    /// The consumer's rack (v11+).
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub rack_id: String,
}

impl Default for FetchRequest {
    fn default() -> Self {
        FetchRequest {
            cluster_id: None,
            replica_id: -1,
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 << 20,
            isolation_level: 0,
            session_id: 0,
            session_epoch: -1,
            topics: Vec::new(),
            forgotten_topics_data: Vec::new(),
            rack_id: String::new(),
        }
    }
}

impl Request for FetchRequest {
    type Response = FetchResponse;
    const API_KEY: ApiKey = ApiKey::FETCH;
    const MIN_VERSION: i16 = 4;
    const MAX_VERSION: i16 = 12;
    const FLEXIBLE_FROM: i16 = 12;

    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= Self::FLEXIBLE_FROM;
        out.put_i32(self.replica_id);
        out.put_i32(self.max_wait_ms);
        out.put_i32(self.min_bytes);
        out.put_i32(self.max_bytes);
        out.put_i8(self.isolation_level);
        if version >= 7 {
            out.put_i32(self.session_id);
            out.put_i32(self.session_epoch);
        }
        out.put_array_len(Some(self.topics.len()), fl);
        for t in &self.topics {
            out.put_string(&t.topic, fl);
            out.put_array_len(Some(t.partitions.len()), fl);
            for p in &t.partitions {
                out.put_i32(p.partition);
                if version >= 9 {
                    out.put_i32(p.current_leader_epoch);
                }
                out.put_i64(p.fetch_offset);
                if version >= 12 {
                    out.put_i32(p.last_fetched_epoch);
                }
                if version >= 5 {
                    out.put_i64(p.log_start_offset);
                }
                out.put_i32(p.partition_max_bytes);
                out.put_empty_tags(fl);
            }
            out.put_empty_tags(fl);
        }
        if version >= 7 {
            out.put_array_len(Some(self.forgotten_topics_data.len()), fl);
            for t in &self.forgotten_topics_data {
                out.put_string(&t.topic, fl);
                out.put_array_len(Some(t.partitions.len()), fl);
                for p in &t.partitions {
                    out.put_i32(*p);
                }
                out.put_empty_tags(fl);
            }
        }
        if version >= 11 {
            out.put_string(&self.rack_id, fl);
        }
        if fl {
            match &self.cluster_id {
                Some(id) => {
                    out.put_uvarint(1);
                    put_tagged_field(out, 0, |o| o.put_nullable_string(Some(id), true));
                }
                None => out.put_uvarint(0),
            }
        }
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= Self::FLEXIBLE_FROM;
        let mut m = FetchRequest {
            replica_id: r.i32("replica id")?,
            max_wait_ms: r.i32("max wait")?,
            min_bytes: r.i32("min bytes")?,
            max_bytes: r.i32("max bytes")?,
            isolation_level: r.i8("isolation level")?,
            ..Default::default()
        };
        if version >= 7 {
            m.session_id = r.i32("session id")?;
            m.session_epoch = r.i32("session epoch")?;
        }
        m.topics = r.vec(fl, 2, "topics", |r| {
            let topic = r.string(fl, "topic")?;
            let partitions = r.vec(fl, 16, "partitions", |r| {
                let mut p = FetchPartition {
                    partition: r.i32("partition")?,
                    ..Default::default()
                };
                if version >= 9 {
                    p.current_leader_epoch = r.i32("current leader epoch")?;
                }
                p.fetch_offset = r.i64("fetch offset")?;
                if version >= 12 {
                    p.last_fetched_epoch = r.i32("last fetched epoch")?;
                }
                if version >= 5 {
                    p.log_start_offset = r.i64("log start offset")?;
                }
                p.partition_max_bytes = r.i32("partition max bytes")?;
                r.skip_tags(fl)?;
                Ok(p)
            })?;
            r.skip_tags(fl)?;
            Ok(FetchTopic { topic, partitions })
        })?;
        if version >= 7 {
            m.forgotten_topics_data = r.vec(fl, 2, "forgotten topics", |r| {
                let topic = r.string(fl, "topic")?;
                let partitions = r.vec(fl, 4, "partitions", |r| r.i32("partition"))?;
                r.skip_tags(fl)?;
                Ok(ForgottenTopic { topic, partitions })
            })?;
        }
        if version >= 11 {
            m.rack_id = r.string(fl, "rack id")?;
        }
        let mut cluster_id = None;
        r.tagged_fields(fl, |tag, r| {
            if tag != 0 {
                return Ok(false);
            }
            cluster_id = r.nullable_string(true, "cluster id")?;
            Ok(true)
        })?;
        m.cluster_id = cluster_id;
        Ok(m)
    }
}

/// A transaction aborted within the fetched range (v4+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AbortedTransaction {
    /// The producer that aborted.
    pub producer_id: i64,
    /// The first offset of the aborted transaction.
    pub first_offset: i64,
}

/// Where a follower's log diverges (v12+, tagged 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EpochEndOffset {
    /// Epoch, -1 if none.
    pub epoch: i32,
    /// End offset, -1 if none.
    pub end_offset: i64,
}

impl Default for EpochEndOffset {
    fn default() -> Self {
        EpochEndOffset {
            epoch: -1,
            end_offset: -1,
        }
    }
}

/// A snapshot the follower must fetch (v12+, tagged 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SnapshotId {
    /// End offset, -1 if none.
    pub end_offset: i64,
    /// Epoch, -1 if none.
    pub epoch: i32,
}

impl Default for SnapshotId {
    fn default() -> Self {
        SnapshotId {
            end_offset: -1,
            epoch: -1,
        }
    }
}

/// Data for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchPartitionResponse {
    /// Partition index.
    pub partition_index: i32,
    /// Error code.
    pub error_code: i16,
    /// The high watermark.
    pub high_watermark: i64,
    /// The last stable offset, -1 if unknown.
    pub last_stable_offset: i64,
    /// The log start offset (v5+), -1 if unknown.
    pub log_start_offset: i64,
    /// Diverging epoch (v12+, tagged 0).
    pub diverging_epoch: EpochEndOffset,
    /// Current leader (v12+, tagged 1).
    pub current_leader: LeaderIdAndEpoch,
    /// Snapshot id (v12+, tagged 2).
    pub snapshot_id: SnapshotId,
    /// Aborted transactions, or null.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::option::of(proptest::collection::vec(proptest::prelude::any::<AbortedTransaction>(), 0..2))"
        )
    )]
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// Preferred read replica (v11+), -1 for none.
    pub preferred_read_replica: i32,
    /// Record batches, or null.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_bytes()"))]
    pub records: Option<Bytes>,
}

impl Default for FetchPartitionResponse {
    fn default() -> Self {
        FetchPartitionResponse {
            partition_index: 0,
            error_code: 0,
            high_watermark: 0,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging_epoch: EpochEndOffset::default(),
            current_leader: LeaderIdAndEpoch::default(),
            snapshot_id: SnapshotId::default(),
            aborted_transactions: None,
            preferred_read_replica: -1,
            records: None,
        }
    }
}

/// Data for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchTopicResponse {
    /// Topic name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub topic: String,
    /// Partitions.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<FetchPartitionResponse>(), 0..3)"
        )
    )]
    pub partitions: Vec<FetchPartitionResponse>,
}

/// The Fetch response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FetchResponse {
    /// Quota throttle.
    pub throttle_time_ms: i32,
    /// Top-level error code (v7+).
    pub error_code: i16,
    /// Fetch session id (v7+).
    pub session_id: i32,
    /// Topics.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<FetchTopicResponse>(), 0..3)"
        )
    )]
    pub responses: Vec<FetchTopicResponse>,
}

impl Response for FetchResponse {
    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= FetchRequest::FLEXIBLE_FROM;
        out.put_i32(self.throttle_time_ms);
        if version >= 7 {
            out.put_i16(self.error_code);
            out.put_i32(self.session_id);
        }
        out.put_array_len(Some(self.responses.len()), fl);
        for t in &self.responses {
            out.put_string(&t.topic, fl);
            out.put_array_len(Some(t.partitions.len()), fl);
            for p in &t.partitions {
                out.put_i32(p.partition_index);
                out.put_i16(p.error_code);
                out.put_i64(p.high_watermark);
                out.put_i64(p.last_stable_offset);
                if version >= 5 {
                    out.put_i64(p.log_start_offset);
                }
                out.put_array_len(p.aborted_transactions.as_ref().map(Vec::len), fl);
                for a in p.aborted_transactions.iter().flatten() {
                    out.put_i64(a.producer_id);
                    out.put_i64(a.first_offset);
                    out.put_empty_tags(fl);
                }
                if version >= 11 {
                    out.put_i32(p.preferred_read_replica);
                }
                out.put_nullable_bytes(p.records.as_deref(), fl);
                if fl {
                    let de = p.diverging_epoch != EpochEndOffset::default();
                    let cl = p.current_leader != LeaderIdAndEpoch::default();
                    let si = p.snapshot_id != SnapshotId::default();
                    out.put_uvarint(u32::from(de) + u32::from(cl) + u32::from(si));
                    if de {
                        put_tagged_field(out, 0, |o| {
                            o.put_i32(p.diverging_epoch.epoch);
                            o.put_i64(p.diverging_epoch.end_offset);
                            o.put_empty_tags(true);
                        });
                    }
                    if cl {
                        put_tagged_field(out, 1, |o| {
                            o.put_i32(p.current_leader.leader_id);
                            o.put_i32(p.current_leader.leader_epoch);
                            o.put_empty_tags(true);
                        });
                    }
                    if si {
                        put_tagged_field(out, 2, |o| {
                            o.put_i64(p.snapshot_id.end_offset);
                            o.put_i32(p.snapshot_id.epoch);
                            o.put_empty_tags(true);
                        });
                    }
                }
            }
            out.put_empty_tags(fl);
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= FetchRequest::FLEXIBLE_FROM;
        let mut m = FetchResponse {
            throttle_time_ms: r.i32("throttle time")?,
            ..Default::default()
        };
        if version >= 7 {
            m.error_code = r.i16("error code")?;
            m.session_id = r.i32("session id")?;
        }
        m.responses = r.vec(fl, 2, "responses", |r| {
            let topic = r.string(fl, "topic")?;
            let partitions = r.vec(fl, 30, "partitions", |r| {
                let mut p = FetchPartitionResponse {
                    partition_index: r.i32("partition index")?,
                    error_code: r.i16("error code")?,
                    high_watermark: r.i64("high watermark")?,
                    last_stable_offset: r.i64("last stable offset")?,
                    ..Default::default()
                };
                if version >= 5 {
                    p.log_start_offset = r.i64("log start offset")?;
                }
                p.aborted_transactions = r.nullable_vec(fl, 16, "aborted transactions", |r| {
                    let a = AbortedTransaction {
                        producer_id: r.i64("producer id")?,
                        first_offset: r.i64("first offset")?,
                    };
                    r.skip_tags(fl)?;
                    Ok(a)
                })?;
                if version >= 11 {
                    p.preferred_read_replica = r.i32("preferred read replica")?;
                }
                p.records = r.nullable_bytes(fl, "records")?.map(Bytes::copy_from_slice);
                r.tagged_fields(fl, |tag, r| {
                    match tag {
                        0 => {
                            p.diverging_epoch = EpochEndOffset {
                                epoch: r.i32("epoch")?,
                                end_offset: r.i64("end offset")?,
                            }
                        }
                        1 => {
                            p.current_leader = LeaderIdAndEpoch {
                                leader_id: r.i32("leader id")?,
                                leader_epoch: r.i32("leader epoch")?,
                            }
                        }
                        2 => {
                            p.snapshot_id = SnapshotId {
                                end_offset: r.i64("end offset")?,
                                epoch: r.i32("epoch")?,
                            }
                        }
                        _ => return Ok(false),
                    }
                    r.skip_tags(true)?;
                    Ok(true)
                })?;
                Ok(p)
            })?;
            r.skip_tags(fl)?;
            Ok(FetchTopicResponse { topic, partitions })
        })?;
        r.skip_tags(fl)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    super::super::roundtrip_tests!(
        FetchRequest,
        FetchResponse,
        full_req = 12..=12,
        full_resp = 12..=12
    );
}
