//! kprod and librdkafka side by side, alternating in one run, against the same broker with the
//! same settings; prints each figure and the ratio kprod / librdkafka.
//!
//! ```text
//! cargo bench --features cli --bench vs_librdkafka      # neutral brokers (the default)
//! BENCH_SECTIONS=latency BENCH_ROUNDS=5 cargo bench --features cli --bench vs_librdkafka
//! BENCH_BROKER=sink cargo bench --features cli --bench vs_librdkafka   # the send matrix
//! BENCH_BOOTSTRAP=127.0.0.1:9092 cargo bench --features cli --bench vs_librdkafka
//! BENCH_ROUNDS=5 BENCH_RECORDS=2000000 BENCH_MATRIX=core ...
//! BENCH_CLIENT=kprod BENCH_ONLY='100 B none acks=1 1 thread' BENCH_LATENCY=false ...
//!     # one client, scenarios by name as printed (`|` between names), no latency runs: for
//!     # `perf record`
//! ```
//! The default run ([`neutral`]) puts both clients against brokers that are not kprod's own,
//! each in its own process: librdkafka's MockCluster for latency and partition scaling, tansu
//! for throughput, with whole-process CPU (`/usr/bin/time`) beside the in-process figures.
//!
//! The send matrix below runs against `kprod mock --sink` in its own process
//! (`BENCH_BROKER=sink`: offsets, no stored data, so neither client's CPU figure includes the
//! broker's — the clients' own cost, not what they achieve on a real broker), or against a
//! broker given by `BENCH_BOOTSTRAP` (the topic `BENCH_TOPIC`, default `bench`, 3 partitions,
//! must exist).
//!
//! Scenarios (`BENCH_MATRIX=core` runs only the first two `send` rows and the latency ones):
//! - `send`: fire-and-forget from 1 or 2 calling threads; 100 B (`BENCH_RECORDS`, default 1M)
//!   and 1 KiB values (a quarter as many); no compression, lz4, zstd; acks=1 without
//!   idempotence and acks=all with it; no key, linger 5 ms, 1 MB batches, buffer 1M records /
//!   64 MiB. Values are JSON-like text from a pool of 1,024 distinct ones (moderately
//!   compressible). records/s counts acknowledged records (kprod: `metrics().records_acked`
//!   after `flush`; librdkafka: delivery reports); client CPU is user+sys of this process per
//!   record.
//! - `produce`: blocking, one record at a time, linger 0, acks=1: latency percentiles of the
//!   call (kprod: `produce()`; librdkafka: `ThreadedProducer::send`, then a wait for its
//!   delivery report, which librdkafka's polling thread hands over as soon as it arrives).
//! - `rate`: `BENCH_RATE` records/s (default 50,000) for 2 s, 100 B, acks=all idempotent,
//!   linger 5 ms; latency from each record's intended send time to its delivery report (no
//!   coordinated omission).
//!
//! `BENCH_TLS=1` runs the TLS comparison instead: two `kprod mock --sink` processes, one
//! plaintext and one TLS (a certificate made for the run); `send()` of `BENCH_RECORDS` × 100 B
//! (no compression; acks=1, and acks=all with idempotence; one thread) with both clients over
//! TLS (kprod: rustls + ring; librdkafka: OpenSSL), then blocking `produce()` latency over
//! TLS beside plaintext for both.

mod neutral;
mod raw_librdkafka;
mod transactions;

#[path = "../support/codec.rs"]
mod codec;
#[path = "../../src/bin/kprod/cpu.rs"]
mod cpu;
#[cfg(feature = "opentelemetry")]
#[path = "../support/otel.rs"]
mod otel;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// Client properties both clients get (librdkafka names): security for the TLS run.
static SECURITY: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn security() -> Vec<(String, String)> {
    SECURITY.lock().unwrap().clone()
}

/// A kprod builder for `b` with [`SECURITY`].
///
/// With `--features cli,opentelemetry` and `KPROD_BENCH_OTEL=RATIO`, kprod also reports a span
/// per record (see `benches/support/otel.rs` for the variables): the cost of OpenTelemetry
/// in the matrix.
fn kprod_builder(b: &str) -> kprod::ProducerBuilder {
    let b = kprod::Producer::builder()
        .bootstrap_servers(b)
        .from_properties(security())
        .expect("security properties");
    #[cfg(feature = "opentelemetry")]
    if let Some(otel) = otel::from_env() {
        return b.opentelemetry(otel);
    }
    b
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
        Broker::spawn(topic, &[])
    }

    /// `kprod mock --sink` with `extra` arguments.
    fn spawn(topic: &str, extra: &[&str]) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kprod"))
            .args([
                "mock",
                "--sink",
                "--until-stdin-closes",
                "--topic",
                &format!("{topic}:3"),
            ])
            .args(extra)
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
    /// kprod only: records per batch sent, on average.
    records_per_batch: f64,
    /// kprod only: how far the process's peak RSS rose above its RSS before the run, bytes.
    peak_rss_added: u64,
    /// kprod only: its configured buffer, bytes.
    buffer_memory: u64,
    /// kprod only: CPU of its I/O threads (where batches are built and compressed) per record.
    io_cpu_us_per_record: f64,
}

/// CPU time of this process's live threads named `kprod-io…`.
fn io_threads_cpu() -> Duration {
    let all = cpu::client_cpu(None).unwrap_or_default();
    all.saturating_sub(cpu::client_cpu(Some("kprod-io")).unwrap_or_default())
}

/// Resets the process's peak RSS to its current RSS (Linux: `5` to /proc/self/clear_refs), so
/// a run's peak can be read after it.
fn reset_peak_rss() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    cpu::status_bytes("VmRSS:").unwrap_or(0)
}

#[derive(Clone, Copy, Debug)]
struct Setting {
    size: usize,
    codec: &'static str,
    acks_all_idempotent: bool,
    threads: usize,
    records: u64,
}

impl Setting {
    fn name(&self) -> String {
        format!(
            "{} B {} {} {} thread{}",
            self.size,
            self.codec,
            if self.acks_all_idempotent {
                "acks=all+idempotence"
            } else {
                "acks=1"
            },
            self.threads,
            if self.threads > 1 { "s" } else { "" }
        )
    }
}

/// 1,024 distinct JSON-like values of `size` bytes: compressible as real payloads are, not as
/// a run of one byte.
fn payloads(size: usize) -> Vec<Bytes> {
    (0..1024u64)
        .map(|i| {
            let mut v = Vec::with_capacity(size + 64);
            let mut k = i;
            while v.len() < size {
                k = k
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.extend_from_slice(
                    format!(
                        "{{\"id\":{},\"user\":\"u{}\",\"amount\":{}.{:02},\"ok\":true}}",
                        k % 100_000,
                        (k >> 20) % 5000,
                        (k >> 8) % 1000,
                        k % 100
                    )
                    .as_bytes(),
                );
            }
            v.truncate(size);
            Bytes::from(v)
        })
        .collect()
}

fn kprod_codec(name: &str) -> kprod::Compression {
    match name {
        "lz4" => kprod::Compression::Lz4,
        "zstd" => kprod::Compression::Zstd,
        _ => kprod::Compression::None,
    }
}

fn kprod_send(b: &str, topic: &str, s: Setting, pool: &[Bytes]) -> SendFigures {
    let p = kprod_builder(b)
        .acks(if s.acks_all_idempotent {
            kprod::Acks::All
        } else {
            kprod::Acks::Leader
        })
        .idempotence(s.acks_all_idempotent)
        .compression(kprod_codec(s.codec))
        .linger(Duration::from_millis(5))
        .batch_size(1_000_000)
        .build()
        .expect("kprod producer");
    p.produce(topic, (), "warm-up").expect("warm-up");
    let rss0 = reset_peak_rss();
    let io0 = io_threads_cpu();
    let cpu0 = cpu::client_cpu(None).unwrap_or_default();
    let t = Instant::now();
    std::thread::scope(|sc| {
        for k in 0..s.threads {
            let p = &p;
            sc.spawn(move || {
                for i in (k as u64..s.records).step_by(s.threads) {
                    p.send(topic, (), pool[i as usize % pool.len()].clone())
                        .expect("send");
                }
            });
        }
    });
    p.flush(Duration::from_secs(300)).expect("flush");
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
    let io_cpu = io_threads_cpu().saturating_sub(io0);
    let peak_rss_added = cpu::status_bytes("VmHWM:")
        .unwrap_or(0)
        .saturating_sub(rss0);
    let p_buffer = p.config().buffer_memory;
    let m = p.metrics();
    let acked = m.records_acked - 1;
    assert_eq!(acked, s.records, "kprod: every record acknowledged");
    p.close(Duration::from_secs(10)).expect("close");
    SendFigures {
        records_per_sec: acked as f64 / secs,
        cpu_us_per_record: cpu.as_secs_f64() * 1e6 / acked as f64,
        records_per_batch: m.records_batched as f64 / m.batches_sent.max(1) as f64,
        peak_rss_added,
        buffer_memory: p_buffer as u64,
        io_cpu_us_per_record: io_cpu.as_secs_f64() * 1e6 / acked as f64,
    }
}

/// Counts delivery reports.
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

/// Records each delivery's latency from its intended send time (the opaque).
struct Timing(Arc<Mutex<Histogram<u64>>>);

impl ClientContext for Timing {}

impl ProducerContext for Timing {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, intended: Box<Instant>) {
        assert!(r.is_ok(), "librdkafka delivery failed");
        self.0
            .lock()
            .unwrap()
            .saturating_record(intended.elapsed().as_micros() as u64);
    }
}

fn rdkafka_config(b: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "65536")
        // kprod sets TCP_NODELAY; so does this, for equal terms.
        .set("socket.nagle.disable", "true");
    for (k, v) in security() {
        c.set(k, v);
    }
    if let Ok(d) = std::env::var("BENCH_RDKAFKA_DEBUG") {
        c.set("debug", d);
    }
    c
}

fn rdkafka_send(b: &str, topic: &str, s: Setting, pool: &[Bytes]) -> SendFigures {
    let ctx = Counting {
        acked: Arc::default(),
        failed: Arc::default(),
    };
    let (acked, failed) = (ctx.acked.clone(), ctx.failed.clone());
    let p: BaseProducer<Counting> = rdkafka_config(b)
        .set("acks", if s.acks_all_idempotent { "all" } else { "1" })
        .set("enable.idempotence", s.acks_all_idempotent.to_string())
        .set("compression.type", s.codec)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .create_with_context(ctx)
        .expect("librdkafka producer");
    p.send(BaseRecord::<(), [u8]>::to(topic).payload(&b"warm-up"[..]))
        .map_err(|(e, _)| e)
        .expect("warm-up");
    p.flush(Duration::from_secs(30)).expect("warm-up flush");
    acked.store(0, Ordering::Relaxed);
    let cpu0 = cpu::client_cpu(None).unwrap_or_default();
    let t = Instant::now();
    std::thread::scope(|sc| {
        for k in 0..s.threads {
            let p = &p;
            sc.spawn(move || {
                for i in (k as u64..s.records).step_by(s.threads) {
                    let value = &pool[i as usize % pool.len()][..];
                    loop {
                        match p.send(BaseRecord::<(), [u8]>::to(topic).payload(value)) {
                            Ok(()) => break,
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                _,
                            )) => {
                                p.poll(Duration::from_millis(1));
                            }
                            Err((e, _)) => panic!("librdkafka send: {e}"),
                        }
                    }
                    if i % 1024 == 0 {
                        p.poll(Duration::ZERO);
                    }
                }
            });
        }
    });
    p.flush(Duration::from_secs(300)).expect("flush");
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
    let acked = acked.load(Ordering::Relaxed);
    assert_eq!(
        (acked, failed.load(Ordering::Relaxed)),
        (s.records, 0),
        "librdkafka: every record acknowledged"
    );
    SendFigures {
        records_per_sec: acked as f64 / secs,
        cpu_us_per_record: cpu.as_secs_f64() * 1e6 / acked as f64,
        records_per_batch: 0.0,
        peak_rss_added: 0,
        buffer_memory: 0,
        io_cpu_us_per_record: 0.0,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

fn kprod_produce(b: &str, topic: &str, n: u64, payload: &Bytes) -> Histogram<u64> {
    let p = kprod_builder(b)
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
struct Signalling(Mutex<std::sync::mpsc::Sender<bool>>);

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
        .create_with_context(Signalling(Mutex::new(tx)))
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

/// Sleeps until `at` (both clients' pacing is the same).
fn wait_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

fn kprod_rate(b: &str, topic: &str, rate: f64, n: u64, pool: &[Bytes]) -> Histogram<u64> {
    let p = kprod_builder(b)
        .linger(Duration::from_millis(5))
        .build()
        .expect("kprod producer");
    p.produce(topic, (), "warm-up").expect("warm-up");
    let h = Arc::new(Mutex::new(new_histogram()));
    let name: Arc<str> = topic.into();
    let start = Instant::now();
    for i in 0..n {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        wait_until(intended);
        let h = h.clone();
        let r =
            kprod::ProducerRecord::new(name.clone()).value(pool[i as usize % pool.len()].clone());
        p.send_with(r, move |r| {
            r.expect("delivered");
            h.lock()
                .unwrap()
                .saturating_record(intended.elapsed().as_micros() as u64);
        })
        .expect("send");
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    p.close(Duration::from_secs(10)).expect("close");
    let h = h.lock().unwrap().clone();
    h
}

fn rdkafka_rate(b: &str, topic: &str, rate: f64, n: u64, pool: &[Bytes]) -> Histogram<u64> {
    let latency = Arc::new(Mutex::new(new_histogram()));
    let p: ThreadedProducer<Timing> = rdkafka_config(b)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(Timing(latency.clone()))
        .expect("librdkafka producer");
    p.send(
        BaseRecord::<(), [u8], _>::with_opaque_to(topic, Box::new(Instant::now()))
            .payload(&b"warm-up"[..]),
    )
    .map_err(|(e, _)| e)
    .expect("warm-up");
    p.flush(Duration::from_secs(30)).expect("warm-up flush");
    latency.lock().unwrap().reset();
    let start = Instant::now();
    for i in 0..n {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        wait_until(intended);
        p.send(
            BaseRecord::<(), [u8], _>::with_opaque_to(topic, Box::new(intended))
                .payload(&pool[i as usize % pool.len()][..]),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let h = latency.lock().unwrap().clone();
    h
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `k` and `r` alternately for `rounds` rounds, swapping who goes first each round.
/// `BENCH_CLIENT=kprod` (or `librdkafka`) runs only that client, for profiling; the other's
/// figures are then the same as the one that ran, and the ratios 1.
fn alternate<T: Clone>(
    rounds: usize,
    mut k: impl FnMut() -> T,
    mut r: impl FnMut() -> T,
) -> (Vec<T>, Vec<T>) {
    let only = std::env::var("BENCH_CLIENT").unwrap_or_default();
    let (mut ks, mut rs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        match only.as_str() {
            "kprod" => {
                let x = k();
                ks.push(x.clone());
                rs.push(x);
            }
            "librdkafka" => {
                let x = r();
                ks.push(x.clone());
                rs.push(x);
            }
            _ if round % 2 == 0 => {
                ks.push(k());
                rs.push(r());
            }
            _ => {
                rs.push(r());
                ks.push(k());
            }
        }
    }
    (ks, rs)
}

fn report_latency(what: &str, k: &[Histogram<u64>], r: &[Histogram<u64>]) {
    for (q, name) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let kq = median(k.iter().map(|h| h.value_at_quantile(q) as f64).collect());
        let rq = median(r.iter().map(|h| h.value_at_quantile(q) as f64).collect());
        println!(
            "{what} {name}: kprod {kq:.0} µs librdkafka {rq:.0} µs ratio {:.2}×  (rounds: kprod {:?} librdkafka {:?})",
            kq / rq,
            k.iter().map(|h| h.value_at_quantile(q)).collect::<Vec<_>>(),
            r.iter().map(|h| h.value_at_quantile(q)).collect::<Vec<_>>(),
        );
    }
}

/// What compression adds to kprod's client CPU per record (a codec's send run minus the
/// uncompressed run, same size, acks=1, one thread), beside the codec's own cost compressing
/// the same records: batches of the size kprod made in that run, from the same values, by the
/// codec library alone with its state reused ([`codec::CodecFloor`]).
fn codec_cost(
    results: &[(Setting, Vec<SendFigures>)],
    pools: &std::collections::HashMap<usize, Vec<Bytes>>,
) {
    let find = |size: usize, codec: &str| {
        results.iter().find(|(s, _)| {
            s.size == size && s.codec == codec && !s.acks_all_idempotent && s.threads == 1
        })
    };
    for size in [100usize, 1024] {
        let Some((_, none)) = find(size, "none") else {
            continue;
        };
        let none_cpu = median(none.iter().map(|f| f.cpu_us_per_record).collect());
        let none_io = median(none.iter().map(|f| f.io_cpu_us_per_record).collect());
        for (name, codec) in [
            ("lz4", kprod::Compression::Lz4),
            ("zstd", kprod::Compression::Zstd),
        ] {
            let Some((_, runs)) = find(size, name) else {
                continue;
            };
            let cpu = median(runs.iter().map(|f| f.cpu_us_per_record).collect());
            let io = median(runs.iter().map(|f| f.io_cpu_us_per_record).collect());
            let per_batch = median(runs.iter().map(|f| f.records_per_batch).collect())
                .round()
                .max(1.0) as usize;
            let pool = &pools[&size];
            let vals: Vec<&Bytes> = (0..per_batch).map(|i| &pool[i % pool.len()]).collect();
            let region = codec::records_region(&vals);
            let mut floor = codec::CodecFloor::new(codec);
            let mut out = Vec::new();
            let t = Instant::now();
            let mut batches = 0u64;
            let mut compressed = 0;
            while t.elapsed() < Duration::from_millis(500) || batches < 3 {
                compressed = floor.compress(std::hint::black_box(&region), &mut out);
                batches += 1;
            }
            let alone = t.elapsed().as_secs_f64() * 1e6 / (batches as f64 * per_batch as f64);
            let added = cpu - none_cpu;
            let io_added = io - none_io;
            println!(
                "codec {name} {size} B (acks=1, 1 thread): kprod CPU µs/record {cpu:.3} vs {none_cpu:.3} uncompressed: compression adds {added:.3} (I/O threads: {io:.3} vs {none_io:.3}, adds {io_added:.3}); {name} alone on the same records ({per_batch} per batch, {} → {} B) {alone:.3} µs/record; added / alone {:.2}× (I/O threads {:.2}×)",
                region.len(),
                compressed,
                added / alone,
                io_added / alone
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // This binary run again as a broker or as one client's run (the neutral run's children).
    match args.get(1).map(String::as_str) {
        Some("--rdkafka-mock-cluster") => return neutral::serve_mock_cluster(&args[2..]),
        Some("--child") => return neutral::child(&args[2..]),
        _ => {}
    }
    // `cargo bench` passes `--bench`; with `cargo test --benches` this runs nothing heavy.
    if !args.iter().any(|a| a == "--bench") {
        println!("vs_librdkafka: run with `cargo bench --features cli --bench vs_librdkafka`");
        return;
    }
    let topic: String = env_or("BENCH_TOPIC", "bench".to_string());
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let n: u64 = env_or("BENCH_RECORDS", 1_000_000);
    let n_latency: u64 = env_or("BENCH_LATENCY_RECORDS", 10_000);
    let rate: f64 = env_or("BENCH_RATE", 50_000.0);
    let core = env_or("BENCH_MATRIX", "full".to_string()) == "core";
    if env_or("BENCH_TLS", 0) == 1 {
        return tls_main(&topic, rounds, n, n_latency);
    }
    let broker: String = env_or("BENCH_BROKER", "neutral".to_string());
    if broker == "neutral" && std::env::var("BENCH_BOOTSTRAP").is_err() {
        return neutral::main(rounds, n, n_latency, rate);
    }
    assert!(
        broker == "neutral" || broker == "sink",
        "BENCH_BROKER: neutral or sink"
    );
    let broker = Broker::start(&topic);
    let b = broker.bootstrap.clone();
    println!(
        "broker {b}{}; {rounds} rounds, alternating; medians reported",
        if broker.child.is_some() {
            " (kprod mock --sink, own process)"
        } else {
            ""
        }
    );

    let mut settings = Vec::new();
    for size in [100usize, 1024] {
        for codec in ["none", "lz4", "zstd"] {
            for acks_all_idempotent in [false, true] {
                for threads in [1, 2] {
                    settings.push(Setting {
                        size,
                        codec,
                        acks_all_idempotent,
                        threads,
                        records: if size > 100 { n / 4 } else { n },
                    });
                }
            }
        }
    }
    if core {
        settings.retain(|s| s.size == 100 && s.codec == "none" && s.threads == 1);
    }
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        settings.retain(|s| only.split('|').any(|o| s.name() == o));
    }
    let mut pools = std::collections::HashMap::new();
    let mut kprod_results: Vec<(Setting, Vec<SendFigures>)> = Vec::new();
    for s in &settings {
        let pool = pools.entry(s.size).or_insert_with(|| payloads(s.size));
        let (k, r) = alternate(
            rounds,
            || kprod_send(&b, &topic, *s, pool),
            || rdkafka_send(&b, &topic, *s, pool),
        );
        let kt = median(k.iter().map(|f| f.records_per_sec).collect());
        let rt = median(r.iter().map(|f| f.records_per_sec).collect());
        let kc = median(k.iter().map(|f| f.cpu_us_per_record).collect());
        let rc = median(r.iter().map(|f| f.cpu_us_per_record).collect());
        println!(
            "send() {} × {}: records/s kprod {kt:.0} librdkafka {rt:.0} ratio {:.2}× | client CPU µs/record kprod {kc:.3} librdkafka {rc:.3} ratio {:.2}×",
            s.records,
            s.name(),
            kt / rt,
            kc / rc
        );
        println!(
            "    kprod: {:.0} records per batch; peak RSS {:.1} MiB above the RSS before the run (buffer {} MiB)",
            median(k.iter().map(|f| f.records_per_batch).collect()),
            median(k.iter().map(|f| f.peak_rss_added as f64).collect()) / 1048576.0,
            k[0].buffer_memory >> 20,
        );
        kprod_results.push((*s, k));
    }
    codec_cost(&kprod_results, &pools);

    if !env_or("BENCH_LATENCY", true) {
        return;
    }
    let payload = payloads(100)[0].clone();
    let (k, r) = alternate(
        rounds,
        || kprod_produce(&b, &topic, n_latency, &payload),
        || rdkafka_produce(&b, &topic, n_latency, &payload),
    );
    report_latency(
        &format!("produce() latency ({n_latency} × 100 B, linger 0, acks=1)"),
        &k,
        &r,
    );

    let pool = payloads(100);
    let n_rate = (rate * 2.0) as u64;
    let (k, r) = alternate(
        rounds,
        || kprod_rate(&b, &topic, rate, n_rate, &pool),
        || rdkafka_rate(&b, &topic, rate, n_rate, &pool),
    );
    report_latency(
        &format!("fixed rate {rate:.0}/s latency from intended send time ({n_rate} × 100 B, acks=all idempotent, linger 5 ms)"),
        &k,
        &r,
    );
}

/// `BENCH_TLS=1`: both clients over TLS to `kprod mock --sink --tls-cert ...` in its own
/// process; then `produce()` latency over TLS beside plaintext.
fn tls_main(topic: &str, rounds: usize, n: u64, n_latency: u64) {
    let dir = std::env::temp_dir().join(format!("kprod-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL takes a certificate whose issuer is its own subject for a
    // self-signed one.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kprod bench CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let (cert, key, ca) = (
        path("broker.pem", &cert.pem()),
        path("broker.key", &key.serialize_pem()),
        path("ca.pem", &ca.pem()),
    );
    let plain = Broker::spawn(topic, &[]);
    let tls = Broker::spawn(topic, &["--tls-cert", &cert, "--tls-key", &key]);
    let tls_props = vec![
        ("security.protocol".to_string(), "SSL".to_string()),
        ("ssl.ca.location".to_string(), ca.clone()),
    ];
    println!(
        "TLS: broker {} (kprod mock --sink --tls-cert, own process; plaintext twin {}); \
         kprod rustls+ring, librdkafka OpenSSL; {rounds} rounds, alternating; medians",
        tls.bootstrap, plain.bootstrap
    );
    let pool = payloads(100);
    *SECURITY.lock().unwrap() = tls_props.clone();
    for acks_all_idempotent in [false, true] {
        let s = Setting {
            size: 100,
            codec: "none",
            acks_all_idempotent,
            threads: 1,
            records: n,
        };
        let (k, r) = alternate(
            rounds,
            || kprod_send(&tls.bootstrap, topic, s, &pool),
            || rdkafka_send(&tls.bootstrap, topic, s, &pool),
        );
        let kt = median(k.iter().map(|f| f.records_per_sec).collect());
        let rt = median(r.iter().map(|f| f.records_per_sec).collect());
        let kc = median(k.iter().map(|f| f.cpu_us_per_record).collect());
        let rc = median(r.iter().map(|f| f.cpu_us_per_record).collect());
        println!(
            "TLS send() {} × {}: records/s kprod {kt:.0} librdkafka {rt:.0} ratio {:.2}× | client CPU µs/record kprod {kc:.3} librdkafka {rc:.3} ratio {:.2}×",
            s.records,
            s.name(),
            kt / rt,
            kc / rc
        );
    }
    if !env_or("BENCH_LATENCY", true) {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let payload = pool[0].clone();
    // Each round: plaintext then TLS (then TLS then plaintext), per client.
    let by = |props: Vec<(String, String)>, b: &str, kprod: bool| {
        *SECURITY.lock().unwrap() = props;
        if kprod {
            kprod_produce(b, topic, n_latency, &payload)
        } else {
            rdkafka_produce(b, topic, n_latency, &payload)
        }
    };
    for (client, kprod) in [("kprod", true), ("librdkafka", false)] {
        let (t, p) = alternate(
            rounds,
            || by(tls_props.clone(), &tls.bootstrap, kprod),
            || by(Vec::new(), &plain.bootstrap, kprod),
        );
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            let tq = median(t.iter().map(|h| h.value_at_quantile(q) as f64).collect());
            let pq = median(p.iter().map(|h| h.value_at_quantile(q) as f64).collect());
            println!(
                "{client} produce() {n_latency} × 100 B linger 0 acks=1 {name}: TLS {tq:.0} µs plaintext {pq:.0} µs, TLS adds {:.0} µs",
                tq - pq
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
