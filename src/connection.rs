//! One broker connection's request state, without the socket: requests in, bytes out; bytes in,
//! matched responses out; time in as `now`.
//!
//! The I/O loop owns the socket and moves bytes: it writes what [`Connection::transmit`] returns
//! (then [`Connection::consumed`]), feeds what it reads to [`Connection::received`], and takes
//! answers from [`Connection::poll_response`]. Kafka answers a connection's requests in the
//! order they were sent, so a response must match the oldest request awaiting one; anything
//! else means the stream is corrupt and the connection must be closed (every request still
//! awaiting an answer is then handed back by [`Connection::fail_all`] for retry or failure).
//! The one exception: an answer to a request sent expecting none (Produce with acks=0, which
//! Kafka brokers leave unanswered but some, like librdkafka's mock cluster, answer) is read and
//! dropped, as librdkafka does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::protocol::frame::{FrameError, FrameSplitter};
use crate::protocol::messages::Request;
use crate::protocol::{encode_request, ApiKey, DecodeError};

/// A request sent and not yet answered, with the caller's context `T` (e.g. the batches it
/// carries).
#[derive(Debug)]
pub struct InFlight<T> {
    /// Its correlation id.
    pub correlation_id: i32,
    /// The API called.
    pub api_key: ApiKey,
    /// The version sent.
    pub version: i16,
    /// When it was queued.
    pub sent_at: Instant,
    /// When its last byte was written to the socket (see [`Connection::written`]).
    pub written_at: Option<Instant>,
    /// Where its bytes end in the connection's output stream.
    end: u64,
    /// The caller's context.
    pub context: T,
}

/// Why a connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The length-prefixed stream is corrupt.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// A response whose correlation id is not the oldest outstanding one.
    #[error("response with correlation id {got}, expected {expected:?}")]
    UnexpectedCorrelation {
        /// What arrived.
        got: i32,
        /// What was expected (`None`: nothing was outstanding).
        expected: Option<i32>,
    },
    /// A response frame too short to hold a correlation id.
    #[error("response frame of {0} bytes has no correlation id")]
    ShortFrame(usize),
    /// A request could not be encoded (a version outside kprod's range).
    #[error("encode: {0}")]
    Encode(#[from] DecodeError),
}

/// Request state for one connection to one broker.
#[derive(Debug)]
pub struct Connection<T> {
    client_id: Option<String>,
    max_in_flight: usize,
    request_timeout: Duration,
    next_correlation: i32,
    /// Bytes queued for the socket.
    out: Vec<u8>,
    /// How much of `out` the socket has taken.
    out_pos: usize,
    inbuf: BytesMut,
    splitter: FrameSplitter,
    in_flight: VecDeque<InFlight<T>>,
    /// Bytes queued for the socket since the connection began, and of them written.
    queued_total: u64,
    written_total: u64,
    /// Correlation ids of the latest requests sent expecting no answer (at most
    /// [`UNANSWERED_KEPT`]), so that an answer to one is recognised and dropped.
    unanswered: VecDeque<i32>,
}

/// How many requests sent expecting no answer a connection remembers.
const UNANSWERED_KEPT: usize = 64;

impl<T> Connection<T> {
    /// A connection that allows `max_in_flight` unanswered requests, each for at most
    /// `request_timeout`, and rejects frames over `max_frame` bytes.
    pub fn new(
        client_id: Option<&str>,
        max_in_flight: usize,
        request_timeout: Duration,
        max_frame: usize,
    ) -> Self {
        Connection {
            client_id: client_id.map(str::to_owned),
            max_in_flight: max_in_flight.max(1),
            request_timeout,
            next_correlation: 0,
            out: Vec::new(),
            out_pos: 0,
            inbuf: BytesMut::new(),
            splitter: FrameSplitter::new(max_frame),
            in_flight: VecDeque::new(),
            queued_total: 0,
            written_total: 0,
            unanswered: VecDeque::new(),
        }
    }

    /// Whether another request that expects an answer may be sent now.
    pub fn can_send(&self) -> bool {
        self.in_flight.len() < self.max_in_flight
    }

    /// Requests awaiting an answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Queues `req` at `version`. With `expects_response == false` (Produce with acks=0) nothing
    /// is tracked and the context is returned at once as `Some`; otherwise it is kept until the
    /// answer or a failure. Returns the correlation id and, for unanswered sends, the context.
    pub fn send<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        expects_response: bool,
        now: Instant,
        context: T,
    ) -> Result<(i32, Option<T>), ConnectionError> {
        let cid = self.next_correlation;
        let before = self.out.len();
        encode_request(req, version, cid, self.client_id.as_deref(), &mut self.out)?;
        self.queued_total += (self.out.len() - before) as u64;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        if !expects_response {
            if self.unanswered.len() == UNANSWERED_KEPT {
                self.unanswered.pop_front();
            }
            self.unanswered.push_back(cid);
            return Ok((cid, Some(context)));
        }
        self.in_flight.push_back(InFlight {
            correlation_id: cid,
            api_key: R::API_KEY,
            version,
            sent_at: now,
            written_at: None,
            end: self.queued_total,
            context,
        });
        Ok((cid, None))
    }

    /// The bytes waiting for the socket.
    pub fn transmit(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Records that the socket took `n` bytes of [`transmit`](Self::transmit).
    pub fn consumed(&mut self, n: usize) {
        let n = n.min(self.out.len() - self.out_pos);
        self.written_total += n as u64;
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Notes `now` as the time the socket took every request whose bytes have all been
    /// [`consumed`](Self::consumed) (over TLS: taken into the session, just before its
    /// ciphertext is written).
    pub fn written(&mut self, now: Instant) {
        for f in self.in_flight.iter_mut().rev() {
            if f.written_at.is_some() {
                break;
            }
            if f.end <= self.written_total {
                f.written_at = Some(now);
            }
        }
    }

    /// Bytes read from the socket.
    pub fn received(&mut self, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
    }

    /// The next complete response with the request it answers, if one has arrived. The frame
    /// starts at the response header (decode it with `decode_response::<R>(frame, version)`).
    pub fn poll_response(&mut self) -> Result<Option<(InFlight<T>, BytesMut)>, ConnectionError> {
        loop {
            let Some(frame) = self.splitter.next_frame(&mut self.inbuf)? else {
                return Ok(None);
            };
            let Some(&[a, b, c, d]) = frame.get(..4) else {
                return Err(ConnectionError::ShortFrame(frame.len()));
            };
            let got = i32::from_be_bytes([a, b, c, d]);
            match self.in_flight.front() {
                Some(f) if f.correlation_id == got => {
                    let f = self.in_flight.pop_front().expect("front exists");
                    return Ok(Some((f, frame)));
                }
                _ if self.unanswered.contains(&got) => {
                    // An answer to a request sent expecting none: answers come in order, so
                    // no earlier such request will be answered any more either.
                    while self.unanswered.pop_front().is_some_and(|c| c != got) {}
                }
                other => {
                    return Err(ConnectionError::UnexpectedCorrelation {
                        got,
                        expected: other.map(|f| f.correlation_id),
                    })
                }
            }
        }
    }

    /// When the oldest request times out, if any is outstanding.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight
            .front()
            .map(|f| f.sent_at + self.request_timeout)
    }

    /// Whether a request has been waiting longer than the request timeout at `now` (the
    /// connection must then be closed and [`fail_all`](Self::fail_all) called).
    pub fn timed_out(&self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|t| now >= t)
    }

    /// The requests in flight, oldest first, to change their contexts.
    pub fn in_flight_mut(&mut self) -> impl Iterator<Item = &mut InFlight<T>> {
        self.in_flight.iter_mut()
    }

    /// Hands back every request awaiting an answer, oldest first, and forgets unsent bytes: for
    /// when the connection is closed.
    pub fn fail_all(&mut self) -> Vec<InFlight<T>> {
        self.unanswered.clear();
        self.out.clear();
        self.out_pos = 0;
        self.inbuf.clear();
        self.in_flight.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::decode_response;
    use crate::protocol::messages::metadata::{MetadataRequest, MetadataResponse};
    use crate::protocol::{decode_request, decode_request_header, encode_response};

    /// Plays the broker: answers every request in `wire` with an empty Metadata response.
    fn broker_answers(wire: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::from(wire);
        let mut s = FrameSplitter::default();
        let mut out = Vec::new();
        while let Some(f) = s.next_frame(&mut buf).unwrap() {
            let (h, body) = decode_request_header(&f).unwrap();
            let _: MetadataRequest = decode_request(body, h.api_version).unwrap();
            encode_response::<MetadataRequest>(
                &MetadataResponse::default(),
                h.api_version,
                h.correlation_id,
                &mut out,
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn requests_and_responses_match_in_order_through_partial_io() {
        let t0 = Instant::now();
        let mut c: Connection<&str> =
            Connection::new(Some("kprod"), 2, Duration::from_secs(30), 1 << 20);
        let req = MetadataRequest::default();
        c.send(&req, 12, true, t0, "first").unwrap();
        assert!(c.can_send());
        c.send(&req, 9, true, t0, "second").unwrap();
        assert!(!c.can_send());
        // The socket takes the bytes in two writes.
        let wire = c.transmit().to_vec();
        c.consumed(5);
        assert_eq!(c.transmit(), &wire[5..]);
        c.consumed(wire.len());
        assert!(c.transmit().is_empty());
        // Answers arrive a byte at a time.
        let answers = broker_answers(&wire);
        let mut got = Vec::new();
        for b in answers {
            c.received(&[b]);
            while let Some((f, frame)) = c.poll_response().unwrap() {
                let (_, resp) = decode_response::<MetadataRequest>(&frame, f.version).unwrap();
                assert_eq!(resp, MetadataResponse::default());
                got.push((f.context, f.version));
            }
        }
        assert_eq!(got, [("first", 12), ("second", 9)]);
        assert_eq!(c.in_flight(), 0);
        assert!(c.poll_timeout().is_none());
    }

    #[test]
    fn out_of_order_correlation_is_an_error() {
        let t0 = Instant::now();
        let mut c: Connection<u8> = Connection::new(None, 5, Duration::from_secs(30), 1 << 20);
        c.send(&MetadataRequest::default(), 12, true, t0, 1)
            .unwrap();
        let mut out = Vec::new();
        encode_response::<MetadataRequest>(&MetadataResponse::default(), 12, 99, &mut out).unwrap();
        c.received(&out);
        assert_eq!(
            c.poll_response().unwrap_err(),
            ConnectionError::UnexpectedCorrelation {
                got: 99,
                expected: Some(0)
            }
        );
        assert_eq!(c.fail_all().len(), 1);
        // A frame too short to hold a correlation id.
        c.send(&MetadataRequest::default(), 12, true, t0, 2)
            .unwrap();
        c.received(&[0, 0, 0, 2, 0, 0]);
        assert_eq!(
            c.poll_response().unwrap_err(),
            ConnectionError::ShortFrame(2)
        );
    }

    #[test]
    fn an_answer_to_a_request_sent_expecting_none_is_dropped() {
        let t0 = Instant::now();
        let mut c: Connection<u8> = Connection::new(None, 5, Duration::from_secs(30), 1 << 20);
        let answer = |cid: i32| {
            let mut out = Vec::new();
            encode_response::<MetadataRequest>(&MetadataResponse::default(), 12, cid, &mut out)
                .unwrap();
            out
        };
        // Two sent expecting nothing (cids 0, 1), then one expecting an answer (2).
        for ctx in [1, 2] {
            c.send(&MetadataRequest::default(), 12, false, t0, ctx)
                .unwrap();
        }
        c.send(&MetadataRequest::default(), 12, true, t0, 3)
            .unwrap();
        // A broker that answers them anyway (librdkafka's mock does, for acks=0): only the
        // second one's answer comes, then the tracked request's.
        c.received(&answer(1));
        c.received(&answer(2));
        let (f, _) = c.poll_response().unwrap().unwrap();
        assert_eq!((f.correlation_id, f.context), (2, 3));
        assert!(c.poll_response().unwrap().is_none());
        // Answers come in order: cid 0's can no longer come, and an unknown one is an error.
        c.send(&MetadataRequest::default(), 12, true, t0, 4)
            .unwrap();
        c.received(&answer(0));
        assert_eq!(
            c.poll_response().unwrap_err(),
            ConnectionError::UnexpectedCorrelation {
                got: 0,
                expected: Some(3)
            }
        );
    }

    #[test]
    fn timeouts_on_a_virtual_clock_and_fire_and_forget() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let mut c: Connection<u8> = Connection::new(None, 5, timeout, 1 << 20);
        // A request that expects no answer is not tracked; its context comes straight back.
        let (_, back) = c
            .send(&MetadataRequest::default(), 12, false, t0, 7)
            .unwrap();
        assert_eq!(back, Some(7));
        assert_eq!(c.poll_timeout(), None);
        c.send(
            &MetadataRequest::default(),
            12,
            true,
            t0 + Duration::from_secs(1),
            8,
        )
        .unwrap();
        c.send(
            &MetadataRequest::default(),
            12,
            true,
            t0 + Duration::from_secs(2),
            9,
        )
        .unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(31)));
        assert!(!c.timed_out(t0 + Duration::from_secs(30)));
        assert!(c.timed_out(t0 + Duration::from_secs(31)));
        let failed: Vec<u8> = c.fail_all().into_iter().map(|f| f.context).collect();
        assert_eq!(failed, [8, 9]);
        assert!(c.transmit().is_empty());
    }

    #[test]
    fn unsupported_version_is_refused_before_anything_is_queued() {
        let mut c: Connection<()> = Connection::new(None, 5, Duration::from_secs(1), 1 << 20);
        let e = c
            .send(&MetadataRequest::default(), 0, true, Instant::now(), ())
            .unwrap_err();
        assert!(matches!(
            e,
            ConnectionError::Encode(DecodeError::UnsupportedVersion { .. })
        ));
        assert!(c.transmit().is_empty());
        assert_eq!(c.in_flight(), 0);
    }
}
