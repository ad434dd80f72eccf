//! The Kafka wire protocol: bytes in, bytes out. Nothing here touches a socket or a clock.
//!
//! - [`codec`]: primitives (integers, varints, strings, arrays, tagged fields, UUID) and
//!   [`DecodeError`].
//! - [`frame`]: length-prefixed framing, request/response headers, [`FrameSplitter`].
//! - [`messages`]: ApiVersions, Metadata, Produce and InitProducerId, both directions.
//! - [`api`]: API keys and version negotiation ([`BrokerVersions`]).
//! - [`record_batch`]: the RecordBatch v2 builder and decoder.
//! - [`compression`]: gzip, snappy (raw and xerial-framed), lz4 (frame) and zstd.
//! - [`error_code`]: every Kafka error code with its name, description and retriability.

pub mod api;
pub mod codec;
pub mod compression;
pub mod error_code;
pub mod frame;
#[cfg(test)]
mod golden;
pub mod messages;
pub mod negotiation;
pub mod record_batch;

pub use api::{ApiKey, BrokerVersions, NegotiationError};
pub use codec::{DecodeError, Reader, Uuid, Writer};
pub use error_code::ErrorCode;
pub use frame::{
    decode_request, decode_request_header, decode_response, decode_response_lenient,
    encode_request, encode_response, FrameError, FrameSplitter, RequestHeader,
};
