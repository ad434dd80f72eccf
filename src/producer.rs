//! The public API: [`Producer`] (blocking `produce`, fire-and-forget `send`, callbacks,
//! oneshot handles, `produce_all`, the await-forget strategy, `flush`, `close`) and
//! [`TypedProducer`].

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::admin::NewTopic;
use crate::config::{ProducerConfig, ProducerConfigBuilder};
use crate::delivery::{
    delivery_channel, Completer, DeliveryHandle, DeliveryResult, RecordMetadata,
};
use crate::engine::batch::{Completions, PendingRecord};
use crate::engine::callbacks::{run_job, CallbackPool};
use crate::engine::core::EngineCore;
use crate::engine::driver::{self, Driver};
use crate::engine::headers::Headers;
use crate::engine::resolver::{Resolve, Resolver};
use crate::engine::Shared;
use crate::error::{Deadline, Error, Location};
use crate::interceptor::Interceptors;
use crate::metrics::{Metrics, MetricsSnapshot};
#[cfg(feature = "opentelemetry")]
use crate::otel::Fast;
use crate::partitioner::Partitioner;
use crate::record::{Payload, ProducerRecord, Topic};
use crate::serializer::Serializer;

/// What [`Producer::purge`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgeScope {
    /// Records not yet sent: waiting for metadata, queued, and in batches not yet written to
    /// a broker. None of them has been written.
    Buffered,
    /// Those, and the records in requests awaiting the broker's answer (which the broker may
    /// still write).
    BufferedAndInFlight,
}

/// A record that could not be enqueued, handed back with the reason (nothing was sent, and no
/// callback or handle will fire for it).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SendError {
    /// Why.
    #[source]
    pub error: Error,
    /// The record, as given.
    pub record: Box<ProducerRecord>,
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        e.error
    }
}

/// The outcome of [`Producer::produce_all`]: one result per record, in input order.
#[derive(Debug)]
pub struct ProduceAllResults {
    results: Vec<DeliveryResult>,
}

impl ProduceAllResults {
    /// Every result, in input order.
    pub fn results(&self) -> &[DeliveryResult] {
        &self.results
    }

    /// Takes the results.
    pub fn into_results(self) -> Vec<DeliveryResult> {
        self.results
    }

    /// Whether every record was acknowledged.
    pub fn all_ok(&self) -> bool {
        self.results.iter().all(Result::is_ok)
    }

    /// The records that failed: (input index, error).
    pub fn failures(&self) -> impl Iterator<Item = (usize, &Error)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }

    /// The records that succeeded: (input index, metadata).
    pub fn successes(&self) -> impl Iterator<Item = (usize, &RecordMetadata)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|m| (i, m)))
    }
}

/// A Kafka producer: thread-safe (share it by reference or in an `Arc`), no async runtime.
///
/// Records go into lock-free per-partition rings; I/O threads batch, compress and send them and
/// complete each record exactly once — through a [`DeliveryHandle`], a callback on the callback
/// pool, or not at all (fire-and-forget). Dropping the producer closes it (flushing for up to
/// the delivery timeout).
///
/// # Guarantees
///
/// - Every record a call accepts gets exactly one completion: its partition and offset, or an
///   [`Error`] saying why — within [`delivery_timeout`](crate::ProducerConfigBuilder::delivery_timeout)
///   of the call, and by the time [`close`](Self::close) returns at the latest.
/// - With idempotence (the default; it forces `acks=all` and at most 5 requests in flight), a
///   record reported delivered is in the log exactly once and in per-partition send order,
///   through lost connections, broker restarts, leader moves and retriable errors. A
///   non-retriable error fails only the records of the request it answers. A record failed by
///   its delivery timeout — or by an error answering a retry after an earlier attempt's answer
///   was lost — may or may not be in the log, never twice; the producer then bumps its epoch
///   (KIP-360) and the partition goes on.
/// - Without idempotence: at least once (a retry may write a batch again); with
///   `max_in_flight(1)`, the first copies stay in send order. With `acks=0`: at most once.
/// - Memory is bounded by the buffer settings: a full buffer makes `send` wait up to
///   `max_block`, then fail with [`Error::QueueFull`] handing the record back.
///
/// The tests in `tests/faults.rs`, `tests/completions.rs` and `tests/memory_bound.rs` prove
/// each of these against injected faults.
///
/// ```
/// # #[cfg(feature = "mock")] {
/// use std::time::Duration;
/// use kprod::{Producer, ProducerRecord, Acks};
/// let cluster = kprod::mock::MockCluster::builder().topic("orders", 3).build()?;
/// let producer = Producer::builder()
///     .bootstrap_servers(&cluster.bootstrap_servers())
///     .acks(Acks::All)
///     .linger(Duration::from_millis(1))
///     .build()?;
/// let md = producer.produce("orders", "customer-7", "{\"total\":12}")?;
/// assert!(md.offset >= 0);
/// producer.send("orders", (), "fire and forget")?;
/// producer.send_with(ProducerRecord::new("orders").value("cb"), |r| assert!(r.is_ok()))?;
/// producer.flush(Duration::from_secs(10))?;
/// producer.close(Duration::from_secs(10))?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pool: Mutex<CallbackPool>,
    resolver: Arc<Resolver>,
    /// The OAUTHBEARER token refresher, if any.
    refresher: Mutex<Option<crate::sasl::tokens::Refresher>>,
    /// The OpenTelemetry instruments observing `shared`, if any.
    #[cfg(feature = "opentelemetry")]
    _instruments: Option<crate::otel::Instruments>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("bootstrap_servers", &self.shared.config.bootstrap_servers)
            .field("outstanding", &self.shared.outstanding())
            .finish()
    }
}

impl Producer {
    /// A builder with every option at its default; see [`ProducerConfigBuilder`].
    pub fn builder() -> ProducerConfigBuilder {
        ProducerConfigBuilder::new()
    }

    /// Starts a producer: its I/O threads and callback pool. Connections are made on first
    /// use.
    pub fn new(config: ProducerConfig) -> Result<Self, Error> {
        let p: Arc<dyn Partitioner> = Arc::new(config.partitioner);
        Self::with_partitioner(config, p)
    }

    /// Starts a producer that places records without an explicit partition with
    /// `partitioner`.
    pub fn with_partitioner(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
    ) -> Result<Self, Error> {
        Self::start(
            config,
            partitioner,
            None,
            None,
            #[cfg(feature = "opentelemetry")]
            None,
        )
    }

    /// Starts the threads: one driver per I/O thread around its engine core, the callback
    /// pool, and (on demand) the resolver threads.
    fn start(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
        resolver: Option<Arc<dyn Resolve>>,
        interceptors: Option<Arc<Interceptors>>,
        #[cfg(feature = "opentelemetry")] otel: Option<Arc<crate::otel::OpenTelemetry>>,
    ) -> Result<Self, Error> {
        // The fields are public: check again what may have changed since `build_config`.
        config.validate()?;
        let io_err = |e: std::io::Error| Error::Io {
            broker: "(local)".into(),
            source: Arc::new(e),
            at: Location::default(),
        };
        let metrics = Arc::new(Metrics::default());
        let (polls, wakes) = driver::polls(config.io_threads).map_err(io_err)?;
        let cores = if config.pin_threads {
            core_affinity::get_core_ids().filter(|c| !c.is_empty())
        } else {
            None
        };
        let callback_threads = config.callback_threads;
        let tls = if config.security.protocol.tls() {
            if !config.security.tls.verify_hostname {
                log::warn!(
                    "kprod: TLS host name verification is off \
                     (ssl.endpoint.identification.algorithm=none): any broker holding a \
                     certificate from a trusted authority is accepted for any address"
                );
            }
            Some(crate::tls::client_config(&config.security.tls)?)
        } else {
            None
        };
        let tokens = match config.security.sasl.as_ref().and_then(|s| s.oauth.as_ref()) {
            Some(method) => {
                let failed = |message: String| Error::Authentication {
                    broker: "the OAUTHBEARER token provider".into(),
                    mechanism: "OAUTHBEARER",
                    message,
                    at: Location::default(),
                };
                let provider = method.provider().map_err(failed)?;
                Some(crate::sasl::tokens::start(provider).map_err(failed)?)
            }
            None => None,
        };
        let (tokens, refresher) = tokens.map_or((None, None), |(t, r)| (Some(t), Some(r)));
        let mut shared = Shared::new(config, partitioner, wakes, metrics);
        shared.tls = tls;
        shared.tokens = tokens;
        shared.interceptors = interceptors;
        #[cfg(feature = "opentelemetry")]
        {
            let client_id = Some(shared.config.client_id.clone()).filter(|c| !c.is_empty());
            shared.telemetry = otel
                .as_ref()
                .and_then(|o| crate::otel::Telemetry::new(o, client_id));
        }
        let shared = Arc::new(shared);
        #[cfg(feature = "opentelemetry")]
        let instruments = otel.and_then(|o| {
            let (instruments, duration) = crate::otel::register_metrics(&o, &shared)?;
            let _ = shared.metrics.otel_duration.set(duration);
            Some(instruments)
        });
        let resolver = Arc::new(Resolver::new(resolver));
        let pool = CallbackPool::start(callback_threads, shared.clone()).map_err(io_err)?;
        let mut threads = Vec::new();
        for (i, poll) in polls.into_iter().enumerate() {
            let core = EngineCore::new(i, shared.clone(), pool.sender());
            let d = Driver::new(core, shared.clone(), poll, resolver.clone());
            let pin = cores.as_ref().map(|c| c[i % c.len()]);
            match driver::spawn(d, pin) {
                Ok(h) => threads.push(h),
                Err(e) => {
                    shared.abort.store(true, SeqCst);
                    shared.wake_all();
                    for h in threads {
                        let _ = h.join();
                    }
                    resolver.shutdown();
                    return Err(io_err(e));
                }
            }
        }
        Ok(Producer {
            shared,
            threads: Mutex::new(threads),
            pool: Mutex::new(pool),
            resolver,
            refresher: Mutex::new(refresher),
            #[cfg(feature = "opentelemetry")]
            _instruments: instruments,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// A snapshot of the producer's counters: records and bytes sent, acknowledged, failed
    /// and retried; records in flight and queued; batches, mean batch size and compression
    /// ratio; Produce round-trip percentiles per broker.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }

    /// Records enqueued and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.shared.outstanding()
    }

    fn enqueue(
        &self,
        record: ProducerRecord,
        completer: Completer,
        max_block: Option<Duration>,
    ) -> Result<(), SendError> {
        self.enqueue_into(record, completer, max_block, false)
            .map(|_| ())
    }

    /// [`enqueue`](Self::enqueue), giving the partition the record went to (for a handle).
    fn enqueue_placed(
        &self,
        record: ProducerRecord,
        completer: Completer,
        max_block: Option<Duration>,
    ) -> Result<Option<Arc<crate::engine::PartitionState>>, SendError> {
        self.enqueue_into(record, completer, max_block, true)
    }

    fn enqueue_into(
        &self,
        mut record: ProducerRecord,
        mut completer: Completer,
        max_block: Option<Duration>,
        want: bool,
    ) -> Result<Option<Arc<crate::engine::PartitionState>>, SendError> {
        if let Some(i) = &self.shared.interceptors {
            if let Err(error) = i.on_send(&mut record) {
                completer.disarm();
                return Err(SendError {
                    error,
                    record: Box::new(record),
                });
            }
            completer = completer.intercepted(i.clone());
        }
        let ProducerRecord {
            topic,
            key,
            value,
            headers,
            partition,
            timestamp,
        } = record;
        #[cfg(feature = "opentelemetry")]
        let (headers, completer) = match self.shared.telemetry.as_ref().map(|t| (t, t.fast())) {
            None | Some((_, Fast::Plain)) => (Headers::from(headers), completer),
            Some((t, fast)) => {
                let body = value.as_ref().map_or(0, |v| v.len());
                t.start(
                    fast,
                    &self.shared,
                    &topic,
                    key.as_deref(),
                    body,
                    headers,
                    completer,
                )
            }
        };
        #[cfg(not(feature = "opentelemetry"))]
        let headers = Headers::from(headers);
        let reserved = PendingRecord::buffer_size(key.as_deref(), value.as_deref(), &headers);
        let pending = PendingRecord {
            key,
            value,
            headers,
            timestamp: timestamp.unwrap_or_else(crate::record::now_ms),
            completer,
            room: PendingRecord::room(reserved),
            enqueued: self.shared.stage_sample(),
        };
        self.shared
            .enqueue_placed(&topic, partition, pending, max_block, want)
            .map_err(|(error, r)| back(error, topic, partition, timestamp, r))
    }

    /// Enqueues a record without waiting for it: returns once it is in the buffer. An error
    /// means it could not be enqueued (the record comes back); what happens to it after is not
    /// reported — call [`flush`](Self::flush) before exiting. Blocks up to `max_block` while the
    /// buffer is full.
    ///
    /// With `Bytes` (or owned `Vec<u8>` / `String`) keys and values this call allocates
    /// nothing and takes no lock.
    pub fn send(
        &self,
        topic: &str,
        key: impl Payload,
        value: impl Payload,
    ) -> Result<(), SendError> {
        let (key, value) = (key.into_payload(), value.into_payload());
        if self.shared.interceptors.is_some() {
            // on_send takes a whole record.
            let record = ProducerRecord {
                topic: Topic::from(topic.to_owned()),
                key,
                value,
                headers: Vec::new(),
                partition: None,
                timestamp: None,
            };
            return self.send_record(record);
        }
        #[cfg(feature = "opentelemetry")]
        let (headers, completer) = match self.shared.telemetry.as_ref().map(|t| (t, t.fast())) {
            None | Some((_, Fast::Plain)) => (Headers::none(), Completer::forget()),
            // A dropped root with no headers of its own: its trace context inline.
            Some((_, Fast::Root(trace_id))) => (Headers::Root(trace_id), Completer::forget()),
            Some((t, fast)) => {
                let body = value.as_ref().map_or(0, |v| v.len());
                t.start(
                    fast,
                    &self.shared,
                    topic,
                    key.as_deref(),
                    body,
                    Vec::new(),
                    Completer::forget(),
                )
            }
        };
        #[cfg(not(feature = "opentelemetry"))]
        let (headers, completer) = (Headers::none(), Completer::forget());
        let reserved = PendingRecord::buffer_size(key.as_deref(), value.as_deref(), &headers);
        let pending = PendingRecord {
            key,
            value,
            headers,
            timestamp: crate::record::now_ms(),
            completer,
            room: PendingRecord::room(reserved),
            enqueued: self.shared.stage_sample(),
        };
        self.shared
            .enqueue(topic, None, pending, Some(self.shared.config.max_block))
            .map_err(|(error, r)| back(error, Topic::from(topic.to_owned()), None, None, r))
    }

    /// [`send`](Self::send) for a whole [`ProducerRecord`] (headers, partition, timestamp).
    pub fn send_record(&self, record: ProducerRecord) -> Result<(), SendError> {
        self.enqueue(
            record,
            Completer::forget(),
            Some(self.shared.config.max_block),
        )
    }

    /// Like [`send_record`](Self::send_record), but never blocks: a full buffer is
    /// [`Error::QueueFull`] at once, with the record handed back.
    pub fn try_send(&self, record: ProducerRecord) -> Result<(), SendError> {
        self.enqueue(record, Completer::forget(), None)
    }

    /// Enqueues a record and runs `callback` with its outcome on the callback pool, exactly
    /// once — unless this returns an error, in which case the callback never runs.
    pub fn send_with(
        &self,
        record: ProducerRecord,
        callback: impl FnOnce(DeliveryResult) + Send + 'static,
    ) -> Result<(), SendError> {
        self.enqueue(
            record,
            Completer::callback(callback),
            Some(self.shared.config.max_block),
        )
    }

    /// Enqueues a record and returns a handle to its outcome: [`DeliveryHandle::wait`],
    /// `wait_timeout`, `try_result`, or `.await` on any executor.
    pub fn produce_async(&self, record: ProducerRecord) -> Result<DeliveryHandle, SendError> {
        let (completer, handle) = delivery_channel();
        let p = self.enqueue_placed(record, completer, Some(self.shared.config.max_block))?;
        Ok(handle.on_partition(p, self.shared.config.idle_spin))
    }

    /// Sends a record and blocks until it is acknowledged (or fails): its partition, offset
    /// and timestamp.
    pub fn produce(
        &self,
        topic: &str,
        key: impl Payload,
        value: impl Payload,
    ) -> Result<RecordMetadata, Error> {
        let record = ProducerRecord {
            topic: Topic::from(topic.to_owned()),
            key: key.into_payload(),
            value: value.into_payload(),
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        };
        self.produce_record(record)
    }

    /// [`produce`](Self::produce) for a whole [`ProducerRecord`].
    pub fn produce_record(&self, record: ProducerRecord) -> DeliveryResult {
        self.produce_async(record)?.wait()
    }

    /// Sends every record, then waits for all of them: one result per record, in input order.
    /// A record that could not even be enqueued has its error in its place; the others are
    /// sent regardless.
    pub fn produce_all(
        &self,
        records: impl IntoIterator<Item = ProducerRecord>,
    ) -> ProduceAllResults {
        let handles: Vec<Result<DeliveryHandle, Error>> = records
            .into_iter()
            .map(|r| self.produce_async(r).map_err(|e| e.error))
            .collect();
        // Every partition's batch goes at once, not one after another as each wait begins.
        for h in handles.iter().flatten() {
            h.urge();
        }
        ProduceAllResults {
            results: handles
                .into_iter()
                .map(|h| h.and_then(DeliveryHandle::wait))
                .collect(),
        }
    }

    /// The "await-forget" strategy: sends the record, waits for its outcome up to `budget`,
    /// then returns regardless, swallowing the outcome — counted in
    /// [`metrics`](Self::metrics) as `forget_delivered`, `forget_failed` or
    /// `forget_timed_out`. A record still pending when the budget runs out is not cancelled:
    /// it may yet be delivered.
    pub fn send_await_forget(&self, record: ProducerRecord, budget: Duration) {
        let deadline = Instant::now() + budget;
        let m = &self.shared.metrics;
        let handle = {
            let (completer, handle) = delivery_channel();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.enqueue(
                record,
                completer,
                Some(left.min(self.shared.config.max_block)),
            ) {
                Ok(()) => handle,
                Err(_) => {
                    Metrics::add(&m.forget_failed, 1);
                    return;
                }
            }
        };
        match handle.wait_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(_)) => Metrics::add(&m.forget_delivered, 1),
            Ok(Err(_)) => Metrics::add(&m.forget_failed, 1),
            Err(_) => Metrics::add(&m.forget_timed_out, 1),
        }
    }

    /// Sends what is buffered now (ignoring linger) and waits until every record enqueued
    /// before the call has completed — acknowledged or failed — and every delivery callback
    /// of a completed record has returned. Records enqueued by other threads during the wait
    /// are waited for too. [`Error::Timeout`] (`Flush`) if `timeout` passes first; nothing is
    /// lost then, the records stay in flight.
    ///
    /// Do not call it (or [`close`](Self::close)) from a delivery callback: it would wait for
    /// that callback; it then returns only at `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        self.shared.flushing.fetch_add(1, SeqCst);
        self.shared.wake_all();
        let done = self.shared.wait_idle(deadline);
        self.shared.flushing.fetch_sub(1, SeqCst);
        if done {
            Ok(())
        } else {
            Err(Error::Timeout {
                deadline: Deadline::Flush,
                after: timeout,
                at: Location::default(),
            })
        }
    }

    /// Drops what is buffered and carries on (librdkafka's `rd_kafka_purge`, franz-go's
    /// `AbortBufferedRecords`): every record sent before the call and not yet delivered —
    /// waiting for metadata, queued, in a batch not yet sent, and with
    /// [`PurgeScope::BufferedAndInFlight`] also those in requests awaiting the broker's
    /// answer — completes with [`Error::Purged`], its callback or handle fired once, its
    /// room in the buffer given back. Records sent while the call runs may be purged or
    /// sent. The producer stays usable: later records are delivered as usual.
    ///
    /// Returns once every I/O thread has carried it out (a turn each, normally
    /// microseconds): [`Error::Timeout`] (`Purge`) if `timeout` passes first (the purge still
    /// happens), [`Error::Closed`] after [`close`](Self::close). Callbacks of the purged
    /// records may still be running on the callback pool when it returns; [`flush`](Self::flush)
    /// waits for them.
    ///
    /// A record purged in flight may still be written by the broker (its `Purged` error says
    /// so): the answer, when it comes, is used only to keep the partition's idempotent
    /// sequences right — a failed answer is handled as for a batch that failed (later batches
    /// renumbered, or the producer epoch bumped if the broker may have it). Nothing is sent
    /// again.
    ///
    /// ```
    /// # fn main() -> Result<(), kprod::Error> {
    /// # let cluster = kprod::mock::MockCluster::builder().topic("orders", 1).build().unwrap();
    /// use std::time::Duration;
    /// use kprod::{Error, Producer, ProducerRecord, PurgeScope};
    ///
    /// let producer = Producer::builder()
    ///     .bootstrap_servers(&cluster.bootstrap_servers())
    ///     .linger(Duration::from_secs(10)) // held in the open batch
    ///     .build()?;
    /// let stale = producer.produce_async(ProducerRecord::new("orders").value("superseded"))?;
    /// producer.purge(PurgeScope::Buffered, Duration::from_secs(5))?;
    /// assert!(matches!(stale.wait(), Err(Error::Purged { in_flight: false, .. })));
    /// producer.produce("orders", "k", "current")?; // still usable
    /// # Ok(())
    /// # }
    /// ```
    pub fn purge(&self, scope: PurgeScope, timeout: Duration) -> Result<(), Error> {
        if self.threads.lock().is_empty() || self.shared.closing.load(SeqCst) {
            return Err(Error::closed());
        }
        let deadline = Instant::now() + timeout;
        let n = self
            .shared
            .purges
            .request(scope == PurgeScope::BufferedAndInFlight);
        self.shared.wake_all();
        if self.shared.purges.wait(n, deadline) {
            Ok(())
        } else {
            Err(Error::Timeout {
                deadline: Deadline::Purge,
                after: timeout,
                at: Location::default(),
            })
        }
    }

    /// Creates topics (CreateTopics, on one of the producer's connections, with its TLS and
    /// SASL), waiting up to `timeout` for the cluster's answer. Returns one result per topic,
    /// in the order given: `Ok`, or the broker's error for it — e.g. [`Error::Kafka`] with
    /// `TOPIC_ALREADY_EXISTS`, `INVALID_PARTITIONS`, `INVALID_REPLICATION_FACTOR`, or
    /// `POLICY_VIOLATION`, with the broker's message. The call itself fails with
    /// [`Error::Timeout`] (`Request`) if no answer came in time (the topics may or may not
    /// exist then), [`Error::Io`] if the connection was lost with the request on it, or
    /// [`Error::Closed`].
    ///
    /// Names are checked here first (Kafka's rules: at most 249 of `[a-zA-Z0-9._-]`, not
    /// `.` or `..`): an invalid one is [`Error::InvalidTopic`] in its place, and is not sent.
    ///
    /// ```
    /// # fn main() -> Result<(), kprod::Error> {
    /// # let cluster = kprod::mock::MockCluster::builder().build().unwrap();
    /// use std::time::Duration;
    /// use kprod::admin::NewTopic;
    /// use kprod::protocol::ErrorCode;
    /// use kprod::Producer;
    ///
    /// let producer = Producer::builder()
    ///     .bootstrap_servers(&cluster.bootstrap_servers())
    ///     .build()?;
    /// let results = producer.create_topics(&[NewTopic::new("orders", 6)], Duration::from_secs(10))?;
    /// assert!(results[0].is_ok());
    /// // Again: the topic exists.
    /// let again = producer.create_topics(&[NewTopic::new("orders", 6)], Duration::from_secs(10))?;
    /// assert_eq!(again[0].as_ref().unwrap_err().kafka_code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS));
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_topics(
        &self,
        topics: &[NewTopic],
        timeout: Duration,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        use crate::protocol::messages::create_topics::{
            CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
        };
        if self.threads.lock().is_empty() || self.shared.closing.load(SeqCst) {
            return Err(Error::closed());
        }
        let deadline = Instant::now() + timeout;
        let mut results: Vec<Option<Result<(), Error>>> = topics
            .iter()
            .map(|t| crate::error::validate_topic(&t.name).err())
            .map(|e| e.map(Err))
            .collect();
        let request = CreateTopicsRequest {
            topics: topics
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_none())
                .map(|(t, _)| CreatableTopic {
                    name: t.name.clone(),
                    num_partitions: t.partitions,
                    replication_factor: t.replication,
                    assignments: Vec::new(),
                    configs: t
                        .configs
                        .iter()
                        .map(|(k, v)| CreatableTopicConfig {
                            name: k.clone(),
                            value: Some(v.clone()),
                        })
                        .collect(),
                })
                .collect(),
            timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
            validate_only: false,
        };
        if !request.topics.is_empty() {
            let (tx, rx) = crossbeam::channel::bounded(1);
            self.shared
                .admin
                .lock()
                .push_back(crate::engine::core::admin::AdminJob {
                    request,
                    reply: tx,
                    deadline,
                });
            self.shared.admin_wanted.store(true, SeqCst);
            self.shared.io[0].wake();
            let timed_out = || Error::Timeout {
                deadline: Deadline::Request,
                after: timeout,
                at: Location::default(),
            };
            let resp = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|_| timed_out())??;
            for (t, r) in topics.iter().zip(results.iter_mut()) {
                if r.is_some() {
                    continue;
                }
                let answer = resp.topics.iter().find(|a| a.name == t.name);
                *r = Some(match answer {
                    Some(a) if a.error_code == 0 => Ok(()),
                    Some(a) => Err(Error::Kafka {
                        code: crate::protocol::ErrorCode(a.error_code),
                        message: a.error_message.clone(),
                        at: Location::topic(&t.name),
                    }),
                    None => Err(Error::Protocol {
                        broker: String::new(),
                        source: crate::protocol::DecodeError::UnexpectedNull {
                            what: "a topic's answer in the CreateTopics response",
                        },
                        at: Location::topic(&t.name),
                    }),
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every topic answered"))
            .collect())
    }

    /// Flushes for up to `timeout`, then stops: records still pending fail with
    /// [`Error::Timeout`] (`Close`), every connection closes and every thread the producer
    /// started has exited when this returns. Later sends fail with [`Error::Closed`]. Calling
    /// it again does nothing.
    pub fn close(&self, timeout: Duration) -> Result<(), Error> {
        let mut threads = self.threads.lock();
        if threads.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        self.shared.closing.store(true, SeqCst);
        self.shared.wake_all();
        let flushed = self.shared.wait_idle(deadline);
        let timed_out = Error::Timeout {
            deadline: Deadline::Close,
            after: timeout,
            at: Location::default(),
        };
        if !flushed {
            *self.shared.abort_error.lock() = Some(timed_out.clone());
        }
        self.shared.abort.store(true, SeqCst);
        self.shared.wake_all();
        for t in threads.drain(..) {
            let _ = t.join();
        }
        self.resolver.shutdown();
        if let Some(mut r) = self.refresher.lock().take() {
            r.stop();
        }
        // A send that raced with close may have slipped a record in after the threads swept.
        self.sweep();
        self.pool.lock().shutdown();
        if flushed {
            Ok(())
        } else {
            Err(timed_out)
        }
    }

    fn sweep(&self) {
        let err = self.shared.shutdown_error();
        let m = self.shared.metrics.clone();
        let mut deliver = |c: Completer, r: DeliveryResult| run_job((c, r), &m);
        for t in self.shared.topics.load().values() {
            let pending: Vec<_> = t.pending.lock().drain(..).collect();
            for u in pending {
                let reserved = u.record.reserved();
                self.shared.fail_all(
                    Completions::one(u.record.completer),
                    reserved,
                    &err,
                    &mut deliver,
                );
            }
            if let Some(parts) = t.partitions.load_full() {
                for p in parts.iter() {
                    while let Some(r) = p.ring.pop() {
                        let reserved = r.reserved();
                        self.shared.fail_all(
                            Completions::one(r.completer),
                            reserved,
                            &err,
                            &mut deliver,
                        );
                    }
                }
            }
        }
    }

    /// Wraps this producer with serializers for typed keys and values.
    pub fn typed<K: ?Sized, V: ?Sized>(
        self,
        key: impl Serializer<K> + 'static,
        value: impl Serializer<V> + 'static,
    ) -> TypedProducer<K, V> {
        TypedProducer {
            producer: self,
            key: Box::new(key),
            value: Box::new(value),
        }
    }
}

fn back(
    error: Error,
    topic: Topic,
    partition: Option<i32>,
    timestamp: Option<i64>,
    r: PendingRecord,
) -> SendError {
    // The interceptors saw the record go: they see the call's refusal as its outcome (the
    // record itself goes back to the caller).
    r.completer.refused(&error);
    SendError {
        error,
        record: Box::new(ProducerRecord {
            topic,
            key: r.key,
            value: r.value,
            headers: r.headers.into_vec(),
            partition,
            timestamp,
        }),
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.close(self.shared.config.delivery_timeout);
    }
}

impl ProducerConfigBuilder {
    /// Validates the configuration and starts a [`Producer`].
    pub fn build(self) -> Result<Producer, Error> {
        let partitioner = self.custom_partitioner_ref();
        let resolver = self.custom_resolver_ref();
        let interceptors = Interceptors::new(self.interceptors_ref());
        #[cfg(feature = "opentelemetry")]
        let otel = self.opentelemetry_ref();
        let config = self.build_config()?;
        let partitioner = partitioner.unwrap_or_else(|| Arc::new(config.partitioner));
        Producer::start(
            config,
            partitioner,
            resolver,
            interceptors,
            #[cfg(feature = "opentelemetry")]
            otel,
        )
    }
}

/// A producer of typed keys and values, serialized by the [`Serializer`]s it was built with.
/// Dereferences to the [`Producer`] for `flush`, `close`, `metrics` and untyped sends.
///
/// ```
/// # #[cfg(feature = "mock")] {
/// use kprod::serializer::{BigEndian, Utf8};
/// let cluster = kprod::mock::MockCluster::builder().topic("scores", 1).build()?;
/// let scores = kprod::Producer::builder()
///     .bootstrap_servers(&cluster.bootstrap_servers())
///     .build()?
///     .typed::<str, i64>(Utf8, BigEndian);
/// let md = scores.produce("scores", "alice", &42)?;
/// assert_eq!(cluster.records("scores", md.partition)[0].value.as_deref(), Some(&42i64.to_be_bytes()[..]));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedProducer<K: ?Sized, V: ?Sized> {
    producer: Producer,
    key: Box<dyn Serializer<K>>,
    value: Box<dyn Serializer<V>>,
}

impl<K: ?Sized, V: ?Sized> std::fmt::Debug for TypedProducer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .finish()
    }
}

impl<K: ?Sized, V: ?Sized> std::ops::Deref for TypedProducer<K, V> {
    type Target = Producer;
    fn deref(&self) -> &Producer {
        &self.producer
    }
}

impl<K: ?Sized, V: ?Sized> TypedProducer<K, V> {
    /// Serializes a key and value into a record for `topic`.
    pub fn record(&self, topic: &str, key: &K, value: &V) -> Result<ProducerRecord, Error> {
        Ok(ProducerRecord {
            topic: Topic::from(topic.to_owned()),
            key: self.key.serialize(topic, key)?,
            value: self.value.serialize(topic, value)?,
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        })
    }

    /// Sends and waits for the acknowledgement.
    pub fn produce(&self, topic: &str, key: &K, value: &V) -> DeliveryResult {
        self.producer
            .produce_record(self.record(topic, key, value)?)
    }

    /// Fire-and-forget.
    pub fn send(&self, topic: &str, key: &K, value: &V) -> Result<(), Error> {
        Ok(self.producer.send_record(self.record(topic, key, value)?)?)
    }

    /// Sends with a delivery callback.
    pub fn send_with(
        &self,
        topic: &str,
        key: &K,
        value: &V,
        callback: impl FnOnce(DeliveryResult) + Send + 'static,
    ) -> Result<(), Error> {
        Ok(self
            .producer
            .send_with(self.record(topic, key, value)?, callback)?)
    }

    /// Sends and returns a handle to the outcome.
    pub fn produce_async(&self, topic: &str, key: &K, value: &V) -> Result<DeliveryHandle, Error> {
        Ok(self
            .producer
            .produce_async(self.record(topic, key, value)?)?)
    }

    /// The untyped producer.
    pub fn into_inner(self) -> Producer {
        self.producer
    }
}
