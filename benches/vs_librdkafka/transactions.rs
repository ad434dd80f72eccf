//! `transactions` — kprod's and librdkafka's transactional producers side by side (issue #16,
//! part 7), against librdkafka's MockCluster (3 brokers, own process: a transaction
//! coordinator that is neither client's), a topic of 6 partitions.
//!
//! Each run is a process of its own under `/usr/bin/time`: `init_transactions`, one warm-up
//! transaction of one record, then transactions of `SIZE` records × 100 B, no key, each
//! begun, filled with fire-and-forget sends and committed (both clients' commit flushes
//! first). Same settings on both sides: acks=all with idempotence (a transactional producer
//! is idempotent), linger 5 ms, 1 MB batches, no compression. librdkafka serves a delivery
//! report per record (`dr_msg_cb`, counted and checked) inside its commit's flush.
//!
//! Reported: records/s over all timed transactions (first begin to last commit, inside the
//! process), the commit call's latency (`commit_transaction` from call to return: the flush
//! of what linger still holds, AddPartitionsToTxn where needed, EndTxn) as p50/p99, in-process
//! CPU per record, and whole-process CPU and wall time.
//!
//! `BENCH_TXN_SIZES` picks the transactions as `SIZE:COUNT` pairs (default
//! `100:2000,10000:50`: 200,000 and 500,000 records a run).

use std::time::{Duration, Instant};

use super::neutral::{report_runs, run_child, ChildBroker, Run};
use super::raw_librdkafka::RawProducer;
use super::{cpu, env_or, median, new_histogram, payloads};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Properties both clients get (librdkafka names; kprod reads them too).
fn props(b: &str, id: &str) -> Vec<(String, String)> {
    [
        ("bootstrap.servers", b),
        ("transactional.id", id),
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
        ("batch.size", "1000000"),
        ("compression.type", "none"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `--child txn-SIZE CLIENT BOOTSTRAP TOPIC RECORDS`: `RECORDS / SIZE` transactions of
/// `SIZE` records; prints `figures RATE CPU` and `commit P50 P99` (µs).
pub fn child(size: u64, client: &str, b: &str, topic: &str, n: u64) {
    let txns = n / size;
    assert!(txns > 0, "fewer records than one transaction");
    let pool = payloads(100);
    let id = format!("bench-{client}-{}", std::process::id());
    let mut commits = new_histogram();
    let (secs, cpu) = match client {
        "kprod" => {
            let p = kprod::Producer::builder()
                .from_properties(props(b, &id))
                .expect("properties")
                .build()
                .expect("kprod producer");
            p.init_transactions(TIMEOUT).expect("init_transactions");
            p.begin_transaction().expect("begin");
            p.send(topic, (), "warm-up").expect("send");
            p.commit_transaction(TIMEOUT).expect("commit");
            let cpu0 = cpu::client_cpu(None).unwrap_or_default();
            let t = Instant::now();
            for txn in 0..txns {
                p.begin_transaction().expect("begin");
                for i in 0..size {
                    let v = pool[((txn * size + i) as usize) % pool.len()].clone();
                    p.send(topic, (), v).expect("send");
                }
                let c = Instant::now();
                p.commit_transaction(TIMEOUT).expect("commit");
                commits.saturating_record(c.elapsed().as_micros() as u64);
            }
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
            assert_eq!(
                p.metrics().records_acked,
                n + 1,
                "kprod: every record acknowledged"
            );
            p.close(Duration::from_secs(10)).expect("close");
            (secs, cpu)
        }
        _ => {
            let mut all = props(b, &id);
            all.extend(
                super::neutral::librdkafka_only()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            let p = RawProducer::new(&all, topic);
            p.init_transactions(TIMEOUT);
            p.begin_transaction();
            assert!(p.produce(None, b"warm-up"));
            p.commit_transaction(TIMEOUT);
            let cpu0 = cpu::client_cpu(None).unwrap_or_default();
            let t = Instant::now();
            for txn in 0..txns {
                p.begin_transaction();
                for i in 0..size {
                    let v = &pool[((txn * size + i) as usize) % pool.len()];
                    while !p.produce(None, v) {
                        p.poll(1);
                    }
                    if i % 1024 == 0 {
                        p.poll(0);
                    }
                }
                let c = Instant::now();
                p.commit_transaction(TIMEOUT);
                commits.saturating_record(c.elapsed().as_micros() as u64);
            }
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu::client_cpu(None).unwrap_or_default() - cpu0;
            assert_eq!(
                p.reports(),
                (n + 1, 0),
                "librdkafka: every record delivered"
            );
            (secs, cpu)
        }
    };
    println!(
        "figures {} {}",
        n as f64 / secs,
        cpu.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "commit {} {}",
        commits.value_at_quantile(0.5),
        commits.value_at_quantile(0.99)
    );
}

/// The section: every size, both clients alternating, `rounds` rounds.
pub fn section(rounds: usize) {
    let topic = "txn";
    let sizes: String = env_or("BENCH_TXN_SIZES", "100:2000,10000:50".to_string());
    let broker = ChildBroker::rdkafka_mock(3, &[(topic, 6)]);
    let b = broker.bootstrap.clone();
    println!("transactions: librdkafka MockCluster (3 brokers, own process) at {b}, topic of 6 partitions; 100 B, no key, acks=all idempotent, linger 5 ms, 1 MB batches, no compression; each run its own process; {rounds} rounds alternating; medians");
    for pair in sizes.split(',') {
        let (size, count) = pair
            .split_once(':')
            .expect("BENCH_TXN_SIZES: SIZE:COUNT,...");
        let (size, count): (u64, u64) = (size.parse().unwrap(), count.parse().unwrap());
        let n = size * count;
        let workload = format!("txn-{size}");
        let (k, r) = super::alternate(
            rounds,
            || run_child(&workload, "kprod", &b, topic, n),
            || run_child(&workload, "librdkafka", &b, topic, n),
        );
        report_runs(
            &format!("{count} transactions of {size} records ({n} records)"),
            n,
            &k,
            &r,
        );
        report_commits(&k, &r);
    }
}

fn report_commits(k: &[Run], r: &[Run]) {
    for (name, pick) in [
        ("p50", (|x: &Run| x.commit_us.0) as fn(&Run) -> f64),
        ("p99", |x: &Run| x.commit_us.1),
    ] {
        let (kq, rq) = (
            median(k.iter().map(pick).collect()),
            median(r.iter().map(pick).collect()),
        );
        println!(
            "    commit_transaction {name}: kprod {kq:.0} µs librdkafka {rq:.0} µs ratio {:.2}×  (rounds: kprod {:?} librdkafka {:?})",
            kq / rq,
            k.iter().map(pick).collect::<Vec<_>>(),
            r.iter().map(pick).collect::<Vec<_>>()
        );
    }
}
