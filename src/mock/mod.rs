//! An in-process Kafka cluster for tests: [`MockCluster`].
//!
//! It listens on loopback ports, speaks the Kafka protocol with this crate's own broker-side
//! codecs, and is good enough for real clients (librdkafka's producer and consumer, and
//! kprod's) to produce to and fetch from. Beyond storing what it is sent, it lets a test
//! inject faults a client must survive — error codes, dropped connections, latency, brokers
//! going down, stalls, leadership moves — and look at exactly what arrived.
//!
//! # What it implements
//!
//! | API | versions | notes |
//! |---|---|---|
//! | ApiVersions | 0–3 | higher versions get UNSUPPORTED_VERSION in a v0 body (the v0 fallback) |
//! | Metadata | 1–12 | every broker; leaders; auto-creation (see [`MockClusterBuilder::auto_create_topics`]) |
//! | Produce | 3–11 | acks 0/1/-1; CRC and decoding checked; leadership; idempotence (below) |
//! | InitProducerId | 0–4 | fresh ids with epoch 0; v3+ epoch bump for a known id and epoch (KIP-360) |
//! | CreateTopics | 2–7 | partitions, replication factor ≤ brokers, manual assignment, `validate_only` |
//! | ListOffsets | 1–7 | earliest, latest, max timestamp (-3) and by timestamp |
//! | Fetch | 4–12 | no fetch sessions; waits up to `max_wait_ms` (at most 500 ms) for data |
//! | FindCoordinator | 0–2 | always COORDINATOR_NOT_AVAILABLE: there are no groups |
//!
//! With [`MockClusterBuilder::legacy`] it offers only pre-flexible versions (ApiVersions 2,
//! Metadata 8, Produce 8, InitProducerId 1, Fetch 11, ListOffsets 5, CreateTopics 4).
//!
//! A request for another API, outside the offered versions, or that does not decode gets its
//! connection closed, and the reason is added to [`MockCluster::errors`]. The mock never
//! panics on what it reads.
//!
//! # Idempotence
//!
//! Batches with a producer id (≥ 0) are checked as Kafka does. The id must have come from
//! this cluster's InitProducerId (else UNKNOWN_PRODUCER_ID). Per producer id, topic and
//! partition the mock keeps the epoch, the last sequence and the sequence ranges and base
//! offsets of the last 5 batches. A batch with an epoch below the known one gets
//! INVALID_PRODUCER_EPOCH; a batch equal to one of the last 5 is a retry: it is acknowledged
//! with its original base offset and stored again nothing (or gets DUPLICATE_SEQUENCE_NUMBER
//! with [`MockClusterBuilder::duplicate_as_error`]); otherwise its first sequence must follow
//! the last one, or be 0 for a new producer or a new (higher) epoch, else
//! OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! With [`MockClusterBuilder::accept_transactions`] the cluster is a transaction coordinator:
//! per transactional id its state (empty, ongoing, complete commit/abort; the prepare phases
//! are instantaneous), fencing by epoch, the transaction timeout, COMMIT/ABORT markers, the
//! last stable offset, read_committed Fetch with the aborted-transactions list, and group
//! offsets from TxnOffsetCommit visible through OffsetFetch once their transaction commits.
//!
//! Not implemented: consumer group membership (JoinGroup and the rest; a consumer commits
//! offsets only in transactions), fetch sessions, replication (every partition has one
//! replica, its leader) and log retention.
//!
//! # Threads
//!
//! Each broker has an accept thread (named `km<port>`) and each connection a thread of its
//! own (`km<port>c<n>`). Dropping the cluster closes every listener and connection and joins
//! every thread before `drop` returns.

mod coordinator;
pub(crate) mod handler;
mod security;
pub(crate) mod server;
mod state;
mod txn;

pub use coordinator::TransactionState;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::record_batch::{Header, RecordBatch};
use crate::protocol::{DecodeError, ErrorCode};

use crate::sasl::{Mechanism, Secret};
use crate::tls::Pem;
use handler::Profile;
use security::{SaslServer, TlsServer};
use server::{accept_loop, Config, Shared};
use state::State;

/// A record as stored by the cluster, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp (the producer's CreateTime).
    pub timestamp: i64,
    /// Key, or null.
    pub key: Option<Bytes>,
    /// Value, or null.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// The producer id of its batch, -1 if not idempotent.
    pub producer_id: i64,
    /// Its sequence number (the batch's base sequence plus its index), -1 if not idempotent.
    pub sequence: i32,
}

/// One partition's share of a Produce request the cluster accepted: what a client sent, as
/// decoded. Kept for every accepted partition (including retries answered as duplicates),
/// except in sink mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceCapture {
    /// The broker that received it.
    pub broker: i32,
    /// The Produce version used.
    pub api_version: i16,
    /// The request's acks.
    pub acks: i16,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The batches, decoded as sent (base offsets as the client set them).
    pub batches: Vec<RecordBatch>,
    /// The base offset the cluster answered with.
    pub base_offset: i64,
    /// Whether this was a retry of a stored batch (nothing new stored).
    pub duplicate: bool,
}

/// Why [`MockCluster::append_batches`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// No such topic or partition.
    #[error("unknown topic or partition")]
    UnknownPartition,
    /// The data is not a sequence of valid record batches.
    #[error("invalid record batch: {0}")]
    Decode(DecodeError),
}

/// A request other than Produce and Fetch, as it arrived: kept (the last
/// [`MAX_CAPTURED_REQUESTS`]) so tests can decode what a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    /// The broker that received it.
    pub broker: i32,
    /// The API key.
    pub api_key: i16,
    /// The version used.
    pub api_version: i16,
    /// The client id in the header.
    pub client_id: Option<String>,
    /// The body, after the request header.
    pub body: Bytes,
}

/// The mock's OAUTHBEARER validation on arbitrary bytes (for the fuzz targets).
#[doc(hidden)]
pub fn fuzz_oauthbearer(message: &[u8]) -> Result<(String, Duration), String> {
    security::oauthbearer(message).map(|(user, left, _extensions)| (user, left))
}

/// How many [`CapturedRequest`]s a cluster keeps (the oldest go first).
pub const MAX_CAPTURED_REQUESTS: usize = 4096;

/// Builds a [`MockCluster`]; from [`MockCluster::builder`].
#[derive(Debug, Clone)]
pub struct MockClusterBuilder {
    brokers: usize,
    topics: Vec<(String, i32)>,
    auto_create: bool,
    auto_create_partitions: i32,
    sink: bool,
    duplicate_as_error: bool,
    legacy: bool,
    first_producer_id: i64,
    transactions: bool,
    transaction_version: i16,
    marker_delay: Duration,
    tls: Option<(String, Secret, Option<String>)>,
    sasl_mechanisms: Vec<Mechanism>,
    sasl_users: Vec<(String, Secret)>,
    sasl_session_lifetime: Option<Duration>,
    sasl_forge_scram_signature: bool,
}

impl Default for MockClusterBuilder {
    fn default() -> Self {
        MockClusterBuilder {
            brokers: 1,
            topics: Vec::new(),
            auto_create: true,
            auto_create_partitions: 1,
            sink: false,
            duplicate_as_error: false,
            legacy: false,
            first_producer_id: 1000,
            transactions: false,
            transaction_version: 0,
            marker_delay: Duration::ZERO,
            tls: None,
            sasl_mechanisms: Vec::new(),
            sasl_users: Vec::new(),
            sasl_session_lifetime: None,
            sasl_forge_scram_signature: false,
        }
    }
}

impl MockClusterBuilder {
    /// The number of brokers, numbered 1 to `n` (default 1; at least 1).
    pub fn brokers(mut self, n: usize) -> Self {
        self.brokers = n.max(1);
        self
    }

    /// A topic to create at start, with `partitions` partitions (at least 1). Partition `p` is
    /// led by broker `1 + p % brokers`.
    pub fn topic(mut self, name: &str, partitions: i32) -> Self {
        self.topics.push((name.to_string(), partitions.max(1)));
        self
    }

    /// Whether Metadata requests create unknown topics they ask about (when the request
    /// allows it, as `allow_auto_topic_creation` from v4 does), and with how many partitions;
    /// the same count is used by CreateTopics asking for the default (-1). Default: on, 1
    /// partition, like Kafka's `auto.create.topics.enable` and `num.partitions`.
    pub fn auto_create_topics(mut self, on: bool, partitions: i32) -> Self {
        self.auto_create = on;
        self.auto_create_partitions = partitions.max(1);
        self
    }

    /// Sink mode: acknowledge with correct offsets but keep no record data, for benchmarks.
    /// [`MockCluster::records`] and [`MockCluster::produce_requests`] stay empty and Fetch
    /// returns no records; [`MockCluster::end_offset`] advances. Default off.
    pub fn sink(mut self, on: bool) -> Self {
        self.sink = on;
        self
    }

    /// Answer retries of stored idempotent batches with DUPLICATE_SEQUENCE_NUMBER (what Kafka
    /// before 1.0 did) instead of success with the original offset. Default off.
    pub fn duplicate_as_error(mut self, on: bool) -> Self {
        self.duplicate_as_error = on;
        self
    }

    /// Offer only pre-flexible versions (a pre-KIP-482 broker), so that clients must fall
    /// back from ApiVersions v3 and use classic encodings. Default off.
    pub fn legacy(mut self, on: bool) -> Self {
        self.legacy = on;
        self
    }

    /// Be a transaction coordinator (default off: FindCoordinator answers
    /// COORDINATOR_NOT_AVAILABLE and the transaction APIs are not offered). On, each
    /// transactional id and group has a coordinator broker (a stable hash, or
    /// [`MockCluster::set_coordinator`]); FindCoordinator, InitProducerId with a
    /// transactional id (fencing the id's earlier producer by epoch), AddPartitionsToTxn,
    /// AddOffsetsToTxn, TxnOffsetCommit, EndTxn and OffsetFetch are answered from its state;
    /// EndTxn writes COMMIT/ABORT markers to every partition of the transaction; Fetch and
    /// ListOffsets with `isolation_level=read_committed` stop at the last stable offset and
    /// list the aborted transactions; a transaction that outlives its timeout is aborted (at
    /// the next request after it). See [`MockCluster::transaction_state`].
    pub fn accept_transactions(mut self, on: bool) -> Self {
        self.transactions = on;
        self
    }

    /// Transactions v2 (KIP-890) with `level` ≥ 2 (default 0: v1 only): ApiVersions (v3+)
    /// advertises the finalized feature `transaction.version` at `level`, a transactional
    /// Produce v12+ adds its partition to the producer's transaction (no
    /// AddPartitionsToTxn needed), and every EndTxn v5+ hands out the next epoch (as it does
    /// at any level: Kafka takes EndTxn v5 for a v2 client). Implies
    /// [`accept_transactions`](Self::accept_transactions).
    pub fn transaction_version(mut self, level: i16) -> Self {
        self.transaction_version = level.max(0);
        self.transactions |= level > 0;
        self
    }

    /// How long an ended transaction stays in PrepareCommit / PrepareAbort before its
    /// markers are written (default zero: at once). Meanwhile the coordinator answers
    /// CONCURRENT_TRANSACTIONS to the producer's next AddPartitionsToTxn, AddOffsetsToTxn,
    /// InitProducerId or a repeated EndTxn, and the last stable offset stays where the
    /// transaction began, as with Kafka's coordinator writing markers to slow brokers. The
    /// markers are written at the first request (or [`MockCluster`] query) after the delay.
    /// Implies [`accept_transactions`](Self::accept_transactions).
    pub fn transaction_marker_delay(mut self, delay: Duration) -> Self {
        self.marker_delay = delay;
        self.transactions = true;
        self
    }

    /// The first producer id InitProducerId hands out; later ones count up (default 1000).
    pub fn first_producer_id(mut self, id: i64) -> Self {
        self.first_producer_id = id.max(0);
        self
    }

    /// Serve TLS on every listener with this certificate chain and private key (PEM text).
    /// Default: plaintext.
    pub fn tls(mut self, certificate_pem: &str, key_pem: &str) -> Self {
        let ca = self.tls.take().and_then(|t| t.2);
        self.tls = Some((certificate_pem.to_string(), Secret::new(key_pem), ca));
        self
    }

    /// With [`tls`](Self::tls): require client certificates signed by this CA (PEM text), as
    /// a broker with `ssl.client.auth=required`. Default: no client certificate asked.
    pub fn tls_client_ca(mut self, ca_pem: &str) -> Self {
        if let Some(t) = &mut self.tls {
            t.2 = Some(ca_pem.to_string());
        }
        self
    }

    /// Require SASL authentication on every listener, offering these mechanisms (PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512). Default: none, no authentication.
    pub fn sasl_mechanisms(mut self, mechanisms: &[Mechanism]) -> Self {
        self.sasl_mechanisms = mechanisms.to_vec();
        self
    }

    /// A SASL user (for every mechanism; stored salted, as SCRAM stores credentials).
    pub fn sasl_user(mut self, name: &str, password: &str) -> Self {
        self.sasl_users
            .push((name.to_string(), Secret::new(password)));
        self
    }

    /// Tell clients their SASL session lasts this long (SaslAuthenticate v1+, KIP-368), and
    /// close a connection whose session expired when its next request that is not a
    /// re-authentication arrives. Default: no limit.
    pub fn sasl_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.sasl_session_lifetime = Some(lifetime);
        self
    }

    /// Sign SCRAM exchanges with the wrong key, as a broker that does not know the credential
    /// would: a client that checks the server's signature must refuse it. Default off.
    pub fn sasl_forge_scram_signature(mut self, on: bool) -> Self {
        self.sasl_forge_scram_signature = on;
        self
    }

    /// The cluster without sockets or threads, for the deterministic simulation, which calls
    /// the request handler itself ([`MockCluster::sim_shared`]).
    #[cfg(test)]
    pub(crate) fn build_simulated(self) -> MockCluster {
        let (config, state) = self.config_and_state().expect("a valid simulated cluster");
        MockCluster {
            shared: Arc::new(Shared::unbound(config, state, self.brokers)),
            accept: Vec::new(),
        }
    }

    fn config_and_state(&self) -> std::io::Result<(Config, State)> {
        let tls = match &self.tls {
            Some((cert, key, ca)) => {
                let ca = ca.as_ref().map(|c| Pem::Text(c.clone()));
                let config = crate::tls::server_config(
                    &Pem::Text(cert.clone()),
                    &Pem::Text(key.expose().to_string()),
                    ca.as_ref(),
                )
                .map_err(std::io::Error::other)?;
                Some(TlsServer { config })
            }
            None => None,
        };
        let sasl = (!self.sasl_mechanisms.is_empty()).then(|| {
            let users: Vec<(String, String)> = self
                .sasl_users
                .iter()
                .map(|(u, p)| (u.clone(), p.expose().to_string()))
                .collect();
            Arc::new(SaslServer::new(
                self.sasl_mechanisms.clone(),
                &users,
                self.sasl_session_lifetime,
                self.sasl_forge_scram_signature,
            ))
        });
        let config = Config {
            tls,
            sasl,
            profile: if self.legacy {
                Profile::LEGACY
            } else {
                Profile::MODERN
            },
            sink: self.sink,
            duplicate_as_error: self.duplicate_as_error,
            auto_create: self.auto_create,
            auto_create_partitions: self.auto_create_partitions,
            transactions: self.transactions,
            transaction_version: self.transaction_version,
        };
        let mut state = State::new(self.brokers as i32, self.first_producer_id);
        state.txn.marker_delay = self.marker_delay;
        for (name, partitions) in &self.topics {
            state.create_topic(name, *partitions, None);
        }
        Ok((config, state))
    }

    /// Binds the brokers' listeners on loopback and starts them.
    pub fn build(self) -> std::io::Result<MockCluster> {
        let (config, state) = self.config_and_state()?;
        let shared = Arc::new(Shared::bind(config, state, self.brokers)?);
        let mut cluster = MockCluster {
            shared: shared.clone(),
            accept: Vec::new(),
        };
        for idx in 0..self.brokers {
            let sh = shared.clone();
            // Thread names (at most 15 bytes on Linux): `km<port>` accepts for the broker on
            // that port, `km<port>c<n>` serves its n-th connection.
            let h = std::thread::Builder::new()
                .name(format!("km{}", shared.brokers[idx].addr.port()))
                .spawn(move || accept_loop(sh, idx))?;
            cluster.accept.push(h);
        }
        Ok(cluster)
    }
}

/// An in-process Kafka cluster on loopback, for tests. See the [module docs](self) for what
/// it implements.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use kprod::mock::MockCluster;
/// use kprod::protocol::messages::metadata::MetadataRequest;
/// use kprod::protocol::{decode_response, encode_request};
///
/// let cluster = MockCluster::builder().brokers(3).topic("events", 6).build().unwrap();
/// assert_eq!(cluster.broker_ids(), [1, 2, 3]);
/// assert_eq!(cluster.partition_leader("events", 4), Some(2)); // 1 + 4 % 3
///
/// // Any Kafka client can use it; here, one request by hand.
/// let first = cluster.bootstrap_servers().split(',').next().unwrap().to_string();
/// let mut conn = TcpStream::connect(first).unwrap();
/// let mut req = Vec::new();
/// encode_request(&MetadataRequest::for_topics(["events"]), 12, 1, None, &mut req).unwrap();
/// conn.write_all(&req).unwrap();
/// let mut len = [0u8; 4];
/// conn.read_exact(&mut len).unwrap();
/// let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
/// conn.read_exact(&mut frame).unwrap();
/// let (_, resp) = decode_response::<MetadataRequest>(&frame, 12).unwrap();
/// assert_eq!(resp.brokers.len(), 3);
/// assert_eq!(resp.topics[0].partitions.len(), 6);
///
/// // What producers stored is there to check.
/// assert_eq!(cluster.end_offset("events", 0), 0);
/// assert!(cluster.records("events", 0).is_empty());
/// assert_eq!(cluster.request_count(3), 1); // Metadata
/// ```
#[derive(Debug)]
pub struct MockCluster {
    shared: Arc<Shared>,
    accept: Vec<JoinHandle<()>>,
}

impl MockCluster {
    /// What the simulation hands requests to.
    #[cfg(test)]
    pub(crate) fn sim_shared(&self) -> &Shared {
        &self.shared
    }

    /// The brokers forget every producer's sequences on `topic`/`partition` (as Kafka does
    /// for a producer idle past `producer.id.expiration.ms`): its next batch that does not
    /// start at sequence 0 is answered OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[cfg(test)]
    pub(crate) fn lose_producer_state(&self, topic: &str, partition: i32) {
        self.shared
            .state
            .lock()
            .sequences
            .retain(|(_, t, p), _| !(t == topic && *p == partition));
    }

    /// Forgets the error codes armed with [`fail_requests`](Self::fail_requests) and
    /// [`fail_after_append`](Self::fail_after_append) and not used yet.
    #[cfg(test)]
    pub(crate) fn clear_failures(&self) {
        let mut st = self.shared.state.lock();
        st.fail.clear();
        st.fail_after_append.clear();
    }

    /// The next Produce requests (one per code) store their batches as usual, then are answered
    /// with the code for each partition instead of success — what a broker does when
    /// replication times out (REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND) or it loses
    /// leadership while waiting for acks=all (NOT_LEADER_OR_FOLLOWER).
    #[cfg(test)]
    pub(crate) fn fail_after_append(&self, codes: &[ErrorCode]) {
        self.shared
            .state
            .lock()
            .fail_after_append
            .extend(codes.iter().copied());
    }

    /// A builder: one broker, auto-creation on, no topics.
    pub fn builder() -> MockClusterBuilder {
        MockClusterBuilder::default()
    }

    /// SASL authentications the cluster refused (wrong password, unknown user, unsupported
    /// mechanism), each closing its connection.
    pub fn authentication_failures(&self) -> u64 {
        self.shared.auth_failures.load(Ordering::Relaxed)
    }

    /// The SASL extensions (KIP-342) of every OAUTHBEARER authentication the cluster
    /// accepted, in order, one list per authentication.
    pub fn sasl_extensions(&self) -> Vec<Vec<(String, String)>> {
        self.shared.sasl_extensions.lock().clone()
    }

    /// The host names TLS clients asked for (SNI), one per connection that sent one.
    pub fn tls_server_names(&self) -> Vec<String> {
        self.shared.server_names.lock().clone()
    }

    /// SASL re-authentications completed on open connections (KIP-368).
    pub fn reauthentications(&self) -> u64 {
        self.shared.reauthentications.load(Ordering::Relaxed)
    }

    /// The brokers' addresses, comma-separated: `"127.0.0.1:p1,127.0.0.1:p2"`.
    pub fn bootstrap_servers(&self) -> String {
        self.shared
            .brokers
            .iter()
            .map(|b| b.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The broker ids, `1..=N`.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.shared.brokers.iter().map(|b| b.id).collect()
    }

    /// A broker's address. Panics for an unknown id.
    pub fn broker_addr(&self, broker: i32) -> std::net::SocketAddr {
        self.broker(broker).addr
    }

    fn broker(&self, id: i32) -> &server::Broker {
        self.shared
            .broker(id)
            .unwrap_or_else(|| panic!("no broker {id} in this cluster"))
    }

    fn broker_index(&self, id: i32) -> usize {
        self.broker(id);
        (id - 1) as usize
    }

    /// Creates a topic with `partitions` partitions (at least 1) unless it exists (then
    /// nothing changes).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.shared
            .state
            .lock()
            .create_topic(name, partitions.max(1), None);
    }

    /// Sets a topic's `max.message.bytes`: a batch larger than `bytes` on the wire is
    /// refused with MESSAGE_TOO_LARGE (`None`, the default: no limit). Nothing happens for a
    /// topic that does not exist.
    pub fn set_max_message_bytes(&self, topic: &str, bytes: Option<usize>) {
        if let Some(t) = self.shared.state.lock().topics.get_mut(topic) {
            t.max_message_bytes = bytes;
        }
    }

    /// A topic's `max.message.bytes`, if it has one (see
    /// [`set_max_message_bytes`](Self::set_max_message_bytes)).
    pub fn max_message_bytes(&self, topic: &str) -> Option<usize> {
        self.shared
            .state
            .lock()
            .topics
            .get(topic)?
            .max_message_bytes
    }

    /// A topic's partition count, `None` if it does not exist.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        let st = self.shared.state.lock();
        st.topics.get(topic).map(|t| t.partitions.len() as i32)
    }

    /// The records stored in a partition, decoded, in offset order (empty for an unknown
    /// partition and in sink mode); control records (transaction markers) are left out, and
    /// records of aborted or open transactions are in (read_uncommitted).
    pub fn records(&self, topic: &str, partition: i32) -> Vec<StoredRecord> {
        self.shared.state.lock().records(topic, partition)
    }

    /// The broker coordinating `key` (a transactional id or a group id).
    pub fn coordinator(&self, key: &str) -> i32 {
        self.shared.state.lock().coordinator_for(key)
    }

    /// Moves the coordinator of `key` (a transactional id or a group id) to `broker`: the
    /// old one answers NOT_COORDINATOR from now on. The transaction state is kept (as when a
    /// partition of Kafka's transaction log changes leader).
    pub fn set_coordinator(&self, key: &str, broker: i32) {
        self.shared
            .state
            .lock()
            .txn
            .placed
            .insert(key.to_string(), broker);
    }

    /// Where `transactional_id`'s transaction is (`None`: never initialised here). Checks
    /// the transaction timeout first.
    pub fn transaction_state(&self, transactional_id: &str) -> Option<TransactionState> {
        let mut st = self.shared.state.lock();
        let now = st.now();
        st.expire_transactions(now);
        st.txn.ids.get(transactional_id).map(|e| e.state)
    }

    /// The producer id and epoch `transactional_id` has now.
    pub fn transactional_producer(&self, transactional_id: &str) -> Option<(i64, i16)> {
        let st = self.shared.state.lock();
        st.txn
            .ids
            .get(transactional_id)
            .map(|e| (e.producer_id, e.epoch))
    }

    /// The offset `group` has committed for a partition (through a committed transaction).
    pub fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let mut st = self.shared.state.lock();
        let now = st.now();
        st.expire_transactions(now);
        st.txn
            .offsets
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied()
    }

    /// A partition's last stable offset: where its earliest open transaction starts, else
    /// its end offset.
    pub fn last_stable_offset(&self, topic: &str, partition: i32) -> i64 {
        let mut st = self.shared.state.lock();
        let now = st.now();
        st.expire_transactions(now);
        let end = st.partition(topic, partition).map_or(0, |p| p.end_offset);
        st.last_stable_offset(topic, partition, end)
    }

    /// How many transactions the coordinator aborted because they outlived their timeout.
    pub fn transactions_timed_out(&self) -> u64 {
        let mut st = self.shared.state.lock();
        let now = st.now();
        st.expire_transactions(now);
        st.txn.timed_out
    }

    /// The records a read_committed consumer reads from a partition: up to its last stable
    /// offset, without control records and without the records of aborted transactions.
    pub fn committed_records(&self, topic: &str, partition: i32) -> Vec<StoredRecord> {
        let mut st = self.shared.state.lock();
        let now = st.now();
        st.expire_transactions(now);
        st.committed_records(topic, partition)
    }

    /// Runs the coordinator (timeouts, marker delays) on `clock` (the simulation's).
    #[cfg(test)]
    pub(crate) fn set_clock(&self, clock: Arc<parking_lot::Mutex<std::time::Instant>>) {
        self.shared.state.lock().clock = Some(clock);
    }

    /// The batches stored in a partition, decoded, in offset order (base offsets as
    /// assigned by the cluster).
    pub fn batches(&self, topic: &str, partition: i32) -> Vec<RecordBatch> {
        self.shared.state.lock().batches(topic, partition)
    }

    /// The next offset of a partition (0 for an unknown one).
    pub fn end_offset(&self, topic: &str, partition: i32) -> i64 {
        self.shared
            .state
            .lock()
            .partition(topic, partition)
            .map_or(0, |p| p.end_offset)
    }

    /// Appends raw record batches to a partition as if produced (without the idempotence
    /// checks), assigning offsets; returns the first. For serving prepared data to
    /// consumers.
    pub fn append_batches(
        &self,
        topic: &str,
        partition: i32,
        batches: Bytes,
    ) -> Result<i64, AppendError> {
        let keep = !self.shared.config.sink;
        let read = state::read_batches(&batches, keep).map_err(AppendError::Decode)?;
        self.shared
            .state
            .lock()
            .append(topic, partition, &batches, &read, keep)
    }

    /// Every partition of every Produce request accepted so far, in arrival order (empty in
    /// sink mode).
    pub fn produce_requests(&self) -> Vec<ProduceCapture> {
        self.shared.state.lock().captures.clone()
    }

    /// The leader of a partition, `None` if it does not exist.
    pub fn partition_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.shared
            .state
            .lock()
            .partition(topic, partition)
            .map(|p| p.leader)
    }

    /// Moves a partition's leadership to `broker` and bumps its leader epoch. The old
    /// leader then answers Produce, Fetch and ListOffsets for it with NOT_LEADER_OR_FOLLOWER
    /// (naming the new leader where the version allows). Panics for an unknown partition or
    /// broker.
    pub fn set_partition_leader(&self, topic: &str, partition: i32, broker: i32) {
        self.broker(broker);
        let mut st = self.shared.state.lock();
        let p = st
            .partition_mut(topic, partition)
            .unwrap_or_else(|| panic!("no partition {topic}-{partition}"));
        if p.leader != broker {
            p.leader = broker;
            p.leader_epoch += 1;
        }
    }

    /// Leaves a partition without a leader (as during an election) and bumps its leader
    /// epoch: Metadata reports leader -1 with LEADER_NOT_AVAILABLE, and every broker answers
    /// Produce for it with NOT_LEADER_OR_FOLLOWER, until
    /// [`set_partition_leader`](Self::set_partition_leader) names one. Panics for an unknown
    /// partition.
    pub fn set_partition_leaderless(&self, topic: &str, partition: i32) {
        let mut st = self.shared.state.lock();
        let p = st
            .partition_mut(topic, partition)
            .unwrap_or_else(|| panic!("no partition {topic}-{partition}"));
        if p.leader >= 0 {
            p.leader = -1;
            p.leader_epoch += 1;
        }
    }

    /// The next `errors.len()` requests of API `api_key`, to any broker, are answered with
    /// these codes in order instead of being served. For Produce every partition in the
    /// request gets the code and nothing is stored; for Metadata every topic; for Fetch and
    /// ListOffsets every partition; for CreateTopics every topic; for ApiVersions,
    /// InitProducerId and FindCoordinator the top-level code. Adds to codes already armed.
    pub fn fail_requests(&self, api_key: i16, errors: &[ErrorCode]) {
        self.shared
            .state
            .lock()
            .fail
            .entry(api_key)
            .or_default()
            .extend(errors.iter().copied());
    }

    /// The `nth` request (1 = the next) arriving from now on at `broker`, on any of its
    /// connections, is read and then answered by closing its connection; a Produce is not
    /// stored. Replaces a drop armed earlier on that broker.
    pub fn drop_connection_on_request(&self, broker: i32, nth: u32) {
        let idx = self.broker_index(broker);
        self.shared.state.lock().drop_on_request[idx] = Some(nth.max(1));
    }

    /// Cuts the connection that reads the `bytes`-th byte from now on at `broker` (counting
    /// every connection's reads), right after that byte: usually in the middle of a request.
    /// Requests read in full before the cut are handled (a Produce is stored) but not
    /// answered. Replaces a cut armed earlier on that broker.
    pub fn drop_connection_after_bytes(&self, broker: i32, bytes: u64) {
        let idx = self.broker_index(broker);
        self.shared.state.lock().drop_after_bytes[idx] = Some(bytes);
    }

    /// Makes Metadata responses give clients `addr` for `broker` instead of its own listener —
    /// e.g. a proxy in front of it that injects network faults. Bootstrap addresses are
    /// unaffected. `None` restores the broker's own address.
    pub fn set_advertised_addr(&self, broker: i32, addr: Option<std::net::SocketAddr>) {
        *self.broker(broker).advertised.lock() = addr;
    }

    /// Delays every response of `broker` by `latency` from the arrival of its request
    /// (responses stay in request order). `Duration::ZERO` turns it off.
    pub fn set_latency(&self, broker: i32, latency: Duration) {
        *self.broker(broker).latency.lock() = latency;
    }

    /// Makes `broker`'s Produce responses carry `throttle` as `throttle_time_ms`, as a broker
    /// enforcing a quota does (KIP-219: answered at once, the client holds back). The mock
    /// itself does not hold the client to it. `Duration::ZERO` turns it off.
    pub fn set_throttle(&self, broker: i32, throttle: Duration) {
        let ms = throttle.as_millis().min(i32::MAX as u128) as i32;
        let mut st = self.shared.state.lock();
        if ms == 0 {
            st.throttle_ms.remove(&broker);
        } else {
            st.throttle_ms.insert(broker, ms);
        }
    }

    /// Takes a broker down: closes its listener and all its connections, so connecting is
    /// refused. Metadata from the other brokers still lists it and the partitions it leads.
    pub fn broker_down(&self, broker: i32) {
        self.broker(broker).down();
    }

    /// Brings a broker back up, listening on the same port. Panics if the port cannot be
    /// bound again within 5 seconds.
    pub fn broker_up(&self, broker: i32) {
        if let Err(e) = self.broker(broker).up() {
            panic!("broker {broker} could not listen again: {e}");
        }
    }

    /// Whether a broker is up.
    pub fn is_broker_up(&self, broker: i32) -> bool {
        self.broker(broker).is_up()
    }

    /// While on, `broker` accepts connections and reads requests but handles and answers
    /// none; turned off, it handles the held requests in order and answers them.
    pub fn stall(&self, broker: i32, on: bool) {
        self.broker(broker).stalled.store(on, Ordering::SeqCst);
    }

    /// How many requests of API `api_key` arrived, at all brokers (including ones answered
    /// with injected errors or dropped).
    pub fn request_count(&self, api_key: i16) -> u64 {
        self.shared
            .state
            .lock()
            .stats
            .get(&api_key)
            .map_or(0, |s| s.count)
    }

    /// The requests for API `api_key` that arrived (Produce and Fetch are not kept: see
    /// [`produce_requests`](Self::produce_requests)), oldest first, as [`CapturedRequest`]s
    /// for decoding with the message types.
    pub fn requests(&self, api_key: i16) -> Vec<CapturedRequest> {
        self.shared
            .state
            .lock()
            .requests
            .iter()
            .filter(|r| r.api_key == api_key)
            .cloned()
            .collect()
    }

    /// The distinct versions clients used for API `api_key`, ascending.
    pub fn api_versions_used(&self, api_key: i16) -> Vec<i16> {
        self.shared
            .state
            .lock()
            .stats
            .get(&api_key)
            .map(|s| s.versions.iter().copied().collect())
            .unwrap_or_default()
    }

    /// What the cluster found wrong with what clients sent: requests it could not decode or
    /// does not serve (their connections were closed) and corrupt or invalid record data
    /// (answered with CORRUPT_MESSAGE or INVALID_RECORD). Empty when clients behaved.
    pub fn errors(&self) -> Vec<String> {
        self.shared.state.lock().errors.clone()
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for b in &self.shared.brokers {
            b.down();
        }
        for h in self.accept.drain(..) {
            let _ = h.join();
        }
        self.shared.shutdown_connections();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MockCluster>();
        check::<MockClusterBuilder>();
        check::<StoredRecord>();
    }

    #[test]
    fn builder_defaults_and_clamps() {
        let c = MockCluster::builder()
            .brokers(0)
            .topic("t", 0)
            .build()
            .unwrap();
        assert_eq!(c.broker_ids(), [1]);
        assert_eq!(c.partition_count("t"), Some(1));
        assert_eq!(c.partition_leader("t", 0), Some(1));
        assert_eq!(c.partition_leader("t", 1), None);
        assert_eq!(c.end_offset("nope", 0), 0);
        assert!(c.records("nope", 0).is_empty());
        assert_eq!(
            c.append_batches("nope", 0, Bytes::new()),
            Err(AppendError::UnknownPartition)
        );
        assert!(matches!(
            c.append_batches("t", 0, Bytes::from_static(&[0; 70])),
            Err(AppendError::Decode(_))
        ));
    }
}
