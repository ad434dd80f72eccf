//! Framing: the 4-byte length prefix, request and response headers, and a frame splitter that
//! cuts complete frames out of a read buffer.
//!
//! A request on the wire is `length:i32 | header | body`; the header is v1 (`api_key`,
//! `api_version`, `correlation_id`, `client_id`) or, for flexible versions, v2 (v1 plus tagged
//! fields). A response is `length:i32 | correlation_id | [tagged fields] | body`. ApiVersions
//! responses always use the v0 response header, whatever their version (KIP-511), so a client can
//! read the broker's answer before it knows what the broker supports.

use bytes::{Buf, BytesMut};

use super::api::ApiKey;
use super::codec::{DecodeError, Reader, Writer};
use super::messages::{Request, Response};

/// The default ceiling on one frame (100 MiB, Kafka's `socket.request.max.bytes`).
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// A request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// The API being called.
    pub api_key: ApiKey,
    /// The API version the body is encoded with.
    pub api_version: i16,
    /// Echoed by the broker in the response.
    pub correlation_id: i32,
    /// The client's id, for broker logs and quotas.
    pub client_id: Option<String>,
}

/// Why a frame could not be cut from a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The declared size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A negative length prefix.
    #[error("negative frame length {0}")]
    Negative(i32),
}

/// Cuts length-prefixed frames out of a growing read buffer.
///
/// Feed it whatever the socket produced; it returns each complete frame (without its prefix) and
/// keeps partial ones until the rest arrives.
///
/// ```
/// use bytes::BytesMut;
/// use kprod::protocol::FrameSplitter;
/// let mut s = FrameSplitter::new(1024);
/// let mut buf = BytesMut::from(&[0, 0, 0, 3, b'a', b'b'][..]);
/// assert_eq!(s.next_frame(&mut buf).unwrap(), None); // partial
/// buf.extend_from_slice(b"c\0\0");
/// assert_eq!(&s.next_frame(&mut buf).unwrap().unwrap()[..], b"abc");
/// assert_eq!(s.next_frame(&mut buf).unwrap(), None); // 2 bytes of the next prefix
/// ```
#[derive(Debug, Clone)]
pub struct FrameSplitter {
    max_frame: usize,
}

impl FrameSplitter {
    /// A splitter that rejects frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameSplitter { max_frame }
    }

    /// The next complete frame in `buf`, removed from it; `Ok(None)` if more bytes are needed
    /// (the buffer is reserved for the rest of a partial frame). An error means the stream is
    /// corrupt and the connection must be closed.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len < 0 {
            return Err(FrameError::Negative(len));
        }
        let len = len as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                size: len,
                max: self.max_frame,
            });
        }
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len)))
    }
}

impl Default for FrameSplitter {
    fn default() -> Self {
        FrameSplitter::new(DEFAULT_MAX_FRAME)
    }
}

/// Whether `api` at `version` uses a flexible (tagged-field) encoding, by the message table.
/// APIs kprod does not implement are treated as non-flexible.
pub fn is_flexible(api: ApiKey, version: i16) -> bool {
    super::messages::message_info(api).is_some_and(|m| version >= m.flexible_from)
}

/// Starts a length-prefixed frame: reserves the 4-byte prefix and returns its position for
/// [`end_frame`].
#[inline]
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let at = out.position();
    out.put_i32(0);
    at
}

/// Patches the length prefix reserved by [`begin_frame`].
#[inline]
pub fn end_frame(out: &mut Vec<u8>, at: usize) {
    let len = (out.len() - at - 4) as i32;
    out.patch(at, &len.to_be_bytes());
}

/// Writes a request header (v1, or v2 when `flexible`).
pub fn encode_request_header(header: &RequestHeader, flexible: bool, out: &mut Vec<u8>) {
    out.put_i16(header.api_key.0);
    out.put_i16(header.api_version);
    out.put_i32(header.correlation_id);
    // The client id is a classic (non-compact) nullable string even in header v2.
    out.put_nullable_string(header.client_id.as_deref(), false);
    out.put_empty_tags(flexible);
}

/// Appends one whole request frame — prefix, header and body — to `out`.
///
/// ```
/// use kprod::protocol::{encode_request, decode_request_header};
/// use kprod::protocol::messages::api_versions::ApiVersionsRequest;
/// let mut out = Vec::new();
/// encode_request(&ApiVersionsRequest::kprod(), 3, 7, Some("me"), &mut out).unwrap();
/// let (header, _body) = decode_request_header(&out[4..]).unwrap();
/// assert_eq!((header.api_version, header.correlation_id), (3, 7));
/// ```
pub fn encode_request<R: Request>(
    req: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    check_version::<R>(version)?;
    let at = begin_frame(out);
    out.put_i16(R::API_KEY.0);
    out.put_i16(version);
    out.put_i32(correlation_id);
    out.put_nullable_string(client_id, false);
    out.put_empty_tags(version >= R::FLEXIBLE_FROM);
    req.encode(version, out);
    end_frame(out, at);
    Ok(())
}

/// Errors unless `version` is one kprod implements for `R`.
pub fn check_version<R: Request>(version: i16) -> Result<(), DecodeError> {
    if version < R::MIN_VERSION || version > R::MAX_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            api: R::API_KEY.name(),
            version,
            min: R::MIN_VERSION,
            max: R::MAX_VERSION,
        });
    }
    Ok(())
}

/// Whether the response to `R` at `version` carries a v1 (tagged) header.
fn response_header_flexible<R: Request>(version: i16) -> bool {
    R::API_KEY != ApiKey::API_VERSIONS && version >= R::FLEXIBLE_FROM
}

/// Decodes a response frame (without its length prefix) to `R` sent at `version`: returns the
/// correlation id and the body. Trailing bytes are an error.
pub fn decode_response<R: Request>(
    frame: &[u8],
    version: i16,
) -> Result<(i32, R::Response), DecodeError> {
    check_version::<R>(version)?;
    let mut r = Reader::new(frame);
    let correlation_id = r.i32("correlation id")?;
    r.skip_tags(response_header_flexible::<R>(version))?;
    let resp = R::Response::decode(&mut r, version)?;
    r.finish(R::API_KEY.name())?;
    Ok((correlation_id, resp))
}

/// Like [`decode_response`], but ignores bytes after the body, as librdkafka and the Java
/// client do: a broker that appends fields from a newer schema (or librdkafka's mock cluster,
/// which appends a stray byte to some flexible responses) is still understood. Returns the
/// number of bytes ignored. The producer uses this; tests and fuzzing use the strict form.
pub fn decode_response_lenient<R: Request>(
    frame: &[u8],
    version: i16,
) -> Result<(i32, R::Response, usize), DecodeError> {
    check_version::<R>(version)?;
    let mut r = Reader::new(frame);
    let correlation_id = r.i32("correlation id")?;
    r.skip_tags(response_header_flexible::<R>(version))?;
    let resp = R::Response::decode(&mut r, version)?;
    Ok((correlation_id, resp, r.rest().len()))
}

/// Broker side: decodes a request header from a frame (without its length prefix) and returns
/// it with the body's bytes. The header's flexibility is known for the APIs kprod implements;
/// for others the v1 header is read and tagged fields, if any, are left in the body.
pub fn decode_request_header(frame: &[u8]) -> Result<(RequestHeader, &[u8]), DecodeError> {
    let mut r = Reader::new(frame);
    let api_key = ApiKey(r.i16("api key")?);
    let api_version = r.i16("api version")?;
    let correlation_id = r.i32("correlation id")?;
    let client_id = r.nullable_string(false, "client id")?;
    r.skip_tags(is_flexible(api_key, api_version))?;
    Ok((
        RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        },
        r.rest(),
    ))
}

/// Broker side: decodes the body of request `R` at `version`; trailing bytes are an error.
pub fn decode_request<R: Request>(body: &[u8], version: i16) -> Result<R, DecodeError> {
    check_version::<R>(version)?;
    let mut r = Reader::new(body);
    let req = R::decode(&mut r, version)?;
    r.finish(R::API_KEY.name())?;
    Ok(req)
}

/// Broker side: appends a whole response frame for request `R` at `version`.
pub fn encode_response<R: Request>(
    resp: &R::Response,
    version: i16,
    correlation_id: i32,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    check_version::<R>(version)?;
    let at = begin_frame(out);
    out.put_i32(correlation_id);
    out.put_empty_tags(response_header_flexible::<R>(version));
    resp.encode(version, out);
    end_frame(out, at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::metadata::{MetadataRequest, MetadataResponse};

    #[test]
    fn splitter_handles_byte_at_a_time_and_many_frames() {
        let mut wire = Vec::new();
        for i in 0..5u8 {
            let at = begin_frame(&mut wire);
            wire.extend(std::iter::repeat_n(i, i as usize * 3));
            end_frame(&mut wire, at);
        }
        let mut s = FrameSplitter::new(64);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = s.next_frame(&mut buf).unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got.len(), 5);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.len(), i * 3);
            assert!(f.iter().all(|&b| b as usize == i));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn splitter_rejects_oversize_and_negative() {
        let mut s = FrameSplitter::new(10);
        let mut buf = BytesMut::from(&11i32.to_be_bytes()[..]);
        assert_eq!(
            s.next_frame(&mut buf),
            Err(FrameError::TooLarge { size: 11, max: 10 })
        );
        let mut buf = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(s.next_frame(&mut buf), Err(FrameError::Negative(-5)));
    }

    #[test]
    fn header_versions_follow_flexibility() {
        // Metadata v8 is classic: header v1 has no tag byte; v9 adds it.
        for (version, tag_bytes) in [(8i16, 0usize), (9, 1)] {
            let mut out = Vec::new();
            encode_request(&MetadataRequest::default(), version, 1, Some("c"), &mut out).unwrap();
            let (h, body) = decode_request_header(&out[4..]).unwrap();
            assert_eq!(h.client_id.as_deref(), Some("c"));
            // 2+2+4 + (2+1) client id + tags
            assert_eq!(out.len() - 4 - body.len(), 11 + tag_bytes);
            let back: MetadataRequest = decode_request(body, version).unwrap();
            assert_eq!(back, MetadataRequest::default());
        }
    }

    #[test]
    fn response_roundtrip_and_unsupported_version() {
        let mut out = Vec::new();
        let resp = MetadataResponse::default();
        encode_response::<MetadataRequest>(&resp, 12, 42, &mut out).unwrap();
        let (cid, back) = decode_response::<MetadataRequest>(&out[4..], 12).unwrap();
        assert_eq!((cid, back), (42, resp));
        let e = encode_request(&MetadataRequest::default(), 0, 1, None, &mut out).unwrap_err();
        assert!(matches!(
            e,
            DecodeError::UnsupportedVersion { version: 0, .. }
        ));
    }
}
