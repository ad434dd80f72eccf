//! Test helpers the generated message modules share: the round-trip properties and the
//! proptest strategies for wire types that have no `Arbitrary` of their own.

use bytes::Bytes;
use proptest::prelude::*;

use super::codec::{DecodeError, Reader};

/// Round-trip properties shared by every message's tests: for an arbitrary message `m` at
/// version `v`, `bytes = encode(m)` must decode without trailing bytes, and re-encoding the
/// decoded value must give `bytes` again (so no field the version carries is lost or altered).
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

/// Declares the proptests every generated message carries: [`assert_fixpoint`] for request
/// and response at every implemented version, equality at the versions in `full_req` /
/// `full_resp` (where the message carries all its fields), and decoders that never panic on
/// arbitrary bytes.
macro_rules! roundtrip_tests {
    ($req:ty, $resp:ty, full_req = $fq:expr, full_resp = $fr:expr) => {
        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
            #[test]
            fn request_roundtrip_every_version(m in proptest::prelude::any::<$req>()) {
                use $crate::protocol::messages::Request;
                let full: &[i16] = &$fq;
                for v in <$req>::MIN_VERSION..=<$req>::MAX_VERSION {
                    let back = $crate::protocol::testing::assert_fixpoint(
                        &m, v, |m, v, o| m.encode(v, o), |r, v| <$req>::decode(r, v));
                    if full.contains(&v) {
                        proptest::prop_assert_eq!(&back, &m);
                    }
                }
            }
            #[test]
            fn response_roundtrip_every_version(m in proptest::prelude::any::<$resp>()) {
                use $crate::protocol::messages::{Request, Response};
                let full: &[i16] = &$fr;
                for v in <$req>::MIN_VERSION..=<$req>::MAX_VERSION {
                    let back = $crate::protocol::testing::assert_fixpoint(
                        &m, v, |m, v, o| m.encode(v, o), |r, v| <$resp>::decode(r, v));
                    if full.contains(&v) {
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
pub(crate) use roundtrip_tests;

/// Bytes of up to 64.
pub fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}
/// A short name of the characters Kafka allows in topic names.
pub fn small_string() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{0,24}"
}
/// Any UUID.
pub fn uuid() -> impl Strategy<Value = crate::protocol::codec::Uuid> {
    any::<[u8; 16]>().prop_map(crate::protocol::codec::Uuid)
}
