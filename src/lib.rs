//! # kprod
//!
//! A synchronous, thread-per-core Apache Kafka producer for Rust code that does not want an
//! async runtime.
//!
//! This release contains the foundation: [`protocol`], a sans-IO implementation of the Kafka
//! wire protocol a producer needs — framing, ApiVersions, Metadata, Produce and InitProducerId
//! in both directions, RecordBatch v2 with every codec, and the full error-code table — verified
//! against librdkafka. The producer engine is built on it.
//!
//! ```text
//!            bytes in                              bytes out
//!  socket ──► FrameSplitter ──► decode_response    encode_request ──► socket
//!                                     │                  ▲
//!                                     ▼                  │
//!                               messages::*  ◄──  RecordBatchBuilder ◄── records
//!                                                        │
//!                                                   Compressor
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
pub mod config;
pub mod connection;
pub mod delivery;
mod engine;
pub mod error;
pub mod interceptor;
pub mod metrics;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
#[cfg(feature = "opentelemetry")]
pub mod otel;
pub mod partitioner;
mod producer;
pub mod protocol;
pub mod record;
pub mod sasl;
pub mod serializer;
#[cfg(all(test, feature = "mock"))]
mod sim;
pub mod tls;
pub mod transaction;

pub use config::{Acks, ProducerConfig, ProducerConfigBuilder};
pub use delivery::{DeliveryHandle, DeliveryResult, RecordMetadata};
pub use engine::resolver::{Resolve, SystemResolver};
pub use error::{Deadline, DeliveryStatus, Error, TransactionError};
pub use interceptor::ProducerInterceptor;
pub use metrics::{LatencySummary, MetricsSnapshot, StageLatency};
pub use producer::{ProduceAllResults, Producer, PurgeScope, SendError, TypedProducer};
pub use protocol::compression::Compression;
pub use protocol::record_batch::Header;
pub use record::{Payload, ProducerRecord, Topic};

/// The builder [`Producer::builder`] returns.
pub type ProducerBuilder = ProducerConfigBuilder;

/// README.md's code compiles (checked by `cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
