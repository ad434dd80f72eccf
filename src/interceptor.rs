//! Producer interceptors: the application's hooks into the send path, as the Java client's
//! `ProducerInterceptor` and librdkafka's interceptors.
//!
//! Registered on the builder ([`ProducerConfigBuilder::interceptor`]), several in order.
//! [`on_send`](ProducerInterceptor::on_send) sees every record before it is partitioned and
//! may change it (add a header, rewrite the value) or refuse it;
//! [`on_acknowledgement`](ProducerInterceptor::on_acknowledgement) sees every outcome, once
//! per record that got past `on_send`: delivered, failed, timed out, purged, failed at close
//! or when the producer is dropped, or refused by the call itself (a full buffer, an unknown
//! partition — the record is then handed back to the caller too).
//!
//! A panic in either is caught, logged and counted (`metrics().interceptor_panics`): a panic in
//! `on_send` fails that call with [`Error::Interceptor`] and hands the record back; a panic in
//! `on_acknowledgement` skips the later interceptors for that record, never its completion.
//!
//! `on_acknowledgement` runs on the producer's callback pool, never on an I/O thread: with an
//! interceptor registered, every record's completion (handles and fire-and-forget ones too)
//! goes through the pool, in batch order. With none registered, nothing changes on the send
//! path.
//!
//! ```
//! # #[cfg(feature = "mock")] {
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use kprod::interceptor::ProducerInterceptor;
//! use kprod::{DeliveryResult, Producer, ProducerRecord};
//!
//! /// Stamps every record with the service's name and counts outcomes.
//! #[derive(Default)]
//! struct Stamp {
//!     acked: AtomicU64,
//! }
//!
//! impl ProducerInterceptor for Stamp {
//!     fn on_send(&self, record: &mut ProducerRecord) -> Result<(), String> {
//!         record.headers.push(kprod::Header::new("origin", "billing"));
//!         Ok(())
//!     }
//!     fn on_acknowledgement(&self, result: &DeliveryResult) {
//!         if result.is_ok() {
//!             self.acked.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! let cluster = kprod::mock::MockCluster::builder().topic("bills", 1).build()?;
//! let stamp = std::sync::Arc::new(Stamp::default());
//! let producer = Producer::builder()
//!     .bootstrap_servers(&cluster.bootstrap_servers())
//!     .interceptor(stamp.clone())
//!     .build()?;
//! producer.produce("bills", "b-1", "42.00")?;
//! producer.close(std::time::Duration::from_secs(5))?;
//! assert_eq!(stamp.acked.load(Ordering::Relaxed), 1);
//! assert_eq!(cluster.records("bills", 0)[0].headers[0].key, "origin");
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`ProducerConfigBuilder::interceptor`]: crate::config::ProducerConfigBuilder::interceptor

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::delivery::DeliveryResult;
use crate::error::Error;
use crate::record::ProducerRecord;

/// A hook into the send path. Both methods have do-nothing defaults: implement the one you
/// need. Called from any thread the application sends from (`on_send`) and from the callback
/// pool (`on_acknowledgement`), so implementations are `Send + Sync`.
pub trait ProducerInterceptor: Send + Sync + 'static {
    /// Sees `record` before it is partitioned, and may change it. An `Err(reason)` refuses
    /// it: the call fails with [`Error::Interceptor`] (carrying `reason`), the record is
    /// handed back, and the later interceptors do not see it.
    fn on_send(&self, record: &mut ProducerRecord) -> Result<(), String> {
        let _ = record;
        Ok(())
    }

    /// Sees the outcome of a record that got past `on_send`, exactly once. Runs on the
    /// callback pool: keep it short, or it delays the records' other completions.
    fn on_acknowledgement(&self, result: &DeliveryResult) {
        let _ = result;
    }

    /// A name for log lines and errors. Default: the type's name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

impl<T: ProducerInterceptor> ProducerInterceptor for Arc<T> {
    fn on_send(&self, record: &mut ProducerRecord) -> Result<(), String> {
        (**self).on_send(record)
    }
    fn on_acknowledgement(&self, result: &DeliveryResult) {
        (**self).on_acknowledgement(result);
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// The registered interceptors, in order, and their panics.
pub(crate) struct Interceptors {
    list: Vec<Arc<dyn ProducerInterceptor>>,
    panics: AtomicU64,
}

impl std::fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|i| i.name()))
            .finish()
    }
}

impl Interceptors {
    /// `None` when the list is empty: the send path then checks one `Option`.
    pub fn new(list: Vec<Arc<dyn ProducerInterceptor>>) -> Option<Arc<Interceptors>> {
        (!list.is_empty()).then(|| {
            Arc::new(Interceptors {
                list,
                panics: AtomicU64::new(0),
            })
        })
    }

    /// Every interceptor's `on_send`, in order; the first refusal or panic stops it.
    pub fn on_send(&self, record: &mut ProducerRecord) -> Result<(), Error> {
        for i in &self.list {
            let refused = |reason: String| Error::Interceptor {
                interceptor: i.name().to_string(),
                reason,
            };
            match catch_unwind(AssertUnwindSafe(|| i.on_send(record))) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(refused(reason)),
                Err(_) => {
                    self.panicked(i.as_ref(), "on_send");
                    return Err(refused("on_send panicked".into()));
                }
            }
        }
        Ok(())
    }

    /// Every interceptor's `on_acknowledgement`, in order; a panic is caught and stops the
    /// rest for this record.
    pub fn on_acknowledgement(&self, result: &DeliveryResult) {
        for i in &self.list {
            if catch_unwind(AssertUnwindSafe(|| i.on_acknowledgement(result))).is_err() {
                self.panicked(i.as_ref(), "on_acknowledgement");
                return;
            }
        }
    }

    fn panicked(&self, i: &dyn ProducerInterceptor, what: &str) {
        self.panics.fetch_add(1, Relaxed);
        log::error!(
            "kprod: interceptor {}: {what} panicked (caught; the record's completion is kept)",
            i.name()
        );
    }

    /// Panics caught so far.
    pub fn panics(&self) -> u64 {
        self.panics.load(Relaxed)
    }
}
