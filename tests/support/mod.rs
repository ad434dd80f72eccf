//! Test support: a minimal broker built from kprod's own broker-side encoders, so real clients
//! (librdkafka) can be pointed at it and what they send can be captured and decoded; and a
//! librdkafka consumer to read topics back.
#![allow(dead_code)]

pub mod fake_broker;
pub mod readback;
