//! InitProducerId (key 22), versions 0–4 (flexible from 2): obtains the producer id and epoch
//! that idempotent and transactional producers stamp on every batch.

use super::{Request, Response};
use crate::protocol::api::ApiKey;
use crate::protocol::codec::{DecodeError, Reader, Writer};

/// The InitProducerId request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InitProducerIdRequest {
    /// Transactional id, or null for an idempotent-only producer.
    #[cfg_attr(test, proptest(strategy = "super::strategies::opt_string()"))]
    pub transactional_id: Option<String>,
    /// Transaction timeout in ms (ignored without a transactional id).
    pub transaction_timeout_ms: i32,
    /// The current producer id, to bump its epoch (v3+, KIP-360); -1 for a new id.
    pub producer_id: i64,
    /// The current epoch (v3+); -1 for a new id.
    pub producer_epoch: i16,
}

impl Default for InitProducerIdRequest {
    /// An idempotent producer asking for a fresh id.
    fn default() -> Self {
        InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: i32::MAX,
            producer_id: -1,
            producer_epoch: -1,
        }
    }
}

impl Request for InitProducerIdRequest {
    type Response = InitProducerIdResponse;
    const API_KEY: ApiKey = ApiKey::INIT_PRODUCER_ID;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FLEXIBLE_FROM: i16 = 2;

    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= Self::FLEXIBLE_FROM;
        out.put_nullable_string(self.transactional_id.as_deref(), fl);
        out.put_i32(self.transaction_timeout_ms);
        if version >= 3 {
            out.put_i64(self.producer_id);
            out.put_i16(self.producer_epoch);
        }
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= Self::FLEXIBLE_FROM;
        let mut m = InitProducerIdRequest {
            transactional_id: r.nullable_string(fl, "transactional id")?,
            transaction_timeout_ms: r.i32("transaction timeout")?,
            ..Default::default()
        };
        if version >= 3 {
            m.producer_id = r.i64("producer id")?;
            m.producer_epoch = r.i16("producer epoch")?;
        }
        r.skip_tags(fl)?;
        Ok(m)
    }
}

/// The InitProducerId response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InitProducerIdResponse {
    /// Quota throttle.
    pub throttle_time_ms: i32,
    /// Error code.
    pub error_code: i16,
    /// The producer id, -1 on error.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
}

impl Default for InitProducerIdResponse {
    fn default() -> Self {
        InitProducerIdResponse {
            throttle_time_ms: 0,
            error_code: 0,
            producer_id: -1,
            producer_epoch: 0,
        }
    }
}

impl Response for InitProducerIdResponse {
    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= InitProducerIdRequest::FLEXIBLE_FROM;
        out.put_i32(self.throttle_time_ms);
        out.put_i16(self.error_code);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_empty_tags(fl);
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= InitProducerIdRequest::FLEXIBLE_FROM;
        let m = InitProducerIdResponse {
            throttle_time_ms: r.i32("throttle time")?,
            error_code: r.i16("error code")?,
            producer_id: r.i64("producer id")?,
            producer_epoch: r.i16("producer epoch")?,
        };
        r.skip_tags(fl)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    super::super::roundtrip_tests!(
        InitProducerIdRequest,
        InitProducerIdResponse,
        full_req = 3..=4,
        full_resp = 0..=4
    );
}
