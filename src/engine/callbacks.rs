//! The callback pool: delivery callbacks run here, never on an I/O thread. A panicking
//! callback is caught, logged and counted; the pool lives on.
//!
//! An acknowledged batch goes to the pool as one job: its callback records and the batch's
//! outcome. Each record's [`RecordMetadata`](crate::RecordMetadata) is built on the pool
//! thread, so the I/O thread pays one channel send per batch, not one per record (and the
//! topic's reference count is not bounced between the two threads per record).
//!
//! A job nobody waits for — a batch whose only callbacks are kprod's own hooks, the spans of
//! traced fire-and-forget records — is passive ([`JobSender::send_passive`]): it does not
//! wake the pool; a pool thread runs such jobs together every [`PASSIVE_DELAY`], and their
//! spans end at their acknowledgement's time. Waking the pool once per acknowledged batch
//! cost ~30–40 µs of CPU each on the two cores the I/O threads and callers need
//! (BENCHMARKS.md, "Issue #19's cost, fourth session"). Jobs someone waits for (a callback,
//! a handle behind a hook, interceptors) wake a thread at once; a flush or close hurries the
//! passive ones. The threads sleep on [`Idle`], not in the channel, so that the timer and
//! the wake-ups are the pool's own.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::{unbounded, Receiver, Sender, TryRecvError};
use parking_lot::{Condvar, Mutex};

use crate::delivery::{Completer, DeliveryResult};
use crate::engine::batch::{Completions, StageStamps};
use crate::error::Error;
use crate::metrics::Metrics;

use super::Shared;

/// Callbacks to run.
pub(crate) enum Job {
    /// One record's.
    One(Completer, DeliveryResult),
    /// The callback records of one batch, and the batch's outcome: its base offset and the
    /// broker's append time, or the error every record fails with.
    Batch {
        topic: Arc<str>,
        partition: i32,
        outcome: Result<(i64, Option<i64>), Error>,
        completions: Completions,
        /// The batch's timed record's stamps and when it was acknowledged, if it has one.
        timed: Option<(StageStamps, Instant)>,
        /// When it was acknowledged, for a passive job ([`JobSender::send_passive`]): its
        /// spans end then, not when the pool gets to them.
        acknowledged: Option<SystemTime>,
    },
}

impl Job {
    /// Callbacks in the job: what [`Shared::callbacks_queued`] counts for it.
    pub fn len(&self) -> usize {
        match self {
            Job::One(..) => 1,
            Job::Batch { completions, .. } => completions.waiting(),
        }
    }

    /// Whether nobody waits for it: see [`JobSender::send_passive`].
    pub fn is_passive(&self) -> bool {
        matches!(
            self,
            Job::Batch {
                acknowledged: Some(_),
                ..
            }
        )
    }

    /// Runs every callback in order (a panic caught and counted for each), then counts them
    /// returned.
    pub fn run(self, shared: &Shared) {
        let n = self.len();
        let m = &shared.metrics;
        match self {
            Job::One(c, r) => run_job((c, r), m),
            Job::Batch {
                topic,
                partition,
                outcome,
                completions,
                timed,
                acknowledged,
            } => {
                let mut one = |c: Completer, r: DeliveryResult| run_at((c, r), acknowledged, m);
                match outcome {
                    Ok((base, append_time)) => {
                        completions.succeed(&topic, partition, base, append_time, &mut one)
                    }
                    Err(e) => completions.fail(&e, &mut one),
                }
                if let Some((stamps, acked)) = timed {
                    m.stages(&stamps, acked, Instant::now());
                }
            }
        }
        shared.callbacks_ran(n);
    }
}

pub(crate) struct CallbackPool {
    tx: Option<JobSender>,
    idle: Arc<Idle>,
    threads: Vec<JoinHandle<()>>,
}

/// How long a passive job ([`JobSender::send_passive`]) may wait for the pool: the pool
/// wakes for them at most about this often.
pub(crate) const PASSIVE_DELAY: Duration = Duration::from_millis(10);

/// The sending half of the pool's queue: the channel, and the pool's sleeping threads to wake.
#[derive(Clone)]
pub(crate) struct JobSender {
    tx: Sender<Job>,
    idle: Arc<Idle>,
}

impl JobSender {
    /// Queues `job` and wakes a sleeping pool thread, if one sleeps; gives `job` back if the
    /// pool has stopped.
    // The job comes back whole, as crossbeam's `SendError` gives it: only when the pool has
    // stopped, and a box would cost an allocation per send.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, job: Job) -> Result<(), Job> {
        self.tx.send(job).map_err(|e| e.into_inner())?;
        self.idle.urgent.fetch_add(1, Ordering::SeqCst);
        self.idle.wake_one();
        Ok(())
    }

    /// Queues a job nobody waits for (spans to end, [`Completer::is_passive`]): it runs
    /// within about [`PASSIVE_DELAY`], with the passive jobs queued meanwhile, so that the
    /// pool wakes once for many acknowledged batches rather than once for each (a wake-up
    /// cost ~30–40 µs of CPU here). Only the first passive job after the pool's timer ran out
    /// wakes a thread.
    // The job comes back whole, as crossbeam's `SendError` gives it: only when the pool has
    // stopped, and a box would cost an allocation per send.
    #[allow(clippy::result_large_err)]
    pub fn send_passive(&self, job: Job) -> Result<(), Job> {
        self.tx.send(job).map_err(|e| e.into_inner())?;
        let idle = &self.idle;
        if !idle.armed.load(Ordering::SeqCst) && !idle.armed.swap(true, Ordering::SeqCst) {
            idle.wake_one();
        }
        Ok(())
    }

    /// Runs the passive jobs queued now without waiting for their timer, if there may be
    /// some (a flush or close waits for them).
    pub fn hurry(&self) {
        if self.idle.armed.load(Ordering::SeqCst) {
            self.idle.kick();
        }
    }

    /// A sender on `tx` with no pool thread behind it: the simulation runs the jobs itself.
    #[cfg(all(test, feature = "mock"))]
    pub fn detached(tx: Sender<Job>) -> JobSender {
        JobSender {
            tx,
            idle: Arc::default(),
        }
    }
}

/// Where the pool's threads sleep when there is nothing to run now.
///
/// A thread announces itself (`sleepers`), then looks once more for work before it sleeps;
/// a sender queues (and raises `urgent`, or sets `armed`), then looks at `sleepers`. The
/// `SeqCst` fences order each side's write before its read, so either the thread sees the
/// work or the sender sees the sleeper — and then takes the lock, which the thread holds
/// until it waits, so the notification cannot fall between the thread's look and its wait.
/// A sender with nobody asleep (the pool busy) pays a fence and a load.
///
/// `armed`: passive jobs are queued (or may be) and a thread runs them when its timer of
/// [`PASSIVE_DELAY`] runs out. The thread clears it when the timer runs out and then looks
/// at the queue, so a passive job either is seen there or finds `armed` clear and arms it
/// again, waking a thread.
#[derive(Default)]
struct Idle {
    sleepers: AtomicUsize,
    /// Raised for each job someone waits for, and by [`kick`](Self::kick): a thread on the
    /// timer wakes for it.
    urgent: AtomicU64,
    armed: AtomicBool,
    closed: AtomicBool,
    lock: Mutex<()>,
    ready: Condvar,
}

impl Idle {
    fn wake_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            let _held = self.lock.lock();
            self.ready.notify_one();
        }
    }

    /// Every thread runs what is queued now, passive jobs too (a flush waits for them).
    fn kick(&self) {
        self.urgent.fetch_add(1, Ordering::SeqCst);
        let _held = self.lock.lock();
        self.ready.notify_all();
    }

    /// Sleeps until woken, or for `timeout` if given, unless `work()` or the pool is
    /// closing. A wake-up may be spurious: the caller looks at the queue again.
    fn sleep_unless(&self, timeout: Option<Duration>, work: impl Fn() -> bool) {
        let mut held = self.lock.lock();
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !work() && !self.closed.load(Ordering::Relaxed) {
            match timeout {
                Some(t) => {
                    self.ready.wait_for(&mut held, t);
                }
                None => self.ready.wait(&mut held),
            }
        }
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// No more jobs come: the threads run what is queued and stop.
    fn close(&self) {
        let _held = self.lock.lock();
        self.closed.store(true, Ordering::Relaxed);
        self.ready.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// A pool thread: runs jobs until the queue is closed (or every sender is gone) and empty.
fn serve(rx: Receiver<Job>, idle: &Idle, shared: &Shared) {
    loop {
        let urgent = idle.urgent.load(Ordering::SeqCst);
        loop {
            match rx.try_recv() {
                Ok(job) => job.run(shared),
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
        }
        if idle.is_closed() {
            if rx.is_empty() {
                return;
            }
            continue;
        }
        if idle.armed.load(Ordering::SeqCst) {
            // Passive jobs wait for the timer; a job someone waits for, a kick or the close
            // ends it sooner.
            idle.sleep_unless(Some(PASSIVE_DELAY), || {
                idle.urgent.load(Ordering::Relaxed) != urgent
            });
            idle.armed.store(false, Ordering::SeqCst);
        } else {
            idle.sleep_unless(None, || {
                !rx.is_empty() || idle.armed.load(Ordering::Relaxed)
            });
        }
    }
}

/// Runs one completion, catching a panic from a callback.
pub(crate) fn run_job(job: (Completer, DeliveryResult), metrics: &Metrics) {
    run_at(job, None, metrics)
}

/// [`run_job`], for an outcome known at `acknowledged` if given.
fn run_at(
    (completer, result): (Completer, DeliveryResult),
    acknowledged: Option<SystemTime>,
    metrics: &Metrics,
) {
    let complete = || completer.complete_at(result, acknowledged);
    if catch_unwind(AssertUnwindSafe(complete)).is_err() {
        Metrics::add(&metrics.callback_panics, 1);
        log::error!("kprod: a delivery callback panicked (caught; the callback pool goes on)");
    }
}

impl CallbackPool {
    /// Starts `threads` threads. Each job's callback is counted done in `shared` when it
    /// returns (so `flush` can wait for callbacks), whether or not it panicked.
    pub fn start(threads: usize, shared: Arc<Shared>) -> std::io::Result<Self> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = unbounded();
        let idle = Arc::new(Idle::default());
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = rx.clone();
            let shared = shared.clone();
            let own = idle.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("kprod-callback-{i}"))
                .spawn(move || serve(rx, &own, &shared));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The threads started so far stop.
                    idle.close();
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(CallbackPool {
            tx: Some(JobSender {
                tx,
                idle: idle.clone(),
            }),
            idle,
            threads: handles,
        })
    }

    pub fn sender(&self) -> JobSender {
        self.tx.clone().expect("pool is running")
    }

    /// Runs what is queued, then stops and joins the threads. Every other sender must have
    /// been dropped first (a job sent after this is dropped, so its records complete as
    /// closed, once).
    pub fn shutdown(&mut self) {
        self.tx = None;
        self.idle.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for CallbackPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProducerConfigBuilder;
    use crate::partitioner::BuiltinPartitioner;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    fn shared() -> Arc<Shared> {
        let config = ProducerConfigBuilder::new()
            .bootstrap_servers("localhost:9092")
            .io_threads(1)
            .build_config()
            .unwrap();
        let wakes = vec![crate::engine::wake::ThreadWake::new(|| {})];
        Arc::new(Shared::new(
            config,
            Arc::new(BuiltinPartitioner::Murmur2),
            wakes,
            Arc::new(Metrics::default()),
        ))
    }

    fn counting_job(ran: &Arc<AtomicU64>) -> Job {
        let ran = ran.clone();
        let c = Completer::callback(move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
        });
        Job::One(c, Err(Error::closed()))
    }

    /// A batch's job whose one record only a hook of kprod's own waits for (a traced
    /// fire-and-forget record), acknowledged at `at`; the hook counts in `ran` and keeps the
    /// time it was given in `seen`.
    fn passive_job(
        ran: &Arc<AtomicU64>,
        seen: &Arc<Mutex<Vec<SystemTime>>>,
        at: SystemTime,
    ) -> Job {
        let (ran, seen) = (ran.clone(), seen.clone());
        let c = Completer::forget().observed(move |_, acknowledged| {
            seen.lock().extend(acknowledged);
            ran.fetch_add(1, Ordering::SeqCst);
        });
        assert!(c.is_passive());
        let mut completions = Completions::default();
        completions.push(0, c);
        Job::Batch {
            topic: "t".into(),
            partition: 0,
            outcome: Ok((0, None)),
            completions,
            timed: None,
            acknowledged: Some(at),
        }
    }

    #[test]
    fn a_passive_job_runs_within_its_delay_at_its_acknowledgement_time() {
        // Each passive job is sent once the one before it has run: the pool thread is then
        // between its timer and its sleep, or asleep with nothing armed, and the job must
        // arm the timer (and wake it) or be seen by it.
        let shared = shared();
        let mut pool = CallbackPool::start(1, shared.clone()).unwrap();
        let tx = pool.sender();
        let (ran, seen) = (Arc::new(AtomicU64::new(0)), Arc::default());
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for n in 1..=300u64 {
            let at = start + Duration::from_millis(n);
            assert!(tx.send_passive(passive_job(&ran, &seen, at)).is_ok());
            assert!(
                ran_by(&ran, n, Duration::from_secs(2)),
                "passive job {n} not run: its timer was never armed"
            );
            assert_eq!(
                seen.lock().last(),
                Some(&at),
                "the hook sees the acknowledgement's time"
            );
        }
        drop(tx);
        pool.shutdown();
    }

    /// Waits (with a deadline) for `ran` to reach `n`, looking without pause so that the
    /// next job is sent the moment this one has run: while the pool thread goes to sleep.
    fn ran_by(ran: &AtomicU64, n: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while ran.load(Ordering::SeqCst) < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }

    #[test]
    fn a_job_sent_as_a_pool_thread_goes_to_sleep_still_runs() {
        // Each job is sent once the one before it has run, so the pool thread is between its
        // last look at the queue and its sleep when the next arrives: a wake-up lost there
        // leaves the job queued with the thread asleep.
        for threads in [1, 2] {
            let shared = shared();
            let mut pool = CallbackPool::start(threads, shared.clone()).unwrap();
            let tx = pool.sender();
            let ran = Arc::new(AtomicU64::new(0));
            for n in 1..=20_000 {
                assert!(tx.send(counting_job(&ran)).is_ok());
                assert!(
                    ran_by(&ran, n, Duration::from_secs(2)),
                    "job {n} of a {threads}-thread pool not run: a lost wake-up"
                );
            }
            drop(tx);
            pool.shutdown();
        }
    }

    #[test]
    fn shutdown_runs_what_is_queued_and_a_later_job_completes_once() {
        let shared = shared();
        let mut pool = CallbackPool::start(2, shared.clone()).unwrap();
        let tx = pool.sender();
        let ran = Arc::new(AtomicU64::new(0));
        let seen = Arc::default();
        for _ in 0..1_000 {
            assert!(tx.send(counting_job(&ran)).is_ok());
            // And passive ones, which the stop does not leave waiting for their timer.
            assert!(tx
                .send_passive(passive_job(&ran, &seen, SystemTime::now()))
                .is_ok());
        }
        pool.shutdown();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2_000,
            "queued jobs ran before the stop"
        );
        // The threads are gone: a job sent now comes back (its sender runs it) or, if it
        // was taken, is dropped and completes once all the same.
        let late = tx.send(counting_job(&ran));
        if let Err(job) = late {
            job.run(&shared);
        }
        drop(tx);
        assert_eq!(ran.load(Ordering::SeqCst), 2_001);
    }
}
