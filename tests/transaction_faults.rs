//! Transactions under faults (#16): kprod's transactional producer runs transactions through
//! kprod's mock coordinator — every broker behind a fault proxy of ours, markers written
//! late (so the next transaction meets CONCURRENT_TRANSACTIONS) — while a fault thread cuts
//! connections mid-request and mid-response, moves the transaction and group coordinators,
//! injects coordinator errors, refuses a record for good (its transaction must abort), and
//! takes brokers down and up. The application loop does what
//! the errors say: an abortable error → abort, a retriable one → repeat the call; a fenced or
//! fatal error under these faults fails the test. Afterwards librdkafka's read_committed
//! consumer must see exactly the records of the transactions whose commit returned `Ok`, in
//! per-partition order, and the group's offsets must be the last committed transaction's.
//!
//! A second test lets the coordinator abort a transaction that outlives its timeout: the
//! commit says fenced, names the timeout, and nothing of it is visible.
//!
//! `TXN_FAULT_TRANSACTIONS=N` changes the count (default 150).

#![cfg(feature = "mock")]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use kprod::mock::{MockCluster, TransactionState};
use kprod::protocol::{ApiKey, ErrorCode};
use kprod::transaction::{ConsumerGroupMetadata, TransactionOffset};
use kprod::{Error, Producer, ProducerRecord, TransactionError};
use support::fault_proxy::{Chaos, ProxiedCluster};
use support::txn::{assert_same_log, read, read_template, write_sentinels, Rng, GROUP, TOPICS};

const T: Duration = Duration::from_secs(30);
const ID: &str = "kprod-txn-faults";

fn transactions() -> u32 {
    std::env::var("TXN_FAULT_TRANSACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

struct Rig(ProxiedCluster);

impl std::ops::Deref for Rig {
    type Target = ProxiedCluster;
    fn deref(&self) -> &ProxiedCluster {
        &self.0
    }
}

impl Rig {
    fn new() -> Rig {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut b = MockCluster::builder()
            .brokers(3)
            .transaction_marker_delay(Duration::from_millis(5));
        for (t, n) in TOPICS {
            b = b.topic(t, n);
        }
        Rig(ProxiedCluster::new(b.build().unwrap(), 0x51ed_2701))
    }

    fn producer(&self, timeout: Duration) -> Producer {
        Producer::builder()
            .bootstrap_servers(&self.bootstrap())
            .transactional_id(ID)
            .transaction_timeout(timeout)
            .linger(Duration::from_millis(2))
            .request_timeout(Duration::from_secs(2))
            .delivery_timeout(Duration::from_secs(20))
            .retry_backoff(Duration::from_millis(10))
            .retry_backoff_max(Duration::from_millis(100))
            .build()
            .unwrap()
    }

    /// One fault, drawn from `rng`.
    fn fault(&self, rng: &mut Rng) {
        let broker = rng.below(3) as i32 + 1;
        let proxy = &self.proxies[(broker - 1) as usize];
        let retriable = [
            ErrorCode::COORDINATOR_NOT_AVAILABLE,
            ErrorCode::NOT_COORDINATOR,
            ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            ErrorCode::CONCURRENT_TRANSACTIONS,
        ];
        let apis = [
            ApiKey::FIND_COORDINATOR,
            ApiKey::ADD_PARTITIONS_TO_TXN,
            ApiKey::ADD_OFFSETS_TO_TXN,
            ApiKey::TXN_OFFSET_COMMIT,
            ApiKey::END_TXN,
        ];
        match rng.below(11) {
            0 => proxy.cut_all(),
            1 => proxy.set_chaos(Some(Chaos {
                up: (256, 8 << 10),
                down: (64, 2 << 10),
            })),
            2 => self.cluster.set_coordinator(ID, broker),
            3 => self.cluster.set_coordinator(GROUP, broker),
            4..=6 => {
                let api = apis[rng.below(apis.len() as u64) as usize];
                let code = retriable[rng.below(retriable.len() as u64) as usize];
                // FindCoordinator knows no CONCURRENT_TRANSACTIONS.
                let code = if api == ApiKey::FIND_COORDINATOR {
                    ErrorCode::COORDINATOR_NOT_AVAILABLE
                } else {
                    code
                };
                self.cluster.fail_requests(api.0, &[code; 2]);
            }
            7 => self.cluster.broker_down(broker),
            // A record refused for good: its transaction can only abort.
            8 => self
                .cluster
                .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::INVALID_RECORD]),
            _ => self.heal(),
        }
    }
}

/// What an error tells the application to do.
enum Next {
    Abort,
    Repeat,
}

/// The errors seen, by kind and code, to print.
type Seen = BTreeMap<String, u32>;

fn classify(e: &Error, seen: &mut Seen, call: &str) -> Next {
    let text = e.to_string();
    assert!(!text.is_empty(), "{call}: an error without a reason");
    *seen
        .entry(format!(
            "{call}: {:?} {}",
            e.transaction_error(),
            e.kafka_code().map_or("-", |c| c.name())
        ))
        .or_default() += 1;
    match e.transaction_error() {
        Some(TransactionError::Abortable) => Next::Abort,
        _ if e.is_retriable() => Next::Repeat,
        _ => panic!("{call}: a fatal error under recoverable faults: {text}"),
    }
}

/// Aborts, repeating while the error says the call may be repeated.
fn abort(p: &Producer, seen: &mut Seen) {
    loop {
        match p.abort_transaction(T) {
            Ok(()) => return,
            Err(e) => {
                if let Next::Abort = classify(&e, seen, "abort") {
                    panic!("abort refused as abortable: {e}");
                }
            }
        }
    }
}

#[test]
fn exactly_once_holds_for_every_committed_transaction_under_faults() {
    let rig = Rig::new();
    let p = rig.producer(Duration::from_secs(60));
    p.init_transactions(T).unwrap();
    let stop = AtomicBool::new(false);
    let mut committed = read_template();
    let mut offsets: [Option<i64>; 3] = [None; 3];
    let mut seen = Seen::new();
    let (mut commits, mut aborts) = (0u32, 0u32);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(0x0fa_017);
            while !stop.load(SeqCst) {
                rig.fault(&mut rng);
                // How long the fault lasts: the fault itself, not a wait for an outcome.
                std::thread::sleep(Duration::from_millis(10 + rng.below(80)));
            }
            rig.heal();
        });
        let mut rng = Rng(0x7a_2c7e);
        for txn in 0..transactions() {
            p.begin_transaction().unwrap();
            let mut must_abort = false;
            let mut sent = Vec::new();
            for i in 0..1 + rng.below(15) {
                let (t, parts) = TOPICS[rng.below(3) as usize];
                let part = rng.below(parts as u64) as i32;
                let v = format!("t{txn}-{i}");
                match p.produce_async(ProducerRecord::new(t).partition(part).value(v.clone())) {
                    Ok(h) => sent.push(((t.to_string(), part), v, h)),
                    Err(e) => {
                        classify(&e.error, &mut seen, "send");
                        must_abort = true;
                        break;
                    }
                }
            }
            let mut with_offsets = None;
            if !must_abort && rng.below(3) == 0 {
                let part = rng.below(3) as i32;
                let off = i64::from(txn);
                let group = ConsumerGroupMetadata::new(GROUP);
                loop {
                    let r = p.send_offsets_to_transaction(
                        &[TransactionOffset::new("tx-a", part, off)],
                        &group,
                        T,
                    );
                    match r.map_err(|e| classify(&e, &mut seen, "send_offsets")) {
                        Ok(()) => {
                            with_offsets = Some((part as usize, off));
                            break;
                        }
                        Err(Next::Repeat) => continue,
                        Err(Next::Abort) => {
                            must_abort = true;
                            break;
                        }
                    }
                }
            }
            let mut ok = false;
            if !must_abort && rng.below(4) != 0 {
                loop {
                    match p
                        .commit_transaction(T)
                        .map_err(|e| classify(&e, &mut seen, "commit"))
                    {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(Next::Repeat) => continue,
                        Err(Next::Abort) => break,
                    }
                }
            }
            if ok {
                commits += 1;
                for (k, v, h) in sent {
                    h.wait().expect("a committed record is acknowledged");
                    committed.get_mut(&k).unwrap().push(v);
                }
                if let Some((part, off)) = with_offsets {
                    offsets[part] = Some(off);
                }
            } else {
                abort(&p, &mut seen);
                aborts += 1;
                for (_, _, h) in sent {
                    if let Err(e) = h.wait() {
                        assert!(!e.to_string().is_empty());
                    }
                }
            }
        }
        stop.store(true, SeqCst);
    });
    let m = p.metrics();
    p.close(T).unwrap();
    rig.heal();
    let requests: Vec<(&str, u64)> = [
        ("FindCoordinator", ApiKey::FIND_COORDINATOR),
        ("AddPartitionsToTxn", ApiKey::ADD_PARTITIONS_TO_TXN),
        ("AddOffsetsToTxn", ApiKey::ADD_OFFSETS_TO_TXN),
        ("TxnOffsetCommit", ApiKey::TXN_OFFSET_COMMIT),
        ("EndTxn", ApiKey::END_TXN),
    ]
    .into_iter()
    .map(|(n, k)| (n, rig.cluster.request_count(k.0)))
    .collect();
    eprintln!(
        "{commits} committed, {aborts} aborted in {:?}; produce retries {}, reconnects {}; \
         coordinator requests {requests:?}; errors seen {seen:#?}",
        started.elapsed(),
        m.retries,
        m.connects
    );
    assert!(commits > 0 && aborts > 0);
    // The last markers are written; then the log and the group's offsets are checked.
    let deadline = Instant::now() + T;
    while matches!(
        rig.cluster.transaction_state(ID),
        Some(TransactionState::PrepareCommit | TransactionState::PrepareAbort)
    ) {
        assert!(Instant::now() < deadline, "markers never written");
        std::thread::sleep(Duration::from_millis(5));
    }
    for (part, want) in offsets.iter().enumerate() {
        assert_eq!(
            rig.cluster.committed_offset(GROUP, "tx-a", part as i32),
            *want,
            "group offset of tx-a/{part}"
        );
    }
    write_sentinels(&rig.bootstrap());
    assert_same_log(
        &read(&rig.bootstrap(), "read_committed"),
        &committed,
        "read_committed",
    );
    assert!(
        rig.cluster.errors().is_empty(),
        "{:?}",
        rig.cluster.errors()
    );
}

#[test]
fn the_coordinator_aborts_a_transaction_that_outlives_its_timeout() {
    let rig = Rig::new();
    let p = rig.producer(Duration::from_millis(300));
    p.init_transactions(T).unwrap();
    p.begin_transaction().unwrap();
    p.produce_record(ProducerRecord::new("tx-b").partition(0).value("late"))
        .unwrap();
    let deadline = Instant::now() + T;
    while rig.cluster.transactions_timed_out() == 0 {
        assert!(Instant::now() < deadline, "never timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = p.commit_transaction(T).unwrap_err();
    assert_eq!(e.transaction_error(), Some(TransactionError::Fenced), "{e}");
    assert!(e.to_string().contains("transaction.timeout.ms"), "{e}");
    p.close(T).unwrap();
    // A new producer with the id goes on.
    let q = rig.producer(Duration::from_secs(60));
    q.init_transactions(T).unwrap();
    q.begin_transaction().unwrap();
    q.produce_record(ProducerRecord::new("tx-b").partition(0).value("on time"))
        .unwrap();
    q.commit_transaction(T).unwrap();
    q.close(T).unwrap();
    let deadline = Instant::now() + T;
    while rig.cluster.transaction_state(ID) != Some(TransactionState::CompleteCommit) {
        assert!(Instant::now() < deadline, "markers never written");
        std::thread::sleep(Duration::from_millis(5));
    }
    write_sentinels(&rig.bootstrap());
    let mut want = read_template();
    want.insert(("tx-b".into(), 0), vec!["on time".to_string()]);
    assert_same_log(
        &read(&rig.bootstrap(), "read_committed"),
        &want,
        "read_committed",
    );
}
