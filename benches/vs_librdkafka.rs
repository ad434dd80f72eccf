//! kprod and librdkafka side by side, alternating in one run, against the same broker with the
//! same settings; prints each figure and the ratio kprod / librdkafka.
//!
//! ```text
//! cargo bench --features cli --bench vs_librdkafka                 # broker: `kprod mock --sink`
//! BENCH_BOOTSTRAP=127.0.0.1:9092 cargo bench --features cli --bench vs_librdkafka
//! BENCH_ROUNDS=5 BENCH_RECORDS=2000000 BENCH_LATENCY_RECORDS=20000 ...
//! ```
//! The default broker is the `kprod mock` command in its own process, in sink mode (offsets,
//! no stored data), so neither client's CPU figure includes the broker's. With
//! `BENCH_BOOTSTRAP`, the topic `BENCH_TOPIC` (default `bench`) must exist.
//!
//! Scenarios:
//! - `send`: fire-and-forget, 100 B values, no key, linger 5 ms, 1 MB batches, no compression,
//!   acks=1 without idempotence and acks=all with it; records/s counts acknowledged records
//!   (kprod: `metrics().records_acked` after `flush`; librdkafka: delivery reports), and client
//!   CPU (user+sys of this process) per record.
//! - `produce`: blocking, one record at a time, linger 0, acks=1: latency percentiles of the
//!   call (kprod: `produce()`; librdkafka: `ThreadedProducer::send`, then a wait for its
//!   delivery report, which librdkafka's polling thread hands over as soon as it arrives).

#[path = "../src/bin/kprod/cpu.rs"]
mod cpu;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The broker: given, or `kprod mock --sink` in a child process.
struct Broker {
    bootstrap: String,
    child: Option<Child>,
}

impl Broker {
    fn start(topic: &str) -> Broker {
        if let Ok(b) = std::env::var("BENCH_BOOTSTRAP") {
            return Broker {
                bootstrap: b,
                child: None,
            };
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_kprod"))
            .args(["mock", "--sink", "--topic", &format!("{topic}:3")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting `kprod mock`");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Broker {
            bootstrap: line.trim().to_string(),
            child: Some(child),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take()); // closing stdin stops it
            let _ = c.wait();
        }
    }
}

#[derive(Clone, Copy)]
struct SendFigures {
    records_per_sec: f64,
    cpu_us_per_record: f64,
}

#[derive(Clone, Copy, Debug)]
struct Setting {
    name: &'static str,
    acks_all_idempotent: bool,
}

fn kprod_send(b: &str, topic: &str, n: u64, payload: &Bytes, s: Setting) -> SendFigures {
    let p = kprod::Producer::builder()
        .bootstrap_servers(b)
        .acks(if s.acks_all_idempotent {
            kprod::Acks::All
        } else {
            kprod::Acks::Leader
        })
        .idempotence(s.acks_all_idempotent)
        .linger(Duration::from_millis(5))
        .batch_size(1_000_000)
        .build()
        .expect("kprod producer");
    p.produce(topic, (), "warm-up").expect("warm-up");
    let cpu0 = cpu::client_cpu(None).unwrap_or_default();
    let t = Instant::now();
    for _ in 0..n {
        p.send(topic, (), payload.clone()).expect("send");
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
    let acked = p.metrics().records_acked - 1;
    assert_eq!(acked, n, "kprod: every record acknowledged");
    p.close(Duration::from_secs(10)).expect("close");
    SendFigures {
        records_per_sec: acked as f64 / secs,
        cpu_us_per_record: cpu.as_secs_f64() * 1e6 / acked as f64,
    }
}

struct Counting {
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn rdkafka_config(b: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b)
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "65536")
        // kprod sets TCP_NODELAY; so does this, for equal terms.
        .set("socket.nagle.disable", "true");
    c
}

fn rdkafka_send(b: &str, topic: &str, n: u64, payload: &Bytes, s: Setting) -> SendFigures {
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let p: BaseProducer<Counting> = rdkafka_config(b)
        .set("acks", if s.acks_all_idempotent { "all" } else { "1" })
        .set("enable.idempotence", s.acks_all_idempotent.to_string())
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .create_with_context(Counting {
            acked: acked.clone(),
            failed: failed.clone(),
        })
        .expect("librdkafka producer");
    p.send(BaseRecord::<(), [u8]>::to(topic).payload(&b"warm-up"[..]))
        .map_err(|(e, _)| e)
        .expect("warm-up");
    p.flush(Duration::from_secs(30)).expect("warm-up flush");
    acked.store(0, Ordering::Relaxed);
    let cpu0 = cpu::client_cpu(None).unwrap_or_default();
    let t = Instant::now();
    for i in 0..n {
        loop {
            match p.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..])) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("librdkafka send: {e}"),
            }
        }
        if i % 1024 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
    let acked = acked.load(Ordering::Relaxed);
    assert_eq!(
        (acked, failed.load(Ordering::Relaxed)),
        (n, 0),
        "librdkafka: every record acknowledged"
    );
    SendFigures {
        records_per_sec: acked as f64 / secs,
        cpu_us_per_record: cpu.as_secs_f64() * 1e6 / acked as f64,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

fn kprod_produce(b: &str, topic: &str, n: u64, payload: &Bytes) -> Histogram<u64> {
    let p = kprod::Producer::builder()
        .bootstrap_servers(b)
        .acks(kprod::Acks::Leader)
        .idempotence(false)
        .linger(Duration::ZERO)
        .build()
        .expect("kprod producer");
    p.produce(topic, (), "warm-up").expect("warm-up");
    let mut h = new_histogram();
    for _ in 0..n {
        let t = Instant::now();
        p.produce(topic, (), payload.clone()).expect("produce");
        h.saturating_record(t.elapsed().as_nanos() as u64 / 1000);
    }
    p.close(Duration::from_secs(10)).expect("close");
    h
}

/// Delivery reports of the latency run go to the waiting caller through a channel.
struct Signalling(std::sync::Mutex<std::sync::mpsc::Sender<bool>>);

impl ClientContext for Signalling {}

impl ProducerContext for Signalling {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let _ = self.0.lock().unwrap().send(r.is_ok());
    }
}

/// librdkafka's blocking produce: `ThreadedProducer` (its own thread serves delivery reports
/// as they arrive) and a wait on the report. `BaseProducer::poll(t)` in rdkafka 0.39 keeps
/// polling until `t` has passed even after a report, so it cannot measure latency.
fn rdkafka_produce(b: &str, topic: &str, n: u64, payload: &Bytes) -> Histogram<u64> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p: ThreadedProducer<Signalling> = rdkafka_config(b)
        .set("acks", "1")
        .set("enable.idempotence", "false")
        .set("linger.ms", "0")
        .create_with_context(Signalling(std::sync::Mutex::new(tx)))
        .expect("librdkafka producer");
    let mut h = new_histogram();
    for i in 0..=n {
        let t = Instant::now();
        p.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]))
            .map_err(|(e, _)| e)
            .expect("send");
        assert!(
            rx.recv_timeout(Duration::from_secs(30))
                .expect("delivery report"),
            "librdkafka delivery failed"
        );
        if i > 0 {
            // Record 0 is the warm-up.
            h.saturating_record(t.elapsed().as_nanos() as u64 / 1000);
        }
    }
    h
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; with `cargo test --benches` this runs nothing heavy.
    if !std::env::args().any(|a| a == "--bench") {
        println!("vs_librdkafka: run with `cargo bench --features cli --bench vs_librdkafka`");
        return;
    }
    let topic: String = env_or("BENCH_TOPIC", "bench".to_string());
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let n: u64 = env_or("BENCH_RECORDS", 1_000_000);
    let n_latency: u64 = env_or("BENCH_LATENCY_RECORDS", 10_000);
    let size: usize = env_or("BENCH_RECORD_SIZE", 100);
    let broker = Broker::start(&topic);
    let b = broker.bootstrap.clone();
    let payload = Bytes::from(vec![b'x'; size]);
    println!(
        "broker {b}{}; {rounds} rounds, alternating; medians reported",
        if broker.child.is_some() {
            " (kprod mock --sink, own process)"
        } else {
            ""
        }
    );
    println!(
        "settings: {size} B values, no key, no compression, linger 5 ms, batch.size 1000000, \
         buffer 1M records / 64 MiB; latency: linger 0, acks=1, one record at a time"
    );

    for s in [
        Setting {
            name: "acks=1",
            acks_all_idempotent: false,
        },
        Setting {
            name: "acks=all idempotent",
            acks_all_idempotent: true,
        },
    ] {
        let (mut k, mut r) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate who goes first, so drift in the machine's state is shared.
            if round % 2 == 0 {
                k.push(kprod_send(&b, &topic, n, &payload, s));
                r.push(rdkafka_send(&b, &topic, n, &payload, s));
            } else {
                r.push(rdkafka_send(&b, &topic, n, &payload, s));
                k.push(kprod_send(&b, &topic, n, &payload, s));
            }
            let (kl, rl) = (k.last().unwrap(), r.last().unwrap());
            println!(
                "  send {} round {round}: kprod {:.0} rec/s {:.3} µs CPU/rec | librdkafka {:.0} rec/s {:.3} µs CPU/rec",
                s.name, kl.records_per_sec, kl.cpu_us_per_record, rl.records_per_sec, rl.cpu_us_per_record
            );
        }
        let kt = median(k.iter().map(|f| f.records_per_sec).collect());
        let rt = median(r.iter().map(|f| f.records_per_sec).collect());
        let kc = median(k.iter().map(|f| f.cpu_us_per_record).collect());
        let rc = median(r.iter().map(|f| f.cpu_us_per_record).collect());
        println!(
            "send() {} {n} × {size} B: records/s kprod {kt:.0} librdkafka {rt:.0} ratio {:.2}× | \
             client CPU µs/record kprod {kc:.3} librdkafka {rc:.3} ratio {:.2}×",
            s.name,
            kt / rt,
            kc / rc
        );
    }

    let (mut k, mut r) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            k.push(kprod_produce(&b, &topic, n_latency, &payload));
            r.push(rdkafka_produce(&b, &topic, n_latency, &payload));
        } else {
            r.push(rdkafka_produce(&b, &topic, n_latency, &payload));
            k.push(kprod_produce(&b, &topic, n_latency, &payload));
        }
        let (kh, rh) = (k.last().unwrap(), r.last().unwrap());
        println!(
            "  produce round {round}: kprod p50 {} p99 {} µs | librdkafka p50 {} p99 {} µs",
            kh.value_at_quantile(0.5),
            kh.value_at_quantile(0.99),
            rh.value_at_quantile(0.5),
            rh.value_at_quantile(0.99)
        );
    }
    for (q, name) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let kq = median(k.iter().map(|h| h.value_at_quantile(q) as f64).collect());
        let rq = median(r.iter().map(|h| h.value_at_quantile(q) as f64).collect());
        println!(
            "produce() latency {name} ({n_latency} × {size} B, linger 0, acks=1): kprod {kq:.0} µs librdkafka {rq:.0} µs ratio {:.2}×",
            kq / rq
        );
    }
}
