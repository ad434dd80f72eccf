//! OpenTelemetry (issue #19), with the SDK's in-memory exporters: the `traceparent` librdkafka's
//! consumer reads back from each record names the producer span that sent it, a child of the
//! caller's span; the spans carry the messaging conventions' attributes; failed deliveries and
//! refused calls end their spans as errors; unsampled records carry their context and make no
//! span; the metrics a meter provider collects equal `metrics()`.
#![cfg(all(feature = "mock", feature = "opentelemetry"))]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::otel::{parse_traceparent, OpenTelemetry};
use kprod::protocol::{ApiKey, ErrorCode};
use kprod::{Error, Producer, ProducerRecord};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use support::readback::read_back;

const WAIT: Duration = Duration::from_secs(20);

fn tracing(sampler: Sampler) -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(sampler)
        .build();
    (provider, exporter)
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn string(v: Option<&Value>) -> Option<String> {
    v.map(|v| v.as_str().into_owned())
}

/// The producer spans exported (the caller's own `handle request` left out), by span id.
fn producer_spans(spans: &InMemorySpanExporter) -> HashMap<u64, SpanData> {
    spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name != "handle request")
        .map(|s| (u64::from_be_bytes(s.span_context.span_id().to_bytes()), s))
        .collect()
}

/// The one `traceparent` among a record's headers (what `record` names in a failure).
fn only_traceparent(headers: &[(String, Option<Vec<u8>>)], record: std::fmt::Arguments) -> String {
    let tps: Vec<_> = headers.iter().filter(|(k, _)| k == "traceparent").collect();
    assert_eq!(tps.len(), 1, "{record}: {headers:?}");
    String::from_utf8(tps[0].1.clone().unwrap()).unwrap()
}

/// What every producer span of a delivered record carries, as the conventions name it: the
/// record `value`, read back at `partition` and `offset` of `topic`.
fn assert_conventions(span: &SpanData, topic: &str, partition: i32, offset: i64, value: &str) {
    assert_eq!(span.span_kind, SpanKind::Producer, "record {value}");
    assert_eq!(span.name, format!("send {topic}"), "record {value}");
    assert_eq!(span.status, Status::Unset, "record {value}");
    let want = [
        ("messaging.system", "kafka".to_string()),
        ("messaging.operation.name", "send".to_string()),
        ("messaging.operation.type", "send".to_string()),
        ("messaging.destination.name", topic.to_string()),
        ("messaging.destination.partition.id", partition.to_string()),
    ];
    for (k, v) in want {
        assert_eq!(string(attr(span, k)), Some(v), "record {value}: {k}");
    }
    assert_eq!(
        attr(span, "messaging.kafka.offset"),
        Some(&Value::I64(offset)),
        "record {value}"
    );
    assert_eq!(
        attr(span, "messaging.message.body.size"),
        Some(&Value::I64(value.len() as i64)),
        "record {value}"
    );
}

#[test]
fn traceparent_read_back_names_each_records_span_in_the_callers_trace() {
    let topic = "traced";
    let cluster = MockCluster::builder().topic(topic, 3).build().unwrap();
    let (provider, spans) = tracing(Sampler::AlwaysOn);
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .client_id("otel-test")
        .opentelemetry(OpenTelemetry::new().traces(&provider))
        .build()
        .unwrap();
    // The caller's own span: every record sent under it joins its trace.
    let app = provider.tracer("app");
    let request = app.start("handle request");
    let request_cx = request.span_context().clone();
    let n = 60;
    {
        let _attached = Context::current_with_span(request).attach();
        let mut handles = Vec::new();
        for i in 0..n {
            let v = format!("{i}");
            match i % 3 {
                0 => p.send(topic, format!("k{i}"), v).unwrap(),
                1 => handles.push(
                    p.produce_async(ProducerRecord::new(topic).key(format!("k{i}")).value(v))
                        .unwrap(),
                ),
                _ => {
                    p.produce(topic, format!("k{i}"), v).unwrap();
                }
            }
        }
        for h in handles {
            h.wait().unwrap();
        }
    }
    // One more outside any context: a trace of its own.
    p.produce(topic, "root", "root").unwrap();
    p.flush(WAIT).unwrap();
    p.close(WAIT).unwrap();
    let finished = producer_spans(&spans);
    assert_eq!(finished.len(), n + 1, "one producer span per record");
    let got = read_back(&cluster.bootstrap_servers(), topic, 3, n + 1, WAIT);
    assert_eq!(got.len(), n + 1);
    let request_trace = u128::from_be_bytes(request_cx.trace_id().to_bytes());
    for g in &got {
        let value = String::from_utf8(g.value.clone().unwrap()).unwrap();
        let tp = only_traceparent(&g.headers, format_args!("record {value}"));
        let (trace, span_id, sampled) = parse_traceparent(&tp).expect("a valid traceparent");
        assert!(sampled, "{tp}");
        let span = finished
            .get(&span_id)
            .unwrap_or_else(|| panic!("record {value}: no span {span_id:016x}"));
        assert_eq!(
            u128::from_be_bytes(span.span_context.trace_id().to_bytes()),
            trace
        );
        assert_conventions(span, topic, g.partition, g.offset, &value);
        assert_eq!(
            string(attr(span, "messaging.client.id")),
            Some("otel-test".to_string()),
            "record {value}"
        );
        let key = String::from_utf8(g.key.clone().unwrap()).unwrap();
        assert_eq!(string(attr(span, "messaging.kafka.message.key")), Some(key));
        if value == "root" {
            assert_ne!(
                trace, request_trace,
                "a record sent outside any span starts a trace"
            );
            assert!(!span.parent_span_id.to_bytes().iter().any(|b| *b != 0));
        } else {
            assert_eq!(
                trace, request_trace,
                "record {value} is in the caller's trace"
            );
            assert_eq!(span.parent_span_id, request_cx.span_id());
        }
    }
}

#[test]
fn failed_deliveries_and_refused_calls_end_their_spans_as_errors() {
    let topic = "fails";
    let cluster = MockCluster::builder().topic(topic, 1).build().unwrap();
    let (provider, spans) = tracing(Sampler::AlwaysOn);
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .max_request_size(100_000)
        .batch_size(50_000)
        .opentelemetry(OpenTelemetry::new().traces(&provider))
        .build()
        .unwrap();
    p.produce(topic, "k", "warm-up").unwrap();
    cluster.fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::INVALID_RECORD]);
    let e = p.produce(topic, "k", "refused by the broker").unwrap_err();
    assert!(matches!(e, Error::Kafka { .. }), "{e}");
    let too_big = vec![b'x'; 200_000];
    let e = p.send(topic, "k", too_big).unwrap_err();
    assert!(
        matches!(e.error, Error::RecordTooLarge { .. }),
        "{}",
        e.error
    );
    p.close(WAIT).unwrap();
    let finished = spans.get_finished_spans().unwrap();
    assert_eq!(finished.len(), 3, "{finished:#?}");
    let by_type = |t: &str| {
        finished
            .iter()
            .find(|s| string(attr(s, "error.type")).as_deref() == Some(t))
            .unwrap_or_else(|| panic!("no span with error.type {t}: {finished:#?}"))
    };
    for (t, message) in [
        ("INVALID_RECORD", "INVALID_RECORD"),
        ("RecordTooLarge", "max_request_size"),
    ] {
        let s = by_type(t);
        match &s.status {
            Status::Error { description } => {
                assert!(description.contains(message), "{description}")
            }
            other => panic!("{t}: status {other:?}"),
        }
        assert!(
            s.events.iter().any(|e| e.name == "exception"),
            "{t}: the error as an exception event"
        );
        assert!(attr(s, "messaging.kafka.offset").is_none());
    }
    let ok: Vec<_> = finished
        .iter()
        .filter(|s| attr(s, "error.type").is_none())
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].status, Status::Unset);
}

#[test]
fn unsampled_records_carry_their_context_and_make_no_span() {
    let topic = "unsampled";
    let cluster = MockCluster::builder().topic(topic, 1).build().unwrap();
    let (provider, spans) = tracing(Sampler::AlwaysOff);
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .opentelemetry(OpenTelemetry::new().traces(&provider))
        .build()
        .unwrap();
    // A record that already carries a traceparent (sent on from elsewhere) gets its own; a
    // record with no headers gets its dropped root's context inline (Headers::Root).
    let stale = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for i in 0..40 {
        let mut r = ProducerRecord::new(topic).value(format!("{i}"));
        if i % 2 == 0 {
            r = r.header("traceparent", stale);
        }
        p.produce_record(r).unwrap();
    }
    p.close(WAIT).unwrap();
    assert!(spans.get_finished_spans().unwrap().is_empty());
    let got = read_back(&cluster.bootstrap_servers(), topic, 1, 40, WAIT);
    let mut traces = std::collections::HashSet::new();
    let mut span_ids = std::collections::HashSet::new();
    for g in &got {
        let tp = only_traceparent(&g.headers, format_args!("record"));
        assert_ne!(tp, stale);
        let (trace, span, sampled) = parse_traceparent(&tp).unwrap();
        assert!(!sampled, "{tp}");
        assert!(trace != 0 && span != 0, "{tp}");
        traces.insert(trace);
        span_ids.insert(span);
    }
    assert_eq!(traces.len(), 40, "each root record starts its own trace");
    assert_eq!(span_ids.len(), 40, "and names a span of its own");
}

#[test]
fn head_sampling_decides_before_the_sdk_and_keeps_the_callers_trace() {
    let topic = "head";
    let cluster = MockCluster::builder().topic(topic, 2).build().unwrap();
    let (provider, spans) = tracing(Sampler::AlwaysOn);
    let ratio = 0.25;
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .opentelemetry(OpenTelemetry::new().traces(&provider).head_sampling(ratio))
        .build()
        .unwrap();
    // Roots: kprod decides, one in four. Every tenth has a header of its own, kept beside
    // its trace context.
    let roots = 400;
    for i in 0..roots {
        if i % 10 == 0 {
            let r = ProducerRecord::new(topic)
                .value(format!("root {i}"))
                .header("origin", "billing");
            p.send_record(r).unwrap();
        } else {
            p.send(topic, (), format!("root {i}")).unwrap();
        }
    }
    // Under a remote parent that is not sampled: its trace, never a span; the caller's own
    // header kept beside the trace context.
    let parent_trace = 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319cu128;
    let parent_span = 0xb7ad_6b71_6920_3331u64;
    let unsampled = Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes(parent_trace.to_be_bytes()),
        SpanId::from_bytes(parent_span.to_be_bytes()),
        TraceFlags::default(),
        true,
        TraceState::default(),
    ));
    {
        let _attached = unsampled.attach();
        for i in 0..20 {
            let r = ProducerRecord::new(topic)
                .value(format!("unsampled child {i}"))
                .header("origin", "billing");
            p.send_record(r).unwrap();
        }
    }
    // Under a sampled span: the SDK's, every one.
    let request = provider.tracer("app").start("handle request");
    let request_cx = request.span_context().clone();
    {
        let _attached = Context::current_with_span(request).attach();
        for i in 0..20 {
            p.send(topic, (), format!("sampled child {i}")).unwrap();
        }
    }
    p.flush(WAIT).unwrap();
    p.close(WAIT).unwrap();
    let finished = producer_spans(&spans);
    let total = roots + 40;
    let got = read_back(&cluster.bootstrap_servers(), topic, 2, total, WAIT);
    assert_eq!(got.len(), total);
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    let (mut sampled_roots, mut traces) = (0, std::collections::HashSet::new());
    for g in &got {
        let value = String::from_utf8(g.value.clone().unwrap()).unwrap();
        let tp = only_traceparent(&g.headers, format_args!("{value}"));
        let (trace, span_id, sampled) = parse_traceparent(&tp).expect("a valid traceparent");
        let span = finished.get(&span_id);
        let origin = g
            .headers
            .iter()
            .any(|(k, v)| k == "origin" && v.as_deref() == Some(&b"billing"[..]));
        if value.starts_with("root") {
            assert!(traces.insert(trace), "{value}: a trace of its own");
            let i: usize = value["root ".len()..].parse().unwrap();
            assert_eq!(origin, i % 10 == 0, "{value}: {:?}", g.headers);
            assert_eq!(sampled, span.is_some(), "{value}: {tp}");
            if let Some(span) = span {
                // Kept by kprod: its name and attributes went in with its start.
                assert_conventions(span, topic, g.partition, g.offset, &value);
                sampled_roots += 1;
            } else {
                // Dropped as the SDK's TraceIdRatioBased would drop it, downstream too.
                assert!((trace as u64) >> 1 >= bound, "{value}: {tp}");
            }
        } else if value.starts_with("unsampled") {
            assert!(!sampled && span.is_none(), "{value}: {tp}");
            assert_eq!(trace, parent_trace, "{value}");
            assert_ne!(span_id, parent_span, "{value}: a span of its own");
            assert!(origin, "{value}: {:?}", g.headers);
        } else {
            let span = span.unwrap_or_else(|| panic!("{value}: no span for {tp}"));
            assert!(sampled);
            assert_conventions(span, topic, g.partition, g.offset, &value);
            assert_eq!(span.parent_span_id, request_cx.span_id(), "{value}");
        }
    }
    // One in four of 400: 100 expected, the standard deviation under 9.
    assert!(
        (50..=150).contains(&sampled_roots),
        "{sampled_roots} roots sampled"
    );
    assert_eq!(
        finished.len(),
        sampled_roots + 20,
        "a span per sampled record only"
    );
}

#[test]
fn dropped_roots_need_not_carry_a_traceparent() {
    let topic = "roots";
    let cluster = MockCluster::builder().topic(topic, 1).build().unwrap();
    let (provider, spans) = tracing(Sampler::AlwaysOn);
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .opentelemetry(
            OpenTelemetry::new()
                .traces(&provider)
                .head_sampling(0.0)
                .propagate_dropped_roots(false),
        )
        .build()
        .unwrap();
    for i in 0..10 {
        let r = ProducerRecord::new(topic)
            .value(format!("root {i}"))
            .header("origin", "billing");
        p.send_record(r).unwrap();
    }
    // A caller's span, even unsampled, is always propagated.
    let parent = Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes(7u128.to_be_bytes()),
        SpanId::from_bytes(9u64.to_be_bytes()),
        TraceFlags::default(),
        true,
        TraceState::default(),
    ));
    {
        let _attached = parent.attach();
        for i in 0..10 {
            p.send(topic, (), format!("child {i}")).unwrap();
        }
    }
    p.close(WAIT).unwrap();
    assert!(spans.get_finished_spans().unwrap().is_empty());
    let got = read_back(&cluster.bootstrap_servers(), topic, 1, 20, WAIT);
    assert_eq!(got.len(), 20);
    for g in &got {
        let value = String::from_utf8(g.value.clone().unwrap()).unwrap();
        let keys: Vec<&str> = g.headers.iter().map(|(k, _)| k.as_str()).collect();
        if value.starts_with("root") {
            assert_eq!(keys, ["origin"], "{value}");
        } else {
            assert_eq!(keys, ["traceparent"], "{value}");
            let tp = String::from_utf8(g.headers[0].1.clone().unwrap()).unwrap();
            assert_eq!(parse_traceparent(&tp).unwrap().0, 7, "{value}: {tp}");
        }
    }
}

/// What the meter provider exports when it collects now.
struct Collected(ResourceMetrics);

impl Collected {
    fn now(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> Collected {
        exporter.reset();
        provider.force_flush().unwrap();
        let all: Vec<ResourceMetrics> = exporter.get_finished_metrics().unwrap();
        Collected(all.into_iter().last().expect("an export"))
    }

    fn get(&self, name: &str) -> Option<&Metric> {
        self.0
            .scope_metrics()
            .filter(|s| s.scope().name() == "kprod")
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == name)
    }
}

fn u64_points(m: &Collected, name: &str) -> Vec<(Vec<KeyValue>, u64)> {
    let Some(metric) = m.get(name) else {
        return Vec::new();
    };
    match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(s)) => s
            .data_points()
            .map(|p| (p.attributes().cloned().collect(), p.value()))
            .collect(),
        AggregatedMetrics::U64(MetricData::Gauge(g)) => g
            .data_points()
            .map(|p| (p.attributes().cloned().collect(), p.value()))
            .collect(),
        other => panic!("{name}: {other:?}"),
    }
}

fn single(m: &Collected, name: &str) -> u64 {
    let points = u64_points(m, name);
    assert_eq!(points.len(), 1, "{name}: {points:?}");
    points[0].1
}

#[test]
fn metrics_through_a_meter_equal_the_snapshot() {
    let topic = "metered";
    let cluster = MockCluster::builder().topic(topic, 2).build().unwrap();
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .stage_sampling(1)
        .retry_backoff(Duration::from_millis(5))
        .opentelemetry(OpenTelemetry::new().metrics(&provider))
        .build()
        .unwrap();
    for i in 0..100 {
        let r = ProducerRecord::new(topic)
            .partition(i % 2)
            .value(format!("{i}"));
        p.produce_record(r).unwrap();
    }
    // A retry, and a failure on partition 0.
    cluster.fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::NOT_ENOUGH_REPLICAS]);
    p.produce_record(ProducerRecord::new(topic).partition(0).value("retried"))
        .unwrap();
    cluster.fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::INVALID_RECORD]);
    p.produce_record(ProducerRecord::new(topic).partition(0).value("failed"))
        .unwrap_err();
    p.flush(WAIT).unwrap();
    let m = Collected::now(&provider, &exporter);
    let snap = p.metrics();
    assert!(snap.retries >= 1 && snap.records_failed == 1, "{snap:?}");
    for (name, want) in [
        ("kprod.producer.batches", snap.batches_sent),
        (
            "kprod.producer.batch.uncompressed",
            snap.batch_bytes_uncompressed,
        ),
        (
            "kprod.producer.batch.compressed",
            snap.batch_bytes_compressed,
        ),
        ("kprod.producer.retries", snap.retries),
        ("kprod.producer.epoch_bumps", snap.epoch_bumps),
        ("kprod.producer.requests", snap.requests_sent),
        ("kprod.producer.queue.depth", snap.queue_depth),
        ("kprod.producer.in_flight", snap.in_flight),
        ("kprod.producer.buffer.usage", snap.buffer_bytes),
    ] {
        assert_eq!(single(&m, name), want, "{name}");
    }
    // The conventions' sent messages: per topic and partition, failures with error.type.
    let sent = u64_points(&m, "messaging.client.sent.messages");
    let mut total = 0;
    for part in &snap.partitions {
        for (failed, want) in [(false, part.records_acked), (true, part.records_failed)] {
            let point = sent.iter().find(|(attrs, _)| {
                let has = |k: &str, v: &str| {
                    attrs
                        .iter()
                        .any(|kv| kv.key.as_str() == k && kv.value.as_str() == v)
                };
                has("messaging.system", "kafka")
                    && has("messaging.destination.name", topic)
                    && has(
                        "messaging.destination.partition.id",
                        &part.partition.to_string(),
                    )
                    && failed == has("error.type", "_OTHER")
            });
            assert_eq!(
                point.map(|p| p.1),
                Some(want),
                "partition {} failed={failed}: {sent:?}",
                part.partition
            );
            total += want;
        }
    }
    assert_eq!(total, snap.records_acked + snap.records_failed);
    // The operation duration: one per stage-timed record.
    let duration = m
        .get("messaging.client.operation.duration")
        .expect("operation duration");
    let AggregatedMetrics::F64(MetricData::Histogram(h)) = duration.data() else {
        panic!("{duration:?}");
    };
    let count: u64 = h.data_points().map(|p| p.count()).sum();
    assert_eq!(count, snap.stages.total.count);
    assert!(count > 0);
    // The request latency per broker, by quantile.
    let latency = m
        .get("kprod.producer.request.latency")
        .expect("request latency");
    let AggregatedMetrics::F64(MetricData::Gauge(g)) = latency.data() else {
        panic!("{latency:?}");
    };
    for b in &snap.request_latency {
        let p99 = g.data_points().find(|p| {
            let attrs: Vec<_> = p.attributes().collect();
            attrs.iter().any(|kv| {
                kv.key.as_str() == "kprod.broker" && kv.value == Value::I64(b.broker.into())
            }) && attrs
                .iter()
                .any(|kv| kv.key.as_str() == "quantile" && kv.value.as_str() == "0.99")
        });
        assert_eq!(p99.map(|p| p.value()), Some(b.p99_us as f64 / 1e6));
    }
    p.close(WAIT).unwrap();
    drop(p);
    // A dropped producer reports nothing more.
    let after = Collected::now(&provider, &exporter);
    assert!(u64_points(&after, "kprod.producer.batches").is_empty());
}
