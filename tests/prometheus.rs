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
        .stage_sampling(7)
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
    // (Without the per-broker and per-partition lists, checked below.)
    let mut debug = format!("{m:?}");
    for (list, close) in [
        ("request_latency: [", "]"),
        ("partitions: [", "]"),
        ("stages: StageLatency {", "} }"),
    ] {
        let at = debug.find(list).unwrap();
        let end = at + debug[at..].find(close).unwrap() + close.len();
        debug = format!("{}{}", &debug[..at], &debug[end..]);
    }
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
    // Each partition's counters, labelled by topic and partition; together they are the
    // producer's totals here (every record had a partition).
    assert_eq!(m.partitions.len(), 4, "{:?}", m.partitions);
    let labelled = |metric: &str, part: i32| -> Option<f64> {
        scrape.samples.iter().find_map(|s| {
            let hit = s.metric == metric
                && s.labels.get("topic") == Some("prom")
                && s.labels.get("partition") == Some(part.to_string().as_str());
            match s.value {
                Value::Counter(v) | Value::Gauge(v) if hit => Some(v),
                _ => None,
            }
        })
    };
    for pm in &m.partitions {
        let pp = pm.partition;
        for (metric, want) in [
            ("kprod_partition_queued", pm.queued),
            ("kprod_partition_records_acked_total", pm.records_acked),
            ("kprod_partition_records_failed_total", pm.records_failed),
            ("kprod_partition_bytes_acked_total", pm.bytes_acked),
            ("kprod_partition_bytes_failed_total", pm.bytes_failed),
            ("kprod_partition_batches_acked_total", pm.batches_acked),
            ("kprod_partition_batches_failed_total", pm.batches_failed),
            ("kprod_partition_batches_retried_total", pm.batches_retried),
        ] {
            assert_eq!(
                labelled(metric, pp),
                Some(want as f64),
                "{metric} of partition {pp}"
            );
        }
        assert!(pm.records_acked > 0 && pm.batches_acked > 0, "{pm:?}");
    }
    let sum =
        |f: fn(&kprod::metrics::PartitionMetrics) -> u64| m.partitions.iter().map(f).sum::<u64>();
    assert_eq!(sum(|p| p.records_acked), m.records_acked);
    assert_eq!(sum(|p| p.bytes_acked), m.bytes_acked);
    assert_eq!(sum(|p| p.records_failed), 0);
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
        let in_flight = scrape.samples.iter().find(|s| {
            s.metric == "kprod_broker_in_flight" && s.labels.get("broker") == Some(id.as_str())
        });
        assert!(
            matches!(in_flight.map(|s| &s.value), Some(Value::Gauge(v)) if *v == b.in_flight as f64),
            "{in_flight:?} vs {}",
            b.in_flight
        );
    }
    // Each stage's summary (every 7th record of the one sending thread was timed).
    let s = &m.stages;
    assert!(s.total.count > 0, "{s:?}");
    for (stage, l) in [
        ("queued", &s.queued),
        ("sending", &s.sending),
        ("broker", &s.broker),
        ("completing", &s.completing),
        ("total", &s.total),
    ] {
        let summary = scrape
            .samples
            .iter()
            .find(|x| {
                x.metric == "kprod_stage_latency_seconds" && x.labels.get("stage") == Some(stage)
            })
            .unwrap_or_else(|| panic!("no summary for stage {stage}"));
        let Value::Summary(qs) = &summary.value else {
            panic!("{summary:?}");
        };
        for (want, d) in [(0.5, l.p50), (0.99, l.p99), (0.999, l.p999)] {
            let got = qs.iter().find(|c| (c.quantile - want).abs() < 1e-9);
            assert_eq!(
                got.map(|c| c.count),
                Some(d.as_secs_f64()),
                "{stage} {want}"
            );
        }
        let count = scrape.samples.iter().find(|x| {
            x.metric == "kprod_stage_latency_seconds_count" && x.labels.get("stage") == Some(stage)
        });
        assert!(
            matches!(count.map(|x| &x.value), Some(Value::Untyped(c)) if *c == l.count as f64),
            "{stage}: {count:?}"
        );
    }
}

/// A broker that holds its answers shows the requests it holds as in flight.
#[test]
fn per_broker_in_flight_counts_unanswered_requests() {
    let cluster = MockCluster::builder().topic("held", 1).build().unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .linger(Duration::ZERO)
        .build()
        .unwrap();
    p.produce("held", "k", "warm-up").unwrap();
    let broker = cluster.partition_leader("held", 0).unwrap();
    let in_flight = |p: &Producer| {
        p.metrics()
            .request_latency
            .iter()
            .find(|b| b.broker == broker)
            .map_or(0, |b| b.in_flight)
    };
    // The gauge is stored at the end of the I/O thread's turn, just after the completion.
    let settle = |p: &Producer, want: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while in_flight(p) != want {
            assert!(std::time::Instant::now() < deadline, "{:?}", p.metrics());
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    settle(&p, 0);
    cluster.stall(broker, true);
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let h = p
                .produce_async(ProducerRecord::new("held").value(format!("{i}")))
                .unwrap();
            // One request at a time: each waits until the last is on the wire.
            let want = i + 1;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while in_flight(&p) < want {
                assert!(std::time::Instant::now() < deadline, "{:?}", p.metrics());
                std::thread::sleep(Duration::from_millis(2));
            }
            h
        })
        .collect();
    assert_eq!(in_flight(&p), 3);
    cluster.stall(broker, false);
    for h in handles {
        h.wait().unwrap();
    }
    settle(&p, 0);
    p.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn per_partition_counters_count_retries_and_failures_where_they_happened() {
    use kprod::protocol::{ApiKey, ErrorCode};
    let cluster = MockCluster::builder().topic("pp", 2).build().unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap();
    p.produce_record(ProducerRecord::new("pp").partition(1).value("warm"))
        .unwrap();
    // Partition 0: one retriable answer (the batch goes again), then one that fails it.
    cluster.fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::NOT_ENOUGH_REPLICAS]);
    p.produce_record(ProducerRecord::new("pp").partition(0).value("retried"))
        .unwrap();
    cluster.fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::INVALID_RECORD]);
    let e = p
        .produce_record(ProducerRecord::new("pp").partition(0).value("refused"))
        .unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::INVALID_RECORD));
    let m = p.metrics();
    p.close(Duration::from_secs(10)).unwrap();
    let part = |n: i32| {
        m.partitions
            .iter()
            .find(|x| x.partition == n)
            .unwrap()
            .clone()
    };
    let (p0, p1) = (part(0), part(1));
    assert_eq!(
        (
            p0.records_acked,
            p0.records_failed,
            p0.batches_failed,
            p0.batches_retried
        ),
        (1, 1, 1, 1),
        "{p0:?}"
    );
    assert_eq!(
        (p1.records_acked, p1.records_failed, p1.batches_retried),
        (1, 0, 0),
        "{p1:?}"
    );
    assert!(p0.bytes_failed > 0 && p0.bytes_acked > 0, "{p0:?}");
    let text = m.to_prometheus();
    assert!(
        text.contains("kprod_partition_batches_retried_total{topic=\"pp\",partition=\"0\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("kprod_partition_records_failed_total{topic=\"pp\",partition=\"1\"} 0\n"),
        "{text}"
    );
}

#[test]
fn buffer_use_is_what_outstanding_records_hold() {
    let cluster = MockCluster::builder().topic("buf", 1).build().unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .buffer_memory(8 << 20)
        .build()
        .unwrap();
    p.produce("buf", (), "warm").unwrap();
    // produce() returns at the completion; the record's room is given back just after it:
    // flush waits for that.
    p.flush(Duration::from_secs(20)).unwrap();
    let m = p.metrics();
    assert_eq!((m.buffer_bytes, m.buffer_limit_bytes), (0, 8 << 20));
    // A broker that does not answer: 100 records of 1 KB stay outstanding.
    cluster.stall(1, true);
    for _ in 0..100 {
        p.send("buf", (), vec![b'x'; 1000]).unwrap();
    }
    let m = p.metrics();
    assert!(
        (100_000..200_000).contains(&m.buffer_bytes),
        "{} bytes held by 100 records of 1,000 B",
        m.buffer_bytes
    );
    assert!(m
        .to_prometheus()
        .contains(&format!("kprod_buffer_bytes {}\n", m.buffer_bytes)));
    cluster.stall(1, false);
    p.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(p.metrics().buffer_bytes, 0);
    p.close(Duration::from_secs(10)).unwrap();
}
