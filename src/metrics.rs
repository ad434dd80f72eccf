//! Counters the producer keeps, read with [`Producer::metrics`](crate::Producer::metrics).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crossbeam::utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::engine::batch::StageStamps;

/// Live counters (relaxed atomics, updated off the send path where possible).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Written by every `send`: on its own cache line, away from the counters the I/O
    /// threads write.
    pub records_sent: CachePadded<AtomicU64>,
    pub records_acked: AtomicU64,
    pub records_failed: AtomicU64,
    pub batches_sent: AtomicU64,
    pub requests_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub retries: AtomicU64,
    pub metadata_requests: AtomicU64,
    pub leader_hints: AtomicU64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub callback_panics: AtomicU64,
    pub forget_delivered: AtomicU64,
    pub forget_failed: AtomicU64,
    pub forget_timed_out: AtomicU64,
    pub wakeups: AtomicU64,
    pub throttled_responses: AtomicU64,
    pub throttle_time_ms: AtomicU64,
    pub batches_split: AtomicU64,
    pub rebootstraps: AtomicU64,
    pub epoch_bumps: AtomicU64,
    pub sequence_rewinds: AtomicU64,
    pub records_batched: AtomicU64,
    pub records_retried: AtomicU64,
    pub bytes_acked: AtomicU64,
    pub bytes_failed: AtomicU64,
    pub batch_bytes_uncompressed: AtomicU64,
    pub batch_bytes_compressed: AtomicU64,
    pub authentications: AtomicU64,
    pub reauthentications: AtomicU64,
    pub authentication_failures: AtomicU64,
    pub tls_failures: AtomicU64,
    /// Produce request round trips per broker, µs (one entry per response: no per-record
    /// cost; the lock is taken by the owning I/O thread and by `snapshot`).
    pub request_latency: Mutex<BTreeMap<i32, Histogram<u64>>>,
    /// Stage latencies of the records timed through them, ns (one entry per timed record,
    /// at most one per batch; the lock is taken where its completion is delivered).
    pub stages: Mutex<StageHistograms>,
    /// OpenTelemetry's `messaging.client.operation.duration`, fed by the stage-timed records.
    #[cfg(feature = "opentelemetry")]
    pub otel_duration: std::sync::OnceLock<opentelemetry::metrics::Histogram<f64>>,
    /// Each connection's requests in flight (dropped with the connection).
    pub broker_gauges: Mutex<Vec<std::sync::Weak<BrokerGauge>>>,
}

/// One connection's requests in flight, written by its I/O thread once a turn.
#[derive(Debug)]
pub(crate) struct BrokerGauge {
    pub broker: i32,
    pub in_flight: AtomicU64,
}

/// One histogram per stage of a timed record's life, ns.
#[derive(Debug)]
pub(crate) struct StageHistograms {
    queued: Histogram<u64>,
    sending: Histogram<u64>,
    broker: Histogram<u64>,
    completing: Histogram<u64>,
    total: Histogram<u64>,
}

impl Default for StageHistograms {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("valid bounds");
        StageHistograms {
            queued: h(),
            sending: h(),
            broker: h(),
            completing: h(),
            total: h(),
        }
    }
}

impl Metrics {
    /// Notes a Produce round trip to `broker`.
    pub fn request_latency(&self, broker: i32, rtt: Duration) {
        let us = (rtt.as_micros() as u64).max(1);
        let mut m = self.request_latency.lock();
        let h = m.entry(broker).or_insert_with(|| {
            Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
        });
        h.saturating_record(us);
    }

    /// Notes a timed record's stages: `stamps` from its batch, acknowledged at `acked`, its
    /// completion delivered at `delivered`.
    pub fn stages(&self, stamps: &StageStamps, acked: Instant, delivered: Instant) {
        let ns = |from: Instant, to: Instant| {
            (to.saturating_duration_since(from).as_nanos() as u64).max(1)
        };
        let written = stamps.written.unwrap_or(stamps.batched);
        let mut h = self.stages.lock();
        h.queued
            .saturating_record(ns(stamps.enqueued, stamps.batched));
        h.sending.saturating_record(ns(stamps.batched, written));
        h.broker.saturating_record(ns(written, acked));
        h.completing.saturating_record(ns(acked, delivered));
        h.total.saturating_record(ns(stamps.enqueued, delivered));
        drop(h);
        #[cfg(feature = "opentelemetry")]
        if let Some(d) = self.otel_duration.get() {
            crate::otel::record_duration(d, acked.saturating_duration_since(stamps.enqueued));
        }
    }

    /// A gauge for a new connection to `broker`.
    pub fn broker_gauge(&self, broker: i32) -> std::sync::Arc<BrokerGauge> {
        let g = std::sync::Arc::new(BrokerGauge {
            broker,
            in_flight: AtomicU64::new(0),
        });
        let mut all = self.broker_gauges.lock();
        all.retain(|w| w.strong_count() > 0);
        all.push(std::sync::Arc::downgrade(&g));
        g
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// The counters now; `in_flight` and `queue_depth` come from the engine.
    pub fn snapshot(&self, in_flight: u64, queue_depth: u64) -> MetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let mut in_flight_by: BTreeMap<i32, u64> = BTreeMap::new();
        for g in self.broker_gauges.lock().iter().filter_map(|w| w.upgrade()) {
            *in_flight_by.entry(g.broker).or_default() += g.in_flight.load(Relaxed);
        }
        let mut request_latency: Vec<BrokerLatency> = self
            .request_latency
            .lock()
            .iter()
            .map(|(&broker, h)| BrokerLatency {
                broker,
                requests: h.len(),
                in_flight: in_flight_by.remove(&broker).unwrap_or(0),
                p50_us: h.value_at_quantile(0.50),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                max_us: h.max(),
            })
            .collect();
        // Brokers with requests in flight and none answered yet.
        for (broker, in_flight) in in_flight_by.into_iter().filter(|&(_, n)| n > 0) {
            request_latency.push(BrokerLatency {
                broker,
                in_flight,
                ..BrokerLatency::default()
            });
        }
        request_latency.sort_by_key(|b| b.broker);
        let stages = {
            let h = self.stages.lock();
            StageLatency {
                queued: LatencySummary::of(&h.queued),
                sending: LatencySummary::of(&h.sending),
                broker: LatencySummary::of(&h.broker),
                completing: LatencySummary::of(&h.completing),
                total: LatencySummary::of(&h.total),
            }
        };
        MetricsSnapshot {
            stages,
            in_flight,
            queue_depth,
            buffer_bytes: 0,
            buffer_limit_bytes: 0,
            records_batched: g(&self.records_batched),
            records_retried: g(&self.records_retried),
            bytes_acked: g(&self.bytes_acked),
            bytes_failed: g(&self.bytes_failed),
            batch_bytes_uncompressed: g(&self.batch_bytes_uncompressed),
            batch_bytes_compressed: g(&self.batch_bytes_compressed),
            request_latency,
            partitions: Vec::new(),
            records_sent: g(&self.records_sent),
            records_acked: g(&self.records_acked),
            records_failed: g(&self.records_failed),
            batches_sent: g(&self.batches_sent),
            requests_sent: g(&self.requests_sent),
            bytes_sent: g(&self.bytes_sent),
            retries: g(&self.retries),
            metadata_requests: g(&self.metadata_requests),
            leader_hints: g(&self.leader_hints),
            connects: g(&self.connects),
            disconnects: g(&self.disconnects),
            callback_panics: g(&self.callback_panics),
            forget_delivered: g(&self.forget_delivered),
            forget_failed: g(&self.forget_failed),
            forget_timed_out: g(&self.forget_timed_out),
            wakeups: g(&self.wakeups),
            throttled_responses: g(&self.throttled_responses),
            throttle_time_ms: g(&self.throttle_time_ms),
            batches_split: g(&self.batches_split),
            rebootstraps: g(&self.rebootstraps),
            epoch_bumps: g(&self.epoch_bumps),
            sequence_rewinds: g(&self.sequence_rewinds),
            authentications: g(&self.authentications),
            reauthentications: g(&self.reauthentications),
            authentication_failures: g(&self.authentication_failures),
            tls_failures: g(&self.tls_failures),
            token_refreshes: 0,
            interceptor_panics: 0,
        }
    }
}

/// A copy of the producer's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Records enqueued and not yet completed (in rings, batches, or requests in flight).
    pub in_flight: u64,
    /// Records in the partition rings and metadata queues, not yet in a batch.
    pub queue_depth: u64,
    /// Bytes of the buffer (`buffer_memory`) held by records not yet completed.
    pub buffer_bytes: u64,
    /// The buffer's size, `buffer_memory`.
    pub buffer_limit_bytes: u64,
    /// Records put into batches (each once, retries not counted again).
    pub records_batched: u64,
    /// Records sent again after a retriable failure (once per retry).
    pub records_retried: u64,
    /// Bytes of RecordBatches acknowledged.
    pub bytes_acked: u64,
    /// Bytes of RecordBatches whose records failed.
    pub bytes_failed: u64,
    /// Batches' record bytes before compression (each batch once).
    pub batch_bytes_uncompressed: u64,
    /// The same batches' bytes as sent, after compression.
    pub batch_bytes_compressed: u64,
    /// Produce request round-trip percentiles per broker.
    pub request_latency: Vec<BrokerLatency>,
    /// Where the time of the records timed through their stages went
    /// ([`stage_sampling`](crate::ProducerConfigBuilder::stage_sampling)).
    pub stages: StageLatency,
    /// Per partition, by topic and partition: what became of its batches.
    pub partitions: Vec<PartitionMetrics>,
    /// Records accepted into the buffer.
    pub records_sent: u64,
    /// Records acknowledged by the broker (or written with acks=0).
    pub records_acked: u64,
    /// Records completed with an error.
    pub records_failed: u64,
    /// RecordBatches sent (retries included).
    pub batches_sent: u64,
    /// Produce requests sent.
    pub requests_sent: u64,
    /// Bytes of RecordBatches sent.
    pub bytes_sent: u64,
    /// Batches sent again after a retriable failure.
    pub retries: u64,
    /// Metadata requests sent.
    pub metadata_requests: u64,
    /// Partitions routed to a new leader named in a Produce answer (KIP-951), without a
    /// Metadata round trip.
    pub leader_hints: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections lost or closed on error.
    pub disconnects: u64,
    /// Delivery callbacks that panicked (caught; the pool lives on).
    pub callback_panics: u64,
    /// `send_await_forget` records delivered within their budget.
    pub forget_delivered: u64,
    /// `send_await_forget` records that failed within their budget (error swallowed).
    pub forget_failed: u64,
    /// `send_await_forget` records still pending when their budget ran out.
    pub forget_timed_out: u64,
    /// Times a caller woke a parked I/O thread.
    pub wakeups: u64,
    /// Produce responses that asked the producer to hold back (a quota's `throttle_time_ms`
    /// above zero, KIP-219): the connection then sends nothing until that time has passed.
    pub throttled_responses: u64,
    /// The throttle times those responses asked for, summed, ms.
    pub throttle_time_ms: u64,
    /// Batches the broker refused as too large (MESSAGE_TOO_LARGE) that were split in two
    /// and sent again as halves, as the Java client does.
    pub batches_split: u64,
    /// Times the producer started again from `bootstrap_servers` (KIP-899: no known broker
    /// gave metadata for `metadata_rebootstrap_trigger`; KIP-1102: REBOOTSTRAP_REQUIRED).
    pub rebootstraps: u64,
    /// Idempotence: times the producer epoch was bumped (KIP-360) so that partitions could
    /// go on after a batch with an unknown outcome was given up, or the broker lost track of
    /// the producer's sequences.
    pub epoch_bumps: u64,
    /// Idempotence: times a partition's waiting batches were renumbered to close the gap a
    /// batch that was certainly not written left when it failed.
    pub sequence_rewinds: u64,
    /// SASL authentications completed when connections opened.
    pub authentications: u64,
    /// SASL re-authentications completed on open connections, before the broker's session
    /// lifetime ran out (KIP-368).
    pub reauthentications: u64,
    /// SASL authentications the broker refused or the client could not verify.
    pub authentication_failures: u64,
    /// TLS handshakes that failed (trust, name, expiry, refusal).
    pub tls_failures: u64,
    /// OAUTHBEARER tokens fetched after the first, before the current one expired.
    pub token_refreshes: u64,
    /// Panics caught in interceptors' `on_send` and `on_acknowledgement`.
    pub interceptor_panics: u64,
}

/// One partition's live counters: written by the I/O thread that completes its batches (one
/// relaxed add per batch, never on the `send()` path), read by `metrics()`.
#[derive(Debug, Default)]
pub(crate) struct PartitionCounters {
    pub records_acked: AtomicU64,
    pub records_failed: AtomicU64,
    pub bytes_acked: AtomicU64,
    pub bytes_failed: AtomicU64,
    pub batches_acked: AtomicU64,
    pub batches_failed: AtomicU64,
    pub batches_retried: AtomicU64,
}

impl PartitionCounters {
    /// A batch of `records` records and `bytes` bytes completed.
    pub fn completed(&self, records: u64, bytes: u64, ok: bool) {
        let (r, b, n) = if ok {
            (&self.records_acked, &self.bytes_acked, &self.batches_acked)
        } else {
            (
                &self.records_failed,
                &self.bytes_failed,
                &self.batches_failed,
            )
        };
        Metrics::add(r, records);
        Metrics::add(b, bytes);
        Metrics::add(n, 1);
    }

    pub fn snapshot(&self, p: &crate::engine::PartitionState) -> PartitionMetrics {
        let g = |c: &AtomicU64| c.load(Relaxed);
        PartitionMetrics {
            topic: p.topic.clone(),
            partition: p.partition,
            queued: p.ring.len() as u64,
            records_acked: g(&self.records_acked),
            records_failed: g(&self.records_failed),
            bytes_acked: g(&self.bytes_acked),
            bytes_failed: g(&self.bytes_failed),
            batches_acked: g(&self.batches_acked),
            batches_failed: g(&self.batches_failed),
            batches_retried: g(&self.batches_retried),
        }
    }
}

/// One partition's counters in a snapshot. Records that failed before they had a partition
/// (an unknown topic, a metadata timeout) count only in the producer's totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PartitionMetrics {
    /// The topic.
    pub topic: std::sync::Arc<str>,
    /// The partition.
    pub partition: i32,
    /// Records in its ring, not yet in a batch.
    pub queued: u64,
    /// Records acknowledged.
    pub records_acked: u64,
    /// Records whose batch failed.
    pub records_failed: u64,
    /// Bytes of acknowledged batches (as sent).
    pub bytes_acked: u64,
    /// Bytes of failed batches.
    pub bytes_failed: u64,
    /// Batches acknowledged.
    pub batches_acked: u64,
    /// Batches that failed.
    pub batches_failed: u64,
    /// Batches sent again after a retriable failure (once per retry).
    pub batches_retried: u64,
}

/// Per-record stage latency, for the records timed through their stages (one in
/// [`stage_sampling`](crate::ProducerConfigBuilder::stage_sampling) per calling thread, at most
/// one per batch, delivered ones only): what answers "is my p99 linger, compression, the
/// broker or my callback?".
///
/// ```
/// # #[cfg(feature = "mock")] {
/// use std::time::Duration;
/// let cluster = kprod::mock::MockCluster::builder().topic("t", 1).build().unwrap();
/// let p = kprod::Producer::builder()
///     .bootstrap_servers(&cluster.bootstrap_servers())
///     .stage_sampling(1) // time every record
///     .build()
///     .unwrap();
/// p.produce("t", "k", "v").unwrap();
/// // The stages are recorded just after the completion is delivered; flush() waits for that.
/// p.flush(Duration::from_secs(5)).unwrap();
/// let s = p.metrics().stages;
/// assert_eq!(s.total.count, 1);
/// assert!(s.broker.p50 <= s.total.max);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StageLatency {
    /// Sent → in a closed batch: the ring, the linger wait, encoding and compression.
    pub queued: LatencySummary,
    /// In a closed batch → written to the socket: waiting for a request slot, a connection,
    /// metadata or a retry backoff (the last attempt's write counts).
    pub sending: LatencySummary,
    /// Written → acknowledged: the network and the broker.
    pub broker: LatencySummary,
    /// Acknowledged → completion delivered: waking the waiter, or the batch's callbacks run
    /// on the callback pool (the queue to it included).
    pub completing: LatencySummary,
    /// Sent → completion delivered.
    pub total: LatencySummary,
}

impl StageLatency {
    /// One line of p50/p99 per stage, as `kprod perf` prints it.
    pub fn line(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let one =
            |name: &str, s: &LatencySummary| format!("{name} {:.0}/{:.0}", us(s.p50), us(s.p99));
        format!(
            "stages p50/p99 µs ({} timed): {} · {} · {} · {} · {}",
            self.total.count,
            one("queued", &self.queued),
            one("sending", &self.sending),
            one("broker", &self.broker),
            one("completing", &self.completing),
            one("total", &self.total),
        )
    }
}

/// Percentiles of one latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LatencySummary {
    /// How many were measured.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest.
    pub max: Duration,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let d = Duration::from_nanos;
        LatencySummary {
            count: h.len(),
            p50: d(h.value_at_quantile(0.50)),
            p99: d(h.value_at_quantile(0.99)),
            p999: d(h.value_at_quantile(0.999)),
            max: d(h.max()),
        }
    }
}

/// One broker: its Produce request round trips, from the request queued for the socket to its
/// response read, and its requests in flight now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerLatency {
    /// Broker id (-1: a bootstrap address before metadata named it).
    pub broker: i32,
    /// Produce requests answered.
    pub requests: u64,
    /// Requests (of any kind) sent to it and not yet answered, over all its connections.
    pub in_flight: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
}

/// A per-partition family: name, type, help, and the value it takes from a partition.
type PartitionFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PartitionMetrics) -> u64,
);

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "# HELP kprod_{name} {help}\n# TYPE kprod_{name} {kind}\n"
    );
}

impl MetricsSnapshot {
    /// Mean records per batch (0 before the first batch).
    pub fn mean_batch_records(&self) -> f64 {
        if self.batches_sent == 0 {
            0.0
        } else {
            self.records_batched as f64 / (self.batches_sent - self.retries).max(1) as f64
        }
    }

    /// The snapshot in the Prometheus text exposition format (version 0.0.4): each counter
    /// as `kprod_<name>_total`, the two gauges (`kprod_in_flight`, `kprod_queue_depth`), and
    /// per broker the Produce round trip as a summary
    /// (`kprod_request_latency_seconds{broker="1",quantile="0.5"}`, `_count`), its maximum
    /// and the requests in flight (`kprod_broker_in_flight`), and the stage latencies as a
    /// summary per stage (`kprod_stage_latency_seconds{stage="broker",quantile="0.99"}`).
    /// Serve it from any HTTP endpoint a scraper reads.
    ///
    /// ```
    /// let m = kprod::MetricsSnapshot::default();
    /// let text = m.to_prometheus();
    /// assert!(text.contains("# TYPE kprod_records_sent_total counter\nkprod_records_sent_total 0\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        #[rustfmt::skip]
        let counters: [(&str, &str, u64); 34] = [
            ("records_sent", "Records accepted into the buffer.", self.records_sent),
            ("records_acked", "Records acknowledged by the broker.", self.records_acked),
            ("records_failed", "Records completed with an error.", self.records_failed),
            ("records_batched", "Records put into batches.", self.records_batched),
            ("records_retried", "Records sent again after a retriable failure.", self.records_retried),
            ("batches_sent", "RecordBatches sent, retries included.", self.batches_sent),
            ("requests_sent", "Produce requests sent.", self.requests_sent),
            ("bytes_sent", "Bytes of RecordBatches sent.", self.bytes_sent),
            ("bytes_acked", "Bytes of RecordBatches acknowledged.", self.bytes_acked),
            ("bytes_failed", "Bytes of RecordBatches whose records failed.", self.bytes_failed),
            ("batch_bytes_uncompressed", "Batches' record bytes before compression.", self.batch_bytes_uncompressed),
            ("batch_bytes_compressed", "Batches' bytes after compression.", self.batch_bytes_compressed),
            ("retries", "Batches sent again after a retriable failure.", self.retries),
            ("metadata_requests", "Metadata requests sent.", self.metadata_requests),
            ("leader_hints", "Partitions rerouted by a leader named in a Produce answer (KIP-951).", self.leader_hints),
            ("connects", "Connections established.", self.connects),
            ("disconnects", "Connections lost or closed on error.", self.disconnects),
            ("callback_panics", "Delivery callbacks that panicked.", self.callback_panics),
            ("interceptor_panics", "Panics caught in interceptors.", self.interceptor_panics),
            ("forget_delivered", "send_await_forget records delivered within their budget.", self.forget_delivered),
            ("forget_failed", "send_await_forget records failed within their budget.", self.forget_failed),
            ("forget_timed_out", "send_await_forget records pending when their budget ran out.", self.forget_timed_out),
            ("wakeups", "Times a caller woke a parked I/O thread.", self.wakeups),
            ("throttled_responses", "Produce responses with a quota throttle (KIP-219).", self.throttled_responses),
            ("throttle_time_ms", "Throttle time asked for by brokers, ms.", self.throttle_time_ms),
            ("batches_split", "Batches split after MESSAGE_TOO_LARGE.", self.batches_split),
            ("rebootstraps", "Restarts from bootstrap.servers (KIP-899, KIP-1102).", self.rebootstraps),
            ("epoch_bumps", "Producer epoch bumps (KIP-360).", self.epoch_bumps),
            ("sequence_rewinds", "Partitions whose waiting batches were renumbered.", self.sequence_rewinds),
            ("authentications", "SASL authentications completed.", self.authentications),
            ("reauthentications", "SASL re-authentications completed (KIP-368).", self.reauthentications),
            ("authentication_failures", "SASL authentications refused or not verified.", self.authentication_failures),
            ("tls_failures", "TLS handshakes that failed.", self.tls_failures),
            ("token_refreshes", "OAUTHBEARER tokens fetched after the first.", self.token_refreshes),
        ];
        let mut out = String::with_capacity(8 << 10);
        for (name, help, value) in counters {
            family(&mut out, &format!("{name}_total"), "counter", help);
            let _ = writeln!(out, "kprod_{name}_total {value}");
        }
        for (name, help, value) in [
            (
                "in_flight",
                "Records enqueued and not yet completed.",
                self.in_flight,
            ),
            (
                "queue_depth",
                "Records queued, not yet in a batch.",
                self.queue_depth,
            ),
            (
                "buffer_bytes",
                "Buffer bytes held by records not yet completed.",
                self.buffer_bytes,
            ),
            (
                "buffer_limit_bytes",
                "The buffer's size (buffer_memory).",
                self.buffer_limit_bytes,
            ),
        ] {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "kprod_{name} {value}");
        }
        if !self.partitions.is_empty() {
            #[rustfmt::skip]
            let families: [PartitionFamily; 8] = [
                ("partition_queued", "gauge", "Records in a partition's ring, not yet batched.", |p| p.queued),
                ("partition_records_acked_total", "counter", "Records acknowledged, per partition.", |p| p.records_acked),
                ("partition_records_failed_total", "counter", "Records whose batch failed, per partition.", |p| p.records_failed),
                ("partition_bytes_acked_total", "counter", "Bytes of acknowledged batches, per partition.", |p| p.bytes_acked),
                ("partition_bytes_failed_total", "counter", "Bytes of failed batches, per partition.", |p| p.bytes_failed),
                ("partition_batches_acked_total", "counter", "Batches acknowledged, per partition.", |p| p.batches_acked),
                ("partition_batches_failed_total", "counter", "Batches that failed, per partition.", |p| p.batches_failed),
                ("partition_batches_retried_total", "counter", "Batches sent again, per partition.", |p| p.batches_retried),
            ];
            for (name, kind, help, value) in families {
                family(&mut out, name, kind, help);
                for p in &self.partitions {
                    let _ = writeln!(
                        out,
                        "kprod_{name}{{topic=\"{}\",partition=\"{}\"}} {}",
                        p.topic,
                        p.partition,
                        value(p)
                    );
                }
            }
        }
        if !self.request_latency.is_empty() {
            let name = "request_latency_seconds";
            family(
                &mut out,
                name,
                "summary",
                "Produce request round trips per broker.",
            );
            let secs = |us: u64| us as f64 / 1e6;
            for b in &self.request_latency {
                let id = b.broker;
                for (q, us) in [("0.5", b.p50_us), ("0.99", b.p99_us), ("0.999", b.p999_us)] {
                    let _ = writeln!(
                        out,
                        "kprod_{name}{{broker=\"{id}\",quantile=\"{q}\"}} {}",
                        secs(us)
                    );
                }
                let _ = writeln!(out, "kprod_{name}_count{{broker=\"{id}\"}} {}", b.requests);
            }
            // One gauge per broker each (an f64 prints as the integer it holds: `3`).
            type BrokerGauge = (&'static str, &'static str, fn(&BrokerLatency) -> f64);
            let gauges: [BrokerGauge; 2] = [
                (
                    "request_latency_max_seconds",
                    "The slowest Produce round trip per broker.",
                    |b| b.max_us as f64 / 1e6,
                ),
                (
                    "broker_in_flight",
                    "Requests sent to the broker and not yet answered.",
                    |b| b.in_flight as f64,
                ),
            ];
            for (name, help, value) in gauges {
                family(&mut out, name, "gauge", help);
                for b in &self.request_latency {
                    let _ = writeln!(out, "kprod_{name}{{broker=\"{}\"}} {}", b.broker, value(b));
                }
            }
        }
        let s = &self.stages;
        if s.total.count > 0 {
            let stages = [
                ("queued", &s.queued),
                ("sending", &s.sending),
                ("broker", &s.broker),
                ("completing", &s.completing),
                ("total", &s.total),
            ];
            let name = "stage_latency_seconds";
            family(
                &mut out,
                name,
                "summary",
                "Per-record stage latency of the records timed through their stages.",
            );
            for (stage, l) in stages {
                for (q, d) in [("0.5", l.p50), ("0.99", l.p99), ("0.999", l.p999)] {
                    let _ = writeln!(
                        out,
                        "kprod_{name}{{stage=\"{stage}\",quantile=\"{q}\"}} {}",
                        d.as_secs_f64()
                    );
                }
                let _ = writeln!(out, "kprod_{name}_count{{stage=\"{stage}\"}} {}", l.count);
            }
            let name = "stage_latency_max_seconds";
            family(
                &mut out,
                name,
                "gauge",
                "The slowest timed record per stage.",
            );
            for (stage, l) in stages {
                let _ = writeln!(
                    out,
                    "kprod_{name}{{stage=\"{stage}\"}} {}",
                    l.max.as_secs_f64()
                );
            }
        }
        out
    }

    /// Uncompressed over compressed batch bytes (1.0 without compression or batches).
    pub fn compression_ratio(&self) -> f64 {
        if self.batch_bytes_compressed == 0 {
            1.0
        } else {
            self.batch_bytes_uncompressed as f64 / self.batch_bytes_compressed as f64
        }
    }
}
