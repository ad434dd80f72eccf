//! ApiVersions (key 18), versions 0–3. The first request on every connection.
//!
//! A broker that does not support the requested version answers UNSUPPORTED_VERSION with a
//! version-0 body listing what it does support; [`decode_api_versions_response`] falls back to
//! reading that body, so the client can retry at a version the broker knows.

use super::{Request, Response};
use crate::protocol::api::ApiKey;
use crate::protocol::codec::{put_tagged_field, DecodeError, Reader, Writer};
use crate::protocol::frame::check_version;

/// The ApiVersions request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ApiVersionsRequest {
    /// The client's software name (v3+). Brokers require `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub client_software_name: String,
    /// The client's software version (v3+), same pattern.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub client_software_version: String,
}

impl Default for ApiVersionsRequest {
    /// Identifies the client as `kprod` at this crate's version.
    fn default() -> Self {
        ApiVersionsRequest {
            client_software_name: "kprod".into(),
            client_software_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

impl Request for ApiVersionsRequest {
    type Response = ApiVersionsResponse;
    const API_KEY: ApiKey = ApiKey::API_VERSIONS;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    const FLEXIBLE_FROM: i16 = 3;

    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        if version >= 3 {
            out.put_string(&self.client_software_name, true);
            out.put_string(&self.client_software_version, true);
            out.put_empty_tags(true);
        }
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        if version < 3 {
            return Ok(ApiVersionsRequest {
                client_software_name: String::new(),
                client_software_version: String::new(),
            });
        }
        let client_software_name = r.string(true, "client software name")?;
        let client_software_version = r.string(true, "client software version")?;
        r.skip_tags(true)?;
        Ok(ApiVersionsRequest {
            client_software_name,
            client_software_version,
        })
    }
}

/// One API's supported version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ApiVersion {
    /// The API key.
    pub api_key: i16,
    /// Lowest supported version.
    pub min_version: i16,
    /// Highest supported version.
    pub max_version: i16,
}

/// A feature the broker supports (v3+, tagged field 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SupportedFeature {
    /// Feature name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Lowest supported level.
    pub min_version: i16,
    /// Highest supported level.
    pub max_version: i16,
}

/// A cluster-wide finalized feature (v3+, tagged field 2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FinalizedFeature {
    /// Feature name.
    #[cfg_attr(test, proptest(strategy = "super::strategies::small_string()"))]
    pub name: String,
    /// Highest finalized level.
    pub max_version_level: i16,
    /// Lowest finalized level.
    pub min_version_level: i16,
}

/// The ApiVersions response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ApiVersionsResponse {
    /// Top-level error code.
    pub error_code: i16,
    /// The APIs the broker supports.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<ApiVersion>(), 0..8)"
        )
    )]
    pub api_keys: Vec<ApiVersion>,
    /// Quota throttle (v1+).
    pub throttle_time_ms: i32,
    /// Supported features (v3+, tagged).
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<SupportedFeature>(), 0..3)"
        )
    )]
    pub supported_features: Vec<SupportedFeature>,
    /// Epoch of the finalized features, -1 if none (v3+, tagged).
    pub finalized_features_epoch: i64,
    /// Finalized features (v3+, tagged).
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::prelude::any::<FinalizedFeature>(), 0..3)"
        )
    )]
    pub finalized_features: Vec<FinalizedFeature>,
    /// Whether the controller is ready for ZK migration (v3+, tagged).
    pub zk_migration_ready: bool,
}

impl Default for ApiVersionsResponse {
    fn default() -> Self {
        ApiVersionsResponse {
            error_code: 0,
            api_keys: Vec::new(),
            throttle_time_ms: 0,
            supported_features: Vec::new(),
            finalized_features_epoch: -1,
            finalized_features: Vec::new(),
            zk_migration_ready: false,
        }
    }
}

impl Response for ApiVersionsResponse {
    fn encode(&self, version: i16, out: &mut Vec<u8>) {
        let fl = version >= 3;
        out.put_i16(self.error_code);
        out.put_array_len(Some(self.api_keys.len()), fl);
        for k in &self.api_keys {
            out.put_i16(k.api_key);
            out.put_i16(k.min_version);
            out.put_i16(k.max_version);
            out.put_empty_tags(fl);
        }
        if version >= 1 {
            out.put_i32(self.throttle_time_ms);
        }
        if fl {
            let n = usize::from(!self.supported_features.is_empty())
                + usize::from(self.finalized_features_epoch != -1)
                + usize::from(!self.finalized_features.is_empty())
                + usize::from(self.zk_migration_ready);
            out.put_uvarint(n as u32);
            if !self.supported_features.is_empty() {
                put_tagged_field(out, 0, |o| {
                    o.put_array_len(Some(self.supported_features.len()), true);
                    for f in &self.supported_features {
                        o.put_string(&f.name, true);
                        o.put_i16(f.min_version);
                        o.put_i16(f.max_version);
                        o.put_empty_tags(true);
                    }
                });
            }
            if self.finalized_features_epoch != -1 {
                put_tagged_field(out, 1, |o| o.put_i64(self.finalized_features_epoch));
            }
            if !self.finalized_features.is_empty() {
                put_tagged_field(out, 2, |o| {
                    o.put_array_len(Some(self.finalized_features.len()), true);
                    for f in &self.finalized_features {
                        o.put_string(&f.name, true);
                        o.put_i16(f.max_version_level);
                        o.put_i16(f.min_version_level);
                        o.put_empty_tags(true);
                    }
                });
            }
            if self.zk_migration_ready {
                put_tagged_field(out, 3, |o| o.put_bool(true));
            }
        }
    }

    fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let fl = version >= 3;
        let mut resp = ApiVersionsResponse {
            error_code: r.i16("error code")?,
            ..Default::default()
        };
        resp.api_keys = r.vec(fl, 6, "api keys", |r| {
            let k = ApiVersion {
                api_key: r.i16("api key")?,
                min_version: r.i16("min version")?,
                max_version: r.i16("max version")?,
            };
            r.skip_tags(fl)?;
            Ok(k)
        })?;
        if version >= 1 {
            resp.throttle_time_ms = r.i32("throttle time")?;
        }
        r.tagged_fields(fl, |tag, r| {
            match tag {
                0 => {
                    resp.supported_features = r.vec(true, 5, "supported features", |r| {
                        let f = SupportedFeature {
                            name: r.string(true, "feature name")?,
                            min_version: r.i16("min version")?,
                            max_version: r.i16("max version")?,
                        };
                        r.skip_tags(true)?;
                        Ok(f)
                    })?
                }
                1 => resp.finalized_features_epoch = r.i64("finalized features epoch")?,
                2 => {
                    resp.finalized_features = r.vec(true, 5, "finalized features", |r| {
                        let f = FinalizedFeature {
                            name: r.string(true, "feature name")?,
                            max_version_level: r.i16("max version level")?,
                            min_version_level: r.i16("min version level")?,
                        };
                        r.skip_tags(true)?;
                        Ok(f)
                    })?
                }
                3 => resp.zk_migration_ready = r.bool("zk migration ready")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(resp)
    }
}

/// Decodes an ApiVersions response frame (without its length prefix) to a request sent at
/// `version`, returning `(correlation_id, response, version_read)`.
///
/// When a broker does not support `version` it answers UNSUPPORTED_VERSION with a v0 body (the
/// Java broker's behaviour); this reads such an answer at v0, so the caller can pick the
/// highest ApiVersions version in `response.api_keys` (or v0) and ask again.
///
/// ```
/// use kprod::protocol::messages::api_versions::*;
/// use kprod::protocol::messages::Response;
/// // A broker that only knows ApiVersions v0..=2 answering a v3 request.
/// let mut frame = 9i32.to_be_bytes().to_vec(); // correlation id
/// ApiVersionsResponse {
///     error_code: 35,
///     api_keys: vec![ApiVersion { api_key: 18, min_version: 0, max_version: 2 }],
///     ..Default::default()
/// }
/// .encode(0, &mut frame);
/// let (cid, resp, read_at) = decode_api_versions_response(&frame, 3).unwrap();
/// assert_eq!((cid, resp.error_code, read_at), (9, 35, 0));
/// assert_eq!(resp.api_keys[0].max_version, 2);
/// ```
pub fn decode_api_versions_response(
    frame: &[u8],
    version: i16,
) -> Result<(i32, ApiVersionsResponse, i16), DecodeError> {
    check_version::<ApiVersionsRequest>(version)?;
    let mut r = Reader::new(frame);
    let cid = r.i32("correlation id")?;
    let body = r.rest();
    let at = |v: i16| -> Result<ApiVersionsResponse, DecodeError> {
        let mut r = Reader::new(body);
        let resp = ApiVersionsResponse::decode(&mut r, v)?;
        r.finish("ApiVersions")?;
        Ok(resp)
    };
    let first_error = Reader::new(body).i16("error code")?;
    if version > 0 && first_error == crate::protocol::ErrorCode::UNSUPPORTED_VERSION.0 {
        return Ok((cid, at(0)?, 0));
    }
    match at(version) {
        Ok(resp) => Ok((cid, resp, version)),
        // An old broker may answer any error in a v0 body; accept that rather than fail.
        Err(e) if version > 0 => at(0).map(|resp| (cid, resp, 0)).map_err(|_| e),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    super::super::roundtrip_tests!(
        ApiVersionsRequest,
        ApiVersionsResponse,
        full_req = 3..=3,
        full_resp = 3..=3
    );

    #[test]
    fn v3_request_golden_bytes() {
        let req = ApiVersionsRequest {
            client_software_name: "kprod".into(),
            client_software_version: "1.0".into(),
        };
        let mut out = Vec::new();
        req.encode(3, &mut out);
        assert_eq!(out, b"\x06kprod\x041.0\x00");
    }

    #[test]
    fn fallback_on_garbled_higher_version() {
        // A body that only parses at v0 (no throttle time, no tags).
        let mut frame = 1i32.to_be_bytes().to_vec();
        ApiVersionsResponse {
            error_code: 0,
            api_keys: vec![ApiVersion {
                api_key: 0,
                min_version: 0,
                max_version: 2,
            }],
            ..Default::default()
        }
        .encode(0, &mut frame);
        let (_, resp, at) = decode_api_versions_response(&frame, 3).unwrap();
        assert_eq!(at, 0);
        assert_eq!(resp.api_keys.len(), 1);
    }
}
