//! Transactional runs: the caller is a transactional application — init, then transactions
//! of random sizes, committed or aborted at random (always committed once the faults are
//! over), doing what each error says (abortable: abort) — driven without blocking through
//! the same [`Transactions`] calls the public API makes, so the one simulation thread can
//! run the engine in between. The mock coordinates on the virtual clock, with its markers
//! written after a drawn delay.
//!
//! Checked on top of every run's promises ([`super::check`]): the records a read_committed
//! consumer reads are exactly those of the transactions whose commit returned `Ok`, and none
//! of an aborted one; the producer never became fatal (no fault here fences it).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use super::{Phase, World, TOPIC};
use crate::engine::transaction::{plan, Call, State};
use crate::error::{Error, TransactionError};

/// Where the application is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// init_transactions posted; waiting for it.
    Init,
    /// Ready for the next transaction.
    Idle,
    /// In a transaction with `left` records still to send.
    Open { left: usize },
    /// commit_transaction: waiting for every record of the transaction.
    Flushing,
    /// abort_transaction: waiting for purge request `n` and the records in flight.
    Purging { n: u64 },
    /// EndTxn posted; waiting for the coordinator.
    Ending { commit: bool },
    /// The producer is done: a fenced or fatal error.
    Fatal,
}

/// The application's side of a transactional run.
#[derive(Debug)]
pub(super) struct Driver {
    pub stage: Stage,
    /// The records of the open transaction.
    pub current: Vec<usize>,
    pub committed: BTreeSet<usize>,
    pub aborted: BTreeSet<usize>,
    pub fatal: Option<Error>,
    /// (committed, aborted) transactions.
    pub counts: (u32, u32),
    /// Transactions aborted once the faults were over (for an abortable error: the caller
    /// then only commits).
    pub quiet_aborts: u32,
}

impl Driver {
    pub fn new() -> Driver {
        Driver {
            stage: Stage::Init,
            current: Vec::new(),
            committed: BTreeSet::new(),
            aborted: BTreeSet::new(),
            fatal: None,
            counts: (0, 0),
            quiet_aborts: 0,
        }
    }

    /// Sending the records of a transaction.
    pub fn open(&self) -> bool {
        matches!(self.stage, Stage::Open { .. })
    }

    /// No transaction open or ending.
    pub fn idle(&self) -> bool {
        matches!(self.stage, Stage::Idle | Stage::Fatal)
    }
}

impl World {
    fn driver(&mut self) -> &mut Driver {
        self.txn.as_mut().expect("a transactional run")
    }

    fn stage(&self) -> Stage {
        self.txn.as_ref().expect("a transactional run").stage
    }

    fn post(&self, call: Call) {
        let t = self.shared.txn.as_ref().expect("transactional");
        let io0 = &self.shared.io[0];
        t.post(call, || plan(call, None), || io0.wake())
            .expect("one call at a time");
    }

    /// Whether the application can take a step now (what it waits for has happened, or
    /// it has something to start).
    pub(super) fn txn_ready(&self) -> bool {
        let Some(d) = &self.txn else {
            return false;
        };
        let t = self.shared.txn.as_ref().expect("transactional");
        match d.stage {
            Stage::Init => !t.is_posted(Call::Init) || t.outcome.lock().is_some(),
            Stage::Ending { .. } => t.outcome.lock().is_some(),
            Stage::Flushing => {
                self.shared.outstanding() == 0 || t.machine.lock().state != State::Committing
            }
            Stage::Purging { n } => self.shared.purges.carried(n) && self.shared.outstanding() == 0,
            Stage::Idle => self.records_left(),
            // Sending waits for `next_send` (the caller's pace), which the run keeps due.
            Stage::Open { left } => left == 0 || !self.records_left(),
            Stage::Fatal => false,
        }
    }

    fn records_left(&self) -> bool {
        self.sending()
    }

    fn fatal(&mut self, e: Error) {
        self.log(|| format!("txn: fatal: {e}"));
        let d = self.driver();
        d.stage = Stage::Fatal;
        d.fatal = Some(e);
    }

    /// commit_transaction's first half: enter Committing and flush.
    fn start_commit(&mut self) {
        let shared = self.shared.clone();
        let t = shared.txn.as_ref().expect("transactional");
        match t.enter(Call::Commit) {
            Ok(()) => {
                self.shared.flushing.fetch_add(1, SeqCst);
                self.shared.wake_all();
                self.driver().stage = Stage::Flushing;
            }
            Err(e) => self.on_error(e),
        }
    }

    /// abort_transaction's first half: enter Aborting, purge what is unsent.
    fn start_abort(&mut self) {
        let shared = self.shared.clone();
        let t = shared.txn.as_ref().expect("transactional");
        match t.enter(Call::Abort) {
            Ok(()) => {
                let n = self.shared.purges.request(false);
                self.shared.wake_all();
                self.driver().stage = Stage::Purging { n };
            }
            Err(e) => self.fatal(e),
        }
    }

    /// What the application does with a call's error.
    fn on_error(&mut self, e: Error) {
        match e.transaction_error() {
            Some(TransactionError::Abortable) => {
                self.log(|| format!("txn: abortable: {e}"));
                self.start_abort();
            }
            _ => self.fatal(e),
        }
    }

    /// The transactional application's turn.
    pub(super) fn txn_caller(&mut self) {
        let shared = self.shared.clone();
        let t = shared.txn.as_ref().expect("transactional");
        match self.stage() {
            Stage::Init => {
                if let Some(r) = t.take(Call::Init) {
                    match r {
                        Ok(()) => self.driver().stage = Stage::Idle,
                        Err(e) => self.fatal(e),
                    }
                } else if !t.is_posted(Call::Init) {
                    t.enter(Call::Init).expect("a new producer initialises");
                    self.post(Call::Init);
                }
            }
            Stage::Idle => {
                if self.records_left() {
                    t.enter(Call::Begin).expect("ready for a transaction");
                    let left = self.rng.range(1, 40) as usize;
                    self.log(|| format!("txn: begin ({left} records)"));
                    self.driver().stage = Stage::Open { left };
                }
            }
            Stage::Open { left } => {
                if left == 0 || !self.records_left() {
                    // Once the faults are over every transaction commits.
                    if self.phase == Phase::Quiet || self.rng.chance(0.7) {
                        self.log(|| "txn: commit".into());
                        self.start_commit();
                    } else {
                        self.log(|| "txn: abort".into());
                        self.start_abort();
                    }
                    return;
                }
                if self.next_send > self.now {
                    return;
                }
                let mut sent = 0;
                while sent < self.sc.burst.min(left) && self.records_left() {
                    let i = self.next_record;
                    match self.send(i) {
                        Ok(true) => {
                            self.next_record += 1;
                            self.driver().current.push(i);
                            sent += 1;
                        }
                        Ok(false) => break,
                        Err(e) => {
                            self.driver().stage = Stage::Open { left: left - sent };
                            self.on_error(e);
                            return;
                        }
                    }
                }
                self.driver().stage = Stage::Open { left: left - sent };
                let gap = self.rng.range(self.sc.gap_us.0, self.sc.gap_us.1);
                self.next_send = self.now + Duration::from_micros(gap);
            }
            Stage::Flushing => {
                if !self.txn_ready() {
                    return;
                }
                self.shared.flushing.fetch_sub(1, SeqCst);
                // A record failed meanwhile: the transaction can only abort.
                let checked = t.machine.lock().check(Call::Commit);
                match checked {
                    Ok(()) => {
                        self.post(Call::Commit);
                        self.driver().stage = Stage::Ending { commit: true };
                    }
                    Err(e) => self.on_error(e),
                }
            }
            Stage::Purging { .. } => {
                if self.txn_ready() {
                    self.post(Call::Abort);
                    self.driver().stage = Stage::Ending { commit: false };
                }
            }
            Stage::Ending { commit } => {
                let call = if commit { Call::Commit } else { Call::Abort };
                let Some(r) = t.take(call) else {
                    return;
                };
                self.log(|| format!("txn: {call:?} answered {r:?}"));
                match r {
                    Ok(()) => {
                        let d = self.driver();
                        let records = std::mem::take(&mut d.current);
                        if commit {
                            d.committed.extend(records);
                            d.counts.0 += 1;
                        } else {
                            d.aborted.extend(records);
                            d.counts.1 += 1;
                        }
                        if !commit && self.phase == Phase::Quiet {
                            self.driver().quiet_aborts += 1;
                        }
                        let d = self.driver();
                        d.stage = Stage::Idle;
                    }
                    Err(e) => {
                        if commit {
                            self.on_error(e);
                        } else {
                            self.fatal(e);
                        }
                    }
                }
            }
            Stage::Fatal => {}
        }
    }

    /// The transactional promises, after the run's own ([`super::check`]).
    pub(super) fn check_transactions(&self) -> Result<(), String> {
        let d = self.txn.as_ref().expect("a transactional run");
        if let Some(e) = &d.fatal {
            return Err(format!("the transactional producer became fatal: {e}"));
        }
        // A fault's effect may surface after the faults (a broker that lost the producer's
        // state answers the next batch so): one transaction may abort then, not more.
        if d.quiet_aborts > 1 {
            return Err(format!(
                "{} transactions aborted after every fault was over",
                d.quiet_aborts
            ));
        }
        let mut visible = BTreeSet::new();
        for p in 0..self.sc.partitions {
            for r in self.cluster.committed_records(TOPIC, p) {
                let v = r.value.as_deref().ok_or("a record without a value")?;
                let i: usize = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("a value nobody sent")?;
                if d.aborted.contains(&i) {
                    return Err(format!(
                        "record {i} of an aborted transaction is visible to read_committed"
                    ));
                }
                if !visible.insert(i) {
                    return Err(format!("record {i} is visible to read_committed twice"));
                }
            }
        }
        if let Some(i) = d.committed.difference(&visible).next() {
            if self.trace {
                eprintln!("record {i}: {}", self.ledger.outcomes(self.start)[*i]);
                for p in 0..self.sc.partitions {
                    eprintln!(
                        "partition {p}: end {}, last stable {}, state {:?}",
                        self.cluster.end_offset(TOPIC, p),
                        self.cluster.last_stable_offset(TOPIC, p),
                        self.cluster.transaction_state("sim-txn")
                    );
                }
            }
            return Err(format!(
                "record {i} of a committed transaction is not visible to read_committed"
            ));
        }
        if let Some(i) = visible.difference(&d.committed).next() {
            return Err(format!(
                "record {i} is visible to read_committed but its transaction never committed"
            ));
        }
        Ok(())
    }
}
