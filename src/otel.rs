//! OpenTelemetry (cargo feature `opentelemetry`): a producer span per record with W3C trace
//! context in the record's headers, and the producer's metrics through an OTel `Meter`.
//!
//! Register it on the builder with
//! [`ProducerConfigBuilder::opentelemetry`](crate::ProducerConfigBuilder::opentelemetry):
//!
//! - **Trace context.** Every record sent gets a `traceparent` header (and `tracestate`, when
//!   the span has one) naming its producer span, a child of the caller's current context
//!   ([`opentelemetry::Context::current`]), sampled or not, as the W3C Trace Context
//!   specification has it — so a consumer continues the caller's trace. A `traceparent` or
//!   `tracestate` the record already carries is replaced.
//! - **Spans.** The span follows the OpenTelemetry messaging semantic conventions: name
//!   `send {topic}`, kind `Producer`, `messaging.system=kafka`,
//!   `messaging.operation.name=send`, `messaging.operation.type=send`,
//!   `messaging.destination.name`, and, when it is recorded, `messaging.kafka.message.key`
//!   (a UTF-8 key), `messaging.client.id`, `messaging.message.body.size`; at the
//!   acknowledgement `messaging.destination.partition.id` and `messaging.kafka.offset`, or on
//!   failure `error.type` ([`Error::error_type`](crate::Error::error_type)), the error as an exception event and an
//!   error status. It ends when the record completes. The application's sampler decides; a
//!   record whose span is not recorded costs a span context and its header, and completes
//!   as without OpenTelemetry (a recorded one completes on the callback pool). A dropped
//!   root (no caller's span) of a record with no headers of its own carries its trace id
//!   inline, its span id derived from it, and allocates nothing: nothing records that span,
//!   so no other span can name it. With
//!   [`head_sampling`](OpenTelemetry::head_sampling) kprod decides first and the SDK sees
//!   only the records kept: the others cost their header and no allocation.
//! - **Metrics** (observed from [`Producer::metrics`](crate::Producer::metrics) when the
//!   meter provider collects, so the values are the snapshot's): the conventions'
//!   `messaging.client.sent.messages` per topic and partition (with `error.type=_OTHER` for
//!   the failed ones) and `messaging.client.operation.duration` (the records timed through
//!   their stages, [`stage_sampling`](crate::ProducerConfigBuilder::stage_sampling)), and
//!   kprod's own `kprod.producer.*`: queue depth, records in flight, buffer use, batches,
//!   batch bytes before and after compression, compression ratio, request latency per broker,
//!   retries, epoch bumps.
//!
//! ```
//! # #[cfg(feature = "mock")] {
//! use kprod::otel::OpenTelemetry;
//! let cluster = kprod::mock::MockCluster::builder().topic("t", 1).build().unwrap();
//! let p = kprod::Producer::builder()
//!     .bootstrap_servers(&cluster.bootstrap_servers())
//!     // The providers the application installed in `opentelemetry::global`.
//!     .opentelemetry(OpenTelemetry::global())
//!     .build()
//!     .unwrap();
//! p.produce("t", "k", "v").unwrap();
//! # }
//! ```

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use opentelemetry::metrics::{Histogram, Meter, MeterProvider};
use opentelemetry::trace::{
    Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

use crate::delivery::{Completer, DeliveryResult};
use crate::engine::headers::{root_span_id, Headers, TraceContext};
use crate::engine::Shared;
use crate::protocol::record_batch::Header;

/// The name and version the producer's spans and instruments are reported under.
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("kprod")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
        .build()
}

/// Starts a record's span under the caller's current context: its span context, its
/// completer (which ends the span, when it is recorded), whether it is recorded, and whether
/// it is a root (no valid parent). Built for the concrete tracer type, so an unrecorded span
/// is never boxed, and a recorded one is boxed once, with the completer it wraps.
type Starter = dyn Fn(&Outgoing<'_>, Completer) -> Started + Send + Sync;

/// What [`Starter`] gives back: (span context, completer, recorded, root).
type Started = (SpanContext, Completer, bool, bool);

/// A record as its span sees it.
struct Outgoing<'a> {
    topic: &'a str,
    /// The topic's name as the producer shares it (no copy per span), asked for only when the
    /// span is recorded.
    shared_topic: &'a dyn Fn() -> Arc<str>,
    key: Option<&'a [u8]>,
    /// The value's length.
    body: usize,
    client_id: Option<&'a Arc<str>>,
    /// kprod's head sampling kept the record: its span will be recorded, so its name and
    /// attributes go in with its start (one vector of the right size) rather than after.
    kept: bool,
}

impl Outgoing<'_> {
    /// The span's name, `send {topic}`.
    fn span_name(&self) -> String {
        // Not `format!`: its machinery costs more than the copy.
        let mut name = String::with_capacity("send ".len() + self.topic.len());
        name.push_str("send ");
        name.push_str(self.topic);
        name
    }

    /// The span's attributes at its start; `room` more are set when it ends.
    fn attributes(&self, room: usize) -> Vec<KeyValue> {
        let mut all = Vec::with_capacity(7 + room);
        self.each_attribute(|kv| all.push(kv));
        all
    }

    fn each_attribute(&self, mut f: impl FnMut(KeyValue)) {
        f(system());
        f(operation());
        f(operation_type());
        f(KeyValue::new(
            "messaging.destination.name",
            (self.shared_topic)(),
        ));
        f(KeyValue::new(
            "messaging.message.body.size",
            self.body as i64,
        ));
        if let Some(key) = self.key.and_then(|k| std::str::from_utf8(k).ok()) {
            f(KeyValue::new(
                "messaging.kafka.message.key",
                key.to_string(),
            ));
        }
        if let Some(id) = self.client_id {
            f(KeyValue::new("messaging.client.id", id.clone()));
        }
    }
}

/// Where the producer's spans and metrics go: a tracer provider, a meter provider, either
/// or both. See the [module](self) for what is reported.
pub struct OpenTelemetry {
    tracer: Option<Box<Starter>>,
    meter: Option<Meter>,
    /// [`head_sampling`](Self::head_sampling)'s bound on a random 63-bit number; `None`:
    /// every record goes to the tracer.
    head: Option<u64>,
    /// [`propagate_dropped_roots`](Self::propagate_dropped_roots).
    dropped_roots: bool,
}

impl std::fmt::Debug for OpenTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTelemetry")
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("head_sampling", &self.head.is_some())
            .field("propagate_dropped_roots", &self.dropped_roots)
            .finish()
    }
}

impl OpenTelemetry {
    /// Neither traces nor metrics; add them with [`traces`](Self::traces) and
    /// [`metrics`](Self::metrics).
    pub fn new() -> Self {
        OpenTelemetry {
            tracer: None,
            meter: None,
            head: None,
            dropped_roots: true,
        }
    }

    /// Both, from the providers installed in [`opentelemetry::global`] (no-ops until the
    /// application installs some). The global tracer boxes each span; a provider given to
    /// [`traces`](Self::traces) does not.
    pub fn global() -> Self {
        let tracer = opentelemetry::global::tracer_provider().tracer_with_scope(scope());
        OpenTelemetry {
            tracer: Some(starter(tracer)),
            meter: Some(opentelemetry::global::meter_with_scope(scope())),
            head: None,
            dropped_roots: true,
        }
    }

    /// Spans through `provider` (an SDK `SdkTracerProvider`, say): its sampler decides which
    /// records' spans are recorded. Keep the application's handle to the provider for as
    /// long as the producer runs: the SDK shuts a provider down when that handle is dropped,
    /// and spans ended after that are not exported.
    pub fn traces<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        self.tracer = Some(starter(provider.tracer_with_scope(scope())));
        self
    }

    /// kprod samples records itself, before the tracer sees them, with the rule of the SDK's
    /// `Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))`: a record whose
    /// caller's span is sampled, or, with no caller's span, one in `ratio` of them, goes to
    /// the tracer as without this setting; every other record gets a span context kprod
    /// makes — the caller's trace id (or a new random one, its low 8 bytes deciding as
    /// `TraceIdRatioBased` does), a new span id, flags `00`, the caller's `tracestate` — and
    /// its `traceparent` header, without a call into the SDK. Default: off, every record goes
    /// to the tracer and the tracer's sampler decides.
    ///
    /// Why: a span the SDK drops still costs its builder, its span and their moves; a record
    /// with no headers of its own and no caller's span then carries its trace context inline
    /// and allocates nothing (BENCHMARKS.md, "Issue #19"). The tracer's sampler still decides
    /// for the records kprod keeps, so give the provider one that keeps them (`AlwaysOn`, or
    /// `ParentBased(AlwaysOn)`): a `TraceIdRatioBased(ratio)` there too samples
    /// `ratio × ratio`. The span ids of the records kprod drops come from kprod's generator,
    /// not the provider's `IdGenerator`. `ratio` is clamped to `0.0..=1.0` (NaN: `0.0`).
    ///
    /// ```
    /// # #[cfg(feature = "mock")] {
    /// use kprod::otel::OpenTelemetry;
    /// let cluster = kprod::mock::MockCluster::builder().topic("t", 1).build().unwrap();
    /// // One record in a hundred traced; the provider keeps what kprod gives it.
    /// let otel = OpenTelemetry::global().head_sampling(0.01);
    /// let p = kprod::Producer::builder()
    ///     .bootstrap_servers(&cluster.bootstrap_servers())
    ///     .opentelemetry(otel)
    ///     .build()
    ///     .unwrap();
    /// p.produce("t", "k", "v").unwrap();
    /// # }
    /// ```
    pub fn head_sampling(mut self, ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        // As the SDK's `TraceIdRatioBased`: sampled when `low >> 1 < bound`; 1.0 keeps all.
        self.head = Some(if ratio >= 1.0 {
            u64::MAX
        } else {
            (ratio * (1u64 << 63) as f64) as u64
        });
        self
    }

    /// With [`head_sampling`](Self::head_sampling): whether a record kprod drops that has no
    /// caller's span still gets a `traceparent` (flags `00`, a trace of its own). Default:
    /// `true`, as the W3C and OpenTelemetry specifications have it — a consumer whose sampler
    /// follows its parent then drops the trace too. `false` leaves such a record's headers as
    /// the caller gave them: a consumer starts a trace of its own, and the record is ~70 bytes
    /// shorter. The header is most of tracing's cost on a small record, and most of all on a
    /// compressed topic: its trace id is random, so no codec shrinks it — with zstd, 100 B
    /// records that compress well cost ~3× the CPU with a header on each, and their
    /// compressed batches grow many times over (BENCHMARKS.md, "Issue #19's cost across the
    /// whole send matrix"). Records under a caller's span, sampled or not, and records kprod
    /// keeps always carry their context.
    ///
    /// ```
    /// use kprod::otel::OpenTelemetry;
    /// let otel = OpenTelemetry::global()
    ///     .head_sampling(0.01)
    ///     .propagate_dropped_roots(false);
    /// # let _ = otel;
    /// ```
    pub fn propagate_dropped_roots(mut self, on: bool) -> Self {
        self.dropped_roots = on;
        self
    }

    /// Metrics through `provider`, observed when it collects.
    pub fn metrics(mut self, provider: &impl MeterProvider) -> Self {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }
}

impl Default for OpenTelemetry {
    fn default() -> Self {
        OpenTelemetry::new()
    }
}

// Static keys and values: no allocation.
fn system() -> KeyValue {
    KeyValue::new("messaging.system", "kafka")
}
fn operation() -> KeyValue {
    KeyValue::new("messaging.operation.name", "send")
}
fn operation_type() -> KeyValue {
    KeyValue::new("messaging.operation.type", "send")
}

/// The span starter for `tracer`. Unless kprod's head sampling kept the record, the sampler
/// sees the name `send` and the kind `Producer`, and the name gets its topic and the span its
/// attributes once it is known to be recorded, so that an unrecorded span allocates nothing
/// (the conventions recommend attributes at creation for samplers; with 99% of records
/// unsampled, the allocations cost more).
fn starter<T>(tracer: T) -> Box<Starter>
where
    T: Tracer + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    // Set when the span ends (`finish`): partition and offset.
    const AT_END: usize = 2;
    Box::new(move |r: &Outgoing<'_>, completer| {
        let (mut span, root) = Context::map_current(|parent| {
            let mut builder = tracer.span_builder("send").with_kind(SpanKind::Producer);
            if r.kept {
                builder.name = r.span_name().into();
                builder.attributes = Some(r.attributes(AT_END));
            }
            let root = !parent.span().span_context().is_valid();
            (tracer.build_with_context(builder, parent), root)
        });
        let cx = span.span_context().clone();
        if !span.is_recording() {
            // Nothing to end: the record completes as it would without tracing.
            return (cx, completer, false, root);
        }
        if !r.kept {
            span.update_name(r.span_name());
            r.each_attribute(|kv| span.set_attribute(kv));
        }
        let completer = completer.observed(move |result: &DeliveryResult, acknowledged| {
            finish(&mut span, result, acknowledged)
        });
        (cx, completer, true, root)
    })
}

/// The producer's side of [`OpenTelemetry`], kept in its shared state.
pub(crate) struct Telemetry {
    otel: Arc<OpenTelemetry>,
    /// `otel`'s head sampling bound and dropped roots setting, kept here for the send path.
    head: Option<u64>,
    dropped_roots: bool,
    client_id: Option<Arc<str>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.otel.tracer.is_some())
            .finish()
    }
}

impl Telemetry {
    /// The tracing half; `None` if `otel` has no tracer. The metrics half is registered by
    /// [`register_metrics`] once the producer's state exists.
    pub fn new(otel: &Arc<OpenTelemetry>, client_id: Option<String>) -> Option<Telemetry> {
        otel.tracer.is_some().then(|| Telemetry {
            otel: otel.clone(),
            head: otel.head,
            dropped_roots: otel.dropped_roots,
            client_id: client_id.map(Arc::from),
        })
    }

    /// Head sampling's common case, decided in line on the send path: a record with no
    /// caller's span that kprod drops (99 in 100 at 1%) costs one look at the current context
    /// and one random number, and the caller builds its headers from the answer without a
    /// call ([`Fast::Plain`], [`Fast::Root`]). Anything else goes to [`start`](Self::start).
    #[inline]
    pub fn fast(&self) -> Fast {
        let Some(bound) = self.head else {
            return Fast::Decide;
        };
        if Context::map_current(|cx| cx.has_active_span()) {
            return Fast::Decide;
        }
        let low = random_u64();
        if keeps_root(low, bound) {
            Fast::Kept
        } else if self.dropped_roots {
            Fast::Root(dropped_trace_id(low))
        } else {
            Fast::Plain
        }
    }

    /// Starts the producer span of a record (`topic`, `key`, a value of `body` bytes) under
    /// the caller's current context, gives back `headers` carrying its trace context and,
    /// when the span is recorded, `completer` wrapped to end it with the outcome. `fast` is
    /// what [`fast`](Self::fast) said.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        fast: Fast,
        shared: &Shared,
        topic: &str,
        key: Option<&[u8]>,
        body: usize,
        headers: Vec<Header>,
        completer: Completer,
    ) -> (Headers, Completer) {
        match fast {
            Fast::Plain => (headers.into(), completer),
            Fast::Root(trace_id) => (traced_root(trace_id, headers), completer),
            // A root kprod keeps: the tracer starts its span.
            Fast::Kept => self.trace(shared, topic, key, body, headers, completer),
            Fast::Decide => self.start_slow(shared, topic, key, body, headers, completer),
        }
    }

    /// [`start`](Self::start) for a record under a caller's span, or without head sampling.
    fn start_slow(
        &self,
        shared: &Shared,
        topic: &str,
        key: Option<&[u8]>,
        body: usize,
        headers: Vec<Header>,
        completer: Completer,
    ) -> (Headers, Completer) {
        if let Some(bound) = self.head {
            match Context::map_current(|cx| head_decision(cx, bound)) {
                Head::Tracer => {}
                Head::Root(_) if !self.dropped_roots => return (headers.into(), completer),
                Head::Root(trace_id) => return (traced_root(trace_id, headers), completer),
                Head::Child(cx) => return (inject(headers, &cx), completer),
            }
        }
        self.trace(shared, topic, key, body, headers, completer)
    }

    /// The tracer starts the record's span: past head sampling (which kept it), or deciding
    /// itself.
    fn trace(
        &self,
        shared: &Shared,
        topic: &str,
        key: Option<&[u8]>,
        body: usize,
        headers: Vec<Header>,
        completer: Completer,
    ) -> (Headers, Completer) {
        let Some(start) = &self.otel.tracer else {
            return (headers.into(), completer);
        };
        // The topic table's name: a reference counted, not a copy (one known before this
        // record has one there already, or the call creates it; a name copied otherwise).
        let shared_topic = || {
            shared
                .topics
                .load()
                .get(topic)
                .map_or_else(|| Arc::from(topic), |t| t.name.clone())
        };
        let record = Outgoing {
            topic,
            shared_topic: &shared_topic,
            key,
            body,
            client_id: self.client_id.as_ref(),
            // Past head sampling's decision only if it kept the record.
            kept: self.head.is_some(),
        };
        let (cx, completer, recorded, root) = start(&record, completer);
        if !recorded && root && headers.is_empty() && is_plain_unsampled(&cx) {
            // A root span the sampler dropped: nothing records it, so nothing can refer to
            // its span id but this record's consumers. Its trace id rides inline and its span
            // id is derived from it, as for head sampling's dropped roots: no allocation for
            // the 99% of records a 1% sampler drops (its own id stays with the SDK's span,
            // which ends here unrecorded).
            return (Headers::Root(cx.trace_id().to_bytes()), completer);
        }
        (inject(headers, &cx), completer)
    }
}

/// What [`Telemetry::fast`] decided for a record.
pub(crate) enum Fast {
    /// Dropped, no caller's span, no `traceparent` ([`OpenTelemetry::propagate_dropped_roots`]
    /// off): the caller's headers as they are.
    Plain,
    /// Dropped, no caller's span: the trace context of a root span with this trace id
    /// ([`Headers::Root`] when the caller gave no headers).
    Root([u8; 16]),
    /// Kept, no caller's span: the tracer starts the span.
    Kept,
    /// Under a caller's span, or no head sampling: [`Telemetry::start`] decides.
    Decide,
}

/// Whether head sampling keeps a root whose random low 8 bytes of trace id are `low`: as the
/// SDK's `TraceIdRatioBased`, when `low >> 1` is below `bound` (`u64::MAX` keeps all).
#[inline]
fn keeps_root(low: u64, bound: u64) -> bool {
    bound == u64::MAX || low >> 1 < bound
}

/// The trace id of a root head sampling dropped: `low` (its decided low 8 bytes) and 8 more
/// drawn now. Never all zero: `low` is not below the bound, so it is not 0 unless the bound
/// is 0.
fn dropped_trace_id(low: u64) -> [u8; 16] {
    let high = random_u64() | u64::from(low == 0);
    ((u128::from(high) << 64) | u128::from(low)).to_be_bytes()
}

/// `headers` with the trace context of a dropped root span of `trace_id` (its span id derived
/// from it, as [`Headers::Root`]'s).
fn traced_root(trace_id: [u8; 16], headers: Vec<Header>) -> Headers {
    if headers.is_empty() {
        return Headers::Root(trace_id);
    }
    let context = TraceContext {
        trace_id,
        span_id: root_span_id(&trace_id),
        flags: 0,
        state: None,
    };
    Headers::traced(headers, context)
}

/// A valid, unsampled context with no `tracestate`: what [`Headers::Root`] stands for.
fn is_plain_unsampled(cx: &SpanContext) -> bool {
    cx.is_valid() && !cx.is_sampled() && cx.trace_state().header().is_empty()
}

/// What [`OpenTelemetry::head_sampling`] decided for a record.
enum Head {
    /// Sampled: the tracer starts its span.
    Tracer,
    /// Dropped, no caller's span: a root span with this trace id ([`Headers::Root`]).
    Root([u8; 16]),
    /// Dropped, under the caller's unsampled span: this child of it.
    Child(SpanContext),
}

/// Decides for a record sent under `cx`, sampling roots when a random 63-bit number is
/// below `bound`.
fn head_decision(cx: &Context, bound: u64) -> Head {
    let parent = cx.span();
    let parent = parent.span_context();
    if parent.is_valid() {
        if parent.is_sampled() {
            return Head::Tracer;
        }
        let span_id = SpanId::from_bytes(random_u64().max(1).to_be_bytes());
        return Head::Child(SpanContext::new(
            parent.trace_id(),
            span_id,
            TraceFlags::default(),
            false,
            parent.trace_state().clone(),
        ));
    }
    let low = random_u64();
    if keeps_root(low, bound) {
        return Head::Tracer;
    }
    Head::Root(dropped_trace_id(low))
}

/// A random number from a per-thread generator (wyrand, seeded from the standard library's
/// random hasher keys): ids for spans kprod drops, not for anything secret. The seeding is
/// out of line, so the draw inlines into the send path as a few instructions.
#[inline]
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            x = seed();
        }
        x = x.wrapping_add(0xa076_1d64_78bd_642f);
        state.set(x);
        let t = u128::from(x).wrapping_mul(u128::from(x ^ 0xe703_7ed1_a0b4_28db));
        (t >> 64) as u64 ^ t as u64
    })
}

/// A thread's first state for [`random_u64`]: odd, so never 0.
#[cold]
#[inline(never)]
fn seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id()) | 1
}

/// Ends a record's span with its outcome, at `acknowledged` if given (in place: the span
/// stays where its completer keeps it).
fn finish(span: &mut impl Span, result: &DeliveryResult, acknowledged: Option<SystemTime>) {
    match result {
        Ok(m) => {
            span.set_attribute(KeyValue::new(
                "messaging.destination.partition.id",
                partition_id(m.partition),
            ));
            if m.offset >= 0 {
                span.set_attribute(KeyValue::new("messaging.kafka.offset", m.offset));
            }
        }
        Err(e) => {
            span.set_attribute(KeyValue::new("error.type", e.error_type()));
            span.record_error(e);
            span.set_status(Status::error(e.to_string()));
        }
    }
    match acknowledged {
        // Run later than the acknowledgement (the callback pool's timer): the span still ends
        // when the outcome was known.
        Some(at) => span.end_with_timestamp(at),
        None => span.end(),
    }
}

/// A partition's id as the conventions' string attribute: the first 1,024 are made once and
/// shared, so ending a span allocates no string for them; a higher one is written each time.
fn partition_id(partition: i32) -> opentelemetry::Value {
    const SHARED: i32 = 1024;
    static IDS: std::sync::OnceLock<Vec<Arc<str>>> = std::sync::OnceLock::new();
    if (0..SHARED).contains(&partition) {
        let ids = IDS.get_or_init(|| (0..SHARED).map(|p| Arc::from(p.to_string())).collect());
        return ids[partition as usize].clone().into();
    }
    partition.to_string().into()
}

/// `headers` with `cx` as W3C Trace Context (`traceparent`, and `tracestate` when it has
/// entries), replacing any already there; `headers` as they are for an invalid context. The
/// headers' text is written when the record is encoded (see [`Headers`]).
fn inject(headers: Vec<Header>, cx: &SpanContext) -> Headers {
    if !cx.is_valid() {
        return headers.into();
    }
    let state = cx.trace_state().header();
    let context = TraceContext {
        trace_id: cx.trace_id().to_bytes(),
        span_id: cx.span_id().to_bytes(),
        flags: cx.trace_flags().to_u8(),
        state: (!state.is_empty()).then(|| state.into_bytes().into()),
    };
    Headers::traced(headers, context)
}

/// The span a record's `traceparent` header names: (trace id, span id, sampled), for tests
/// and consumers that read the header back.
///
/// ```
/// let (trace, span, sampled) = kprod::otel::parse_traceparent(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
/// ).unwrap();
/// assert_eq!(format!("{trace:032x}"), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(format!("{span:016x}"), "00f067aa0ba902b7");
/// assert!(sampled);
/// assert!(kprod::otel::parse_traceparent("00-zz-00f067aa0ba902b7-01").is_none());
/// ```
pub fn parse_traceparent(value: &str) -> Option<(u128, u64, bool)> {
    let mut parts = value.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    if flags.len() != 2 {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok()?;
    let span = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace != 0 && span != 0).then_some((trace, span, flags & 1 == 1))
}

/// The instruments the producer's metrics are observed through; dropping them is harmless
/// (the meter provider keeps their callbacks), keeping them documents what was registered.
#[derive(Debug)]
pub(crate) struct Instruments {
    _observed: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// Registers the producer's instruments on `otel`'s meter, reading `shared` (weakly: a
/// closed producer reports nothing) when the provider collects. Returns the operation
/// duration histogram for the stage-timed records, if there is a meter.
pub(crate) fn register_metrics(
    otel: &OpenTelemetry,
    shared: &Arc<Shared>,
) -> Option<(Instruments, Histogram<f64>)> {
    let meter = otel.meter.as_ref()?;
    let mut observed: Vec<Box<dyn std::any::Any + Send + Sync>> = Vec::new();
    let weak = Arc::downgrade(shared);
    // One counter (monotonic) or gauge per snapshot figure: (name, unit, description, value).
    type Read = fn(&crate::MetricsSnapshot) -> u64;
    let figures: [(bool, &'static str, &'static str, &'static str, Read); 9] = [
        (
            true,
            "kprod.producer.batches",
            "{batch}",
            "RecordBatches sent (retries included)",
            |m| m.batches_sent,
        ),
        (
            true,
            "kprod.producer.batch.uncompressed",
            "By",
            "Batches' record bytes before compression",
            |m| m.batch_bytes_uncompressed,
        ),
        (
            true,
            "kprod.producer.batch.compressed",
            "By",
            "Batches' record bytes as sent, after compression",
            |m| m.batch_bytes_compressed,
        ),
        (
            true,
            "kprod.producer.retries",
            "{batch}",
            "Batches sent again after a retriable failure",
            |m| m.retries,
        ),
        (
            true,
            "kprod.producer.epoch_bumps",
            "{bump}",
            "Producer epoch bumps (idempotence, KIP-360)",
            |m| m.epoch_bumps,
        ),
        (
            true,
            "kprod.producer.requests",
            "{request}",
            "Produce requests sent",
            |m| m.requests_sent,
        ),
        (
            false,
            "kprod.producer.queue.depth",
            "{record}",
            "Records in the partition rings and metadata queues, not yet in a batch",
            |m| m.queue_depth,
        ),
        (
            false,
            "kprod.producer.in_flight",
            "{record}",
            "Records sent and not yet completed",
            |m| m.in_flight,
        ),
        (
            false,
            "kprod.producer.buffer.usage",
            "By",
            "Bytes of the buffer held by records not yet completed",
            |m| m.buffer_bytes,
        ),
    ];
    for (monotonic, name, unit, description, read) in figures {
        let w = weak.clone();
        let observe = move |o: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
            if let Some(s) = w.upgrade() {
                o.observe(read(&s.metrics_snapshot()), &[]);
            }
        };
        if monotonic {
            let c = meter.u64_observable_counter(name).with_unit(unit);
            observed.push(Box::new(
                c.with_description(description)
                    .with_callback(observe)
                    .build(),
            ));
        } else {
            let g = meter.u64_observable_gauge(name).with_unit(unit);
            observed.push(Box::new(
                g.with_description(description)
                    .with_callback(observe)
                    .build(),
            ));
        }
    }
    let w = weak.clone();
    let ratio = meter
        .f64_observable_gauge("kprod.producer.compression.ratio")
        .with_unit("1")
        .with_description("Batch bytes after compression over before (1: none)")
        .with_callback(move |o| {
            if let Some(s) = w.upgrade() {
                let m = s.metrics_snapshot();
                if m.batch_bytes_uncompressed > 0 {
                    let r = m.batch_bytes_compressed as f64 / m.batch_bytes_uncompressed as f64;
                    o.observe(r, &[]);
                }
            }
        })
        .build();
    observed.push(Box::new(ratio));
    let w = weak.clone();
    let latency = meter
        .f64_observable_gauge("kprod.producer.request.latency")
        .with_unit("s")
        .with_description("Produce round trip per broker, by quantile")
        .with_callback(move |o| {
            if let Some(s) = w.upgrade() {
                for b in s.metrics_snapshot().request_latency {
                    for (q, us) in [("0.5", b.p50_us), ("0.99", b.p99_us), ("0.999", b.p999_us)] {
                        let attrs = [
                            KeyValue::new("kprod.broker", i64::from(b.broker)),
                            KeyValue::new("quantile", q),
                        ];
                        o.observe(us as f64 / 1e6, &attrs);
                    }
                }
            }
        })
        .build();
    observed.push(Box::new(latency));
    let sent = meter
        .u64_observable_counter("messaging.client.sent.messages")
        .with_unit("{message}")
        .with_description("Messages the producer attempted to send (completed ones)")
        .with_callback(move |o| observe_sent(&weak, o))
        .build();
    observed.push(Box::new(sent));
    let duration = meter
        .f64_histogram("messaging.client.operation.duration")
        .with_unit("s")
        .with_description("Send to acknowledgement, for the records timed through their stages")
        .with_boundaries(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
            0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        ])
        .build();
    Some((
        Instruments {
            _observed: observed,
        },
        duration,
    ))
}

fn observe_sent(shared: &Weak<Shared>, o: &dyn opentelemetry::metrics::AsyncInstrument<u64>) {
    let Some(s) = shared.upgrade() else {
        return;
    };
    for p in s.metrics_snapshot().partitions {
        let mut attrs = vec![
            system(),
            operation(),
            KeyValue::new("messaging.destination.name", p.topic.to_string()),
            KeyValue::new(
                "messaging.destination.partition.id",
                p.partition.to_string(),
            ),
        ];
        o.observe(p.records_acked, &attrs);
        attrs.push(KeyValue::new("error.type", "_OTHER"));
        o.observe(p.records_failed, &attrs);
    }
}

/// Records a stage-timed record's send → acknowledged duration.
pub(crate) fn record_duration(h: &Histogram<f64>, d: std::time::Duration) {
    h.record(d.as_secs_f64(), &[system(), operation()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_sampling_clamps_its_ratio_to_the_sdks_bound() {
        let bound = |r: f64| OpenTelemetry::new().head_sampling(r).head;
        assert_eq!(bound(1.0), Some(u64::MAX));
        assert_eq!(bound(7.0), Some(u64::MAX));
        assert_eq!(bound(0.0), Some(0));
        assert_eq!(bound(-1.0), Some(0));
        assert_eq!(bound(f64::NAN), Some(0));
        assert_eq!(bound(0.5), Some(1 << 62));
        assert_eq!(OpenTelemetry::new().head, None);
        assert!(OpenTelemetry::new().dropped_roots);
    }

    #[test]
    fn a_dropped_root_is_never_all_zero_and_roots_differ() {
        let cx = Context::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            match head_decision(&cx, 0) {
                Head::Root(id) => {
                    assert_ne!(id, [0; 16]);
                    assert!(seen.insert(id));
                }
                _ => panic!("bound 0 drops every root"),
            }
        }
        assert!(matches!(head_decision(&cx, u64::MAX), Head::Tracer));
    }

    #[test]
    fn a_span_ended_later_than_its_acknowledgement_ends_at_it() {
        use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
        use std::time::Duration;
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("t");
        let md = crate::RecordMetadata {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 0,
        };
        // The callback pool ran it on its timer: it ends when the broker answered.
        let acked = SystemTime::now() + Duration::from_secs(3600);
        let mut later = tracer.start("later");
        finish(&mut later, &Ok(md.clone()), Some(acked));
        let before = SystemTime::now();
        let mut now = tracer.start("now");
        finish(&mut now, &Ok(md), None);
        let spans = exporter.get_finished_spans().unwrap();
        let end = |name: &str| spans.iter().find(|s| s.name == name).unwrap().end_time;
        assert_eq!(end("later"), acked);
        assert!(end("now") >= before && end("now") < acked);
    }
}
