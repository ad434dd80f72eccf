//! Test support: a librdkafka consumer to read topics back.
#![allow(dead_code)]

pub mod readback;
