//! Producer configuration: a builder whose every setter documents its default, validated once
//! into an immutable [`ProducerConfig`]; presets; and the librdkafka / Java property names
//! users already have ([`ProducerConfigBuilder::from_properties`]).

mod security;

use std::time::Duration;

pub use security::SecurityConfig;

use crate::error::Error;
use std::sync::Arc;

use crate::engine::resolver::Resolve;
use crate::partitioner::{BuiltinPartitioner, Partitioner};
use crate::protocol::compression::{Compression, CompressionConfig};

/// How many replicas must have a record before the broker acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// No acknowledgement (`acks=0`): fastest; a record can be lost without any error.
    None,
    /// The partition leader (`acks=1`): lost if the leader fails before replicating.
    Leader,
    /// Every in-sync replica (`acks=all` / `-1`): the default, and required by idempotence.
    #[default]
    All,
}

impl Acks {
    /// The value on the wire (Produce's `acks`).
    pub const fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// A validated, immutable producer configuration. Built by [`ProducerConfigBuilder::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    /// Brokers to bootstrap from (`host:port`).
    pub bootstrap_servers: Vec<String>,
    /// Client id sent to brokers.
    pub client_id: String,
    /// Acknowledgements required.
    pub acks: Acks,
    /// How long to wait for more records before sending a batch that is not full.
    pub linger: Duration,
    /// Largest batch, in bytes of records before compression.
    pub batch_size: usize,
    /// Codec and level.
    pub compression: CompressionConfig,
    /// Idempotent production (no duplicates from retries, order kept).
    pub idempotence: bool,
    /// Most unanswered Produce requests per connection.
    pub max_in_flight: usize,
    /// Most bytes of records buffered, not yet acknowledged.
    pub buffer_memory: usize,
    /// Most records buffered, not yet acknowledged.
    pub buffer_records: usize,
    /// How long `send` blocks for room in the buffer before failing with QueueFull.
    pub max_block: Duration,
    /// Upper bound on the time from `send` to a record's completion.
    pub delivery_timeout: Duration,
    /// How long to wait for one request's response.
    pub request_timeout: Duration,
    /// First retry backoff.
    pub retry_backoff: Duration,
    /// Largest retry backoff (it doubles up to this).
    pub retry_backoff_max: Duration,
    /// How long to wait for a topic's metadata.
    pub metadata_timeout: Duration,
    /// Refresh metadata at least this often.
    pub metadata_max_age: Duration,
    /// Start again from `bootstrap_servers` when no known broker has given metadata for
    /// [`metadata_rebootstrap_trigger`](Self::metadata_rebootstrap_trigger), or one says
    /// REBOOTSTRAP_REQUIRED (KIP-899, KIP-1102).
    pub metadata_rebootstrap: bool,
    /// How long metadata may be wanted and not come before the producer re-bootstraps.
    pub metadata_rebootstrap_trigger: Duration,
    /// How long a connection may take to be established (name resolution and TCP connect,
    /// every resolved address in turn) before the attempt fails and backs off.
    pub connection_setup_timeout: Duration,
    /// Largest Produce request, in bytes.
    pub max_request_size: usize,
    /// I/O threads.
    pub io_threads: usize,
    /// Pin I/O threads to cores.
    pub pin_threads: bool,
    /// How long an I/O thread with nothing to do, and a caller waiting for a record, keep
    /// checking for work before they sleep (zero: they sleep at once).
    pub idle_spin: Duration,
    /// Threads running delivery callbacks.
    pub callback_threads: usize,
    /// One record in this many (per calling thread) is timed through its stages; 0: none.
    pub stage_sampling: u32,
    /// Records each partition's ring holds before `send` waits for the I/O thread to drain it.
    pub queue_capacity: usize,
    /// Partitioner for records without a partition.
    pub partitioner: BuiltinPartitioner,
    /// Place keyed records as keyless ones (the uniform sticky partitioner), ignoring keys.
    pub partitioner_ignore_keys: bool,
    /// Keyless records go less to partitions whose broker falls behind.
    pub partitioner_adaptive: bool,
    /// Keyless records skip a partition whose leader took no batch for this long (zero: off).
    pub partitioner_availability_timeout: Duration,
    /// The transactional id (`transactional.id`): set, the producer is transactional
    /// ([`Producer::init_transactions`](crate::Producer::init_transactions)) and idempotent.
    pub transactional_id: Option<String>,
    /// How long the coordinator lets a transaction stay open before aborting it
    /// (`transaction.timeout.ms`).
    pub transaction_timeout: Duration,
    /// TLS and SASL.
    pub security: SecurityConfig,
}

/// Longest duration any option takes: Kafka's own limit for its `*.ms` settings (a 32-bit
/// count of milliseconds, about 24.8 days). Deadlines computed from such options never overflow.
pub const MAX_DURATION: Duration = Duration::from_millis(i32::MAX as u64);
/// Most I/O threads.
pub const MAX_IO_THREADS: usize = 256;
/// Most callback threads.
pub const MAX_CALLBACK_THREADS: usize = 1024;
/// Largest ring per partition (records): each partition's ring is allocated whole.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// Longest [`idle_spin`](ProducerConfigBuilder::idle_spin): past a second, sleeping costs
/// nothing that matters.
pub const MAX_IDLE_SPIN: Duration = Duration::from_secs(1);
/// [`ProducerConfigBuilder::for_low_latency`]'s idle spin: longer than a round trip to a
/// broker nearby, so a caller in a `produce()` loop rarely sleeps.
pub const LOW_LATENCY_SPIN: Duration = Duration::from_micros(200);
/// Largest request, and so largest batch: a Kafka frame's length is a signed 32-bit count.
pub const MAX_REQUEST_SIZE: usize = i32::MAX as usize;

impl ProducerConfig {
    /// Checks every option, naming the first one at fault. [`ProducerConfigBuilder::build`]
    /// and [`Producer::new`](crate::Producer::new) both call it, so a configuration changed
    /// field by field after building is checked again before any thread starts.
    ///
    /// ```
    /// use kprod::config::ProducerConfigBuilder;
    /// let mut c = ProducerConfigBuilder::new().bootstrap_servers("localhost:9092").build_config()?;
    /// c.io_threads = 0;
    /// assert!(c.validate().unwrap_err().to_string().contains("io_threads"));
    /// # Ok::<(), kprod::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let c = self;
        if c.bootstrap_servers.is_empty() {
            return Err(Error::config("bootstrap_servers", "no broker given"));
        }
        for s in &c.bootstrap_servers {
            let port = s
                .rsplit_once(':')
                .and_then(|(h, p)| (!h.is_empty()).then_some(p));
            if port
                .and_then(|p| p.parse::<u16>().ok())
                .is_none_or(|p| p == 0)
            {
                return Err(Error::config(
                    "bootstrap_servers",
                    format!("{s:?} is not host:port"),
                ));
            }
        }
        if c.client_id.is_empty() || c.client_id.len() > 255 {
            return Err(Error::config("client_id", "must be 1-255 bytes"));
        }
        for (name, v, max) in [
            ("batch_size", c.batch_size, MAX_REQUEST_SIZE),
            ("max_in_flight", c.max_in_flight, 1024),
            ("buffer_memory", c.buffer_memory, usize::MAX),
            ("buffer_records", c.buffer_records, usize::MAX),
            ("max_request_size", c.max_request_size, MAX_REQUEST_SIZE),
            ("io_threads", c.io_threads, MAX_IO_THREADS),
            ("callback_threads", c.callback_threads, MAX_CALLBACK_THREADS),
            ("queue_capacity", c.queue_capacity, MAX_QUEUE_CAPACITY),
        ] {
            if v == 0 {
                return Err(Error::config(name, "must be at least 1"));
            }
            if v > max {
                return Err(Error::config(name, format!("{v} exceeds the limit {max}")));
            }
        }
        for (name, d) in [
            ("linger", c.linger),
            ("max_block", c.max_block),
            ("delivery_timeout", c.delivery_timeout),
            ("request_timeout", c.request_timeout),
            ("retry_backoff", c.retry_backoff),
            ("retry_backoff_max", c.retry_backoff_max),
            ("metadata_timeout", c.metadata_timeout),
            ("metadata_max_age", c.metadata_max_age),
            (
                "metadata_rebootstrap_trigger",
                c.metadata_rebootstrap_trigger,
            ),
            ("connection_setup_timeout", c.connection_setup_timeout),
            ("transaction_timeout", c.transaction_timeout),
        ] {
            if d > MAX_DURATION {
                return Err(Error::config(
                    name,
                    format!("{d:?} exceeds the limit of 2147483647 ms"),
                ));
            }
        }
        // Zero here would make a thread loop without waiting.
        for (name, d) in [
            ("request_timeout", c.request_timeout),
            ("retry_backoff", c.retry_backoff),
            ("retry_backoff_max", c.retry_backoff_max),
            ("metadata_max_age", c.metadata_max_age),
            (
                "metadata_rebootstrap_trigger",
                c.metadata_rebootstrap_trigger,
            ),
            ("connection_setup_timeout", c.connection_setup_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::config(name, "must be positive"));
            }
        }
        if c.idle_spin > MAX_IDLE_SPIN {
            return Err(Error::config(
                "idle_spin",
                format!("{:?} exceeds the limit of 1 s", c.idle_spin),
            ));
        }
        if c.batch_size > c.max_request_size {
            return Err(Error::config(
                "batch_size",
                format!(
                    "{} exceeds max_request_size {}",
                    c.batch_size, c.max_request_size
                ),
            ));
        }
        if c.max_request_size > c.buffer_memory {
            return Err(Error::config(
                "buffer_memory",
                format!(
                    "{} is smaller than max_request_size {}",
                    c.buffer_memory, c.max_request_size
                ),
            ));
        }
        if c.delivery_timeout < c.linger + c.request_timeout {
            return Err(Error::config(
                "delivery_timeout",
                format!(
                    "{:?} is shorter than linger + request_timeout ({:?})",
                    c.delivery_timeout,
                    c.linger + c.request_timeout
                ),
            ));
        }
        if c.retry_backoff > c.retry_backoff_max {
            return Err(Error::config("retry_backoff", "exceeds retry_backoff_max"));
        }
        if let Some(id) = &c.transactional_id {
            if id.is_empty() {
                return Err(Error::config("transactional_id", "must not be empty"));
            }
            if !c.idempotence {
                return Err(Error::config(
                    "idempotence",
                    "a transactional producer is idempotent (transactional_id is set)",
                ));
            }
            if c.transaction_timeout < Duration::from_millis(1) {
                return Err(Error::config(
                    "transaction_timeout",
                    "must be at least 1 ms",
                ));
            }
        }
        if c.idempotence {
            if c.acks != Acks::All {
                return Err(Error::config("idempotence", "requires acks=all"));
            }
            if c.max_in_flight > 5 {
                return Err(Error::config(
                    "max_in_flight",
                    "must be at most 5 with idempotence",
                ));
            }
        }
        CompressionConfig::new(c.compression.compression, c.compression.level)
            .map_err(|e| Error::config("compression_level", e.to_string()))?;
        c.security.validate()
    }
}

/// A user partitioner, kept out of the comparable [`ProducerConfig`].
#[derive(Clone)]
struct CustomPartitioner(Arc<dyn Partitioner>);

impl std::fmt::Debug for CustomPartitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomPartitioner")
    }
}

/// A user resolver, kept out of the comparable [`ProducerConfig`].
#[derive(Clone)]
struct CustomResolver(Arc<dyn Resolve>);

impl std::fmt::Debug for CustomResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomResolver")
    }
}

/// The user's interceptors, in order, kept out of the comparable [`ProducerConfig`].
#[derive(Clone, Default)]
struct CustomInterceptors(Vec<Arc<dyn crate::interceptor::ProducerInterceptor>>);

impl std::fmt::Debug for CustomInterceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|i| i.name()))
            .finish()
    }
}

/// Builds a [`ProducerConfig`]; [`build`](Self::build) validates every option once and names
/// the one at fault.
///
/// ```
/// use std::time::Duration;
/// use kprod::config::{Acks, ProducerConfigBuilder};
/// use kprod::protocol::compression::Compression;
/// let config = ProducerConfigBuilder::new()
///     .bootstrap_servers("localhost:9092")
///     .acks(Acks::All)
///     .linger(Duration::from_millis(5))
///     .batch_size(1 << 20)
///     .max_request_size(2 << 20)
///     .compression(Compression::Lz4)
///     .build_config()?;
/// assert!(config.idempotence);
/// # Ok::<(), kprod::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfigBuilder {
    c: ProducerConfig,
    /// A user-supplied partitioner, if any.
    custom_partitioner: Option<CustomPartitioner>,
    /// A user-supplied name resolver, if any.
    custom_resolver: Option<CustomResolver>,
    /// User-supplied interceptors, in order.
    interceptors: CustomInterceptors,
    /// Where spans and metrics go (feature `opentelemetry`).
    #[cfg(feature = "opentelemetry")]
    opentelemetry: Option<Arc<crate::otel::OpenTelemetry>>,
    /// The codec level as given, validated in `build`.
    compression_level: Option<i32>,
    /// Idempotence as set explicitly; `None` means "the default, unless acks/in-flight forbid".
    idempotence: Option<bool>,
    /// SASL settings as given, assembled in `build`.
    sasl: security::SaslParts,
}

impl Default for ProducerConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty; )*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.c.$name = value;
                self
            }
        )*
    };
}

impl ProducerConfigBuilder {
    /// Every option at its default.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ProducerConfigBuilder {
            c: ProducerConfig {
                bootstrap_servers: Vec::new(),
                client_id: "kprod".into(),
                acks: Acks::All,
                linger: Duration::from_millis(5),
                batch_size: 1_000_000,
                compression: CompressionConfig::default(),
                idempotence: true,
                max_in_flight: 5,
                buffer_memory: 64 << 20,
                buffer_records: 1_000_000,
                max_block: Duration::from_secs(60),
                delivery_timeout: Duration::from_secs(120),
                request_timeout: Duration::from_secs(30),
                retry_backoff: Duration::from_millis(100),
                retry_backoff_max: Duration::from_secs(1),
                metadata_timeout: Duration::from_secs(60),
                metadata_max_age: Duration::from_secs(300),
                metadata_rebootstrap: true,
                metadata_rebootstrap_trigger: Duration::from_secs(300),
                connection_setup_timeout: Duration::from_secs(10),
                max_request_size: 1 << 20,
                io_threads: cores,
                pin_threads: false,
                idle_spin: Duration::ZERO,
                callback_threads: 1,
                stage_sampling: 100,
                queue_capacity: 4096,
                partitioner: BuiltinPartitioner::Murmur2,
                partitioner_ignore_keys: false,
                partitioner_adaptive: false,
                partitioner_availability_timeout: Duration::ZERO,
                transactional_id: None,
                transaction_timeout: Duration::from_secs(60),
                security: SecurityConfig::default(),
            },
            sasl: security::SaslParts::default(),
            compression_level: None,
            idempotence: None,
            custom_partitioner: None,
            custom_resolver: None,
            interceptors: CustomInterceptors::default(),
            #[cfg(feature = "opentelemetry")]
            opentelemetry: None,
        }
    }

    /// Maximum throughput: acks from the leader, no idempotence, linger 10 ms, 1 MB batches,
    /// lz4, 5 requests in flight. Records can be lost if a leader fails before replicating.
    pub fn for_high_throughput() -> Self {
        Self::new()
            .acks(Acks::Leader)
            .idempotence(false)
            .linger(Duration::from_millis(10))
            .batch_size(1_000_000)
            .compression(Compression::Lz4)
    }

    /// Lowest latency: linger 0 (send as soon as the I/O thread is free), acks from the leader,
    /// no idempotence, no compression, 16 KiB batches, and I/O threads and waiting callers
    /// that spin 200 µs before they sleep ([`idle_spin`](Self::idle_spin): this costs CPU).
    pub fn for_low_latency() -> Self {
        Self::new()
            .acks(Acks::Leader)
            .idempotence(false)
            .linger(Duration::ZERO)
            .batch_size(16 * 1024)
            .compression(Compression::None)
            .idle_spin(LOW_LATENCY_SPIN)
    }

    /// No loss and no duplicates: acks from every in-sync replica, idempotence, at most 5
    /// requests in flight, retries until the 120 s delivery timeout.
    pub fn for_reliability() -> Self {
        Self::new()
            .acks(Acks::All)
            .idempotence(true)
            .max_in_flight(5)
            .delivery_timeout(Duration::from_secs(120))
    }

    /// Brokers to bootstrap from, comma-separated `host:port` (no default; required).
    pub fn bootstrap_servers(mut self, servers: &str) -> Self {
        self.c.bootstrap_servers = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        self
    }

    /// Client id sent to brokers. Default `kprod`.
    pub fn client_id(mut self, id: &str) -> Self {
        self.c.client_id = id.to_owned();
        self
    }

    /// Acknowledgements required. Default [`Acks::All`]. Setting `None` or `Leader` turns
    /// idempotence off unless it was enabled explicitly (which is then a configuration error).
    pub fn acks(mut self, acks: Acks) -> Self {
        self.c.acks = acks;
        self
    }

    /// Idempotent production. Default on (with `acks=all` and at most 5 requests in flight, as
    /// the Java client since 3.0).
    pub fn idempotence(mut self, on: bool) -> Self {
        self.idempotence = Some(on);
        self
    }

    /// Codec. Default [`Compression::None`].
    pub fn compression(mut self, codec: Compression) -> Self {
        self.c.compression.compression = codec;
        self
    }

    /// Codec level (gzip 1–9, lz4 1–17, zstd -131072–22). Default: the codec's default (gzip 6,
    /// zstd 3, lz4 its fast compressor).
    pub fn compression_level(mut self, level: i32) -> Self {
        self.compression_level = Some(level);
        self
    }

    setters! {
        /// How long to wait for more records before sending a batch that is not full. Default
        /// 5 ms.
        linger: Duration;
        /// Largest batch in bytes (records before compression). Default 1,000,000 (as
        /// librdkafka's `batch.size`). At most `max_request_size`.
        batch_size: usize;
        /// Most unanswered Produce requests per connection. Default 5; 1–5 with idempotence.
        max_in_flight: usize;
        /// Most bytes of records buffered and not yet acknowledged. Default 64 MiB.
        buffer_memory: usize;
        /// Most records buffered and not yet completed — delivery callbacks waiting to run
        /// count too. Default 1,000,000.
        buffer_records: usize;
        /// How long `send` blocks for room in the buffer. Default 60 s.
        max_block: Duration;
        /// Bound on the time from `send` to completion. Default 120 s; at least
        /// `linger + request_timeout`.
        delivery_timeout: Duration;
        /// How long to wait for one response. Default 30 s.
        request_timeout: Duration;
        /// First retry backoff. Default 100 ms.
        retry_backoff: Duration;
        /// Largest retry backoff. Default 1 s.
        retry_backoff_max: Duration;
        /// How long to wait for a topic's metadata. Default 60 s.
        metadata_timeout: Duration;
        /// Refresh metadata at least this often. Default 5 min.
        metadata_max_age: Duration;
        /// Once metadata has named the cluster's brokers, the producer asks them, not
        /// `bootstrap_servers`. With this on (Java's and librdkafka's
        /// `metadata.recovery.strategy=rebootstrap`), it starts again from
        /// `bootstrap_servers` (names resolved afresh) when metadata has been wanted for
        /// [`metadata_rebootstrap_trigger`](Self::metadata_rebootstrap_trigger) without any
        /// known broker giving it, or when a broker answers REBOOTSTRAP_REQUIRED; off
        /// (`none`), it keeps to the known brokers. Default on.
        metadata_rebootstrap: bool;
        /// See [`metadata_rebootstrap`](Self::metadata_rebootstrap)
        /// (`metadata.recovery.rebootstrap.trigger.ms`). Default 5 min.
        metadata_rebootstrap_trigger: Duration;
        /// How long resolving a broker's name and connecting to it (each resolved address in
        /// turn) may take before the attempt fails and backs off (Java's
        /// `socket.connection.setup.timeout.ms`). Default 10 s.
        connection_setup_timeout: Duration;
        /// Largest Produce request in bytes. Default 1 MiB (1,048,576).
        max_request_size: usize;
        /// I/O threads. Default: one per core.
        io_threads: usize;
        /// Pin each I/O thread to a core. Default off.
        pin_threads: bool;
        /// The idle strategy (property `kprod.idle.spin.us`): how long an I/O thread with
        /// nothing to do, and a caller blocked in [`produce`](crate::Producer::produce) or
        /// [`DeliveryHandle::wait`](crate::DeliveryHandle::wait), keep checking for work —
        /// a record to send, a response, the outcome — before they sleep, yielding the core
        /// between checks (whatever else is runnable there goes first). Spinning trades CPU
        /// for latency: a sleeping thread needs a wake-up (a system call for the waker, a
        /// scheduler pass for the sleeper, together some tens of µs); a spinning one sees the
        /// work within a microsecond. Each spinning thread keeps a core busy for up to this
        /// long after its last work, so with `produce()` in a loop that is one core for the
        /// I/O thread and one for the caller; give it spare cores. Default zero (sleep at
        /// once); [`for_low_latency`](Self::for_low_latency) sets 200 µs.
        idle_spin: Duration;
        /// Threads running delivery callbacks. Default 1. The callbacks of one acknowledged
        /// batch run on one of them, in the records' order.
        callback_threads: usize;
        /// Per-record stage latency (property `kprod.stage.sampling`): one record in this
        /// many, counted per calling thread, is timed from its `send` through each stage —
        /// enqueued → in a closed batch → written to the socket → acknowledged → its
        /// completion delivered — into [`MetricsSnapshot::stages`](crate::MetricsSnapshot).
        /// A sampled record costs its `send` one clock read; the others a thread-local
        /// counter. At most one record per batch is timed. Default 100; 0 turns it off.
        stage_sampling: u32;
        /// Records each partition's ring holds (allocated when the partition is first known).
        /// Default 4096. A topic's rings hold at most 65,536 records together: a topic of
        /// more than 16 partitions gets smaller rings (its share, at least 256 records each),
        /// so that 2,000 partitions cost ~70 MB of rings, not 1.1 GB. The buffer limits
        /// still apply across all partitions.
        queue_capacity: usize;
        /// Partitioner for records that name no partition. Default murmur2 (Java-compatible).
        /// Keyless records (and, with [`partitioner_ignore_keys`](Self::partitioner_ignore_keys),
        /// keyed ones) go by KIP-794's uniform sticky partitioner: to one partition until
        /// `batch_size` bytes of them have, then to the next partition that has a leader.
        partitioner: BuiltinPartitioner;
        /// Place keyed records as if they had no key (Java's `partitioner.ignore.keys`):
        /// spread evenly, with no per-key order. Default off.
        partitioner_ignore_keys: bool;
        /// Adaptive partitioning (Java's `partitioner.adaptive.partitioning.enable`): when the
        /// sticky partitioner moves on, it draws the next partition weighted against the
        /// batches waiting in each (`max + 1 − waiting`, as Java weighs them), so a broker
        /// that falls behind gets fewer keyless records; while the partitions' queues differ
        /// by less than two batches it goes on in turn. Keyed records are never moved.
        /// Default off (Java's is on): it follows every difference in queues, and on equal
        /// brokers under a fast sender those come and go — 12 partitions on three brokers of
        /// kprod's mock ended 13–50% apart where turns keep them within 5%. Turn it on
        /// where brokers differ for long (one slow or far away).
        partitioner_adaptive: bool;
        /// Java's `partitioner.availability.timeout.ms`: a partition whose leader has taken
        /// none of its waiting batches for this long gets no keyless records until it does
        /// (unless every partition is in that state). Default zero: off.
        partitioner_availability_timeout: Duration;
        /// How long the transaction coordinator lets a transaction stay open before it aborts
        /// it (`transaction.timeout.ms`; the broker caps it at its
        /// `transaction.max.timeout.ms`, 15 min by default). Default 60 s.
        transaction_timeout: Duration;
    }

    /// Makes the producer transactional (`transactional.id`): records go in transactions
    /// that commit or abort atomically across partitions and topics
    /// ([`Producer::init_transactions`](crate::Producer::init_transactions),
    /// [`begin_transaction`](crate::Producer::begin_transaction),
    /// [`commit_transaction`](crate::Producer::commit_transaction)). The id names the
    /// producer across restarts: a new producer with the same id fences the old one. A
    /// transactional producer is idempotent (an explicit `idempotence(false)` is refused).
    /// Default: none (not transactional).
    pub fn transactional_id(mut self, id: &str) -> Self {
        self.c.transactional_id = Some(id.to_string());
        self
    }

    /// Applies librdkafka / Java property names, e.g. `("linger.ms", "5")`. An unknown key or a
    /// value that does not parse is an error naming the key.
    ///
    /// ```
    /// use kprod::config::{Acks, ProducerConfigBuilder};
    /// let c = ProducerConfigBuilder::new()
    ///     .from_properties([("bootstrap.servers", "b1:9092,b2:9092"), ("acks", "1"),
    ///                       ("compression.type", "zstd"), ("linger.ms", "20")])?
    ///     .build_config()?;
    /// assert_eq!((c.acks, c.bootstrap_servers.len(), c.idempotence), (Acks::Leader, 2, false));
    /// let e = ProducerConfigBuilder::new().from_properties([("lingr.ms", "5")]).unwrap_err();
    /// assert!(e.to_string().contains("lingr.ms"));
    /// # Ok::<(), kprod::Error>(())
    /// ```
    pub fn from_properties<K, V>(
        mut self,
        props: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (k, v) in props {
            let (key, value) = (k.as_ref(), v.as_ref().trim());
            if self.security_property(key, value)? {
                continue;
            }
            let bad = |why: &str| Error::config(key, format!("{value:?}: {why}"));
            let num = || {
                value
                    .parse::<u64>()
                    .map_err(|_| bad("not a non-negative integer"))
            };
            let ms = || num().map(Duration::from_millis);
            let flag = || match value {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad("expected true or false")),
            };
            self = match key {
                "bootstrap.servers" | "metadata.broker.list" => self.bootstrap_servers(value),
                "client.id" => self.client_id(value),
                "acks" | "request.required.acks" => self.acks(match value {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => return Err(bad("expected 0, 1, all or -1")),
                }),
                "enable.idempotence" => self.idempotence(flag()?),
                "transactional.id" => self.transactional_id(value),
                "transaction.timeout.ms" => self.transaction_timeout(ms()?),
                "linger.ms" | "queue.buffering.max.ms" => self.linger(ms()?),
                "batch.size" => self.batch_size(num()? as usize),
                "compression.type" | "compression.codec" => self.compression(
                    Compression::from_name(value)
                        .ok_or_else(|| bad("expected none, gzip, snappy, lz4 or zstd"))?,
                ),
                "compression.level"
                | "compression.gzip.level"
                | "compression.lz4.level"
                | "compression.zstd.level" => {
                    let level = value.parse::<i32>().map_err(|_| bad("not an integer"))?;
                    // librdkafka's -1 means "the codec's default".
                    if level == -1 && key == "compression.level" {
                        self
                    } else {
                        self.compression_level(level)
                    }
                }
                "max.in.flight.requests.per.connection" | "max.in.flight" => {
                    self.max_in_flight(num()? as usize)
                }
                "buffer.memory" => self.buffer_memory(num()? as usize),
                "queue.buffering.max.kbytes" => self.buffer_memory(num()? as usize * 1024),
                "queue.buffering.max.messages" => self.buffer_records(num()? as usize),
                "max.block.ms" => self.max_block(ms()?),
                "delivery.timeout.ms" | "message.timeout.ms" => self.delivery_timeout(ms()?),
                "request.timeout.ms" => self.request_timeout(ms()?),
                "retry.backoff.ms" => self.retry_backoff(ms()?),
                "retry.backoff.max.ms" => self.retry_backoff_max(ms()?),
                "metadata.max.age.ms" => self.metadata_max_age(ms()?),
                "metadata.recovery.strategy" => self.metadata_rebootstrap(match value {
                    "rebootstrap" => true,
                    "none" => false,
                    _ => return Err(bad("expected rebootstrap or none")),
                }),
                "metadata.recovery.rebootstrap.trigger.ms" => {
                    self.metadata_rebootstrap_trigger(ms()?)
                }
                "socket.connection.setup.timeout.ms" => self.connection_setup_timeout(ms()?),
                "kprod.idle.spin.us" => self.idle_spin(Duration::from_micros(num()?)),
                "kprod.stage.sampling" => self.stage_sampling(num()? as u32),
                "partitioner.ignore.keys" => self.partitioner_ignore_keys(flag()?),
                "partitioner.adaptive.partitioning.enable" => self.partitioner_adaptive(flag()?),
                "partitioner.availability.timeout.ms" => {
                    self.partitioner_availability_timeout(ms()?)
                }
                // kprod always tries every address a name resolves to, in order (the Java
                // client's default).
                "client.dns.lookup" => match value {
                    "use_all_dns_ips" | "default" => self,
                    _ => return Err(bad("kprod supports use_all_dns_ips only")),
                },
                "max.request.size" | "message.max.bytes" => self.max_request_size(num()? as usize),
                "partitioner" => {
                    self.partitioner(BuiltinPartitioner::from_name(value).ok_or_else(|| {
                        bad("expected murmur2, murmur2_random, consistent or consistent_random")
                    })?)
                }
                _ => return Err(Error::config(key, "unknown property")),
            };
        }
        Ok(self)
    }

    /// Places records that name no partition with `partitioner` (a type implementing
    /// [`Partitioner`], or a closure `Fn(&str, Option<&[u8]>, u32) -> Option<u32>`) instead of
    /// the built-in one. Default: none (the built-in [`partitioner`](Self::partitioner)).
    pub fn custom_partitioner(mut self, partitioner: impl Partitioner + 'static) -> Self {
        self.custom_partitioner = Some(CustomPartitioner(Arc::new(partitioner)));
        self
    }

    pub(crate) fn custom_partitioner_ref(&self) -> Option<Arc<dyn Partitioner>> {
        self.custom_partitioner.as_ref().map(|c| c.0.clone())
    }

    /// Resolves broker names with `resolver` (a type implementing [`Resolve`], or a closure
    /// `Fn(&str, u16) -> io::Result<Vec<SocketAddr>>`) instead of the system resolver. It
    /// runs on resolver threads, never an I/O thread; each address it returns is tried in
    /// order. Default: none (the system resolver; IP addresses need no lookup).
    pub fn resolver(mut self, resolver: impl Resolve + 'static) -> Self {
        self.custom_resolver = Some(CustomResolver(Arc::new(resolver)));
        self
    }

    /// Adds `interceptor` after those already added: its `on_send` sees each record before
    /// partitioning, its `on_acknowledgement` each outcome, once (see
    /// [`crate::interceptor`]). Default: none — and with none, the send path is as without
    /// this feature.
    pub fn interceptor(
        mut self,
        interceptor: impl crate::interceptor::ProducerInterceptor,
    ) -> Self {
        self.interceptors.0.push(Arc::new(interceptor));
        self
    }

    /// Reports each record as an OpenTelemetry producer span (its trace context written into
    /// the record's `traceparent` and `tracestate` headers) and the producer's metrics through
    /// a `Meter` (see [`crate::otel`]). Feature `opentelemetry`. Default: none — and with
    /// none, the send path is as without the feature.
    #[cfg(feature = "opentelemetry")]
    pub fn opentelemetry(mut self, otel: crate::otel::OpenTelemetry) -> Self {
        self.opentelemetry = Some(Arc::new(otel));
        self
    }

    #[cfg(feature = "opentelemetry")]
    pub(crate) fn opentelemetry_ref(&self) -> Option<Arc<crate::otel::OpenTelemetry>> {
        self.opentelemetry.clone()
    }

    pub(crate) fn interceptors_ref(&self) -> Vec<Arc<dyn crate::interceptor::ProducerInterceptor>> {
        self.interceptors.0.clone()
    }

    pub(crate) fn custom_resolver_ref(&self) -> Option<Arc<dyn Resolve>> {
        self.custom_resolver.as_ref().map(|c| c.0.clone())
    }

    /// Validates every option and returns the configuration, or an error naming the option.
    /// ([`build`](Self::build) does this and starts a producer.)
    pub fn build_config(self) -> Result<ProducerConfig, Error> {
        let mut c = self.c;
        c.compression = CompressionConfig::new(c.compression.compression, self.compression_level)
            .map_err(|e| Error::config("compression_level", e.to_string()))?;
        // Idempotence: explicit conflicts are errors; the default gives way (as the Java client).
        // (`validate` refuses an explicit `true` that acks or max_in_flight contradict.)
        c.idempotence = match self.idempotence {
            Some(on) => on,
            // A transactional producer is idempotent (its explicit `false` is refused).
            None => c.transactional_id.is_some() || (c.acks == Acks::All && c.max_in_flight <= 5),
        };
        c.security.sasl = self.sasl.build()?;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ProducerConfigBuilder {
        ProducerConfigBuilder::new().bootstrap_servers("localhost:9092")
    }

    fn option_of(e: Error) -> String {
        match e {
            Error::Config { option, .. } => option,
            other => panic!("not a config error: {other}"),
        }
    }

    #[test]
    fn defaults() {
        let c = base().build_config().unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.idempotence);
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.compression.compression, Compression::None);
        assert!(c.io_threads >= 1);
    }

    #[test]
    fn invalid_options_are_named() {
        let cases: Vec<(ProducerConfigBuilder, &str)> = vec![
            (ProducerConfigBuilder::new(), "bootstrap_servers"),
            (
                ProducerConfigBuilder::new().bootstrap_servers("nohost"),
                "bootstrap_servers",
            ),
            (
                ProducerConfigBuilder::new().bootstrap_servers("h:0"),
                "bootstrap_servers",
            ),
            (base().batch_size(0), "batch_size"),
            (base().batch_size(2 << 20), "batch_size"),
            (base().io_threads(0), "io_threads"),
            (base().buffer_memory(1000), "buffer_memory"),
            (
                base().delivery_timeout(Duration::from_secs(1)),
                "delivery_timeout",
            ),
            (
                base().compression(Compression::Gzip).compression_level(10),
                "compression_level",
            ),
            (
                base().compression(Compression::Snappy).compression_level(1),
                "compression_level",
            ),
            (base().idempotence(true).acks(Acks::Leader), "idempotence"),
            (base().idempotence(true).max_in_flight(6), "max_in_flight"),
            (
                base().retry_backoff(Duration::from_secs(5)),
                "retry_backoff",
            ),
        ];
        for (b, want) in cases {
            assert_eq!(option_of(b.build_config().unwrap_err()), want);
        }
    }

    /// Values that would break a thread (divide by zero, allocate without bound, overflow a
    /// deadline, loop without waiting) are refused at build, naming the option.
    #[test]
    fn values_that_would_break_a_thread_are_refused() {
        let long = MAX_DURATION + Duration::from_millis(1);
        let cases: Vec<(ProducerConfigBuilder, &str)> = vec![
            (base().io_threads(0), "io_threads"),
            (base().io_threads(MAX_IO_THREADS + 1), "io_threads"),
            (base().queue_capacity(0), "queue_capacity"),
            (base().queue_capacity(usize::MAX), "queue_capacity"),
            (base().callback_threads(0), "callback_threads"),
            (base().callback_threads(1 << 20), "callback_threads"),
            (base().max_in_flight(0), "max_in_flight"),
            (base().buffer_records(0), "buffer_records"),
            (base().linger(Duration::MAX), "linger"),
            (base().max_block(long), "max_block"),
            (base().delivery_timeout(Duration::MAX), "delivery_timeout"),
            (base().request_timeout(Duration::ZERO), "request_timeout"),
            (base().request_timeout(long), "request_timeout"),
            (base().retry_backoff(Duration::ZERO), "retry_backoff"),
            (base().metadata_max_age(Duration::ZERO), "metadata_max_age"),
            (base().metadata_timeout(long), "metadata_timeout"),
            (
                base().idle_spin(MAX_IDLE_SPIN + Duration::from_nanos(1)),
                "idle_spin",
            ),
        ];
        for (b, want) in cases {
            assert_eq!(option_of(b.build_config().unwrap_err()), want, "{want}");
        }
    }

    /// The fields are public: a configuration changed after building is checked again.
    #[test]
    fn a_config_changed_after_build_is_checked_again() {
        let good = base().build_config().unwrap();
        type Break = fn(&mut ProducerConfig);
        let cases: [(Break, &str); 5] = [
            (|c| c.io_threads = 0, "io_threads"),
            (|c| c.queue_capacity = 0, "queue_capacity"),
            (|c| c.acks = Acks::Leader, "idempotence"),
            (|c| c.linger = Duration::MAX, "linger"),
            (|c| c.bootstrap_servers.clear(), "bootstrap_servers"),
        ];
        for (f, want) in cases {
            let mut c = good.clone();
            f(&mut c);
            assert_eq!(option_of(c.validate().unwrap_err()), want);
            assert_eq!(option_of(crate::Producer::new(c).err().unwrap()), want);
        }
        good.validate().unwrap();
    }

    #[test]
    fn default_idempotence_gives_way_to_acks_and_in_flight() {
        assert!(
            !base()
                .acks(Acks::Leader)
                .build_config()
                .unwrap()
                .idempotence
        );
        assert!(!base().max_in_flight(10).build_config().unwrap().idempotence);
        assert!(
            !base()
                .idempotence(false)
                .build_config()
                .unwrap()
                .idempotence
        );
    }

    #[test]
    fn presets() {
        let t = ProducerConfigBuilder::for_high_throughput()
            .bootstrap_servers("h:1")
            .build_config()
            .unwrap();
        assert_eq!(
            (t.acks, t.idempotence, t.compression.compression),
            (Acks::Leader, false, Compression::Lz4)
        );
        let l = ProducerConfigBuilder::for_low_latency()
            .bootstrap_servers("h:1")
            .build_config()
            .unwrap();
        assert_eq!((l.linger, l.idempotence), (Duration::ZERO, false));
        assert_eq!(l.idle_spin, LOW_LATENCY_SPIN);
        assert_eq!(base().build_config().unwrap().idle_spin, Duration::ZERO);
        let r = ProducerConfigBuilder::for_reliability()
            .bootstrap_servers("h:1")
            .build_config()
            .unwrap();
        assert_eq!((r.acks, r.idempotence), (Acks::All, true));
    }

    #[test]
    fn properties() {
        let c = base()
            .from_properties([
                ("linger.ms", "7"),
                ("compression.codec", "gzip"),
                ("compression.level", "9"),
                ("enable.idempotence", "false"),
                ("queue.buffering.max.kbytes", "4096"),
                ("partitioner", "consistent_random"),
                ("message.timeout.ms", "60000"),
                ("socket.connection.setup.timeout.ms", "2500"),
                ("client.dns.lookup", "use_all_dns_ips"),
                ("kprod.idle.spin.us", "150"),
                ("kprod.stage.sampling", "7"),
                ("partitioner.ignore.keys", "true"),
                ("partitioner.adaptive.partitioning.enable", "true"),
                ("partitioner.availability.timeout.ms", "250"),
            ])
            .unwrap()
            .build_config()
            .unwrap();
        assert_eq!(c.connection_setup_timeout, Duration::from_millis(2500));
        assert_eq!(c.idle_spin, Duration::from_micros(150));
        assert_eq!(c.stage_sampling, 7);
        assert!(c.partitioner_ignore_keys);
        assert!(c.partitioner_adaptive);
        assert_eq!(
            c.partitioner_availability_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(c.linger, Duration::from_millis(7));
        assert_eq!(
            c.compression,
            CompressionConfig::new(Compression::Gzip, Some(9)).unwrap()
        );
        assert_eq!(c.buffer_memory, 4096 * 1024);
        assert_eq!(c.partitioner, BuiltinPartitioner::Crc32);
        assert_eq!(c.delivery_timeout, Duration::from_secs(60));
        assert!(!c.idempotence);
        for (k, v) in [
            ("linger.ms", "soon"),
            ("acks", "2"),
            ("enable.idempotence", "yes"),
            (
                "client.dns.lookup",
                "resolve_canonical_bootstrap_servers_only",
            ),
            ("no.such", "1"),
        ] {
            assert_eq!(option_of(base().from_properties([(k, v)]).unwrap_err()), k);
        }
    }
}
