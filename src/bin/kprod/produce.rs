//! `kprod produce`: records from stdin, one per line, like `kcat -P`.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
use kprod::ProducerRecord;

use crate::{Target, Tuning};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Bootstrap brokers, host:port[,host:port...]. Without it, an embedded mock cluster.
    #[arg(short = 'b', long = "bootstrap-servers", value_name = "BOOTSTRAP")]
    bootstrap: Option<String>,
    /// Topic to produce to.
    #[arg(short = 't', long)]
    topic: String,
    /// Key delimiter: the text of a line before the first DELIM is the record's key.
    #[arg(short = 'K', value_name = "DELIM")]
    key_delimiter: Option<String>,
    /// A header for every record, key=value (repeatable; order kept).
    #[arg(short = 'H', value_name = "KEY=VALUE", value_parser = crate::parse_kv)]
    headers: Vec<(String, String)>,
    /// Partition for every record (default: the partitioner's choice).
    #[arg(short = 'p', long)]
    partition: Option<i32>,
    /// Write the records in transactions under this transactional.id (a read_committed
    /// consumer sees only committed ones). Exits 0 only if every transaction committed.
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// With --transactional-id: commit every N records read (default: one transaction for
    /// the whole input).
    #[arg(long, value_name = "N", requires = "transactional_id", value_parser = clap::value_parser!(u64).range(1..))]
    transaction_records: Option<u64>,
    #[command(flatten)]
    tuning: Tuning,
}

pub fn run(a: ProduceArgs) -> Result<ExitCode, String> {
    if a.key_delimiter.as_deref() == Some("") {
        return Err("-K: the delimiter must not be empty".into());
    }
    let target = Target::resolve(a.bootstrap.as_deref(), &a.topic, 1, false)?;
    let producer = a
        .tuning
        .builder(&target.bootstrap)
        .map(|b| match &a.transactional_id {
            Some(id) => b.transactional_id(id),
            None => b,
        })
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let wait = producer.config().delivery_timeout + producer.config().request_timeout;
    let mut txn = a.transactional_id.as_ref().map(|_| Txns::default());
    if txn.is_some() {
        producer
            .init_transactions(wait)
            .and_then(|()| producer.begin_transaction())
            .map_err(|e| format!("init_transactions: {e}"))?;
    }
    // Shared, so that each record's copy of the name counts a reference (no allocation).
    let topic: Arc<str> = a.topic.as_str().into();
    let headers: Vec<(String, Bytes)> = a
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::copy_from_slice(v.as_bytes())))
        .collect();
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut sent = 0u64;
    let stdin = std::io::stdin().lock();
    for (n, line) in stdin.split(b'\n').enumerate() {
        let mut line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let line_no = n + 1;
        let mut record = ProducerRecord::new(topic.clone());
        let line = Bytes::from(line);
        record = match a.key_delimiter.as_deref().map(str::as_bytes) {
            Some(d) => match find(&line, d) {
                Some(at) => record
                    .key(line.slice(..at))
                    .value(line.slice(at + d.len()..)),
                None => record.value(line),
            },
            None => record.value(line),
        };
        for (k, v) in &headers {
            record = record.header(k.clone(), v.clone());
        }
        if let Some(p) = a.partition {
            record = record.partition(p);
        }
        let (ok, bad) = (acked.clone(), failed.clone());
        sent += 1;
        let r = producer.send_with(record, move |r| match r {
            Ok(_) => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                bad.fetch_add(1, Ordering::Relaxed);
                eprintln!("kprod: line {line_no}: not delivered: {e}");
            }
        });
        if let Err(e) = r {
            failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("kprod: line {line_no}: not sent: {}", e.error);
        }
        if let Some(t) = &mut txn {
            t.open += 1;
            if a.transaction_records.is_some_and(|n| t.open >= n) {
                t.end(&producer, wait, true)?;
            }
        }
    }
    if let Some(t) = &mut txn {
        if t.open > 0 {
            t.end(&producer, wait, false)?;
        }
        eprintln!(
            "kprod: {} transactions committed ({} records), {} aborted",
            t.committed, t.committed_records, t.aborted
        );
    }
    let close = wait;
    if let Err(e) = producer.close(close) {
        eprintln!("kprod: close: {e}");
    }
    let (acked, failed) = (
        acked.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("kprod: {sent} records read, {acked} acknowledged, {failed} failed");
    drop(target);
    let all_committed = txn.is_none_or(|t| t.aborted == 0 && t.committed_records == sent);
    Ok(if acked == sent && failed == 0 && all_committed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The transactions of a transactional run.
#[derive(Default)]
struct Txns {
    /// Records read into the open transaction.
    open: u64,
    committed: u64,
    committed_records: u64,
    aborted: u64,
}

impl Txns {
    /// Commits the open transaction (aborting it if it cannot commit); `next`: begins the
    /// next one.
    fn end(
        &mut self,
        p: &kprod::Producer,
        wait: std::time::Duration,
        next: bool,
    ) -> Result<(), String> {
        match p.commit_transaction(wait) {
            Ok(()) => {
                self.committed += 1;
                self.committed_records += self.open;
            }
            Err(e) => {
                eprintln!("kprod: commit failed: {e}; aborting the transaction");
                self.aborted += 1;
                if e.transaction_error() == Some(kprod::TransactionError::Abortable) {
                    p.abort_transaction(wait)
                        .map_err(|e| format!("abort_transaction: {e}"))?;
                } else {
                    return Err(format!("commit_transaction: {e}"));
                }
            }
        }
        self.open = 0;
        if next {
            p.begin_transaction()
                .map_err(|e| format!("begin_transaction: {e}"))?;
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
