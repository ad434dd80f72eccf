//! The current OAUTHBEARER token, and the thread that refreshes it.
//!
//! The first token is fetched when the producer starts (an error fails `build`, as the Java
//! client's constructor fails). Then one thread, `kprod-oauth`, asks the provider again when
//! the current token is 80% through its lifetime; on failure it retries with a doubling
//! backoff (100 ms to 10 s) and the last good token stays in use until it expires. The I/O
//! threads only read the current token; a provider never runs on them. The thread stops when
//! the producer closes (it is joined; a fetch in progress is bounded by the provider's own
//! timeout).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{bounded, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::oauth::{OAuthToken, TokenProvider};

/// Share of a token's lifetime after which it is replaced (Java's
/// `sasl.login.refresh.window.factor`).
const REFRESH_AT: f64 = 0.8;
/// Shortest wait between two fetches after a success.
const MIN_REFRESH: Duration = Duration::from_millis(500);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The token the I/O threads use.
#[derive(Debug, Default)]
pub(crate) struct TokenSource {
    current: Mutex<Option<Arc<OAuthToken>>>,
    last_error: Mutex<Option<String>>,
    refreshes: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    /// The current token if it has not expired, else why there is none.
    pub fn current(&self) -> Result<Arc<OAuthToken>, String> {
        match self.current.lock().clone() {
            Some(t) if !t.remaining().is_zero() => Ok(t),
            _ => Err(match self.last_error.lock().clone() {
                Some(e) => format!("the OAUTHBEARER token expired and could not be refreshed: {e}"),
                None => "the OAUTHBEARER token expired".into(),
            }),
        }
    }

    /// Tokens fetched after the first.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fetch(&self, provider: &dyn TokenProvider) -> Result<(), String> {
        let t = provider.token().and_then(|t| t.validate().map(|()| t))?;
        *self.current.lock() = Some(Arc::new(t));
        *self.last_error.lock() = None;
        Ok(())
    }
}

/// The refresher thread; stopped and joined by [`stop`](Self::stop) or on drop.
#[derive(Debug)]
pub(crate) struct Refresher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Fetches the first token, then starts the refresher.
pub(crate) fn start(
    provider: Arc<dyn TokenProvider>,
) -> Result<(Arc<TokenSource>, Refresher), String> {
    let source = Arc::new(TokenSource::default());
    source.fetch(provider.as_ref())?;
    let (stop, stopped) = bounded::<()>(0);
    let src = source.clone();
    let thread = std::thread::Builder::new()
        .name("kprod-oauth".into())
        .spawn(move || {
            let mut backoff = None::<Duration>;
            loop {
                let wait = backoff.unwrap_or_else(|| {
                    src.current
                        .lock()
                        .as_ref()
                        .map_or(MIN_REFRESH, |t| t.remaining().mul_f64(REFRESH_AT))
                        .max(MIN_REFRESH)
                });
                match stopped.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                match src.fetch(provider.as_ref()) {
                    Ok(()) => {
                        src.refreshes
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        backoff = None;
                    }
                    Err(e) => {
                        log::warn!("kprod: refreshing the OAUTHBEARER token failed: {e}");
                        *src.last_error.lock() = Some(e);
                        backoff = Some(backoff.map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF)));
                    }
                }
            }
        })
        .map_err(|e| format!("starting the token refresher: {e}"))?;
    Ok((
        source,
        Refresher {
            stop: Some(stop),
            thread: Some(thread),
        },
    ))
}

impl Refresher {
    /// Stops the thread and joins it.
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::time::Instant;

    #[test]
    fn tokens_are_refreshed_before_they_expire_and_failures_keep_the_last_one() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        // Tokens of 1 s; the third fetch and later fail.
        let provider = move || -> Result<OAuthToken, String> {
            match c.fetch_add(1, SeqCst) {
                n @ 0..=1 => Ok(OAuthToken::new(
                    format!("t{n}"),
                    Duration::from_secs(1),
                    "p",
                )),
                _ => Err("endpoint down".into()),
            }
        };
        let (src, mut refresher) = start(Arc::new(provider)).unwrap();
        assert_eq!(src.current().unwrap().value.expose(), "t0");
        // Refreshed at 80% (0.8 s): t1, before t0 expired.
        let deadline = Instant::now() + Duration::from_secs(5);
        while src.refreshes() < 1 {
            assert!(Instant::now() < deadline, "no refresh");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(src.current().unwrap().value.expose(), "t1");
        // Then failures: t1 stays until it expires, then the error says why.
        let deadline = Instant::now() + Duration::from_secs(5);
        let e = loop {
            match src.current() {
                Ok(t) => assert_eq!(t.value.expose(), "t1"),
                Err(e) => break e,
            }
            assert!(Instant::now() < deadline, "t1 never expired");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(e.contains("endpoint down"), "{e}");
        let t = Instant::now();
        refresher.stop();
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_first_fetch_that_fails_is_an_error() {
        let p = || -> Result<OAuthToken, String> { Err("no route".into()) };
        assert_eq!(start(Arc::new(p)).unwrap_err(), "no route");
        let bad = || -> Result<OAuthToken, String> {
            Ok(OAuthToken::new("with space", Duration::from_secs(9), "p"))
        };
        assert!(start(Arc::new(bad)).is_err());
    }
}
