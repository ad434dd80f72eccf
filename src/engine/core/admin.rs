//! Callers' admin requests ([`crate::Producer::create_topics`]): queued in [`Shared`], sent by
//! thread 0 on its control connection (so they get the producer's TLS and SASL), answered
//! through a one-shot channel the caller waits on with its deadline.
//!
//! Any broker takes CreateTopics on a KRaft cluster (it forwards to the controller, KIP-590)
//! and on tansu; the control connection is one of them.
//!
//! [`Shared`]: crate::engine::Shared

use std::sync::atomic::Ordering::*;
use std::time::Instant;

use super::connections::State;
use super::control::lenient;
use super::{Ctx, EngineCore};
use crate::error::{Error, Location};
use crate::protocol::messages::create_topics::{CreateTopicsRequest, CreateTopicsResponse};
use crate::protocol::ErrorCode;

/// Where an admin request's answer goes.
pub(crate) type Reply = crossbeam::channel::Sender<Result<CreateTopicsResponse, Error>>;

/// A caller's CreateTopics, waiting for thread 0.
#[derive(Debug)]
pub(crate) struct AdminJob {
    pub request: CreateTopicsRequest,
    pub reply: Reply,
    /// The caller stops waiting then: a job still queued is dropped, not sent late.
    pub deadline: Instant,
}

impl EngineCore {
    /// Whether an admin request waits and the control connection could take it now (or one
    /// must be opened).
    pub(super) fn admin_due(&self) -> bool {
        self.shared.admin_wanted.load(SeqCst)
            && match self.control.conn.and_then(|i| self.conns[i].as_ref()) {
                Some(c) => c.accepts_requests(),
                None => self.control.retry_at.is_none(),
            }
    }

    /// Thread 0: sends the queued admin requests on the control connection `i`, if it is
    /// ready. Expired ones are dropped (their callers have stopped waiting).
    pub(super) fn send_admin(&mut self, i: usize, now: Instant) {
        let c = self.conns[i].as_mut().expect("live conn");
        if c.state != State::Ready || c.auth.reauthenticating {
            return;
        }
        let version = c.versions.expect("ready").create_topics;
        let mut jobs = self.shared.admin.lock();
        while c.conn.can_send() {
            let Some(job) = jobs.pop_front() else {
                break;
            };
            if now >= job.deadline {
                continue;
            }
            let Some(v) = version else {
                let _ = job.reply.send(Err(Error::Kafka {
                    code: ErrorCode::UNSUPPORTED_VERSION,
                    message: Some(format!(
                        "broker {} does not support CreateTopics v2 or later",
                        c.addr
                    )),
                    at: Location::default(),
                }));
                continue;
            };
            let reply = job.reply.clone();
            if let Err(e) = c
                .conn
                .send(&job.request, v, true, now, Ctx::CreateTopics(job.reply))
            {
                let _ = reply.send(Err(Error::Io {
                    broker: c.addr.clone(),
                    source: std::sync::Arc::new(std::io::Error::other(e.to_string())),
                    at: Location::default(),
                }));
            }
        }
        if jobs.is_empty() {
            self.shared.admin_wanted.store(false, SeqCst);
        }
    }

    pub(super) fn on_create_topics(&mut self, frame: &[u8], version: i16, reply: Reply) {
        let addr = self
            .control
            .conn
            .and_then(|i| self.conns[i].as_ref())
            .map_or(String::new(), |c| c.addr.clone());
        let r = lenient::<CreateTopicsRequest>(frame, version)
            .map(|(_, resp)| resp)
            .map_err(|e| Error::Protocol {
                broker: addr,
                source: e,
                at: Location::default(),
            });
        // New topics: the next metadata names their partitions.
        if r.is_ok() {
            self.shared.metadata_wanted.store(true, SeqCst);
        }
        let _ = reply.send(r);
    }
}
