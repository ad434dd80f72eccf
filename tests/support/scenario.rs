//! The delivery-guarantee harness: sends numbered records through a producer while faults are
//! injected, records every completion, then reads the topic back with librdkafka's consumer
//! and checks kprod's promises:
//!
//! - every record got exactly one completion, and completions = sends;
//! - every record reported delivered is in the log exactly once, at the partition and offset
//!   its completion reported;
//! - no record is in the log twice (a failed record may be absent or present once: a timeout
//!   cannot know whether the broker wrote it);
//! - within a partition, records appear in send order;
//! - every failure carries an error.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kprod::{Error, Producer, ProducerRecord};

use super::readback::read_all;

/// What happened to the records of one run.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    pub acked: usize,
    pub failed: usize,
    /// How many failures per error kind (the error's text without topic and partition).
    pub errors: HashMap<String, usize>,
    /// Records in the log.
    pub stored: usize,
    /// Failed records that are in the log anyway (timeouts with unknown outcome).
    pub failed_but_stored: usize,
    /// Extra copies in the log (only with [`Copies::Repeats`]).
    pub copies: usize,
}

/// One record's outcome: (partition, offset) or the error; `None` before its completion.
pub type Outcome = Option<Result<(i32, i64), Error>>;

/// Per record: its completion count and outcome.
struct Book {
    fired: Vec<AtomicU32>,
    outcome: Mutex<Vec<Outcome>>,
}

/// The value of record `i`: its number, so the log can be matched to completions.
fn value(i: usize) -> String {
    format!("{i:08}")
}

/// Sends `n` records to `topic` (keys `k0`..`k96`, spread over every partition by murmur2)
/// with delivery callbacks, calling `fault(i)` before record `i` so faults land mid-stream;
/// then flushes with `flush_timeout`.
pub fn send_all(
    p: &Producer,
    topic: &str,
    n: usize,
    flush_timeout: Duration,
    mut fault: impl FnMut(usize),
) -> Sent {
    let book = Arc::new(Book {
        fired: (0..n).map(|_| AtomicU32::new(0)).collect(),
        outcome: Mutex::new((0..n).map(|_| None).collect()),
    });
    for i in 0..n {
        fault(i);
        let b = book.clone();
        let r = ProducerRecord::new(topic.to_string())
            .key(format!("k{}", i % 97))
            .value(value(i));
        p.send_with(r, move |r| {
            b.fired[i].fetch_add(1, SeqCst);
            b.outcome.lock().unwrap()[i] = Some(r.map(|m| (m.partition, m.offset)));
        })
        .unwrap_or_else(|e| panic!("record {i} not enqueued: {e}; metrics {:?}", p.metrics()));
    }
    p.flush(flush_timeout)
        .unwrap_or_else(|e| panic!("flush: {e}; metrics {:?}", p.metrics()));
    Sent { book }
}

/// The records of a [`send_all`].
pub struct Sent {
    book: Arc<Book>,
}

impl Sent {
    /// Each record's outcome, after checking that each has had exactly one completion.
    pub fn outcomes(&self) -> Vec<Outcome> {
        for (i, f) in self.book.fired.iter().enumerate() {
            let f = f.load(SeqCst);
            assert_eq!(f, 1, "record {i}: {f} completions");
        }
        self.book.outcome.lock().unwrap().clone()
    }
}

/// What a run promises about copies in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copies {
    /// Idempotence: never twice.
    AtMostOne,
    /// At least once (no idempotence): a retry may write a batch again; first copies are
    /// still in send order when one request is in flight at a time.
    Repeats,
}

/// Checks the promises for a run of `n` records (see the module docs) against what
/// librdkafka's consumer reads from `bootstrap`, with idempotence's promise of no copies.
pub fn verify(outcomes: &[Outcome], bootstrap: &str, topic: &str, partitions: i32) -> Report {
    verify_with(outcomes, bootstrap, topic, partitions, Copies::AtMostOne)
}

/// [`verify`], with the given promise about copies.
pub fn verify_with(
    outcomes: &[Outcome],
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    copies: Copies,
) -> Report {
    let mut report = Report {
        sent: outcomes.len(),
        ..Report::default()
    };
    // Every acknowledged offset must be readable, whatever the watermark says.
    let mut at_least = vec![0i64; partitions as usize];
    for (p, o) in outcomes.iter().flatten().flatten() {
        if let Some(e) = at_least.get_mut(*p as usize) {
            *e = (*e).max(o + 1);
        }
    }
    // Records acknowledged as duplicates carry no offset: count them in.
    let acked = outcomes.iter().filter(|o| matches!(o, Some(Ok(_)))).count();
    let log = read_all(
        bootstrap,
        topic,
        partitions,
        &at_least,
        acked,
        Duration::from_secs(120),
    );
    report.stored = log.len();
    // Where each record sits in the log.
    let mut at: HashMap<usize, Vec<(i32, i64)>> = HashMap::with_capacity(log.len());
    let mut last_in_partition: HashMap<i32, usize> = HashMap::new();
    for g in &log {
        let v = g.value.as_deref().expect("every record has a value");
        let i: usize = std::str::from_utf8(v).unwrap().parse().unwrap();
        assert!(i < outcomes.len(), "a record nobody sent: {i}");
        if let Some(places) = at.get_mut(&i) {
            // A copy: only a retry without idempotence may make one, in the same partition.
            assert!(
                copies == Copies::Repeats && places[0].0 == g.partition,
                "record {i} is in the log twice: {places:?} and {}/{}",
                g.partition,
                g.offset
            );
            report.copies += 1;
            places.push((g.partition, g.offset));
            continue;
        }
        at.insert(i, vec![(g.partition, g.offset)]);
        if let Some(&last) = last_in_partition.get(&g.partition) {
            // First copies in send order (later copies of a retried batch aside).
            assert!(
                i > last,
                "partition {}: record {i} at offset {} follows record {last}: out of send order",
                g.partition,
                g.offset
            );
        }
        last_in_partition.insert(g.partition, i);
    }
    for (i, o) in outcomes.iter().enumerate() {
        match o
            .as_ref()
            .unwrap_or_else(|| panic!("record {i}: no outcome"))
        {
            Ok((partition, offset)) => {
                report.acked += 1;
                let places = at.get(&i).unwrap_or_else(|| {
                    panic!("record {i} reported delivered at {partition}/{offset}, not in the log")
                });
                // A retry answered as a duplicate may not learn the offset (-1).
                assert!(
                    places
                        .iter()
                        .any(|&(p, o)| p == *partition && (o == *offset || *offset < 0)),
                    "record {i}: completion says {partition}/{offset}, the log {places:?}"
                );
            }
            Err(e) => {
                report.failed += 1;
                let kind = match e {
                    Error::Kafka { code, .. } => format!("Kafka {}", code.name()),
                    Error::Timeout { deadline, .. } => format!("Timeout {deadline:?}"),
                    other => format!("{other:?}")
                        .split([' ', '{', '('])
                        .next()
                        .unwrap_or("?")
                        .to_string(),
                };
                *report.errors.entry(kind).or_default() += 1;
                if at.contains_key(&i) {
                    report.failed_but_stored += 1;
                }
            }
        }
    }
    report
}
