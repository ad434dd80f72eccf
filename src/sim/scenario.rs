//! What a seed runs: the scenario drawn from it (threads, brokers, partitions, caller, latency,
//! and the faults with their times), and the RNG every choice comes from.

use std::time::Duration;

use crate::protocol::ErrorCode;

/// SplitMix64: small, fast, and the same everywhere.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A fault, or the end of one.
#[derive(Debug, Clone)]
pub(super) enum Event {
    /// Cut a random live connection; in-flight bytes arrive in part (mid-request, and answers
    /// lost or cut mid-response).
    Cut,
    BrokerDown(i32, Duration),
    BrokerUp(i32),
    LeaderMove(i32, i32),
    Leaderless(i32, Duration),
    /// The next Produce requests are answered with these codes.
    Errors(Vec<ErrorCode>),
    /// The next Produce requests are stored, then answered with these codes.
    ErrorsAfterAppend(Vec<ErrorCode>),
    Stall(i32, Duration),
    Unstall(i32),
    /// The broker's Produce answers ask for a throttle of this many ms (a quota), for a while.
    Throttle(i32, i32, Duration),
    Unthrottle(i32),
    LoseState,
    /// Faults are over: the quiet phase starts.
    Quiet,
}

/// What one seed runs.
#[derive(Debug, Clone)]
pub(super) struct Scenario {
    pub io_threads: usize,
    pub brokers: usize,
    pub partitions: i32,
    pub records: usize,
    pub quiet_records: usize,
    pub linger: Duration,
    /// Caller: records per burst, and the gap between bursts (µs).
    pub burst: usize,
    pub gap_us: (u64, u64),
    /// Link latency range (µs).
    pub latency: (u64, u64),
    pub events: Vec<(Duration, Event)>,
    /// Non-retriable codes injected (a failure with one of them is expected).
    pub fatal_codes: Vec<ErrorCode>,
    pub delivery_timeout: Duration,
    pub request_timeout: Duration,
    /// The topic's `max.message.bytes`, when it has one below the batch size: batches above
    /// it are refused as too large and split (every record fits alone).
    pub max_message_bytes: Option<usize>,
}

impl Scenario {
    pub fn draw(rng: &mut Rng) -> Scenario {
        let brokers = rng.range(1, 3) as usize;
        let fast = rng.chance(0.5);
        let mut sc = Scenario {
            io_threads: rng.range(1, 3) as usize,
            brokers,
            partitions: rng.range(1, 6) as i32,
            records: rng.range(20, 250) as usize,
            quiet_records: rng.range(5, 40) as usize,
            linger: Duration::from_millis(rng.range(0, 10)),
            burst: if fast { rng.range(5, 60) as usize } else { 1 },
            gap_us: if fast { (10, 2_000) } else { (200, 20_000) },
            latency: {
                let lo = rng.range(50, 2_000);
                (lo, lo + rng.range(0, 5_000))
            },
            events: Vec::new(),
            fatal_codes: Vec::new(),
            delivery_timeout: Duration::from_secs(rng.range(8, 30)),
            request_timeout: Duration::from_secs(rng.range(1, 4)),
            max_message_bytes: None,
        };
        let horizon = rng.range(200, 3_000);
        let faults = rng.range(0, 12);
        for _ in 0..faults {
            let at = Duration::from_millis(rng.below(horizon));
            let b = rng.range(1, brokers as u64) as i32;
            let p = rng.below(sc.partitions as u64) as i32;
            let d = Duration::from_millis(rng.range(10, 3_000));
            let e = match rng.below(100) {
                0..=29 => Event::Cut,
                30..=39 => Event::BrokerDown(b, d),
                40..=49 => Event::LeaderMove(p, b),
                50..=57 => Event::Leaderless(p, d),
                58..=72 => {
                    let retriable = [
                        ErrorCode::NOT_LEADER_OR_FOLLOWER,
                        ErrorCode::REQUEST_TIMED_OUT,
                        ErrorCode::NOT_ENOUGH_REPLICAS,
                        ErrorCode::NETWORK_EXCEPTION,
                        ErrorCode::UNKNOWN_PRODUCER_ID,
                        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    ];
                    let n = rng.range(1, 4);
                    Event::Errors(
                        (0..n)
                            .map(|_| retriable[rng.below(retriable.len() as u64) as usize])
                            .collect(),
                    )
                }
                73..=79 => {
                    let code = [
                        ErrorCode::MESSAGE_TOO_LARGE,
                        ErrorCode::INVALID_RECORD,
                        ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                    ][rng.below(3) as usize];
                    sc.fatal_codes.push(code);
                    Event::Errors(vec![code])
                }
                80..=85 => {
                    let codes = [
                        ErrorCode::REQUEST_TIMED_OUT,
                        ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                        ErrorCode::NOT_LEADER_OR_FOLLOWER,
                    ];
                    let n = rng.range(1, 3);
                    Event::ErrorsAfterAppend(
                        (0..n)
                            .map(|_| codes[rng.below(codes.len() as u64) as usize])
                            .collect(),
                    )
                }
                86..=92 => Event::Stall(b, d),
                93..=95 => Event::Throttle(b, rng.range(1, 300) as i32, d),
                _ => Event::LoseState,
            };
            sc.events.push((at, e));
        }
        sc.events.sort_by_key(|e| e.0);
        if rng.chance(0.3) {
            sc.max_message_bytes = Some(rng.range(120, 3_000) as usize);
        }
        sc
    }
}
