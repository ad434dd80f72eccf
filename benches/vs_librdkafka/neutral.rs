//! The default run: kprod and librdkafka against brokers that are not kprod's own, each broker
//! in its own process, same settings on both sides (issue #17, part 6).
//!
//! - `latency` — librdkafka's MockCluster (1 broker, topic of 3 partitions), one blocking call
//!   at a time, 100 B, no key, acks=1, in-process CPU per record beside the percentiles:
//!   - default settings (linger 5 ms): kprod `produce()` against librdkafka's blocking idiom,
//!     produce + `rd_kafka_flush` (which sends at once and returns at the delivery report);
//!   - linger 0: kprod `produce()` against librdkafka busy-polled (produce, then
//!     `rd_kafka_poll(rk, 0)` until the report: its best latency, a core's worth of CPU);
//!   - low-latency: kprod `ProducerBuilder::for_low_latency()` (linger 0 and the idle spin)
//!     against librdkafka busy-polled;
//!   - fixed rate (`BENCH_RATE`, default 50,000/s, for 2 s; acks=all idempotent, linger 5 ms):
//!     latency from each record's intended send time to its completion (kprod `send_with`,
//!     librdkafka's `ThreadedProducer` delivery reports).
//! - `throughput` — tansu (memory storage, topic of 6 partitions), `BENCH_RECORDS` (default
//!   1M) × 100 B, no key, acks=1, linger 5 ms, 1 MB batches, no compression. Each run is a
//!   process of its own under `/usr/bin/time`: whole-process CPU and wall time (start-up,
//!   metadata and connections included) beside the figures measured inside the process
//!   (after a warm-up record, until the last acknowledgement):
//!   - fire-and-forget: kprod `send()` against librdkafka with
//!     `delivery.report.only.error=true` (its fire-and-forget), and against librdkafka with a
//!     report per record (which measures cheaper than reporting errors only, here);
//!   - a completion per record: kprod `send_with` (a callback on the callback pool, as
//!     `kprod perf` does) against librdkafka's delivery report per record.
//! - `partitions` — librdkafka's MockCluster with 3 brokers, 200,000 keyed 100 B
//!   fire-and-forget records (10,000 distinct keys, murmur2 on both sides), acks=1, across
//!   topics of 6 to 2,000 partitions, whole process; writes `target/partition_scaling.csv`.
//! - `transactions` — kprod's and librdkafka's transactional producers on librdkafka's
//!   MockCluster, transactions of 100 and of 10,000 records, whole process
//!   ([`super::transactions`]).
//!
//! `BENCH_SECTIONS=latency,throughput,partitions,transactions` (the default: all) picks
//! sections, and `BENCH_LATENCY_RUNS` latency runs (by the start of their names, `|`
//! between: e.g. `low-latency|fixed rate`);
//! `TANSU` names the tansu binary (default `tansu` on the PATH; `scripts/test.sh` installs it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use super::raw_librdkafka::RawProducer;
use super::{alternate, cpu, env_or, median, new_histogram, payloads, report_latency};

/// A broker in a child process, stopped (and reaped) on drop.
pub struct ChildBroker {
    pub bootstrap: String,
    child: Child,
    /// tansu is killed; the MockCluster child stops when its stdin closes.
    kill: bool,
}

impl ChildBroker {
    /// librdkafka's MockCluster with `brokers` brokers and `topics` (name, partitions): this
    /// bench binary run again with `--rdkafka-mock-cluster` ([`serve_mock_cluster`]).
    pub fn rdkafka_mock(brokers: u32, topics: &[(&str, u32)]) -> ChildBroker {
        let mut child = Command::new(std::env::current_exe().expect("bench binary"))
            .arg("--rdkafka-mock-cluster")
            .arg(brokers.to_string())
            .args(topics.iter().map(|(t, p)| format!("{t}:{p}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting librdkafka's MockCluster");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(!line.trim().is_empty(), "MockCluster printed no address");
        ChildBroker {
            bootstrap: line.trim().to_string(),
            child,
            kill: false,
        }
    }

    /// tansu on a free loopback port with memory storage, and `topic` of `partitions`; None
    /// (with a note) if tansu cannot be run.
    pub fn tansu(topic: &str, partitions: u32) -> Option<ChildBroker> {
        let bin = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                println!("tansu: cannot run `{bin}` ({e}); `bash scripts/test.sh` installs it, or set TANSU");
                return None;
            }
        };
        let broker = ChildBroker {
            bootstrap: format!("127.0.0.1:{port}"),
            child,
            kill: true,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = Command::new(&bin)
            .args(["topic", "create", topic, "--partitions"])
            .arg(partitions.to_string())
            .args(["--broker", &url])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create {topic}");
        Some(broker)
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        if self.kill {
            let _ = self.child.kill();
        }
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `--rdkafka-mock-cluster BROKERS TOPIC:PARTITIONS...`: serves librdkafka's MockCluster,
/// prints its bootstrap address, and stops when stdin closes.
pub fn serve_mock_cluster(args: &[String]) {
    let brokers: i32 = args[0].parse().expect("broker count");
    let cluster = rdkafka::mocking::MockCluster::new(brokers).expect("MockCluster");
    for spec in &args[1..] {
        let (t, p) = spec.rsplit_once(':').expect("TOPIC:PARTITIONS");
        cluster
            .create_topic(t, p.parse().expect("partitions"), 1)
            .expect("create_topic");
    }
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Properties both clients get for a run (librdkafka names; kprod reads them too).
fn props(b: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("bootstrap.servers", b),
        ("acks", "1"),
        ("enable.idempotence", "false"),
        ("compression.type", "none"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// librdkafka-only properties: its queue as large as kprod's buffer, TCP_NODELAY as kprod.
pub(super) fn librdkafka_only() -> [(&'static str, &'static str); 3] {
    [
        ("queue.buffering.max.messages", "1000000"),
        ("queue.buffering.max.kbytes", "65536"),
        ("socket.nagle.disable", "true"),
    ]
}

#[derive(Clone)]
struct Latency {
    hist: Histogram<u64>,
    cpu_us_per_record: f64,
    /// kprod only: the request round trip its I/O thread measured (request queued on the
    /// connection → response read), p50 and p99, µs.
    rtt: Option<(u64, u64)>,
}

fn kprod_blocking(b: ProducerSetup, topic: &str, n: u64, payload: &Bytes) -> Latency {
    let p = b.build();
    p.produce(topic, (), "warm-up").expect("warm-up");
    let mut hist = new_histogram();
    let cpu0 = cpu::client_cpu(None).unwrap_or_default();
    for _ in 0..n {
        let t = Instant::now();
        p.produce(topic, (), payload.clone()).expect("produce");
        hist.saturating_record(t.elapsed().as_nanos() as u64 / 1000);
    }
    let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
    let rtt = p
        .metrics()
        .request_latency
        .first()
        .map(|b| (b.p50_us, b.p99_us));
    p.close(Duration::from_secs(10)).expect("close");
    Latency {
        hist,
        cpu_us_per_record: cpu.as_secs_f64() * 1e6 / n as f64,
        rtt,
    }
}

/// How kprod is configured for a latency run.
#[derive(Clone)]
struct ProducerSetup {
    bootstrap: String,
    linger: Duration,
    low_latency: bool,
}

impl ProducerSetup {
    fn build(&self) -> kprod::Producer {
        let b = if self.low_latency {
            kprod::ProducerBuilder::for_low_latency()
        } else {
            kprod::Producer::builder()
                .acks(kprod::Acks::Leader)
                .idempotence(false)
                .linger(self.linger)
        };
        b.bootstrap_servers(&self.bootstrap)
            .build()
            .expect("kprod producer")
    }
}

/// librdkafka one record at a time: `busy` polls `rd_kafka_poll(rk, 0)` until the report,
/// otherwise `rd_kafka_flush` waits for it.
fn librdkafka_blocking(
    b: &str,
    linger_ms: u32,
    busy: bool,
    topic: &str,
    n: u64,
    payload: &Bytes,
) -> Latency {
    let linger = linger_ms.to_string();
    let mut all = props(b, &[("linger.ms", &linger)]);
    all.extend(
        librdkafka_only()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let p = RawProducer::new(&all, topic);
    assert!(p.produce(None, b"warm-up"));
    p.flush(Duration::from_secs(30));
    let mut hist = new_histogram();
    let cpu0 = cpu::client_cpu(None).unwrap_or_default();
    for i in 0..n {
        let t = Instant::now();
        assert!(p.produce(None, payload), "queue full");
        if busy {
            while p.reports().0 < i + 2 {
                p.poll(0);
            }
        } else {
            p.flush(Duration::from_secs(30));
        }
        hist.saturating_record(t.elapsed().as_nanos() as u64 / 1000);
    }
    let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
    let (delivered, failed) = p.reports();
    assert_eq!(
        (delivered, failed),
        (n + 1, 0),
        "librdkafka: every record delivered"
    );
    Latency {
        hist,
        cpu_us_per_record: cpu.as_secs_f64() * 1e6 / n as f64,
        rtt: None,
    }
}

/// kprod's call split in two: the round trip its I/O thread saw, and the rest — the hops
/// from the caller to the I/O thread and back.
fn report_stages(what: &str, k: &[Latency]) {
    for (q, name, pick) in [
        (0.5, "p50", (|r: (u64, u64)| r.0) as fn((u64, u64)) -> u64),
        (0.99, "p99", |r: (u64, u64)| r.1),
    ] {
        let call = median(
            k.iter()
                .map(|l| l.hist.value_at_quantile(q) as f64)
                .collect(),
        );
        let rtt = median(
            k.iter()
                .filter_map(|l| l.rtt.map(pick))
                .map(|v| v as f64)
                .collect(),
        );
        println!(
            "{what} kprod stages {name}: produce() {call:.0} µs = round trip at the I/O thread {rtt:.0} µs + caller → I/O thread → caller {:.0} µs",
            call - rtt
        );
    }
}

fn report_cpu(what: &str, k: &[Latency], r: &[Latency]) {
    let kc = median(k.iter().map(|l| l.cpu_us_per_record).collect());
    let rc = median(r.iter().map(|l| l.cpu_us_per_record).collect());
    println!(
        "{what} client CPU µs/record (in-process): kprod {kc:.1} librdkafka {rc:.1} ratio {:.2}×",
        kc / rc
    );
}

fn latency(rounds: usize, n: u64, rate: f64) {
    let topic = "latency";
    let broker = ChildBroker::rdkafka_mock(1, &[(topic, 3)]);
    let b = broker.bootstrap.clone();
    println!("latency: librdkafka MockCluster (1 broker, own process) at {b}; {n} × 100 B one at a time, no key, acks=1; {rounds} rounds alternating, medians");
    let payload = payloads(100)[0].clone();
    let runs: [(&str, ProducerSetup, u32, bool); 3] = [
        (
            "default settings (linger 5 ms): kprod produce() vs librdkafka produce + flush",
            ProducerSetup {
                bootstrap: b.clone(),
                linger: Duration::from_millis(5),
                low_latency: false,
            },
            5,
            false,
        ),
        (
            "linger 0: kprod produce() vs librdkafka busy-polled",
            ProducerSetup {
                bootstrap: b.clone(),
                linger: Duration::ZERO,
                low_latency: false,
            },
            0,
            true,
        ),
        (
            "low-latency: kprod for_low_latency() produce() vs librdkafka busy-polled",
            ProducerSetup {
                bootstrap: b.clone(),
                linger: Duration::ZERO,
                low_latency: true,
            },
            0,
            true,
        ),
    ];
    let only: String = env_or("BENCH_LATENCY_RUNS", String::new());
    let wanted = |what: &str| only.is_empty() || only.split('|').any(|o| what.starts_with(o));
    for (what, setup, linger_ms, busy) in runs {
        if !wanted(what) {
            continue;
        }
        let (k, r) = alternate(
            rounds,
            || kprod_blocking(setup.clone(), topic, n, &payload),
            || librdkafka_blocking(&b, linger_ms, busy, topic, n, &payload),
        );
        let kh: Vec<Histogram<u64>> = k.iter().map(|l| l.hist.clone()).collect();
        let rh: Vec<Histogram<u64>> = r.iter().map(|l| l.hist.clone()).collect();
        report_latency(what, &kh, &rh);
        report_cpu(what, &k, &r);
        report_stages(what, &k);
    }
    if !wanted("fixed rate") {
        return;
    }
    let pool = payloads(100);
    let n_rate = (rate * 2.0) as u64;
    let (k, r) = alternate(
        rounds,
        || super::kprod_rate(&b, topic, rate, n_rate, &pool),
        || super::rdkafka_rate(&b, topic, rate, n_rate, &pool),
    );
    report_latency(
        &format!("fixed rate {rate:.0}/s, latency from intended send time ({n_rate} × 100 B, acks=all idempotent, linger 5 ms)"),
        &k,
        &r,
    );
}

/// What kprod's `send_with` callbacks count (as librdkafka's `dr_msg_cb` counts in
/// `raw_librdkafka`).
static DELIVERED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// What one run in its own process measured.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Run {
    /// Inside the process, after the warm-up record.
    records_per_sec: f64,
    cpu_us_per_record: f64,
    /// `/usr/bin/time`: the whole process.
    wall_s: f64,
    cpu_s: f64,
    max_rss_kib: f64,
    /// Transactional runs: the commit call's p50 and p99, µs.
    pub(super) commit_us: (f64, f64),
}

/// Runs `workload` for `client` in a process of its own under `/usr/bin/time`.
pub(super) fn run_child(workload: &str, client: &str, b: &str, topic: &str, records: u64) -> Run {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "time %e %U %S %M"])
        .arg(std::env::current_exe().expect("bench binary"))
        .args(["--child", workload, client, b, topic, &records.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/time (Debian's `time` package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{client} {workload} failed: {stdout} {stderr}"
    );
    let mut run = Run::default();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("figures ") {
            let v: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            (run.records_per_sec, run.cpu_us_per_record) = (v[0], v[1]);
        }
        if let Some(rest) = line.strip_prefix("commit ") {
            let v: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            run.commit_us = (v[0], v[1]);
        }
    }
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("time ") {
            let v: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            run.wall_s = v[0];
            run.cpu_s = v[1] + v[2];
            run.max_rss_kib = v[3];
        }
    }
    assert!(
        run.wall_s > 0.0 && run.records_per_sec > 0.0,
        "{stdout} {stderr}"
    );
    run
}

/// `--child WORKLOAD CLIENT BOOTSTRAP TOPIC RECORDS`: one run, printing `figures RATE CPU`.
pub fn child(args: &[String]) {
    let (workload, client, b, topic) = (&args[0], &args[1], &args[2], &args[3]);
    let n: u64 = args[4].parse().expect("records");
    if let Some(size) = workload.strip_prefix("txn-") {
        let size = size.parse().expect("txn-SIZE");
        return super::transactions::child(size, client, b, topic, n);
    }
    let pool = payloads(100);
    let keys: Vec<Bytes> = (0..10_000)
        .map(|i| Bytes::from(format!("key-{i}")))
        .collect();
    let keyed = workload == "keyed";
    let (rate, cpu_us) = match client.as_str() {
        "kprod" => {
            let p = kprod::Producer::builder()
                .from_properties(props(b, &[("linger.ms", "5"), ("batch.size", "1000000")]))
                .expect("properties")
                .build()
                .expect("kprod producer");
            p.produce(topic, (), "warm-up").expect("warm-up");
            // As librdkafka's topic handle: the name is shared, not copied per record.
            let name: std::sync::Arc<str> = topic.as_str().into();
            let cpu0 = cpu::client_cpu(None).unwrap_or_default();
            let t = Instant::now();
            for i in 0..n as usize {
                let v = pool[i % pool.len()].clone();
                match workload.as_str() {
                    "send-with" => {
                        // As librdkafka's dr_msg_cb here: it counts into statics.
                        p.send_with(kprod::ProducerRecord::new(name.clone()).value(v), |r| {
                            let n = if r.is_ok() { &DELIVERED } else { &FAILED };
                            n.fetch_add(1, Ordering::Relaxed);
                        })
                        .expect("send_with");
                    }
                    _ if keyed => p
                        .send(topic, keys[i % keys.len()].clone(), v)
                        .expect("send"),
                    _ => p.send(topic, (), v).expect("send"),
                }
            }
            p.flush(Duration::from_secs(300)).expect("flush");
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
            let m = p.metrics();
            assert_eq!(m.records_acked, n + 1, "kprod: every record acknowledged");
            if workload == "send-with" {
                let counted = (
                    DELIVERED.load(Ordering::Relaxed),
                    FAILED.load(Ordering::Relaxed),
                );
                assert_eq!(counted, (n, 0), "kprod: every callback ran once");
            }
            p.close(Duration::from_secs(10)).expect("close");
            (n as f64 / secs, cpu.as_secs_f64() * 1e6 / n as f64)
        }
        _ => {
            let mut all = props(b, &[("linger.ms", "5"), ("batch.size", "1000000")]);
            all.extend(
                librdkafka_only()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            // kprod's default partitioner for keyed records is Java's murmur2: the same here.
            all.push(("partitioner".into(), "murmur2_random".into()));
            let only_errors = workload != "send-with";
            if only_errors {
                all.push(("delivery.report.only.error".into(), "true".into()));
            }
            let p = RawProducer::new(&all, topic);
            assert!(p.produce(None, b"warm-up"));
            p.flush(Duration::from_secs(30));
            let cpu0 = cpu::client_cpu(None).unwrap_or_default();
            let t = Instant::now();
            for i in 0..n as usize {
                let key = keyed.then(|| &keys[i % keys.len()][..]);
                while !p.produce(key, &pool[i % pool.len()]) {
                    p.poll(1);
                }
                if i % 1024 == 0 {
                    p.poll(0);
                }
            }
            p.flush(Duration::from_secs(300));
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
            let (delivered, failed) = p.reports();
            assert_eq!(failed, 0, "librdkafka: a delivery failed");
            if !only_errors {
                assert_eq!(delivered, n + 1, "librdkafka: every record delivered");
            }
            (n as f64 / secs, cpu.as_secs_f64() * 1e6 / n as f64)
        }
    };
    println!("figures {rate} {cpu_us}");
}

fn alternate_children(
    rounds: usize,
    workload: &str,
    b: &str,
    topic: &str,
    n: u64,
) -> (Vec<Run>, Vec<Run>) {
    alternate(
        rounds,
        || run_child(workload, "kprod", b, topic, n),
        || run_child(workload, "librdkafka", b, topic, n),
    )
}

pub(super) fn report_runs(what: &str, n: u64, k: &[Run], r: &[Run]) {
    let m = |v: &[Run], f: fn(&Run) -> f64| median(v.iter().map(f).collect());
    let (krate, rrate) = (m(k, |x| x.records_per_sec), m(r, |x| x.records_per_sec));
    let (kin, rin) = (m(k, |x| x.cpu_us_per_record), m(r, |x| x.cpu_us_per_record));
    let (kcpu, rcpu) = (m(k, |x| x.cpu_s), m(r, |x| x.cpu_s));
    let (kwall, rwall) = (m(k, |x| x.wall_s), m(r, |x| x.wall_s));
    let (krss, rrss) = (m(k, |x| x.max_rss_kib), m(r, |x| x.max_rss_kib));
    println!("{what}:");
    println!(
        "    in-process: records/s kprod {krate:.0} librdkafka {rrate:.0} ratio {:.2}× | CPU µs/record kprod {kin:.3} librdkafka {rin:.3} ratio {:.2}×",
        krate / rrate,
        kin / rin
    );
    println!(
        "    whole process (/usr/bin/time): CPU µs/record kprod {:.3} librdkafka {:.3} ratio {:.2}× | wall s kprod {kwall:.2} librdkafka {rwall:.2} ratio {:.2}× | max RSS MiB kprod {:.0} librdkafka {:.0}",
        kcpu * 1e6 / n as f64,
        rcpu * 1e6 / n as f64,
        kcpu / rcpu,
        kwall / rwall,
        krss / 1024.0,
        rrss / 1024.0
    );
    println!(
        "    rounds: whole-process CPU s kprod {:?} librdkafka {:?}",
        k.iter()
            .map(|x| (x.cpu_s * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        r.iter()
            .map(|x| (x.cpu_s * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
}

fn throughput(rounds: usize, n: u64) {
    let topic = "throughput";
    let Some(broker) = ChildBroker::tansu(topic, 6) else {
        return;
    };
    let b = broker.bootstrap.clone();
    println!("throughput: tansu (memory storage, own process) at {b}, topic of 6 partitions; {n} × 100 B, no key, acks=1, linger 5 ms, no compression; each run its own process; {rounds} rounds, the order turned each round; medians");
    // kprod send(), kprod send_with, librdkafka reporting errors only, librdkafka reporting
    // every record.
    let runs = [
        ("send", "kprod"),
        ("send-with", "kprod"),
        ("send", "librdkafka"),
        ("send-with", "librdkafka"),
    ];
    let mut got: Vec<Vec<Run>> = vec![Vec::new(); runs.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.rotate_left(round % runs.len());
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (workload, client) = runs[i];
            got[i].push(run_child(workload, client, &b, topic, n));
        }
    }
    report_runs(
        "fire-and-forget: kprod send() vs librdkafka with delivery.report.only.error",
        n,
        &got[0],
        &got[2],
    );
    report_runs(
        "fire-and-forget: kprod send() vs librdkafka with a delivery report per record (it reads cheaper here)",
        n,
        &got[0],
        &got[3],
    );
    report_runs(
        "a completion per record: kprod send_with vs librdkafka with a delivery report per record",
        n,
        &got[1],
        &got[3],
    );
}

fn partitions(rounds: usize) {
    let n = 200_000;
    let counts = [6u32, 100, 500, 2000];
    let topics: Vec<String> = counts.iter().map(|p| format!("scale-{p}")).collect();
    let specs: Vec<(&str, u32)> = topics.iter().map(String::as_str).zip(counts).collect();
    let broker = ChildBroker::rdkafka_mock(3, &specs);
    let b = broker.bootstrap.clone();
    println!("partitions: librdkafka MockCluster (3 brokers, own process) at {b}; {n} keyed × 100 B fire-and-forget, acks=1, linger 5 ms; whole process; {rounds} rounds alternating, medians");
    let mut csv = String::from("partitions,client,cpu_s,wall_s\n");
    for (topic, count) in &specs {
        let (k, r) = alternate_children(rounds, "keyed", &b, topic, n);
        report_runs(&format!("{count} partitions"), n, &k, &r);
        for (client, runs) in [("kprod", &k), ("librdkafka", &r)] {
            csv.push_str(&format!(
                "{count},{client},{:.3},{:.3}\n",
                median(runs.iter().map(|x| x.cpu_s).collect()),
                median(runs.iter().map(|x| x.wall_s).collect())
            ));
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/partition_scaling.csv");
    std::fs::write(path, csv).expect("writing the CSV");
    println!("wrote {path}");
}

/// The neutral-broker run.
pub fn main(rounds: usize, n: u64, n_latency: u64, rate: f64) {
    let sections: String = env_or(
        "BENCH_SECTIONS",
        "latency,throughput,partitions,transactions".to_string(),
    );
    for s in sections.split(',') {
        match s.trim() {
            "latency" => latency(rounds, n_latency, rate),
            "throughput" => throughput(rounds, n),
            "partitions" => partitions(rounds),
            "transactions" => super::transactions::section(rounds),
            other => panic!("BENCH_SECTIONS: unknown section {other:?}"),
        }
    }
}
