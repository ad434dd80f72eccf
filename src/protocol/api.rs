//! API keys, the version ranges kprod implements, and version negotiation against a broker's
//! ApiVersions answer.

use std::fmt;
use std::ops::RangeInclusive;

use super::codec::{DecodeError, Reader};
use super::messages::api_versions::ApiVersionsResponse;

/// A Kafka API key (the first field of every request header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKey(pub i16);

// The constants (`ApiKey::PRODUCE`, …) and `ApiKey::name` are generated with the message
// table: see `messages/mod.rs`.

/// What kprod implements of one API: one row of [`MESSAGES`](super::messages::MESSAGES), the
/// table negotiation, framing and the mock read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInfo {
    /// The API key.
    pub api_key: ApiKey,
    /// The lowest version kprod implements.
    pub min_version: i16,
    /// The highest version kprod implements.
    pub max_version: i16,
    /// The first flexible (tagged-field) version; `i16::MAX` if none.
    pub flexible_from: i16,
}

impl MessageInfo {
    /// The versions kprod implements, as a range.
    pub fn versions(&self) -> RangeInclusive<i16> {
        self.min_version..=self.max_version
    }
}

/// A request body, with its API key, implemented version range and its response type.
/// Implemented by every message in [`messages`](super::messages), generated from its spec.
pub trait Request: Sized + std::fmt::Debug + Clone + PartialEq {
    /// The response to this request.
    type Response: Response;
    /// The API key.
    const API_KEY: ApiKey;
    /// The lowest version kprod implements.
    const MIN_VERSION: i16;
    /// The highest version kprod implements.
    const MAX_VERSION: i16;
    /// The first flexible (tagged-field) version; `i16::MAX` if none.
    const FLEXIBLE_FROM: i16;
    /// The versions kprod implements, as a range.
    fn versions() -> RangeInclusive<i16> {
        Self::MIN_VERSION..=Self::MAX_VERSION
    }
    /// Appends the body at `version` (which the caller has checked is in range).
    fn encode(&self, version: i16, out: &mut Vec<u8>);
    /// Reads the body at `version`.
    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError>;
}

/// A response body.
pub trait Response: Sized + std::fmt::Debug + Clone + PartialEq {
    /// Appends the body at `version`.
    fn encode(&self, version: i16, out: &mut Vec<u8>);
    /// Reads the body at `version`.
    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError>;
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why no version of an API can be used with a broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The broker does not offer the API at all.
    #[error("the broker does not support {api} (kprod needs versions {}..={})", ours.start(), ours.end())]
    Unsupported {
        /// The API.
        api: ApiKey,
        /// The versions kprod implements.
        ours: RangeInclusive<i16>,
    },
    /// The broker's range and ours do not overlap.
    #[error("no common version of {api}: kprod implements {}..={}, the broker {}..={}", ours.start(), ours.end(), theirs.start(), theirs.end())]
    NoOverlap {
        /// The API.
        api: ApiKey,
        /// The versions kprod implements.
        ours: RangeInclusive<i16>,
        /// The versions the broker offers.
        theirs: RangeInclusive<i16>,
    },
}

/// The versions a broker supports per API, from its ApiVersions response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerVersions {
    ranges: Vec<(ApiKey, i16, i16)>,
    transaction_version: i16,
}

impl BrokerVersions {
    /// Collects the ranges from an ApiVersions response.
    pub fn from_response(resp: &ApiVersionsResponse) -> Self {
        let mut ranges: Vec<_> = resp
            .api_keys
            .iter()
            .map(|k| (ApiKey(k.api_key), k.min_version, k.max_version))
            .collect();
        ranges.sort_by_key(|r| r.0);
        let transaction_version = resp
            .finalized_features
            .iter()
            .find(|f| f.name == "transaction.version")
            .map_or(0, |f| f.max_version_level);
        BrokerVersions {
            ranges,
            transaction_version,
        }
    }

    /// The cluster's finalized `transaction.version` feature (KIP-890; 0 when the broker
    /// names none): 2 or more means transactions v2 — a transactional Produce adds its
    /// partition to the transaction, and every EndTxn bumps the producer's epoch.
    pub fn transaction_version(&self) -> i16 {
        self.transaction_version
    }

    /// The broker's range for `api`, if it offers it.
    pub fn range(&self, api: ApiKey) -> Option<RangeInclusive<i16>> {
        self.ranges
            .binary_search_by_key(&api, |r| r.0)
            .ok()
            .map(|i| self.ranges[i].1..=self.ranges[i].2)
    }

    /// The highest version of `api` in both `ours` and the broker's range.
    ///
    /// ```
    /// use kprod::protocol::{ApiKey, BrokerVersions, NegotiationError};
    /// use kprod::protocol::messages::api_versions::{ApiVersionsResponse, ApiVersion};
    /// let resp = ApiVersionsResponse {
    ///     api_keys: vec![ApiVersion { api_key: 0, min_version: 3, max_version: 9 }],
    ///     ..Default::default()
    /// };
    /// let v = BrokerVersions::from_response(&resp);
    /// assert_eq!(v.negotiate(ApiKey::PRODUCE, 3..=11), Ok(9));
    /// assert!(matches!(
    ///     v.negotiate(ApiKey::INIT_PRODUCER_ID, 0..=4),
    ///     Err(NegotiationError::Unsupported { .. })
    /// ));
    /// ```
    pub fn negotiate(
        &self,
        api: ApiKey,
        ours: RangeInclusive<i16>,
    ) -> Result<i16, NegotiationError> {
        let theirs = self
            .range(api)
            .ok_or_else(|| NegotiationError::Unsupported {
                api,
                ours: ours.clone(),
            })?;
        let lo = (*ours.start()).max(*theirs.start());
        let hi = (*ours.end()).min(*theirs.end());
        if lo > hi {
            return Err(NegotiationError::NoOverlap { api, ours, theirs });
        }
        Ok(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::api_versions::ApiVersion;

    fn versions(list: &[(i16, i16, i16)]) -> BrokerVersions {
        BrokerVersions::from_response(&ApiVersionsResponse {
            api_keys: list
                .iter()
                .map(|&(k, lo, hi)| ApiVersion {
                    api_key: k,
                    min_version: lo,
                    max_version: hi,
                })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn picks_highest_common() {
        let v = versions(&[(3, 0, 13), (0, 3, 12), (22, 0, 5)]);
        assert_eq!(v.negotiate(ApiKey::METADATA, 1..=12), Ok(12));
        assert_eq!(v.negotiate(ApiKey::PRODUCE, 3..=11), Ok(11));
        assert_eq!(v.negotiate(ApiKey::INIT_PRODUCER_ID, 0..=4), Ok(4));
        let old = versions(&[(0, 0, 7)]);
        assert_eq!(old.negotiate(ApiKey::PRODUCE, 3..=11), Ok(7));
    }

    #[test]
    fn no_overlap_and_missing_are_errors() {
        let v = versions(&[(0, 0, 2)]);
        let e = v.negotiate(ApiKey::PRODUCE, 3..=11).unwrap_err();
        assert!(matches!(e, NegotiationError::NoOverlap { .. }));
        assert!(e.to_string().contains("Produce"));
        let e = v.negotiate(ApiKey::METADATA, 1..=12).unwrap_err();
        assert!(matches!(e, NegotiationError::Unsupported { .. }));
    }

    #[test]
    fn names() {
        assert_eq!(ApiKey::API_VERSIONS.name(), "ApiVersions");
        assert_eq!(format!("{:?}", ApiKey(999)), "Unknown(999)");
    }

    #[test]
    fn transaction_version_is_the_finalized_feature_level() {
        use crate::protocol::messages::api_versions::FinalizedFeature;
        assert_eq!(versions(&[(0, 3, 12)]).transaction_version(), 0);
        let v = BrokerVersions::from_response(&ApiVersionsResponse {
            finalized_features: vec![
                FinalizedFeature {
                    name: "metadata.version".into(),
                    max_version_level: 21,
                    min_version_level: 21,
                },
                FinalizedFeature {
                    name: "transaction.version".into(),
                    max_version_level: 2,
                    min_version_level: 2,
                },
            ],
            ..Default::default()
        });
        assert_eq!(v.transaction_version(), 2);
    }
}
