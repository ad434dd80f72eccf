//! `MetricsSnapshot::to_prometheus` (issue #19): the text parses with a Prometheus
//! text-format parser that is not ours (the `prometheus-parse` crate), every line is a comment
//! or a sample it understands, and every value equals `metrics()` — each numeric field of the
//! snapshot (found through its `Debug` output, so a field added later and not exported fails
//! here) and each broker's round-trip summary.
#![cfg(feature = "mock")]

use std::collections::HashMap;
use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::{Producer, ProducerRecord};
use prometheus_parse::{LineInfo, Scrape, Value};

#[test]
fn the_export_parses_and_equals_the_snapshot() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("prom", 4)
        .build()
        .unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .build()
        .unwrap();
    for i in 0..500 {
        p.send_record(ProducerRecord::new("prom").key(format!("k{i}")).value("v"))
            .unwrap();
    }
    p.flush(Duration::from_secs(20)).unwrap();
    let m = p.metrics();
    p.close(Duration::from_secs(10)).unwrap();
    assert_eq!(m.records_acked, 500);
    assert!(m.request_latency.len() == 2, "{:?}", m.request_latency);

    let text = m.to_prometheus();
    // Every line is a comment (HELP or TYPE) or a sample the parser understands.
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Doc { .. } | LineInfo::Type { .. } | LineInfo::Sample { .. } => {}
            other => panic!("not Prometheus text: {line:?} ({other:?})"),
        }
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let mut plain: HashMap<String, f64> = HashMap::new();
    for s in &scrape.samples {
        if let Value::Counter(v) | Value::Gauge(v) = s.value {
            if s.labels.is_empty() {
                plain.insert(s.metric.clone(), v);
            }
        }
    }
    // Each numeric field of the snapshot, as a counter (`_total`) or a gauge.
    // (Without the per-broker list, checked below.)
    let debug = format!("{m:?}");
    let list = debug.find("request_latency: [").unwrap();
    let end = list + debug[list..].find(']').unwrap();
    let debug = format!("{}{}", &debug[..list], &debug[end + 1..]);
    let fields: Vec<(String, u64)> = debug
        .trim_start_matches("MetricsSnapshot {")
        .split(", ")
        .filter_map(|kv| {
            let (k, v) = kv.split_once(": ")?;
            Some((
                k.trim().to_string(),
                v.trim().trim_end_matches('}').trim().parse().ok()?,
            ))
        })
        .collect();
    assert!(fields.len() >= 30, "{fields:?}");
    for (name, value) in &fields {
        let got = plain
            .get(&format!("kprod_{name}_total"))
            .or_else(|| plain.get(&format!("kprod_{name}")));
        assert_eq!(
            got.copied(),
            Some(*value as f64),
            "{name}: exported {got:?}, metrics() {value}"
        );
        // Each has its HELP line.
        assert!(
            scrape
                .docs
                .keys()
                .any(|d| d.starts_with(&format!("kprod_{name}"))),
            "{name} has no HELP"
        );
    }
    // Each broker's round trips: the quantiles (in seconds) and the count.
    for b in &m.request_latency {
        let id = b.broker.to_string();
        let summary = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "kprod_request_latency_seconds"
                    && s.labels.get("broker") == Some(id.as_str())
            })
            .unwrap_or_else(|| panic!("no summary for broker {id}"));
        let Value::Summary(qs) = &summary.value else {
            panic!("{summary:?}");
        };
        let q = |want: f64| {
            qs.iter()
                .find(|c| (c.quantile - want).abs() < 1e-9)
                .map(|c| c.count)
        };
        assert_eq!(q(0.5), Some(b.p50_us as f64 / 1e6));
        assert_eq!(q(0.99), Some(b.p99_us as f64 / 1e6));
        assert_eq!(q(0.999), Some(b.p999_us as f64 / 1e6));
        let count = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "kprod_request_latency_seconds_count"
                    && s.labels.get("broker") == Some(id.as_str())
            })
            .map(|s| s.value.clone());
        assert!(
            matches!(count, Some(Value::Untyped(c)) if c == b.requests as f64),
            "{count:?} vs {}",
            b.requests
        );
    }
}
