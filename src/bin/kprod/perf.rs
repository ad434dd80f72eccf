//! `kprod perf`: kafka-producer-perf-test's report, plus µs percentiles and client CPU per
//! acknowledged record.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use kprod::{Producer, ProducerRecord};
use parking_lot::Mutex;

use crate::{cpu, Target, Tuning};

#[derive(Args, Debug)]
pub struct PerfArgs {
    /// Bootstrap brokers, host:port[,host:port...]. Without it, an embedded mock cluster in
    /// sink mode (the broker's cost is left out of the client CPU figure).
    #[arg(short = 'b', long = "bootstrap-servers", value_name = "BOOTSTRAP")]
    bootstrap: Option<String>,
    /// Topic to produce to.
    #[arg(short = 't', long, default_value = "kprod-perf")]
    topic: String,
    /// Records to produce.
    #[arg(long, default_value_t = 1_000_000)]
    num_records: u64,
    /// Bytes per record value (no key).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per second to aim for; -1: as fast as possible. At a fixed rate, latency counts
    /// from each record's intended send time (no coordinated omission).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    throughput: f64,
    /// `send`: fire-and-forget with a delivery callback; `produce`: blocking, one at a time.
    #[arg(long, value_enum, default_value_t = Mode::Send)]
    mode: Mode,
    /// Partitions of the embedded cluster's topic (ignored with -b).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Calling threads sharing the producer; each sends its share of the records (and of
    /// the throughput).
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Print the producer's metrics snapshot (one `stats` line on stderr) every SECS seconds
    /// while records are sent; 0: never.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    stats_interval: f64,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Send,
    Produce,
}

/// What completions report, shared with the callbacks and the progress reporter.
struct Tally {
    latency_us: Mutex<Histogram<u64>>,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<kprod::Error>>,
}

impl Tally {
    fn complete(&self, intended: Instant, result: kprod::DeliveryResult) {
        match result {
            Ok(_) => {
                let us = intended.elapsed().as_micros() as u64;
                self.latency_us.lock().saturating_record(us.max(1));
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().get_or_insert(e);
            }
        }
    }
}

pub fn run(a: PerfArgs) -> Result<ExitCode, String> {
    if a.num_records == 0 {
        return Err("--num-records must be at least 1".into());
    }
    if a.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if !(a.stats_interval >= 0.0 && a.stats_interval.is_finite()) {
        return Err("--stats-interval must be 0 (off) or a number of seconds".into());
    }
    let target = Target::resolve(a.bootstrap.as_deref(), &a.topic, a.partitions.max(1), true)?;
    let producer = a
        .tuning
        .builder(&target.bootstrap)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let c = producer.config();
    eprintln!(
        "kprod perf: mode={:?} records={} size={}B throughput={} threads={} | acks={:?} \
         idempotence={} linger={:?} batch.size={} compression={:?} max.in.flight={} io_threads={} idle_spin={:?}",
        a.mode,
        a.num_records,
        a.record_size,
        if a.throughput > 0.0 {
            format!("{}/s", a.throughput)
        } else {
            "max".into()
        },
        a.threads,
        c.acks,
        c.idempotence,
        c.linger,
        c.batch_size,
        c.compression.compression,
        c.max_in_flight,
        c.io_threads,
        c.idle_spin,
    );
    // Connections and metadata first, so the run measures steady state.
    producer
        .produce(&a.topic, (), Bytes::new())
        .map_err(|e| format!("warm-up record: {e}"))?;

    let tally = Arc::new(Tally {
        latency_us: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    // Printable payload, as kafka-producer-perf-test's random uppercase letters; shared by
    // every record (no copy per record).
    let payload = Bytes::from(
        (0..a.record_size)
            .map(|i| b'A' + ((i * 7 + 3) % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    let exclude = target.embedded.as_ref().map(|_| "km");
    let done = Arc::new(AtomicBool::new(false));
    let reporter = spawn_reporter(tally.clone(), done.clone(), a.num_records, a.record_size);

    let cpu0 = cpu::client_cpu(exclude);
    let start = Instant::now();
    let rate = (a.throughput > 0.0).then_some(a.throughput);
    // Shared, so that each record's copy of the name counts a reference (no allocation).
    let topic: Arc<str> = a.topic.as_str().into();
    // Thread k sends records k, k + threads, k + 2 × threads, ...: at a fixed rate, record
    // i's intended time is i / rate whichever thread sends it.
    let senders = std::sync::atomic::AtomicU32::new(a.threads);
    std::thread::scope(|s| {
        // The stats thread, if asked for: it waits for the next tick or for the last sender
        // to finish (which unparks it).
        let stats = (a.stats_interval > 0.0).then(|| {
            let (producer, senders) = (&producer, &senders);
            let every = Duration::from_secs_f64(a.stats_interval);
            s.spawn(move || {
                let mut next = start + every;
                while senders.load(Ordering::SeqCst) > 0 {
                    let now = Instant::now();
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    eprintln!("{}", stats_line(start.elapsed(), &producer.metrics()));
                    next += every;
                }
            })
        });
        let stats = stats.as_ref().map(|h| h.thread().clone());
        for k in 0..u64::from(a.threads) {
            let (producer, tally, payload, topic) = (&producer, &tally, &payload, &topic);
            let (senders, stats) = (&senders, stats.clone());
            let mode = a.mode;
            let (n, step) = (a.num_records, u64::from(a.threads));
            s.spawn(move || {
                for i in (k..n).step_by(step as usize) {
                    let intended = match rate {
                        Some(r) => {
                            let at = start + Duration::from_secs_f64(i as f64 / r);
                            wait_until(at);
                            at
                        }
                        None => Instant::now(),
                    };
                    let record = ProducerRecord::new(topic.clone()).value(payload.clone());
                    match mode {
                        Mode::Send => {
                            let t = tally.clone();
                            if let Err(e) =
                                producer.send_with(record, move |r| t.complete(intended, r))
                            {
                                tally.complete(intended, Err(e.error));
                            }
                        }
                        Mode::Produce => tally.complete(intended, producer.produce_record(record)),
                    }
                }
                if senders.fetch_sub(1, Ordering::SeqCst) == 1 {
                    if let Some(t) = stats {
                        t.unpark();
                    }
                }
            });
        }
    });
    let flushed = producer.flush(c.delivery_timeout + c.request_timeout);
    let elapsed = start.elapsed();
    let cpu1 = cpu::client_cpu(exclude);
    done.store(true, Ordering::SeqCst);
    reporter.thread().unpark();
    let _ = reporter.join();
    let metrics = producer.metrics();
    let buffer_memory = producer.config().buffer_memory;
    finish(&producer, flushed);

    let acked = tally.acked.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let h = tally.latency_us.lock();
    let secs = elapsed.as_secs_f64();
    let ms = |us: u64| us / 1000;
    println!(
        "{acked} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, \
         {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        acked as f64 / secs,
        acked as f64 * a.record_size as f64 / secs / (1024.0 * 1024.0),
        h.mean() / 1000.0,
        h.max() as f64 / 1000.0,
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
    );
    println!(
        "latency µs ({}): p50 {} p95 {} p99 {} p99.9 {} max {}",
        match (a.mode, rate) {
            (_, Some(_)) => "from the intended send time",
            (Mode::Send, None) => "send() to completion, at saturation: mostly queueing",
            (Mode::Produce, None) => "produce() call to return",
        },
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.95),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let cpu = c1.saturating_sub(c0);
        println!(
            "client CPU: {:.3} µs per acknowledged record ({:.2} s user+sys in {:.2} s{})",
            cpu.as_secs_f64() * 1e6 / acked.max(1) as f64,
            cpu.as_secs_f64(),
            secs,
            if exclude.is_some() {
                ", embedded broker's threads excluded"
            } else {
                ""
            },
        );
    }
    if let Some(peak) = cpu::status_bytes("VmHWM:") {
        println!(
            "memory: peak RSS {:.1} MiB (the whole process{}; buffer {} MiB)",
            peak as f64 / 1048576.0,
            if exclude.is_some() {
                ", embedded broker included"
            } else {
                ""
            },
            buffer_memory >> 20,
        );
    }
    println!(
        "producer: {} batches, {:.1} records per batch, compression ratio {:.2}, {} requests, {} retries, {} wake-ups",
        metrics.batches_sent,
        metrics.mean_batch_records(),
        metrics.compression_ratio(),
        metrics.requests_sent,
        metrics.retries,
        metrics.wakeups,
    );
    for b in &metrics.request_latency {
        println!(
            "broker {}: {} Produce requests, round trip µs p50 {} p99 {} p99.9 {} max {}, {} in flight",
            b.broker, b.requests, b.p50_us, b.p99_us, b.p999_us, b.max_us, b.in_flight
        );
    }
    if metrics.stages.total.count > 0 {
        println!("{}", metrics.stages.line());
    }
    if failed > 0 {
        eprintln!(
            "kprod perf: {failed} records failed; the first: {}",
            tally
                .first_error
                .lock()
                .as_ref()
                .map_or(String::new(), |e| e.to_string())
        );
    }
    drop(target);
    Ok(if failed == 0 && acked == a.num_records {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn finish(producer: &Producer, flushed: Result<(), kprod::Error>) {
    if let Err(e) = flushed {
        eprintln!("kprod perf: flush: {e}");
    }
    if let Err(e) = producer.close(Duration::from_secs(10)) {
        eprintln!("kprod perf: close: {e}");
    }
}

/// Sleeps until `at`. No spinning: the pacing thread's CPU counts as client CPU. Oversleep
/// (timer slack, ~50-100 µs) shows in the latency, measured from `at`; the next records'
/// intended times have then passed and they go at once.
fn wait_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

/// `--stats-interval`'s line: the snapshot's counters that say how the run is going.
fn stats_line(at: Duration, m: &kprod::MetricsSnapshot) -> String {
    let mut line = format!(
        "stats at {:.1} s: in_flight={} queue_depth={} sent={} acked={} failed={} batches={} \
         requests={} retries={} mean_batch={:.1} compression={:.2} connects={} disconnects={} \
         throttled={} epoch_bumps={}",
        at.as_secs_f64(),
        m.in_flight,
        m.queue_depth,
        m.records_sent,
        m.records_acked,
        m.records_failed,
        m.batches_sent,
        m.requests_sent,
        m.retries,
        m.mean_batch_records(),
        m.compression_ratio(),
        m.connects,
        m.disconnects,
        m.throttled_responses,
        m.epoch_bumps,
    );
    for b in &m.request_latency {
        line.push_str(&format!(
            " broker{}_rtt_us=p50:{},p99:{} broker{}_in_flight={}",
            b.broker, b.p50_us, b.p99_us, b.broker, b.in_flight
        ));
    }
    line
}

/// Progress: on a terminal, a bar redrawn four times a second; otherwise a line every 5 s,
/// as kafka-producer-perf-test prints.
fn spawn_reporter(
    tally: Arc<Tally>,
    done: Arc<AtomicBool>,
    total: u64,
    record_size: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("perf-progress".into())
        .spawn(move || {
            let tty = std::io::stderr().is_terminal();
            let every = if tty { Duration::from_millis(250) } else { Duration::from_secs(5) };
            let (mut last_at, mut last_n) = (Instant::now(), 0u64);
            let mut next = last_at + every;
            loop {
                while !done.load(Ordering::SeqCst) && Instant::now() < next {
                    std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
                }
                if done.load(Ordering::SeqCst) {
                    if tty {
                        eprintln!();
                    }
                    return;
                }
                let now = Instant::now();
                let n = tally.acked.load(Ordering::Relaxed);
                let window = now.duration_since(last_at).as_secs_f64();
                let rate = (n - last_n) as f64 / window;
                let (avg, max) = {
                    let h = tally.latency_us.lock();
                    (h.mean() / 1000.0, h.max() as f64 / 1000.0)
                };
                if tty {
                    let width = 30;
                    let filled = (n * width / total.max(1)).min(width) as usize;
                    eprint!(
                        "\r[{}{}] {n}/{total} {rate:.0} rec/s, {avg:.2} ms avg latency ",
                        "#".repeat(filled),
                        " ".repeat(width as usize - filled)
                    );
                    let _ = std::io::stderr().flush();
                } else {
                    eprintln!(
                        "{} records sent, {rate:.1} records/sec ({:.2} MB/sec), {avg:.2} ms avg latency, {max:.2} ms max latency.",
                        n - last_n,
                        rate * record_size as f64 / (1024.0 * 1024.0),
                    );
                }
                (last_at, last_n) = (now, n);
                next = now + every;
            }
        })
        .expect("spawning the progress thread")
}
