//! Applying a Metadata response to the topic table: brokers' addresses, partitions (created
//! with their rings when first seen), leaders; then placing the records that waited for it.
//! No sockets here; time comes in as `now`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Instant;

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use parking_lot::Mutex;

use super::batch::{Accumulator, Completions};
use super::{route_word, PartitionState, Shared, TopicState, Unplaced};
use crate::delivery::{Completer, DeliveryResult};
use crate::error::{Deadline, Error, Location};
use crate::protocol::messages::metadata::MetadataResponse;
use crate::protocol::messages::produce::NodeEndpoint;
use crate::protocol::ErrorCode;

/// What applying a response changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Topics still without partitions, and partitions without a leader (refresh soon).
    pub unresolved: usize,
    /// Whether any leader or partition changed.
    pub changed: bool,
}

impl Shared {
    /// Updates brokers, partitions and leaders from `resp`.
    pub(crate) fn apply_metadata(&self, resp: &MetadataResponse) -> Applied {
        let mut applied = Applied::default();
        if !resp.brokers.is_empty() {
            let brokers: HashMap<i32, String> = resp
                .brokers
                .iter()
                .map(|b| (b.node_id, format!("{}:{}", b.host, b.port)))
                .collect();
            if **self.brokers.load() != brokers {
                self.brokers.store(Arc::new(brokers));
                applied.changed = true;
            }
        }
        // Every broker listed or named as a leader has its thread before any partition is
        // routed to it (so a partition's owner changes only when its leader does).
        let mut placement = self.placement.lock();
        let leaders = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.leader_id));
        if resp.brokers.is_empty() {
            let known: Vec<i32> = self.brokers.load().keys().copied().collect();
            placement.update(known.into_iter().chain(leaders));
        } else {
            placement.update(resp.brokers.iter().map(|b| b.node_id).chain(leaders));
        }
        let topics = self.topics.load();
        for mt in &resp.topics {
            let Some(t) = mt.name.as_deref().and_then(|n| topics.get(n)) else {
                continue;
            };
            let code = ErrorCode(mt.error_code);
            if code != ErrorCode::NONE || mt.partitions.is_empty() {
                *t.error.lock() = Some(if code == ErrorCode::NONE {
                    ErrorCode::LEADER_NOT_AVAILABLE
                } else {
                    code
                });
                if t.partitions.load().is_none() {
                    applied.unresolved += 1;
                }
                continue;
            }
            *t.error.lock() = None;
            let count = mt
                .partitions
                .iter()
                .map(|p| p.partition_index + 1)
                .max()
                .unwrap_or(0)
                .max(0) as usize;
            let current = t.partitions.load_full();
            let have = current.as_ref().map_or(0, |v| v.len());
            let parts = if count > have {
                let mut v: Vec<Arc<PartitionState>> =
                    current.as_ref().map(|v| v.to_vec()).unwrap_or_default();
                for p in have..count {
                    v.push(self.new_partition(t, p as i32, count));
                }
                t.partition_count.store(count as u32, SeqCst);
                applied.changed = true;
                Some(Arc::new(v))
            } else {
                None
            };
            let list = parts.clone().or(current).expect("count > 0");
            for mp in &mt.partitions {
                if let Some(p) = list.get(mp.partition_index as usize) {
                    let leader = if mp.error_code == 0 || mp.leader_id >= 0 {
                        mp.leader_id
                    } else {
                        -1
                    };
                    let route = route_word(leader, placement.owner(leader));
                    if p.route.swap(route, SeqCst) != route {
                        applied.changed = true;
                    }
                    p.leader_epoch.store(mp.leader_epoch, SeqCst);
                    if leader < 0 {
                        applied.unresolved += 1;
                    }
                }
            }
            if let Some(v) = parts {
                t.partitions.store(Some(v));
            }
        }
        if applied.changed {
            self.metadata_version.fetch_add(1, SeqCst);
        }
        applied
    }

    /// A Produce answer named `p`'s new leader (KIP-951: `current_leader`, with its address in
    /// `endpoints` if metadata has not listed it): route `p` there at once, without a
    /// Metadata round trip, if the hint is newer than what is known. Returns whether it did.
    pub(crate) fn apply_leader_hint(
        &self,
        p: &PartitionState,
        leader: i32,
        epoch: i32,
        endpoints: &[NodeEndpoint],
    ) -> bool {
        if leader < 0 || epoch < 0 {
            return false;
        }
        let known = p.leader_epoch.load(SeqCst);
        if known >= 0 && epoch <= known {
            return false;
        }
        let brokers = self.brokers.load();
        if !brokers.contains_key(&leader) {
            let Some(n) = endpoints.iter().find(|n| n.node_id == leader) else {
                return false;
            };
            let mut next = (**brokers).clone();
            next.insert(leader, format!("{}:{}", n.host, n.port));
            self.brokers.store(Arc::new(next));
        }
        drop(brokers);
        let mut placement = self.placement.lock();
        placement.add(leader);
        p.route
            .store(route_word(leader, placement.owner(leader)), SeqCst);
        p.leader_epoch.store(epoch, SeqCst);
        drop(placement);
        self.metadata_version.fetch_add(1, SeqCst);
        true
    }

    /// Partition `partition` of `t`, which has `count` partitions (its ring's size depends on
    /// it: [`ring_capacity`](super::ring_capacity)).
    fn new_partition(&self, t: &TopicState, partition: i32, count: usize) -> Arc<PartitionState> {
        Arc::new(PartitionState {
            topic: t.name.clone(),
            partition,
            ring: ArrayQueue::new(super::ring_capacity(self.config.queue_capacity, count)),
            route: CachePadded::new(AtomicU64::new(route_word(-1, 0))),
            leader_epoch: AtomicI32::new(-1),
            acc: CachePadded::new(Mutex::new(Accumulator::default())),
            lingering: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            io: self.io.clone(),
            txn_added: AtomicU64::new(u64::MAX),
            txn_queued: AtomicU64::new(u64::MAX),
            waited: AtomicBool::new(false),
            waited_since: Mutex::new(None),
            counters: Default::default(),
            load: Default::default(),
        })
    }

    /// Places records that waited for their topic's metadata; fails those that waited longer
    /// than the metadata timeout (or the delivery timeout, if shorter). Returns the earliest
    /// time a still-waiting record expires.
    pub(crate) fn place_pending(
        &self,
        now: Instant,
        deliver: &mut dyn FnMut(Completer, DeliveryResult),
    ) -> Option<Instant> {
        let wait = self
            .config
            .metadata_timeout
            .min(self.config.delivery_timeout);
        let mut next = None;
        for t in self.topics.load().values() {
            let mut q = t.pending.lock();
            if q.is_empty() {
                continue;
            }
            if let Some(parts) = t.partitions.load_full() {
                // In order; a full ring leaves the rest for the next pass.
                while let Some(u) = q.pop_front() {
                    let Unplaced {
                        since,
                        partition,
                        record,
                        urge,
                    } = u;
                    let reserved = record.reserved();
                    let p = match self.place(
                        t,
                        &parts,
                        partition,
                        record.key.as_deref(),
                        record.reserved(),
                    ) {
                        Ok(p) => &parts[p],
                        Err(e) => {
                            self.fail_all(
                                Completions::one(record.completer),
                                reserved,
                                &e,
                                deliver,
                            );
                            continue;
                        }
                    };
                    // Its delivery timeout counts from its send: tell the owner (before the
                    // push, which publishes it).
                    p.note_waited(since);
                    match p.ring.push(record) {
                        Ok(()) => {
                            self.pushed(p);
                            if urge {
                                p.urge();
                            }
                        }
                        Err(record) => {
                            // It keeps the partition it was placed on: placing it again
                            // would count it again against that partition's turn.
                            q.push_front(Unplaced {
                                since,
                                partition: Some(p.partition),
                                record,
                                urge,
                            });
                            self.pushed(p);
                            next = Some(now);
                            break;
                        }
                    }
                }
                if q.is_empty() {
                    t.has_pending.store(false, SeqCst);
                }
                continue;
            }
            while let Some(u) = q.front() {
                if now < u.since + wait {
                    next = Some(u.since + wait);
                    break;
                }
                let u = q.pop_front().expect("front exists");
                if q.is_empty() {
                    t.has_pending.store(false, SeqCst);
                }
                let e = match *t.error.lock() {
                    Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => Error::UnknownTopic {
                        at: Location::topic(&t.name),
                    },
                    Some(code) if code != ErrorCode::LEADER_NOT_AVAILABLE => Error::Kafka {
                        code,
                        message: None,
                        at: Location::topic(&t.name),
                    },
                    _ => self.timeout(Deadline::Metadata, Location::topic(&t.name)),
                };
                let reserved = u.record.reserved();
                self.fail_all(Completions::one(u.record.completer), reserved, &e, deliver);
            }
        }
        next
    }

    /// Topic names to ask metadata for (every topic in use).
    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.topics.load().keys().map(|k| k.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProducerConfigBuilder;
    use crate::metrics::Metrics;
    use crate::partitioner::BuiltinPartitioner;
    use crate::protocol::messages::metadata::{MetadataBroker, MetadataPartition, MetadataTopic};

    fn shared(threads: usize) -> Shared {
        let config = ProducerConfigBuilder::new()
            .bootstrap_servers("localhost:9092")
            .io_threads(threads)
            .build_config()
            .unwrap();
        let wakes = (0..threads)
            .map(|_| crate::engine::wake::ThreadWake::new(|| {}))
            .collect();
        Shared::new(
            config,
            Arc::new(BuiltinPartitioner::Murmur2),
            wakes,
            Arc::new(Metrics::default()),
        )
    }

    fn response(brokers: &[i32], leaders: &[i32]) -> MetadataResponse {
        MetadataResponse {
            brokers: brokers
                .iter()
                .map(|&id| MetadataBroker {
                    node_id: id,
                    host: "127.0.0.1".into(),
                    port: 9000 + id,
                    rack: None,
                })
                .collect(),
            topics: vec![MetadataTopic {
                name: Some("t".into()),
                partitions: leaders
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| MetadataPartition {
                        partition_index: i as i32,
                        leader_id: l,
                        ..MetadataPartition::default()
                    })
                    .collect(),
                ..MetadataTopic::default()
            }],
            ..MetadataResponse::default()
        }
    }

    /// Brokers 10, 20 and 30 over two I/O threads: `id % threads` gave all three to thread
    /// 0; placement by count gives neither thread all three.
    #[test]
    fn brokers_10_20_30_do_not_all_land_on_one_thread() {
        let s = shared(2);
        s.topic("t").unwrap();
        s.apply_metadata(&response(&[10, 20, 30], &[10, 20, 30, 10, 20, 30]));
        let parts = s.topics.load()["t"].partitions.load_full().unwrap();
        let owners: Vec<usize> = parts.iter().map(|p| p.owner()).collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        // Each broker's partitions stay together on its thread.
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.route(), (parts[i % 3].route().0, owners[i % 3]));
        }
        // A leader moving to a broker keeps that broker's thread; the others stay put.
        s.apply_metadata(&response(&[10, 20, 30], &[20, 20, 30, 10, 20, 30]));
        assert_eq!(parts[0].route(), (20, owners[1]));
        assert_eq!(parts[3].owner(), owners[0]);
        // Leaderless: thread 0.
        s.apply_metadata(&response(&[10, 20, 30], &[-1, 20, 30, 10, 20, 30]));
        assert_eq!(parts[0].route(), (-1, 0));
    }
}
