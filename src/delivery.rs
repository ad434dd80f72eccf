//! Delivery outcomes: [`RecordMetadata`], and the oneshot that carries a record's outcome from
//! the I/O thread to whoever waits for it.
//!
//! Exactly-once completion is enforced by the types: a [`Completer`] is consumed by
//! [`Completer::complete`], and a completer dropped without completing (an engine shutting down,
//! a batch discarded) completes its record with [`Error::Closed`] from `Drop`. So every record
//! handed to the engine gets one outcome — never none, never two.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::error::Error;

/// Where and when a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset, or -1 when `acks=0` (the broker does not say).
    pub offset: i64,
    /// The record's timestamp (ms since the epoch): its create time, or the broker's append time
    /// when the topic uses LogAppendTime.
    pub timestamp: i64,
}

impl RecordMetadata {
    /// Whether the record is in the log: [`Persisted`](crate::DeliveryStatus::Persisted),
    /// or [`PossiblyPersisted`](crate::DeliveryStatus::PossiblyPersisted) with `acks=0` (offset
    /// -1: the broker does not answer, so nothing says it wrote the record).
    pub fn status(&self) -> crate::DeliveryStatus {
        if self.offset < 0 {
            crate::DeliveryStatus::PossiblyPersisted
        } else {
            crate::DeliveryStatus::Persisted
        }
    }
}

/// A record's outcome.
pub type DeliveryResult = Result<RecordMetadata, Error>;

enum State {
    Pending(Option<Waker>),
    Done(DeliveryResult),
    Taken,
}

struct Slot {
    state: Mutex<State>,
    ready: Condvar,
    /// Set once `state` is `Done`: what a spinning waiter reads without taking the lock.
    done: AtomicBool,
}

impl Slot {
    fn fulfil(&self, result: DeliveryResult) {
        let waker = {
            let mut st = self.state.lock();
            match std::mem::replace(&mut *st, State::Done(result)) {
                State::Pending(w) => w,
                // Unreachable by construction (a Completer completes once); keep the first.
                other => {
                    *st = other;
                    return;
                }
            }
        };
        self.done.store(true, Ordering::Release);
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What the engine does with a record's outcome.
enum Target {
    /// Wake a [`DeliveryHandle`].
    Handle(Arc<Slot>),
    /// Run a callback (the engine's callback pool decides where; see [`Completer::complete`]).
    Callback(Box<dyn FnOnce(DeliveryResult) + Send>),
    /// Fire-and-forget: nobody is waiting.
    Forget,
    /// The interceptors see the outcome first, then the target (on the callback pool).
    Intercepted(Arc<crate::interceptor::Interceptors>, Box<Target>),
    /// A hook of kprod's own sees the outcome first (the record's OpenTelemetry span ends
    /// there), then the target (on the callback pool). The hook and the target are boxed
    /// together, one allocation (a `Completer` stays 24 bytes, and a ring slot 128).
    Observed(Box<dyn Observer>),
}

/// [`Target::Observed`]'s contents: a hook and the target it wraps.
trait Observer: Send {
    /// Runs the hook with `result` (a panic is caught and logged) and gives back the target.
    /// `acknowledged`: when the outcome was known, if it is delivered later than that.
    fn observe(
        self: Box<Self>,
        result: &DeliveryResult,
        acknowledged: Option<SystemTime>,
    ) -> Target;

    /// Whether nobody but the hook waits for the outcome (its target is fire-and-forget).
    fn passive(&self) -> bool;
}

struct Hooked<F> {
    hook: F,
    inner: Target,
}

impl<F: FnMut(&DeliveryResult, Option<SystemTime>) + Send> Observer for Hooked<F> {
    fn observe(
        mut self: Box<Self>,
        result: &DeliveryResult,
        acknowledged: Option<SystemTime>,
    ) -> Target {
        // Run in place: what the hook holds (a span of a few hundred bytes) is not moved out
        // of the box to run, only dropped with it.
        let hook = &mut self.hook;
        let run = std::panic::AssertUnwindSafe(move || hook(result, acknowledged));
        if std::panic::catch_unwind(run).is_err() {
            log::error!(
                "kprod: a completion hook panicked (caught; the record's completion is kept)"
            );
        }
        std::mem::replace(&mut self.inner, Target::Forget)
    }

    fn passive(&self) -> bool {
        matches!(self.inner, Target::Forget)
    }
}

/// The sending half: completes one record exactly once.
#[must_use = "dropping a Completer completes its record with Error::Closed"]
pub struct Completer {
    target: Option<Target>,
}

impl std::fmt::Debug for Completer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.target {
            Some(Target::Handle(_)) => "handle",
            Some(Target::Callback(_)) => "callback",
            Some(Target::Forget) => "forget",
            Some(Target::Intercepted(..)) => "intercepted",
            Some(Target::Observed(..)) => "observed",
            None => "done",
        };
        f.debug_struct("Completer").field("target", &kind).finish()
    }
}

impl Completer {
    /// A completer whose outcome nobody waits for.
    pub fn forget() -> Self {
        Completer {
            target: Some(Target::Forget),
        }
    }

    /// A completer that runs `callback` with the outcome.
    pub fn callback(callback: impl FnOnce(DeliveryResult) + Send + 'static) -> Self {
        Completer {
            target: Some(Target::Callback(Box::new(callback))),
        }
    }

    /// The same completer, with `interceptors` seeing the outcome before its target does.
    pub(crate) fn intercepted(
        mut self,
        interceptors: Arc<crate::interceptor::Interceptors>,
    ) -> Self {
        let inner = self.target.take().expect("a completer not yet completed");
        Completer {
            target: Some(Target::Intercepted(interceptors, Box::new(inner))),
        }
    }

    /// The same completer, with `hook` seeing the outcome before its target does, and when
    /// it was known if it is delivered later ([`complete_at`](Self::complete_at)). The hook
    /// runs once (`FnMut` so that it runs in place, in its box).
    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    pub(crate) fn observed<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&DeliveryResult, Option<SystemTime>) + Send + 'static,
    {
        let inner = self.target.take().expect("a completer not yet completed");
        Completer {
            target: Some(Target::Observed(Box::new(Hooked { hook, inner }))),
        }
    }

    /// For a record the call refused after the interceptors and hooks saw it go: they see
    /// `error` as its outcome; the target does not (the caller gets the error and the
    /// record back from the call).
    pub(crate) fn refused(mut self, error: &Error) {
        let mut next = self.target.take();
        while let Some(t) = next {
            next = match t {
                Target::Intercepted(i, inner) => {
                    i.on_acknowledgement(&Err(error.clone()));
                    Some(*inner)
                }
                Target::Observed(o) => Some(o.observe(&Err(error.clone()), None)),
                _ => None,
            };
        }
    }

    /// Whether nobody waits for the outcome (fire-and-forget).
    pub(crate) fn is_forget(&self) -> bool {
        matches!(self.target, Some(Target::Forget))
    }

    /// Whether only a hook of kprod's own waits for the outcome: nobody is held up if it is
    /// delivered a little later (the engine's callback pool runs these on a timer).
    pub(crate) fn is_passive(&self) -> bool {
        matches!(&self.target, Some(Target::Observed(o)) if o.passive())
    }

    /// Whether completing runs a callback or interceptors (the engine sends those to its
    /// callback pool rather than running them on an I/O thread).
    pub fn is_callback(&self) -> bool {
        matches!(
            self.target,
            Some(Target::Callback(_) | Target::Intercepted(..) | Target::Observed(..))
        )
    }

    /// Drops the completer without completing: for a record that was never accepted (the
    /// caller gets the error from the call instead), or one nobody waits for.
    pub(crate) fn disarm(mut self) {
        self.target = None;
    }

    /// Delivers the outcome. Callbacks run on the calling thread: the engine calls this from its
    /// callback pool for callback completers.
    pub fn complete(mut self, result: DeliveryResult) {
        fire(self.target.take(), result, None);
    }

    /// [`complete`](Self::complete), later than the outcome was known (`acknowledged`): a
    /// hook sees that time (a span ends then).
    pub(crate) fn complete_at(mut self, result: DeliveryResult, acknowledged: Option<SystemTime>) {
        fire(self.target.take(), result, acknowledged);
    }

    fn fire(&mut self, result: DeliveryResult) {
        fire(self.target.take(), result, None);
    }
}

fn fire(target: Option<Target>, result: DeliveryResult, acknowledged: Option<SystemTime>) {
    match target {
        Some(Target::Handle(slot)) => slot.fulfil(result),
        Some(Target::Callback(cb)) => cb(result),
        Some(Target::Intercepted(interceptors, inner)) => {
            // Interceptor panics are caught inside: the target always completes.
            interceptors.on_acknowledgement(&result);
            fire(Some(*inner), result, acknowledged);
        }
        Some(Target::Observed(o)) => {
            let inner = o.observe(&result, acknowledged);
            fire(Some(inner), result, acknowledged);
        }
        Some(Target::Forget) | None => {}
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if self.target.is_some() {
            self.fire(Err(Error::closed()));
        }
    }
}

/// The waiting half: a record's outcome, to wait for (blocking) or await (as a
/// [`Future`], on any executor).
///
/// ```
/// use kprod::delivery::{delivery_channel, RecordMetadata};
/// let (completer, handle) = delivery_channel();
/// std::thread::spawn(move || {
///     completer.complete(Ok(RecordMetadata { topic: "t".into(), partition: 0, offset: 42, timestamp: 0 }))
/// });
/// assert_eq!(handle.wait().unwrap().offset, 42);
/// ```
#[derive(Debug)]
pub struct DeliveryHandle {
    slot: Arc<Slot>,
    /// The partition the record went to, when the producer knows it: waiting on the handle
    /// urges its batch out without the linger.
    partition: Option<Arc<crate::engine::PartitionState>>,
    /// How long a wait spins before it sleeps (the producer's `idle_spin`).
    spin: Duration,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = match &*self.state.lock() {
            State::Pending(_) => "pending",
            State::Done(_) => "done",
            State::Taken => "taken",
        };
        f.write_str(st)
    }
}

/// A connected completer and handle.
pub fn delivery_channel() -> (Completer, DeliveryHandle) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Pending(None)),
        ready: Condvar::new(),
        done: AtomicBool::new(false),
    });
    (
        Completer {
            target: Some(Target::Handle(slot.clone())),
        },
        DeliveryHandle {
            slot,
            partition: None,
            spin: Duration::ZERO,
        },
    )
}

impl DeliveryHandle {
    /// This handle's record went to `partition`, and a wait spins up to `spin` before it
    /// sleeps.
    pub(crate) fn on_partition(
        mut self,
        p: Option<Arc<crate::engine::PartitionState>>,
        spin: Duration,
    ) -> Self {
        self.partition = p;
        self.spin = spin;
        self
    }

    /// The idle strategy's busy phase: checks for the outcome, without the lock, yielding the
    /// core between checks, until it is known or `limit` has passed (the clock is read every
    /// 8 checks).
    fn spin(&self, limit: Duration) {
        if limit.is_zero() {
            return;
        }
        let until = Instant::now() + limit;
        let mut checks = 0u32;
        while !self.slot.done.load(Ordering::Acquire) {
            // Polite, as the I/O thread's spin: whoever else is runnable here goes first.
            std::thread::yield_now();
            checks = checks.wrapping_add(1);
            if checks % 8 == 0 && Instant::now() >= until {
                return;
            }
        }
    }

    /// Someone is going to wait for the outcome: the record's batch goes without the linger.
    pub(crate) fn urge(&self) {
        if let Some(p) = &self.partition {
            if !self.is_done() {
                p.urge();
            }
        }
    }

    /// Blocks until the outcome is known. A record still in a batch waiting out its linger is
    /// sent at once (the linger is for records nobody waits for).
    pub fn wait(self) -> DeliveryResult {
        self.urge();
        self.spin(self.spin);
        let mut st = self.slot.state.lock();
        loop {
            if let State::Done(_) = &*st {
                return take(&mut st);
            }
            self.slot.ready.wait(&mut st);
        }
    }

    /// Blocks at most `timeout`; gives the handle back if the outcome is not known by then.
    /// Like [`wait`](Self::wait), the record's batch is sent without its linger.
    pub fn wait_timeout(self, timeout: Duration) -> Result<DeliveryResult, DeliveryHandle> {
        self.urge();
        let deadline = Instant::now() + timeout;
        self.spin(self.spin.min(timeout));
        {
            let mut st = self.slot.state.lock();
            loop {
                if let State::Done(_) = &*st {
                    return Ok(take(&mut st));
                }
                if self.slot.ready.wait_until(&mut st, deadline).timed_out() {
                    if let State::Done(_) = &*st {
                        return Ok(take(&mut st));
                    }
                    break;
                }
            }
        }
        Err(self)
    }

    /// The outcome if it is known, without blocking.
    pub fn try_result(self) -> Result<DeliveryResult, DeliveryHandle> {
        {
            let mut st = self.slot.state.lock();
            if let State::Done(_) = &*st {
                return Ok(take(&mut st));
            }
        }
        Err(self)
    }

    /// Whether the outcome is known.
    pub fn is_done(&self) -> bool {
        self.slot.done.load(Ordering::Acquire)
    }
}

fn take(st: &mut State) -> DeliveryResult {
    match std::mem::replace(st, State::Taken) {
        State::Done(r) => r,
        // A handle is consumed when it takes the result, so this cannot happen.
        _ => Err(Error::closed()),
    }
}

impl Future for DeliveryHandle {
    type Output = DeliveryResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryResult> {
        let mut st = self.slot.state.lock();
        match &mut *st {
            State::Done(_) => Poll::Ready(take(&mut st)),
            State::Pending(w) => {
                let first = w.is_none();
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                drop(st);
                if first {
                    // Awaited: as a blocking wait, the batch goes without the linger.
                    if let Some(p) = &self.partition {
                        p.urge();
                    }
                }
                Poll::Pending
            }
            State::Taken => Poll::Ready(Err(Error::closed())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    fn md(offset: i64) -> RecordMetadata {
        RecordMetadata {
            topic: "t".into(),
            partition: 1,
            offset,
            timestamp: 5,
        }
    }

    #[test]
    fn wait_across_threads() {
        let (c, h) = delivery_channel();
        let t = std::thread::spawn(move || h.wait());
        c.complete(Ok(md(7)));
        assert_eq!(t.join().unwrap().unwrap().offset, 7);
    }

    #[test]
    fn an_observed_completer_runs_its_hook_then_its_target_once_even_if_the_hook_panics() {
        // The hook sees the outcome, then the wrapped handle gets it: on completion, on a
        // refusal (the hook only), and when the hook panics.
        let seen = Arc::new(AtomicUsize::new(0));
        let n = seen.clone();
        let (c, h) = delivery_channel();
        let c = c.observed(move |r: &DeliveryResult, _| {
            assert_eq!(r.as_ref().unwrap().offset, 3);
            n.fetch_add(1, Ordering::SeqCst);
        });
        assert!(c.is_callback());
        c.complete(Ok(md(3)));
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(h.wait().unwrap().offset, 3);

        let (c, h) = delivery_channel();
        c.observed(|_: &DeliveryResult, _| panic!("a hook that panics"))
            .complete(Ok(md(4)));
        assert_eq!(
            h.wait().unwrap().offset,
            4,
            "the target completes all the same"
        );

        let n = seen.clone();
        let (c, h) = delivery_channel();
        c.observed(move |r: &DeliveryResult, _| {
            assert!(matches!(r, Err(Error::Closed { .. })));
            n.fetch_add(1, Ordering::SeqCst);
        })
        .refused(&Error::closed());
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        // A refused record's target hears nothing: the caller has the error from the call.
        assert!(!h.is_done(), "the handle stays pending");
    }

    #[test]
    fn dropped_completer_fires_closed_exactly_once() {
        let (c, h) = delivery_channel();
        drop(c);
        assert!(matches!(h.wait(), Err(Error::Closed { .. })));

        let calls = Arc::new(AtomicUsize::new(0));
        let n = calls.clone();
        let c = Completer::callback(move |r| {
            assert!(matches!(r, Err(Error::Closed { .. })));
            n.fetch_add(1, Ordering::SeqCst);
        });
        assert!(c.is_callback());
        drop(c);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let n = calls.clone();
        let c = Completer::callback(move |r| {
            assert!(r.is_ok());
            n.fetch_add(1, Ordering::SeqCst);
        });
        c.complete(Ok(md(1))); // consumed: its Drop must not fire again
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn wait_timeout_and_try_result_give_the_handle_back() {
        let (c, h) = delivery_channel();
        let h = h.try_result().unwrap_err();
        let started = Instant::now();
        let h = h.wait_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert!(!h.is_done());
        c.complete(Ok(md(3)));
        assert!(h.is_done());
        assert_eq!(h.wait_timeout(Duration::ZERO).unwrap().unwrap().offset, 3);
    }

    /// A spinning wait sees an outcome completed on another thread, and a timed wait spins no
    /// longer than its timeout.
    #[test]
    fn spinning_waits_keep_their_deadline() {
        let (c, h) = delivery_channel();
        let h = h.on_partition(None, Duration::from_secs(1));
        let t = std::thread::spawn(move || h.wait());
        c.complete(Ok(md(4)));
        assert_eq!(t.join().unwrap().unwrap().offset, 4);

        let (c, h) = delivery_channel();
        let h = h.on_partition(None, Duration::from_secs(1));
        let started = Instant::now();
        let h = h.wait_timeout(Duration::from_millis(20)).unwrap_err();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
        c.complete(Ok(md(5)));
        assert_eq!(h.wait_timeout(Duration::ZERO).unwrap().unwrap().offset, 5);
    }

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn future_is_woken_once_completed() {
        let (c, mut h) = delivery_channel();
        let wake = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(wake.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
        c.complete(Ok(md(9)));
        assert_eq!(wake.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut h).poll(&mut cx) {
            Poll::Ready(Ok(m)) => assert_eq!(m.offset, 9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn many_threads_many_handles() {
        let mut completers = Vec::new();
        let mut waiters = Vec::new();
        for i in 0..200 {
            let (c, h) = delivery_channel();
            completers.push((i, c));
            waiters.push(std::thread::spawn(move || h.wait().map(|m| m.offset)));
        }
        let t = std::thread::spawn(move || {
            for (i, c) in completers {
                if i % 2 == 0 {
                    c.complete(Ok(md(i)));
                } // odd ones are dropped: Closed
            }
        });
        t.join().unwrap();
        for (i, w) in waiters.into_iter().enumerate() {
            let r = w.join().unwrap();
            if i % 2 == 0 {
                assert_eq!(r.unwrap(), i as i64);
            } else {
                assert!(matches!(r, Err(Error::Closed { .. })));
            }
        }
    }
}
