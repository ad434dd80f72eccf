//! A ring record's headers: the caller's list, or that list with a W3C trace context the
//! batch builder writes out as `traceparent` (and `tracestate`) when it encodes the record.
//!
//! Built as `Header`s at the call, a trace context cost three allocations per record (the
//! list, the key's `String`, the value's `Bytes`), made on the caller's thread and freed on
//! the I/O thread: with OpenTelemetry on, `send()` ran 4.6× slower, most of it in the
//! allocator (BENCHMARKS.md, "Issue #19"). Here it is one fixed-size box — or, for a root
//! span kprod's head sampling dropped, 16 bytes inline — and the 55 bytes of hex are written
//! on the I/O thread, straight into the batch.

// Only OpenTelemetry writes a trace context (src/otel.rs).
#![cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]

use bytes::Bytes;

use crate::protocol::record_batch::{field_len, EncodeHeaders, Header, HeaderVisitor};

/// The headers a [`PendingRecord`](super::batch::PendingRecord) carries (24 bytes: the ring
/// slot stays at 128).
#[derive(Debug)]
pub(crate) enum Headers {
    /// The caller's headers as given.
    List(Vec<Header>),
    /// The caller's headers and a trace context, written after them.
    Traced(Box<Traced>),
    /// No caller's headers, and the trace context of a root span that is not recorded: its
    /// trace id (random, never zero), its span id derived from it ([`root_span_id`]), flags
    /// `00`, no `tracestate`. What [`OpenTelemetry::head_sampling`] gives most records:
    /// inline, so such a record allocates nothing.
    ///
    /// [`OpenTelemetry::head_sampling`]: crate::otel::OpenTelemetry::head_sampling
    Root([u8; 16]),
}

/// The span id of [`Headers::Root`]'s span: a mix of its trace id, never zero. Trace ids are
/// random and fresh per record, so span ids are as unique as they are.
pub(crate) fn root_span_id(trace_id: &[u8; 16]) -> [u8; 8] {
    let id = u128::from_be_bytes(*trace_id);
    // splitmix64's finaliser over the two halves.
    let mut z = (id as u64) ^ ((id >> 64) as u64).rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z.max(1).to_be_bytes()
}

/// [`Headers::Root`]'s trace context.
fn root_context(trace_id: &[u8; 16]) -> TraceContext {
    TraceContext {
        trace_id: *trace_id,
        span_id: root_span_id(trace_id),
        flags: 0,
        state: None,
    }
}

/// [`Headers::Traced`]'s contents.
#[derive(Debug)]
pub(crate) struct Traced {
    /// The caller's headers, without any `traceparent` or `tracestate` of their own (the
    /// record's trace context replaces them).
    pub rest: Vec<Header>,
    pub context: TraceContext,
}

/// What a record's `traceparent` and `tracestate` headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
    /// The `tracestate` header's value; `None` when it would be empty (no header then).
    pub state: Option<Bytes>,
}

/// `00-{32 hex}-{16 hex}-{2 hex}`.
const TRACEPARENT_LEN: usize = 55;

impl TraceContext {
    /// The `traceparent` value, W3C Trace Context version 00.
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [0u8; TRACEPARENT_LEN];
        out[..3].copy_from_slice(b"00-");
        hex(&self.trace_id, &mut out[3..35]);
        out[35] = b'-';
        hex(&self.span_id, &mut out[36..52]);
        out[52] = b'-';
        hex(&[self.flags], &mut out[53..55]);
        out
    }
}

impl TraceContext {
    /// The `traceparent` header as a record carries it — key length, key, value length,
    /// value — in one array: written with one copy of a known length, which compiles to a few
    /// vector moves where four slices of their own were four calls to `memcpy` (the largest
    /// part of a traced record's encoding in profiles).
    pub fn traceparent_field(&self) -> [u8; TRACEPARENT_FIELDS] {
        const KEY: &[u8; 11] = b"traceparent";
        let mut out = [0u8; TRACEPARENT_FIELDS];
        out[0] = (KEY.len() as u8) << 1; // zigzag varint: fits one byte
        out[1..12].copy_from_slice(KEY);
        out[12] = (TRACEPARENT_LEN as u8) << 1;
        out[13..].copy_from_slice(&self.traceparent());
        out
    }
}

/// Lower-case hex of `bytes` into `out` (twice as long), a byte's two digits at a time.
fn hex(bytes: &[u8], out: &mut [u8]) {
    const PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
            i += 1;
        }
        t
    };
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&PAIRS[usize::from(*b)]);
    }
}

/// A header's encoded key and value with their length varints: 1 + 11 + 1 + 55.
const TRACEPARENT_FIELDS: usize = 1 + "traceparent".len() + 1 + TRACEPARENT_LEN;

fn is_trace_header(h: &Header) -> bool {
    h.key == "traceparent" || h.key == "tracestate"
}

impl Headers {
    /// No headers.
    #[inline]
    pub fn none() -> Headers {
        Headers::List(Vec::new())
    }

    /// `list` with `context` written after it, replacing any trace context `list` carries.
    pub fn traced(mut list: Vec<Header>, context: TraceContext) -> Headers {
        list.retain(|h| !is_trace_header(h));
        Headers::Traced(Box::new(Traced {
            rest: list,
            context,
        }))
    }

    /// The headers as a list (for a record handed back to its caller).
    pub fn into_vec(self) -> Vec<Header> {
        match self {
            Headers::List(list) => list,
            Headers::Traced(t) => {
                let Traced { mut rest, context } = *t;
                rest.push(Header::new(
                    "traceparent",
                    Bytes::copy_from_slice(&context.traceparent()),
                ));
                if let Some(state) = context.state {
                    rest.push(Header::new("tracestate", state));
                }
                rest
            }
            Headers::Root(trace_id) => vec![Header::new(
                "traceparent",
                Bytes::copy_from_slice(&root_context(&trace_id).traceparent()),
            )],
        }
    }
}

impl From<Vec<Header>> for Headers {
    fn from(list: Vec<Header>) -> Headers {
        Headers::List(list)
    }
}

impl EncodeHeaders for Headers {
    #[inline]
    fn count(&self) -> usize {
        match self {
            Headers::List(list) => list.len(),
            Headers::Traced(t) => t.rest.len() + 1 + usize::from(t.context.state.is_some()),
            Headers::Root(_) => 1,
        }
    }

    fn fields_len(&self) -> usize {
        match self {
            Headers::List(list) => list.fields_len(),
            Headers::Traced(t) => {
                t.rest.fields_len()
                    + TRACEPARENT_FIELDS
                    + t.context
                        .state
                        .as_ref()
                        .map_or(0, |s| field_len(Some(b"tracestate")) + field_len(Some(s)))
            }
            Headers::Root(_) => TRACEPARENT_FIELDS,
        }
    }

    fn for_each(&self, f: &mut HeaderVisitor<'_>) {
        match self {
            Headers::List(list) => list.for_each(f),
            Headers::Traced(t) => {
                t.rest.for_each(f);
                f(b"traceparent", Some(&t.context.traceparent()));
                if let Some(state) = &t.context.state {
                    f(b"tracestate", Some(state));
                }
            }
            Headers::Root(trace_id) => {
                f(b"traceparent", Some(&root_context(trace_id).traceparent()))
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Headers::List(list) => list.encode(out),
            Headers::Traced(t) => {
                t.rest.encode(out);
                out.extend_from_slice(&t.context.traceparent_field());
                if let Some(state) = &t.context.state {
                    [Header::new("tracestate", state.clone())].encode(out);
                }
            }
            Headers::Root(trace_id) => {
                out.extend_from_slice(&root_context(trace_id).traceparent_field())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::compression::{Compression, CompressionConfig, Compressor};
    use crate::protocol::record_batch::{
        decode_one, estimated_record_size, BatchHeader, RecordBatchBuilder,
    };

    fn context(state: Option<&'static str>) -> TraceContext {
        TraceContext {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128.to_be_bytes(),
            span_id: 0x00f0_67aa_0ba9_02b7u64.to_be_bytes(),
            flags: 1,
            state: state.map(|s| Bytes::from_static(s.as_bytes())),
        }
    }

    #[test]
    fn a_trace_context_encodes_as_the_headers_it_stands_for() {
        let user = vec![
            Header::new("origin", "billing"),
            Header::new("traceparent", "00-stale"),
            Header::new("tracestate", "stale=1"),
        ];
        for state in [None, Some("vendor=x")] {
            let traced = Headers::traced(user.clone(), context(state));
            let list = Headers::traced(user.clone(), context(state)).into_vec();
            assert_eq!(traced.count(), list.len());
            assert_eq!(
                estimated_record_size(None, Some(b"v"), &traced),
                estimated_record_size(None, Some(b"v"), &list[..])
            );
            let mut b = RecordBatchBuilder::new();
            let n = b.append(7, None, Some(b"v"), &traced);
            assert_eq!(n, estimated_record_size(None, Some(b"v"), &traced));
            let mut out = Vec::new();
            let none = CompressionConfig::new(Compression::None, None).expect("codec");
            b.finish(
                &BatchHeader::default(),
                &mut Compressor::new(none),
                &mut out,
            )
            .expect("finish");
            let out = Bytes::from(out);
            let (batch, _) = decode_one(&out, out.len()).expect("decode");
            let got: Vec<(String, Option<Vec<u8>>)> = batch.records[0]
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                .collect();
            let want: Vec<(String, Option<Vec<u8>>)> = list
                .iter()
                .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                .collect();
            assert_eq!(got, want);
            assert_eq!(got[0].0, "origin");
            assert_eq!(
                got[1],
                (
                    "traceparent".to_string(),
                    Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec())
                )
            );
            assert_eq!(got.len(), 2 + usize::from(state.is_some()));
        }
    }

    #[test]
    fn a_root_context_is_inline_and_encodes_as_its_traceparent() {
        assert_eq!(std::mem::size_of::<Headers>(), 24);
        let trace_id = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128.to_be_bytes();
        let root = Headers::Root(trace_id);
        let list = Headers::Root(trace_id).into_vec();
        assert_eq!((root.count(), list.len()), (1, 1));
        assert_eq!(
            estimated_record_size(None, Some(b"v"), &root),
            estimated_record_size(None, Some(b"v"), &list[..])
        );
        let mut b = RecordBatchBuilder::new();
        assert_eq!(
            b.append(7, None, Some(b"v"), &root),
            estimated_record_size(None, Some(b"v"), &root)
        );
        let span = u64::from_be_bytes(root_span_id(&trace_id));
        let want = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span:016x}-00");
        assert_eq!(list[0].key, "traceparent");
        assert_eq!(list[0].value.as_deref(), Some(want.as_bytes()));
        let mut seen = Vec::new();
        root.for_each(&mut |k, v| seen.push((k.to_vec(), v.map(<[u8]>::to_vec))));
        assert_eq!(
            seen,
            vec![(b"traceparent".to_vec(), Some(want.into_bytes()))]
        );
        // Written whole, the same bytes as header by header.
        let (mut whole, mut each) = (Vec::new(), Vec::new());
        root.encode(&mut whole);
        list.encode(&mut each);
        assert_eq!(whole, each);
        assert_eq!(whole.len(), root.fields_len());
        for state in [None, Some("vendor=x")] {
            let user = vec![Header::new("origin", "billing")];
            let traced = Headers::traced(user.clone(), context(state));
            let (mut whole, mut each) = (Vec::new(), Vec::new());
            traced.encode(&mut whole);
            traced.into_vec().encode(&mut each);
            assert_eq!(whole, each);
        }
        // Distinct trace ids, distinct span ids; never zero.
        let spans: std::collections::HashSet<[u8; 8]> = (0u128..10_000)
            .map(|i| root_span_id(&(i << 64 | i).to_be_bytes()))
            .collect();
        assert_eq!(spans.len(), 10_000);
        assert!(!spans.contains(&[0; 8]));
    }
}
