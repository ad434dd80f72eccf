//! The simulated network: one link per connection an engine core opens, carrying bytes each
//! way in order, each chunk after a latency drawn from the run's RNG, and the broker's end,
//! which splits frames and hands whole requests to the mock cluster's handler.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::Rng;
use crate::mock::handler::{handle, Outcome};
use crate::mock::server::{arrive, Shared as Cluster};
use crate::protocol::frame::{decode_request_header, FrameSplitter, DEFAULT_MAX_FRAME};

/// One connection between a core (its slot `conn`) and a broker.
pub(crate) struct Link {
    pub core: usize,
    pub conn: usize,
    pub broker: i32,
    /// When the connect completes (`None`: established).
    pub connect_at: Option<Instant>,
    /// Refused: the connect fails at `connect_at`.
    pub refused: bool,
    to_broker: VecDeque<(Instant, Vec<u8>)>,
    to_client: VecDeque<(Instant, Vec<u8>)>,
    /// Requests that arrived while the broker was stalled, handled when it resumes.
    held: VecDeque<(crate::protocol::RequestHeader, BytesMut, usize)>,
    splitter: FrameSplitter,
    buf: BytesMut,
    /// The latest delivery time each way (TCP keeps order).
    last_to_broker: Instant,
    last_to_client: Instant,
}

impl Link {
    pub fn new(core: usize, conn: usize, broker: i32, connect_at: Instant, refused: bool) -> Link {
        Link {
            core,
            conn,
            broker,
            connect_at: Some(connect_at),
            refused,
            to_broker: VecDeque::new(),
            to_client: VecDeque::new(),
            held: VecDeque::new(),
            splitter: FrameSplitter::new(DEFAULT_MAX_FRAME),
            buf: BytesMut::new(),
            last_to_broker: connect_at,
            last_to_client: connect_at,
        }
    }

    /// The earliest time something on this link is due.
    pub fn next_due(&self) -> Option<Instant> {
        [
            self.connect_at,
            self.to_broker.front().map(|c| c.0),
            self.to_client.front().map(|c| c.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The client wrote `bytes` at `now`; they reach the broker after `latency`.
    pub fn send_to_broker(&mut self, bytes: &[u8], now: Instant, latency: Duration) {
        let at = (now + latency).max(self.last_to_broker);
        self.last_to_broker = at;
        self.to_broker.push_back((at, bytes.to_vec()));
    }

    /// Bytes due at the client by `now`, in order.
    pub fn take_for_client(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.to_client.front().is_some_and(|c| c.0 <= now) {
            out.push(self.to_client.pop_front().expect("front").1);
        }
        out
    }

    /// Delivers the bytes due at the broker by `now`: whole requests are handled (unless
    /// `stalled`) and their answers sent back after `latency` each. Returns why the broker
    /// closed the connection, if it did.
    pub fn deliver_to_broker(
        &mut self,
        cluster: &Cluster,
        now: Instant,
        stalled: bool,
        rng: &mut Rng,
        latency: (u64, u64),
    ) -> Result<(), String> {
        while self.to_broker.front().is_some_and(|c| c.0 <= now) {
            let (_, chunk) = self.to_broker.pop_front().expect("front");
            self.buf.extend_from_slice(&chunk);
            loop {
                let frame = match self.splitter.next_frame(&mut self.buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return Err(format!("framing: {e}")),
                };
                let (header, body_at) = match decode_request_header(&frame) {
                    Ok((h, body)) => (h, frame.len() - body.len()),
                    Err(e) => return Err(format!("request header: {e}")),
                };
                arrive(cluster, (self.broker - 1) as usize, &header);
                self.held.push_back((header, frame, body_at));
            }
        }
        if !stalled {
            while let Some((header, frame, body_at)) = self.held.pop_front() {
                match handle(cluster, self.broker, &header, &frame[body_at..]) {
                    Outcome::Respond(out) => {
                        let l = Duration::from_micros(rng.range(latency.0, latency.1));
                        let at = (now + l).max(self.last_to_client);
                        self.last_to_client = at;
                        self.to_client.push_back((at, out));
                    }
                    Outcome::Silent => {}
                    Outcome::Wait(_) => return Err("a Fetch in a producer's simulation".into()),
                    Outcome::Close(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// A cut mid-request: the first chunk on its way to the broker arrives only in part, the
    /// rest is lost.
    pub fn truncate_to_broker(&mut self, rng: &mut Rng) {
        if let Some((_, c)) = self.to_broker.front_mut() {
            let keep = rng.below(c.len() as u64 + 1) as usize;
            c.truncate(keep);
        }
        self.to_broker.truncate(1);
    }

    /// A cut mid-response: part of the first answer on its way reaches the client.
    pub fn partial_for_client(&mut self, rng: &mut Rng) -> Option<Vec<u8>> {
        let (_, c) = self.to_client.pop_front()?;
        let keep = rng.below(c.len() as u64) as usize;
        (keep > 0).then(|| c[..keep].to_vec())
    }

    /// Whether bytes are on their way to the broker.
    pub fn has_to_broker(&self) -> bool {
        !self.to_broker.is_empty()
    }
}
