//! Test support: a librdkafka consumer to read topics back, a fault-injecting proxy, and the
//! delivery-guarantee harness.
#![allow(dead_code)]

pub mod certs;
pub mod fault_proxy;
pub mod readback;
pub mod scenario;
pub mod secure;
pub mod threads;
pub mod txn;
