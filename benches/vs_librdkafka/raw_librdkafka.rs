//! librdkafka through its own C API (the `rdkafka` crate's bindings), with no Rust wrapper in
//! between: delivery reports by callback (`dr_msg_cb`), served by `rd_kafka_poll` or by
//! `rd_kafka_flush(rk, timeout)` — which sends what is queued at once and returns as soon as
//! the last report has run. This is librdkafka's own blocking idiom; rust-rdkafka 0.39's
//! `BaseProducer::flush` instead polls in 100 ms turns and cannot show it.
//!
//! One producer at a time per process: the reports are counted in statics.

use std::ffi::{c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::bindings as rd;

static DELIVERED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn on_delivery(
    _rk: *mut rd::rd_kafka_t,
    msg: *const rd::rd_kafka_message_t,
    _opaque: *mut c_void,
) {
    // SAFETY: librdkafka passes a valid message for the duration of the callback.
    let err = unsafe { (*msg).err };
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        DELIVERED.fetch_add(1, Ordering::Relaxed);
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A librdkafka producer and one topic handle.
pub struct RawProducer {
    rk: *mut rd::rd_kafka_t,
    rkt: *mut rd::rd_kafka_topic_t,
}

// SAFETY: librdkafka's producer handle is thread-safe (rd_kafka_produce may be called from
// any thread); the bench uses it from the thread that made it, or scoped threads.
unsafe impl Send for RawProducer {}
unsafe impl Sync for RawProducer {}

impl RawProducer {
    /// A producer with `props` (librdkafka names) for `topic`; panics on a refused property.
    pub fn new(props: &[(String, String)], topic: &str) -> RawProducer {
        let mut err = [0 as std::ffi::c_char; 512];
        // SAFETY: conf is freshly made and owned here until rd_kafka_new takes it; every string
        // passed lives across its call; errstr is a buffer of the size given.
        unsafe {
            let conf = rd::rd_kafka_conf_new();
            for (k, v) in props {
                let (k, v) = (
                    CString::new(k.as_str()).unwrap(),
                    CString::new(v.as_str()).unwrap(),
                );
                let r = rd::rd_kafka_conf_set(
                    conf,
                    k.as_ptr(),
                    v.as_ptr(),
                    err.as_mut_ptr(),
                    err.len(),
                );
                assert!(
                    r == rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK,
                    "librdkafka refused {k:?}={v:?}: {}",
                    CStr::from_ptr(err.as_ptr()).to_string_lossy()
                );
            }
            rd::rd_kafka_conf_set_dr_msg_cb(conf, Some(on_delivery));
            let rk = rd::rd_kafka_new(
                rd::rd_kafka_type_t::RD_KAFKA_PRODUCER,
                conf,
                err.as_mut_ptr(),
                err.len(),
            );
            assert!(
                !rk.is_null(),
                "rd_kafka_new: {}",
                CStr::from_ptr(err.as_ptr()).to_string_lossy()
            );
            let name = CString::new(topic).unwrap();
            let rkt = rd::rd_kafka_topic_new(rk, name.as_ptr(), ptr::null_mut());
            assert!(!rkt.is_null(), "rd_kafka_topic_new");
            DELIVERED.store(0, Ordering::SeqCst);
            FAILED.store(0, Ordering::SeqCst);
            RawProducer { rk, rkt }
        }
    }

    /// Enqueues a copy of `value` (and `key`) for the partitioner; false if the queue is full.
    pub fn produce(&self, key: Option<&[u8]>, value: &[u8]) -> bool {
        let (kp, kl) = key.map_or((ptr::null(), 0), |k| (k.as_ptr().cast(), k.len()));
        // SAFETY: RD_KAFKA_MSG_F_COPY: librdkafka copies payload and key before returning, so
        // the borrowed slices need only live across the call.
        let r = unsafe {
            rd::rd_kafka_produce(
                self.rkt,
                -1, // RD_KAFKA_PARTITION_UA: the configured partitioner chooses
                rd::RD_KAFKA_MSG_F_COPY,
                value.as_ptr() as *mut c_void,
                value.len(),
                kp,
                kl,
                ptr::null_mut(),
            )
        };
        if r == 0 {
            return true;
        }
        // SAFETY: reads this thread's last librdkafka error.
        let e = unsafe { rd::rd_kafka_last_error() };
        assert!(
            e == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL,
            "rd_kafka_produce: {e:?}"
        );
        false
    }

    /// Serves delivery reports, waiting up to `timeout_ms` for one (0: not at all).
    pub fn poll(&self, timeout_ms: i32) {
        // SAFETY: rk is live.
        unsafe { rd::rd_kafka_poll(self.rk, timeout_ms) };
    }

    /// librdkafka's flush: sends what is queued without the linger and returns once every
    /// record has its delivery report (served here), or at `timeout`.
    pub fn flush(&self, timeout: Duration) {
        // SAFETY: rk is live.
        let r = unsafe { rd::rd_kafka_flush(self.rk, timeout.as_millis() as i32) };
        assert!(
            r == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            "rd_kafka_flush: {r:?}"
        );
    }

    /// `rd_kafka_init_transactions` (the producer was made with `transactional.id`).
    pub fn init_transactions(&self, timeout: Duration) {
        // SAFETY: rk is live.
        let e = unsafe { rd::rd_kafka_init_transactions(self.rk, timeout.as_millis() as i32) };
        check("rd_kafka_init_transactions", e);
    }

    /// `rd_kafka_begin_transaction`.
    pub fn begin_transaction(&self) {
        // SAFETY: rk is live.
        let e = unsafe { rd::rd_kafka_begin_transaction(self.rk) };
        check("rd_kafka_begin_transaction", e);
    }

    /// `rd_kafka_commit_transaction`: flushes what is queued (serving its delivery reports),
    /// then returns once the coordinator has committed, or at `timeout`.
    pub fn commit_transaction(&self, timeout: Duration) {
        // SAFETY: rk is live.
        let e = unsafe { rd::rd_kafka_commit_transaction(self.rk, timeout.as_millis() as i32) };
        check("rd_kafka_commit_transaction", e);
    }

    /// Delivery reports served so far: (delivered, failed).
    pub fn reports(&self) -> (u64, u64) {
        (
            DELIVERED.load(Ordering::Relaxed),
            FAILED.load(Ordering::Relaxed),
        )
    }
}

/// Panics with librdkafka's message if `e` is an error (and frees it).
fn check(call: &str, e: *mut rd::rd_kafka_error_t) {
    if e.is_null() {
        return;
    }
    // SAFETY: e is a live error object owned here; its string is read before it is freed.
    let msg = unsafe {
        let m = CStr::from_ptr(rd::rd_kafka_error_string(e))
            .to_string_lossy()
            .into_owned();
        rd::rd_kafka_error_destroy(e);
        m
    };
    panic!("{call}: {msg}");
}

impl Drop for RawProducer {
    fn drop(&mut self) {
        // SAFETY: the handles are live and dropped once; the topic goes before its producer.
        unsafe {
            rd::rd_kafka_flush(self.rk, 10_000);
            rd::rd_kafka_topic_destroy(self.rkt);
            rd::rd_kafka_destroy(self.rk);
        }
    }
}
