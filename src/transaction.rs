//! What a transactional producer's calls take: a consumer group's identity
//! ([`ConsumerGroupMetadata`]) and the offsets to commit for it ([`TransactionOffset`]), for
//! [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
//! in a consume-transform-produce loop (KIP-447) — and the transactional producer's calls
//! themselves ([`Producer::init_transactions`] and the others).
//!
//! ```
//! # fn main() -> Result<(), kprod::Error> {
//! # let cluster = kprod::mock::MockCluster::builder().topic("orders", 3).topic("audit", 1)
//! #     .accept_transactions(true).build().unwrap();
//! use std::time::Duration;
//! use kprod::Producer;
//!
//! let producer = Producer::builder()
//!     .bootstrap_servers(&cluster.bootstrap_servers())
//!     .transactional_id("orders-writer")
//!     .build()?;
//! let t = Duration::from_secs(30);
//! producer.init_transactions(t)?;
//! producer.begin_transaction()?;
//! producer.send("orders", "o-1", "placed")?;
//! producer.send("audit", "o-1", "order placed")?;
//! producer.commit_transaction(t)?; // both records, or neither
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::transaction::{plan, Call, GroupOffsets, State, Step, Transactions};
use crate::error::{Deadline, Error, Location, TransactionError};
use crate::Producer;

/// A consumer group member's identity, as its consumer knows it (the Java client's
/// `ConsumerGroupMetadata`): fill it from whatever consumer the application uses. With the
/// generation and member id (KIP-447) the group coordinator refuses offsets from a member
/// that has lost its partitions (the transaction then must abort).
///
/// ```
/// use kprod::transaction::ConsumerGroupMetadata;
/// let g = ConsumerGroupMetadata::new("orders-enricher").member("member-1", 7);
/// assert_eq!((g.group_id.as_str(), g.generation_id), ("orders-enricher", 7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The group generation the member was in; -1 if unknown (no fencing by generation).
    pub generation_id: i32,
    /// The member id the coordinator assigned; empty if unknown.
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// A group, with no member known (generation -1, member id empty).
    pub fn new(group_id: &str) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.to_string(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }

    /// The member id and generation the consumer was given.
    pub fn member(mut self, member_id: &str, generation_id: i32) -> Self {
        self.member_id = member_id.to_string();
        self.generation_id = generation_id;
        self
    }

    /// The static member's `group.instance.id`.
    pub fn group_instance_id(mut self, id: &str) -> Self {
        self.group_instance_id = Some(id.to_string());
        self
    }
}

/// One partition's offset to commit with a transaction: the offset of the next record the
/// group is to consume there (the last processed record's offset + 1).
///
/// ```
/// use kprod::transaction::TransactionOffset;
/// let o = TransactionOffset::new("orders", 2, 1_001).metadata("batch 17");
/// assert_eq!((o.partition, o.offset), (2, 1_001));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionOffset {
    /// The consumed topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record, if known.
    pub leader_epoch: Option<i32>,
    /// Metadata kept with the offset.
    pub metadata: Option<String>,
}

impl TransactionOffset {
    /// `offset` for `topic`'s `partition`.
    pub fn new(topic: &str, partition: i32, offset: i64) -> Self {
        TransactionOffset {
            topic: topic.to_string(),
            partition,
            offset,
            leader_epoch: None,
            metadata: None,
        }
    }

    /// Metadata to keep with the offset.
    pub fn metadata(mut self, metadata: &str) -> Self {
        self.metadata = Some(metadata.to_string());
        self
    }

    /// The leader epoch of the last consumed record.
    pub fn leader_epoch(mut self, epoch: i32) -> Self {
        self.leader_epoch = Some(epoch);
        self
    }
}

fn timed_out(after: Duration) -> Error {
    Error::Timeout {
        deadline: Deadline::Transaction,
        after,
        at: Location::default(),
    }
}

/// A transactional producer's calls (Java's and rust-rdkafka's names). Each returns
/// [`Error::Transaction`] saying what the application may do when it fails
/// ([`TransactionError`]: fenced or fatal — close the producer; abortable — abort the
/// transaction; invalid state — the call was refused and nothing changed), or
/// [`Error::Timeout`] with [`Deadline::Transaction`] when its timeout passed first: then the
/// same call may be repeated, and carries on where it was.
impl Producer {
    fn transactions(&self) -> Result<&Transactions, Error> {
        if self.threads.lock().is_empty() || self.shared.closing.load(SeqCst) {
            return Err(Error::closed());
        }
        self.shared.txn.as_ref().ok_or_else(|| {
            Error::transaction(
                TransactionError::InvalidState,
                None,
                "not a transactional producer: set transactional_id",
            )
        })
    }

    /// Hands `call` to thread 0 and waits for it.
    fn run_call(
        &self,
        t: &Transactions,
        call: Call,
        steps: impl FnOnce() -> VecDeque<Step>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        let io0 = &self.shared.io[0];
        t.run(call, steps, || io0.wake(), deadline)
            .unwrap_or_else(|| Err(timed_out(timeout)))
    }

    /// Registers the transactional id with its coordinator (FindCoordinator, then
    /// InitProducerId with the id and `transaction_timeout`): the producer gets its id and
    /// epoch, any earlier producer with the same id is fenced, and a transaction it left open
    /// is completed by the coordinator (aborted). Call it once, before the first transaction.
    pub fn init_transactions(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let t = self.transactions()?;
        t.enter(Call::Init)?;
        self.run_call(t, Call::Init, || plan(Call::Init, None), deadline, timeout)
    }

    /// Opens a transaction: the records sent from now until
    /// [`commit_transaction`](Self::commit_transaction) are written together or not at all.
    /// Local only (the coordinator learns of each partition as its first batch goes).
    pub fn begin_transaction(&self) -> Result<(), Error> {
        self.transactions()?.enter(Call::Begin)
    }

    /// Commits `offsets` for the consumer group `group` with the open transaction (KIP-447):
    /// they become the group's committed offsets exactly when the transaction commits, and
    /// never if it aborts. `offsets` are the next offsets to consume. The group coordinator
    /// checks `group`'s generation and member id: a refusal (a rebalance took the partitions
    /// away) makes the transaction abortable.
    pub fn send_offsets_to_transaction(
        &self,
        offsets: &[TransactionOffset],
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let t = self.transactions()?;
        t.machine.lock().check(Call::SendOffsets)?;
        if group.group_id.is_empty() {
            return Err(Error::config("group_id", "must not be empty"));
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let g = GroupOffsets {
            group: group.clone(),
            offsets: Arc::from(offsets.to_vec()),
        };
        self.run_call(
            t,
            Call::SendOffsets,
            || plan(Call::SendOffsets, Some(g)),
            deadline,
            timeout,
        )
    }

    /// Commits the open transaction: sends what is buffered at once and waits for every
    /// record of it to be acknowledged, then asks the coordinator to commit (EndTxn), and
    /// returns once it has. If a record failed, nothing is committed: the error is
    /// [`TransactionError::Abortable`] and the transaction must be aborted. Sends are
    /// refused from the call until it returns.
    pub fn commit_transaction(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let t = self.transactions()?;
        t.enter(Call::Commit)?;
        if !t.is_posted(Call::Commit) {
            // Every record of the transaction acknowledged first.
            self.shared.flushing.fetch_add(1, SeqCst);
            self.shared.wake_all();
            let done = self
                .shared
                .wait_idle_unless(deadline, || t.machine.lock().state != State::Committing);
            self.shared.flushing.fetch_sub(1, SeqCst);
            if !done {
                return Err(timed_out(timeout));
            }
            // A record failed meanwhile: the transaction can only abort.
            t.machine.lock().check(Call::Commit)?;
        }
        self.run_call(
            t,
            Call::Commit,
            || plan(Call::Commit, None),
            deadline,
            timeout,
        )
    }

    /// Aborts the open transaction: records not yet sent fail with
    /// [`TransactionError::Abortable`] ("aborted before it was sent") and are not written;
    /// records in flight are waited for; then the coordinator aborts (EndTxn), so none of the
    /// transaction's records is ever visible to a `read_committed` consumer. The producer is
    /// then ready for the next transaction.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let t = self.transactions()?;
        t.enter(Call::Abort)?;
        if !t.is_posted(Call::Abort) {
            let n = self.shared.purges.request(false);
            self.shared.wake_all();
            if !self.shared.purges.wait(n, deadline) || !self.shared.wait_idle(deadline) {
                return Err(timed_out(timeout));
            }
        }
        self.run_call(
            t,
            Call::Abort,
            || plan(Call::Abort, None),
            deadline,
            timeout,
        )
    }
}
