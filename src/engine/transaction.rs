//! Transactions, without sockets: the state machine a transactional producer's calls move
//! through, what each coordinator answer means, and the state callers and thread 0 share.
//! No clock and no I/O here; unit-tested transition by transition.
//!
//! ```text
//!  Uninitialized ─init─► Initializing ─ok─► Ready ─begin─► InTransaction ─commit─► Committing
//!                                            ▲  ▲                │   │                 │ ok
//!                                            │  └──────ok──── Aborting ◄─abort─┐       │
//!                                            │                   ▲   └──error──► Abortable
//!                                            └───────────────────┼─────────────────────┘
//!  any ──fenced / fatal──► Fatal                                 └─abort─── Abortable
//! ```
//!
//! A call in the wrong state is refused before anything changes
//! ([`TransactionError::InvalidState`]). A call that timed out leaves its state as it was
//! (`Initializing`, `Committing`, `Aborting`): calling it again carries on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, TransactionError};
use crate::protocol::ErrorCode;

use super::PartitionState;

/// Where a transactional producer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Uninitialized,
    Initializing,
    Ready,
    InTransaction,
    Committing,
    Aborting,
    /// The open transaction cannot commit; only abort is allowed.
    Abortable,
    /// Nothing more is possible.
    Fatal,
}

/// A caller's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Init,
    Begin,
    Send,
    SendOffsets,
    Commit,
    Abort,
}

/// The state machine.
#[derive(Debug)]
pub(crate) struct Machine {
    pub state: State,
    /// Why, in `Abortable` and `Fatal`.
    error: Option<Error>,
    /// The current transaction's number (bumped by each begin).
    pub number: u64,
    /// The call handed to thread 0 and not finished (a call that timed out and is repeated
    /// waits for it rather than handing it over again).
    pub posted: Option<Call>,
}

fn invalid(msg: &str) -> Error {
    Error::transaction(TransactionError::InvalidState, None, msg)
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            state: State::Uninitialized,
            error: None,
            number: 0,
            posted: None,
        }
    }
}

impl Machine {
    /// Whether `call` may start (or carry on) now; the error says why not.
    pub fn check(&self, call: Call) -> Result<(), Error> {
        use Call::*;
        use State::*;
        if self.state == Fatal {
            return Err(self.error.clone().expect("set with the state"));
        }
        match (call, self.state) {
            (Init, Uninitialized | Initializing) => Ok(()),
            (Init, _) => Err(invalid("init_transactions was already called")),
            (Begin, Ready) => Ok(()),
            (Begin, Uninitialized | Initializing) => {
                Err(invalid("call init_transactions before begin_transaction"))
            }
            (Begin, InTransaction | Committing | Aborting | Fatal) => Err(invalid(
                "a transaction is already open: commit or abort it first",
            )),
            (Send | SendOffsets, InTransaction) => Ok(()),
            (Commit, InTransaction | Committing) => Ok(()),
            (Abort, InTransaction | Abortable | Aborting) => Ok(()),
            (Begin | Send | SendOffsets | Commit, Abortable) => {
                Err(self.error.clone().expect("set with the state"))
            }
            (Send, _) => Err(invalid(
                "a transactional producer sends only inside a transaction: call \
                 begin_transaction first",
            )),
            (SendOffsets | Commit | Abort, _) => Err(invalid("no transaction is open")),
        }
    }

    /// Starts `call` (after [`check`](Self::check) said yes). Returns the state it leaves.
    pub fn start(&mut self, call: Call) {
        self.state = match (call, self.state) {
            (Call::Init, _) => State::Initializing,
            (Call::Begin, _) => {
                self.number += 1;
                State::InTransaction
            }
            (Call::Commit, _) => State::Committing,
            (Call::Abort, _) => State::Aborting,
            (Call::Send | Call::SendOffsets, s) => s,
        };
    }

    /// The work of `call` finished with `result` (the coordinator's answer, or what failed).
    pub fn finished(&mut self, call: Call, result: &Result<(), Error>) {
        self.posted = None;
        match result {
            Ok(()) => {
                if matches!(call, Call::Init | Call::Commit | Call::Abort)
                    && self.state != State::Fatal
                {
                    self.state = State::Ready;
                    self.error = None;
                }
            }
            Err(e) => self.fail(e.clone()),
        }
    }

    /// Something failed: a fenced or fatal error ends the producer; an abortable one the
    /// open transaction (in `Aborting` it stays there: the abort carries on). Other errors
    /// (timeouts, retriable ones) change nothing.
    pub fn fail(&mut self, e: Error) {
        match e.transaction_error() {
            Some(TransactionError::Fenced | TransactionError::Fatal)
                if self.state != State::Fatal =>
            {
                self.state = State::Fatal;
                self.error = Some(e);
            }
            Some(TransactionError::Abortable)
                if matches!(self.state, State::InTransaction | State::Committing) =>
            {
                self.state = State::Abortable;
                self.error = Some(e);
            }
            _ => {}
        }
    }
}

/// A step of a transaction call, sent by thread 0 to a coordinator.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Finds the transaction coordinator, or (`Some`) a group's.
    FindCoordinator {
        group: Option<String>,
    },
    /// InitProducerId with the transactional id; `bump`: with the current id and epoch
    /// (KIP-360), after an abort that needs a new epoch.
    InitProducerId {
        bump: bool,
    },
    /// The partitions waiting in [`Transactions::to_add`].
    AddPartitions,
    AddOffsets {
        group: GroupOffsets,
    },
    TxnOffsetCommit {
        group: GroupOffsets,
    },
    EndTxn {
        commit: bool,
    },
}

/// What `send_offsets_to_transaction` commits for a group.
#[derive(Debug, Clone)]
pub(crate) struct GroupOffsets {
    pub group: crate::transaction::ConsumerGroupMetadata,
    pub offsets: Arc<[crate::transaction::TransactionOffset]>,
}

/// Which coordinator a step goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Any broker (the control connection).
    Any,
    Transaction,
    Group,
}

/// The coordinator steps of `call` (`group`: send_offsets' offsets).
pub(crate) fn plan(call: Call, group: Option<GroupOffsets>) -> VecDeque<Step> {
    match (call, group) {
        (Call::Init, _) => VecDeque::from([
            Step::FindCoordinator { group: None },
            Step::InitProducerId { bump: false },
        ]),
        (Call::SendOffsets, Some(g)) => VecDeque::from([
            Step::AddOffsets { group: g.clone() },
            Step::TxnOffsetCommit { group: g },
        ]),
        (Call::Commit, _) => VecDeque::from([Step::EndTxn { commit: true }]),
        (Call::Abort, _) => VecDeque::from([Step::EndTxn { commit: false }]),
        // Local calls.
        (Call::Begin | Call::Send | Call::SendOffsets, _) => VecDeque::new(),
    }
}

impl Step {
    pub fn target(&self) -> Target {
        match self {
            Step::FindCoordinator { .. } => Target::Any,
            Step::TxnOffsetCommit { .. } => Target::Group,
            _ => Target::Transaction,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Step::FindCoordinator { .. } => "FindCoordinator",
            Step::InitProducerId { .. } => "InitProducerId",
            Step::AddPartitions => "AddPartitionsToTxn",
            Step::AddOffsets { .. } => "AddOffsetsToTxn",
            Step::TxnOffsetCommit { .. } => "TxnOffsetCommit",
            Step::EndTxn { .. } => "EndTxn",
        }
    }
}

/// Why a producer is fenced, as far as it can tell.
const FENCED: &str = "another producer with this transactional.id has started, or the \
                      coordinator aborted the transaction for outliving \
                      transaction.timeout.ms; close this producer";

/// What a coordinator's answer to a step means.
#[derive(Debug, Clone)]
pub(crate) enum Reaction {
    /// The step is done.
    Done,
    /// Send it again after a backoff; `rediscover`: find the coordinator first.
    Retry { rediscover: bool },
    /// The call fails with this (fenced, fatal or abortable).
    Fail(Error),
}

/// What `code`, the answer to `step`, means (as the Java client's transaction manager reads
/// them).
pub(crate) fn on_answer(step: &Step, code: ErrorCode, message: Option<&str>) -> Reaction {
    use ErrorCode as E;
    let fail = |kind, why: &str| {
        let mut m = format!("{} answered {}: {why}", step.name(), code.name());
        if let Some(msg) = message.filter(|m| !m.is_empty()) {
            m.push_str(&format!(" ({msg})"));
        }
        Reaction::Fail(Error::transaction(kind, Some(code), m))
    };
    match code {
        E::NONE => Reaction::Done,
        E::NOT_COORDINATOR | E::COORDINATOR_NOT_AVAILABLE => Reaction::Retry { rediscover: true },
        E::COORDINATOR_LOAD_IN_PROGRESS | E::CONCURRENT_TRANSACTIONS => {
            Reaction::Retry { rediscover: false }
        }
        E::PRODUCER_FENCED | E::INVALID_PRODUCER_EPOCH => fail(TransactionError::Fenced, FENCED),
        E::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        | E::CLUSTER_AUTHORIZATION_FAILED
        | E::INVALID_TRANSACTION_TIMEOUT
        | E::UNSUPPORTED_VERSION
        | E::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | E::INVALID_PRODUCER_ID_MAPPING
        | E::INVALID_TXN_STATE => fail(TransactionError::Fatal, "the producer cannot go on"),
        E::TOPIC_AUTHORIZATION_FAILED
        | E::GROUP_AUTHORIZATION_FAILED
        | E::TRANSACTION_ABORTABLE
        | E::UNKNOWN_MEMBER_ID
        | E::ILLEGAL_GENERATION
        | E::FENCED_INSTANCE_ID => fail(
            TransactionError::Abortable,
            "the transaction cannot commit; abort it",
        ),
        // An earlier partition's error made the broker skip this one.
        E::OPERATION_NOT_ATTEMPTED => Reaction::Retry { rediscover: false },
        // Metadata may not have reached the coordinator yet.
        E::UNKNOWN_TOPIC_OR_PARTITION => Reaction::Retry { rediscover: false },
        c if c.is_retriable() => Reaction::Retry { rediscover: false },
        _ if matches!(step, Step::InitProducerId { .. } | Step::EndTxn { .. }) => {
            fail(TransactionError::Fatal, "the producer cannot go on")
        }
        _ => fail(
            TransactionError::Abortable,
            "the transaction cannot commit; abort it",
        ),
    }
}

/// What a Produce answer's error means for a transactional producer: the error its records
/// fail with, and what it does to the transaction. Records failing for any reason make the
/// transaction abortable (it cannot commit without them); fencing ends the producer.
pub(crate) fn record_failure(e: &Error) -> Error {
    match e.kafka_code() {
        Some(ErrorCode::PRODUCER_FENCED | ErrorCode::INVALID_PRODUCER_EPOCH) => Error::transaction(
            TransactionError::Fenced,
            e.kafka_code(),
            format!("a record was refused: {e}; {FENCED}"),
        ),
        Some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED) => Error::transaction(
            TransactionError::Fatal,
            e.kafka_code(),
            format!("a record was refused: {e}"),
        ),
        _ => Error::transaction(
            TransactionError::Abortable,
            e.kafka_code(),
            format!("a record of the transaction failed ({e}); abort the transaction"),
        ),
    }
}

/// A caller's call being carried out by thread 0.
#[derive(Debug)]
pub(crate) struct Op {
    pub call: Call,
    pub steps: VecDeque<Step>,
}

/// What callers and thread 0 share for a transactional producer.
pub(crate) struct Transactions {
    pub id: String,
    pub timeout_ms: i32,
    pub machine: Mutex<Machine>,
    /// `machine.state == InTransaction`, for the send path's one relaxed load.
    pub accepting: AtomicBool,
    /// The current transaction's number (`machine.number`), read by I/O threads.
    pub current: AtomicU64,
    /// Partitions with records in the current transaction, not yet added.
    pub to_add: Mutex<Vec<Arc<PartitionState>>>,
    /// The call thread 0 is to carry out, and its outcome when done.
    pub op: Mutex<Option<Op>>,
    pub outcome: Mutex<Option<(Call, Result<(), Error>)>>,
    /// Thread 0 has transaction work: an op, partitions to add.
    pub wanted: AtomicBool,
    /// Transactions v2 (KIP-890), as the coordinator's connection settled it: partitions
    /// join by being produced to.
    pub v2: AtomicBool,
    /// Under v2: a partition joined the current transaction (so ending it takes an EndTxn).
    pub joined: AtomicBool,
    done: Condvar,
    done_lock: Mutex<()>,
}

impl Transactions {
    pub fn new(id: String, timeout: Duration) -> Self {
        Transactions {
            id,
            timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
            machine: Mutex::new(Machine::default()),
            accepting: AtomicBool::new(false),
            current: AtomicU64::new(0),
            to_add: Mutex::new(Vec::new()),
            op: Mutex::new(None),
            outcome: Mutex::new(None),
            wanted: AtomicBool::new(false),
            v2: AtomicBool::new(false),
            joined: AtomicBool::new(false),
            done: Condvar::new(),
            done_lock: Mutex::new(()),
        }
    }

    /// Publishes the machine's state to the lock-free readers.
    pub fn publish(&self, m: &Machine) {
        self.current.store(m.number, SeqCst);
        self.accepting
            .store(m.state == State::InTransaction, SeqCst);
    }

    /// Why a send is refused now (the send path found `accepting` false).
    pub fn refusal(&self) -> Error {
        self.machine
            .lock()
            .check(Call::Send)
            .err()
            .unwrap_or_else(|| invalid("the transaction is ending"))
    }

    /// Checks `call` against the state and enters it: Initializing, InTransaction,
    /// Committing or Aborting (a call repeated after a timeout finds its state entered).
    pub fn enter(&self, call: Call) -> Result<(), Error> {
        let mut m = self.machine.lock();
        m.check(call)?;
        let go = match call {
            Call::Init => m.state == State::Uninitialized,
            Call::Begin => true,
            Call::Commit => m.state == State::InTransaction,
            Call::Abort => m.state != State::Aborting,
            Call::Send | Call::SendOffsets => false,
        };
        if go {
            m.start(call);
            self.publish(&m);
        }
        Ok(())
    }

    /// Whether `call`'s coordinator steps are handed over already (a repeated commit or
    /// abort then skips its records' part: the flush, the purge).
    pub fn is_posted(&self, call: Call) -> bool {
        self.machine.lock().posted == Some(call)
    }

    /// Hands `call`'s steps to thread 0 (unless an earlier, timed-out attempt of the same
    /// call already did) and wakes it (`wake`).
    pub fn post(
        &self,
        call: Call,
        steps: impl FnOnce() -> VecDeque<Step>,
        wake: impl FnOnce(),
    ) -> Result<(), Error> {
        {
            let mut m = self.machine.lock();
            match m.posted {
                Some(c) if c == call => {}
                Some(_) => return Err(invalid("another transaction call is under way")),
                None => {
                    *self.op.lock() = Some(Op {
                        call,
                        steps: steps(),
                    });
                    m.posted = Some(call);
                }
            }
        }
        self.wanted.store(true, SeqCst);
        wake();
        Ok(())
    }

    /// [`post`](Self::post)s `call`, then waits for its outcome until `deadline`. `None`: it
    /// has not come (the call may be repeated).
    pub fn run(
        &self,
        call: Call,
        steps: impl FnOnce() -> VecDeque<Step>,
        wake: impl FnOnce(),
        deadline: Instant,
    ) -> Option<Result<(), Error>> {
        if let Err(e) = self.post(call, steps, wake) {
            return Some(Err(e));
        }
        self.wait(call, deadline)
    }

    /// The outcome of `call`, if it has come (taken: it is returned once).
    pub fn take(&self, call: Call) -> Option<Result<(), Error>> {
        let mut o = self.outcome.lock();
        match &*o {
            Some((c, _)) if *c == call => o.take().map(|(_, r)| r),
            _ => None,
        }
    }

    /// Thread 0 finished the op for `call`.
    pub fn finish(&self, call: Call, result: Result<(), Error>) {
        {
            let mut m = self.machine.lock();
            m.finished(call, &result);
            self.publish(&m);
        }
        *self.outcome.lock() = Some((call, result));
        let _g = self.done_lock.lock();
        self.done.notify_all();
    }

    /// A record of the transaction failed, or the engine found the transaction cannot
    /// commit: the machine learns it.
    pub fn fail(&self, e: Error) {
        let mut m = self.machine.lock();
        m.fail(e);
        self.publish(&m);
    }

    /// Waits for the outcome of `call` until `deadline`; `None` if it has not come.
    pub fn wait(&self, call: Call, deadline: Instant) -> Option<Result<(), Error>> {
        let mut g = self.done_lock.lock();
        loop {
            if let Some(r) = self.take(call) {
                return Some(r);
            }
            if self.done.wait_until(&mut g, deadline).timed_out() {
                return self.take(call);
            }
        }
    }
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("id", &self.id)
            .field("state", &self.machine.lock().state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Call::*;

    fn kind(r: Result<(), Error>) -> Option<TransactionError> {
        r.err().and_then(|e| e.transaction_error())
    }

    #[test]
    fn calls_in_the_wrong_state_are_refused_and_change_nothing() {
        let mut m = Machine::default();
        for call in [Begin, Send, SendOffsets, Commit, Abort] {
            assert_eq!(
                kind(m.check(call)),
                Some(TransactionError::InvalidState),
                "{call:?}"
            );
        }
        assert_eq!(m.state, State::Uninitialized);
        m.check(Init).unwrap();
        m.start(Init);
        m.check(Init).unwrap(); // a timed-out init carries on
        m.finished(Init, &Ok(()));
        assert_eq!(m.state, State::Ready);
        assert_eq!(kind(m.check(Init)), Some(TransactionError::InvalidState));
        assert_eq!(kind(m.check(Send)), Some(TransactionError::InvalidState));
        assert_eq!(kind(m.check(Commit)), Some(TransactionError::InvalidState));
        m.start(Begin);
        assert_eq!((m.state, m.number), (State::InTransaction, 1));
        assert_eq!(kind(m.check(Begin)), Some(TransactionError::InvalidState));
        m.check(Send).unwrap();
        m.check(SendOffsets).unwrap();
        m.start(Commit);
        m.check(Commit).unwrap(); // a timed-out commit carries on
        assert_eq!(kind(m.check(Send)), Some(TransactionError::InvalidState));
        assert_eq!(kind(m.check(Begin)), Some(TransactionError::InvalidState));
        m.finished(Commit, &Ok(()));
        assert_eq!(m.state, State::Ready);
        m.start(Begin);
        assert_eq!(m.number, 2);
        m.start(Abort);
        m.finished(Abort, &Ok(()));
        assert_eq!(m.state, State::Ready);
    }

    #[test]
    fn an_abortable_error_allows_only_abort() {
        let mut m = Machine::default();
        m.start(Init);
        m.finished(Init, &Ok(()));
        m.start(Begin);
        let e = record_failure(&Error::kafka(ErrorCode::NOT_ENOUGH_REPLICAS, "t", 0));
        assert_eq!(e.transaction_error(), Some(TransactionError::Abortable));
        m.fail(e);
        assert_eq!(m.state, State::Abortable);
        for call in [Begin, Send, SendOffsets, Commit] {
            assert_eq!(
                kind(m.check(call)),
                Some(TransactionError::Abortable),
                "{call:?}"
            );
        }
        m.check(Abort).unwrap();
        m.start(Abort);
        // Failures during the abort do not move it back.
        m.fail(record_failure(&Error::kafka(
            ErrorCode::NOT_ENOUGH_REPLICAS,
            "t",
            0,
        )));
        assert_eq!(m.state, State::Aborting);
        m.finished(Abort, &Ok(()));
        assert_eq!(m.state, State::Ready);
        m.check(Begin).unwrap();
    }

    #[test]
    fn a_commit_refused_as_abortable_needs_an_abort() {
        let mut m = Machine::default();
        m.start(Init);
        m.finished(Init, &Ok(()));
        m.start(Begin);
        m.start(Commit);
        let Reaction::Fail(e) = on_answer(
            &Step::AddOffsets {
                group: GroupOffsets {
                    group: crate::transaction::ConsumerGroupMetadata::new("g"),
                    offsets: Arc::new([]),
                },
            },
            ErrorCode::GROUP_AUTHORIZATION_FAILED,
            None,
        ) else {
            panic!("must fail");
        };
        m.finished(Commit, &Err(e));
        assert_eq!(m.state, State::Abortable);
        m.check(Abort).unwrap();
    }

    #[test]
    fn fencing_is_final() {
        let mut m = Machine::default();
        m.start(Init);
        m.finished(Init, &Ok(()));
        m.start(Begin);
        let e = record_failure(&Error::kafka(ErrorCode::PRODUCER_FENCED, "t", 0));
        m.fail(e);
        assert_eq!(m.state, State::Fatal);
        for call in [Init, Begin, Send, SendOffsets, Commit, Abort] {
            assert_eq!(
                kind(m.check(call)),
                Some(TransactionError::Fenced),
                "{call:?}"
            );
        }
        // Nothing brings it back.
        m.finished(Abort, &Ok(()));
        assert_eq!(m.state, State::Fatal);
    }

    #[test]
    fn each_coordinator_answer_maps_to_one_reaction() {
        use ErrorCode as E;
        let end = Step::EndTxn { commit: true };
        let add = Step::AddPartitions;
        let rows: &[(&Step, ErrorCode, &str)] = &[
            (&end, E::NONE, "Done"),
            (&end, E::NOT_COORDINATOR, "Retry { rediscover: true }"),
            (
                &end,
                E::COORDINATOR_NOT_AVAILABLE,
                "Retry { rediscover: true }",
            ),
            (
                &end,
                E::COORDINATOR_LOAD_IN_PROGRESS,
                "Retry { rediscover: false }",
            ),
            (
                &end,
                E::CONCURRENT_TRANSACTIONS,
                "Retry { rediscover: false }",
            ),
            (&end, E::REQUEST_TIMED_OUT, "Retry { rediscover: false }"),
            (&end, E::PRODUCER_FENCED, "Fenced"),
            (&end, E::INVALID_PRODUCER_EPOCH, "Fenced"),
            (&end, E::INVALID_TXN_STATE, "Fatal"),
            (&end, E::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "Fatal"),
            (&end, E::TRANSACTION_ABORTABLE, "Abortable"),
            (&end, E::INVALID_REQUEST, "Fatal"),
            (&add, E::INVALID_REQUEST, "Abortable"),
            (&add, E::TOPIC_AUTHORIZATION_FAILED, "Abortable"),
            (
                &add,
                E::OPERATION_NOT_ATTEMPTED,
                "Retry { rediscover: false }",
            ),
            (
                &add,
                E::UNKNOWN_TOPIC_OR_PARTITION,
                "Retry { rediscover: false }",
            ),
        ];
        for (step, code, want) in rows {
            let got = match on_answer(step, *code, None) {
                Reaction::Fail(e) => format!("{:?}", e.transaction_error().unwrap()),
                r => format!("{r:?}"),
            };
            assert_eq!(&got, want, "{step:?} {}", code.name());
        }
    }

    #[test]
    fn record_failures_say_fenced_or_abortable() {
        let fenced = record_failure(&Error::kafka(ErrorCode::INVALID_PRODUCER_EPOCH, "t", 1));
        assert_eq!(fenced.transaction_error(), Some(TransactionError::Fenced));
        assert!(!fenced.is_retriable());
        assert!(
            fenced.to_string().contains("INVALID_PRODUCER_EPOCH"),
            "{fenced}"
        );
        let timeout = Error::Timeout {
            deadline: crate::Deadline::Delivery,
            after: Duration::from_secs(1),
            at: Default::default(),
        };
        assert_eq!(
            record_failure(&timeout).transaction_error(),
            Some(TransactionError::Abortable)
        );
    }
}
