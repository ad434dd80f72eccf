//! The Kafka messages a producer needs (and the reads a test broker serves), both directions: the client side (encode request,
//! decode response) and the broker side (decode request, encode response).
//!
//! Each message is one struct holding the union of its fields across versions; a field outside
//! a version's range is neither written nor read (it decodes to its default). Field names
//! follow Kafka's JSON message definitions in snake case.

pub mod api_versions;
pub mod create_topics;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use super::api::ApiKey;
use super::codec::{DecodeError, Reader};

/// A request body, with its API key, implemented version range and its response type.
pub trait Request: Sized + std::fmt::Debug + Clone + PartialEq {
    /// The response to this request.
    type Response: Response;
    /// The API key.
    const API_KEY: ApiKey;
    /// The lowest version kprod implements.
    const MIN_VERSION: i16;
    /// The highest version kprod implements.
    const MAX_VERSION: i16;
    /// The first flexible (tagged-field) version.
    const FLEXIBLE_FROM: i16;
    /// The versions kprod implements, as a range.
    fn versions() -> std::ops::RangeInclusive<i16> {
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

/// Round-trip properties shared by every message's tests: for an arbitrary message `m` at
/// version `v`, `bytes = encode(m)` must decode without trailing bytes, and re-encoding the
/// decoded value must give `bytes` again (so no field the version carries is lost or altered).
#[cfg(test)]
pub(crate) fn assert_fixpoint<T: std::fmt::Debug + PartialEq>(
    m: &T,
    version: i16,
    enc: impl Fn(&T, i16, &mut Vec<u8>),
    dec: impl Fn(&mut Reader<'_>, i16) -> Result<T, DecodeError>,
) -> T {
    let mut bytes = Vec::new();
    enc(m, version, &mut bytes);
    let mut r = Reader::new(&bytes);
    let back = dec(&mut r, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
    r.finish("message").unwrap();
    let mut again = Vec::new();
    enc(&back, version, &mut again);
    assert_eq!(bytes, again, "v{version}: re-encoding changed the bytes");
    // Every strict prefix must fail cleanly: no field is optional at the end of a message.
    for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if cut < bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            assert!(
                dec(&mut r, version).is_err(),
                "v{version}: a {cut}-byte prefix decoded"
            );
        }
    }
    back
}

/// Declares a `proptest` that checks [`assert_fixpoint`] for request and response of a message
/// at every implemented version, and equality at the versions in `$full` (where the message
/// carries all its fields).
#[cfg(test)]
macro_rules! roundtrip_tests {
    ($req:ty, $resp:ty, full_req = $fq:expr, full_resp = $fr:expr) => {
        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
            #[test]
            fn request_roundtrip_every_version(m in proptest::prelude::any::<$req>()) {
                use $crate::protocol::messages::Request;
                for v in <$req>::MIN_VERSION..=<$req>::MAX_VERSION {
                    let back = $crate::protocol::messages::assert_fixpoint(
                        &m, v, |m, v, o| m.encode(v, o), |r, v| <$req>::decode(r, v));
                    if $fq.contains(&v) {
                        proptest::prop_assert_eq!(&back, &m);
                    }
                }
            }
            #[test]
            fn response_roundtrip_every_version(m in proptest::prelude::any::<$resp>()) {
                use $crate::protocol::messages::{Request, Response};
                for v in <$req>::MIN_VERSION..=<$req>::MAX_VERSION {
                    let back = $crate::protocol::messages::assert_fixpoint(
                        &m, v, |m, v, o| m.encode(v, o), |r, v| <$resp>::decode(r, v));
                    if $fr.contains(&v) {
                        proptest::prop_assert_eq!(&back, &m);
                    }
                }
            }
            #[test]
            fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
                use $crate::protocol::messages::{Request, Response};
                for v in <$req>::MIN_VERSION..=<$req>::MAX_VERSION {
                    let _ = <$req>::decode(&mut $crate::protocol::codec::Reader::new(&bytes), v);
                    let _ = <$resp>::decode(&mut $crate::protocol::codec::Reader::new(&bytes), v);
                }
            }
        }
    };
}
#[cfg(test)]
pub(crate) use roundtrip_tests;

/// proptest strategies for wire types that have no `Arbitrary` of their own.
#[cfg(test)]
pub(crate) mod strategies {
    use bytes::Bytes;
    use proptest::prelude::*;

    pub fn opt_bytes() -> impl Strategy<Value = Option<Bytes>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
    }
    pub fn small_string() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{0,24}"
    }
    pub fn opt_string() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(small_string())
    }
    pub fn uuid() -> impl Strategy<Value = crate::protocol::codec::Uuid> {
        any::<[u8; 16]>().prop_map(crate::protocol::codec::Uuid)
    }
}
