//! The ApiVersions exchange that opens every connection, as one state machine: which version
//! to ask at, and what each answer means. Bytes in, a step out; no sockets.
//!
//! A client asks at the highest version it knows. A broker that does not support it answers
//! UNSUPPORTED_VERSION, normally in a v0 body listing the ApiVersions versions it does
//! support (the Java broker's behaviour): ask again at the highest of those below the one
//! refused. Some brokers (librdkafka's mock among them) answer in a body that cannot be read at
//! all: when its error code still reads UNSUPPORTED_VERSION, ask again at v0, which every
//! broker answers.
//!
//! ```
//! use kprod::protocol::messages::api_versions::{ApiVersion, ApiVersionsResponse};
//! use kprod::protocol::messages::Response;
//! use kprod::protocol::negotiation::{ApiVersionsExchange, Step};
//! let mut x = ApiVersionsExchange::new();
//! assert_eq!(x.version(), 3);
//! // The broker knows ApiVersions up to v2.
//! let mut frame = 1i32.to_be_bytes().to_vec();
//! ApiVersionsResponse {
//!     error_code: 35,
//!     api_keys: vec![ApiVersion { api_key: 18, min_version: 0, max_version: 2 }],
//!     ..Default::default()
//! }
//! .encode(0, &mut frame);
//! assert_eq!(x.on_response(&frame), Step::AskAgain(2));
//! assert_eq!(x.version(), 2);
//! ```

use super::codec::{DecodeError, Reader};
use super::frame::check_version;
use super::messages::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use super::messages::{Request, Response};
use super::{ApiKey, BrokerVersions, ErrorCode};

/// Where the exchange stands: the version of the request in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsExchange {
    version: i16,
}

/// What an answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the request again at this version.
    AskAgain(i16),
    /// The broker's version ranges.
    Done(BrokerVersions),
    /// The exchange cannot succeed on this connection: why.
    Failed(String),
}

impl Default for ApiVersionsExchange {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiVersionsExchange {
    /// Starts at the highest version kprod knows.
    pub fn new() -> Self {
        ApiVersionsExchange {
            version: ApiVersionsRequest::MAX_VERSION,
        }
    }

    /// The version to send (or that was sent) the request at.
    pub fn version(&self) -> i16 {
        self.version
    }

    /// Decides what the answer `frame` (correlation id first, no length prefix) to the request
    /// at [`version`](Self::version) means.
    pub fn on_response(&mut self, frame: &[u8]) -> Step {
        let sent = self.version;
        let unsupported = ErrorCode::UNSUPPORTED_VERSION;
        match decode_api_versions_response(frame, sent) {
            Ok((_, resp, _)) => {
                let code = ErrorCode(resp.error_code);
                if code == unsupported && sent > 0 {
                    let max = resp
                        .api_keys
                        .iter()
                        .find(|k| k.api_key == ApiKey::API_VERSIONS.0)
                        .map_or(0, |k| k.max_version);
                    self.version = max.clamp(0, sent - 1);
                    return Step::AskAgain(self.version);
                }
                if code != ErrorCode::NONE {
                    return Step::Failed(format!("ApiVersions v{sent}: {}", code.name()));
                }
                Step::Done(BrokerVersions::from_response(&resp))
            }
            // UNSUPPORTED_VERSION in a body that cannot be read: v0, which every broker answers.
            Err(_) if sent > 0 && frame.get(4..6) == Some(&unsupported.0.to_be_bytes()) => {
                self.version = 0;
                Step::AskAgain(0)
            }
            Err(e) => Step::Failed(format!("ApiVersions v{sent}: {e}")),
        }
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
/// use kprod::protocol::negotiation::decode_api_versions_response;
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
    if version > 0 && first_error == ErrorCode::UNSUPPORTED_VERSION.0 {
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
    use crate::protocol::messages::api_versions::ApiVersion;

    fn frame(version: i16, resp: &ApiVersionsResponse) -> Vec<u8> {
        let mut f = 7i32.to_be_bytes().to_vec();
        resp.encode(version, &mut f);
        f
    }

    fn keys(list: &[(i16, i16, i16)]) -> Vec<ApiVersion> {
        list.iter()
            .map(|&(api_key, min_version, max_version)| ApiVersion {
                api_key,
                min_version,
                max_version,
            })
            .collect()
    }

    #[test]
    fn a_modern_broker_answers_at_once() {
        let mut x = ApiVersionsExchange::new();
        let resp = ApiVersionsResponse {
            api_keys: keys(&[(0, 0, 11), (3, 0, 12), (18, 0, 3)]),
            ..Default::default()
        };
        match x.on_response(&frame(3, &resp)) {
            Step::Done(v) => assert_eq!(v.negotiate(ApiKey::PRODUCE, 3..=9), Ok(9)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_in_a_v0_body_asks_at_the_highest_listed_below() {
        let mut x = ApiVersionsExchange::new();
        let refuse = |max| ApiVersionsResponse {
            error_code: 35,
            api_keys: keys(&[(18, 0, max)]),
            ..Default::default()
        };
        assert_eq!(x.on_response(&frame(0, &refuse(1))), Step::AskAgain(1));
        // A listed maximum at or above the refused version still goes down by one.
        assert_eq!(x.on_response(&frame(0, &refuse(9))), Step::AskAgain(0));
        // At v0 there is nowhere lower: the refusal is final.
        assert!(matches!(
            x.on_response(&frame(0, &refuse(0))),
            Step::Failed(_)
        ));
    }

    #[test]
    fn unsupported_in_an_unreadable_body_asks_at_v0() {
        let mut x = ApiVersionsExchange::new();
        // Correlation id, error 35, then bytes no version decodes.
        let f = [0, 0, 0, 7, 0, 35, 0xff, 0xff, 0xff];
        assert_eq!(x.on_response(&f), Step::AskAgain(0));
        // The same at v0 is a failure, not a loop.
        assert!(matches!(x.on_response(&f), Step::Failed(_)));
    }

    #[test]
    fn other_errors_and_garbage_fail() {
        let mut x = ApiVersionsExchange::new();
        let resp = ApiVersionsResponse {
            error_code: ErrorCode::CLUSTER_AUTHORIZATION_FAILED.0,
            ..Default::default()
        };
        match x.on_response(&frame(3, &resp)) {
            Step::Failed(why) => assert!(why.contains("CLUSTER_AUTHORIZATION_FAILED"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ApiVersionsExchange::new().on_response(&[0, 0]),
            Step::Failed(_)
        ));
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
