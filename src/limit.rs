//! How much goes to one registry at once: a limit that adapts, the way TCP
//! finds a link's capacity (additive increase, multiplicative decrease).
//!
//! - It starts at [`INITIAL`] (or the ceiling, if lower) and, while every
//!   answer is fine and the limit is in use (work waits for a slot, or more
//!   than half the slots are taken), grows by one per answer, so it doubles
//!   every round trip: a far registry, where each answer takes long, is
//!   quickly given many requests in flight. The ceiling is
//!   `--max-connections`.
//! - An answer that says the registry is overloaded (429, 503), or a
//!   request that got no answer (connection refused, reset, timed out),
//!   halves it,
//!   at most once per [`CUT_SPACING`] (the answers to the requests already
//!   in flight say the same thing and are not a second signal); from then
//!   on it grows by one per limit's worth of fine answers (one per round
//!   trip).
//! - It never goes below one, so a registry that throttles everything
//!   still gets one request at a time, retried as the transport retries.
//!
//! What counts is one request in flight, or one blob transfer (which holds
//! its slot on both sides for as long as its body streams). The copy engine
//! takes a transfer's slots before it starts; requests made inside a
//! transfer do not take another (see [`Limiter::covered`]), so a transfer
//! never waits for a slot while holding one, and nothing can deadlock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock;

/// Where the limit starts.
pub const INITIAL: usize = 8;
/// Two cuts are at least this far apart.
pub const CUT_SPACING: Duration = Duration::from_millis(500);

/// What an answer says about the registry's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered (whatever the status, short of overload).
    Fine,
    /// 429 Too Many Requests or 503 Service Unavailable; or no answer at
    /// all (a connection refused, reset or timed out), which is how a
    /// registry or the proxy before it says "too many connections".
    Overloaded,
}

impl Signal {
    pub fn of_status(status: u16) -> Signal {
        if matches!(status, 429 | 503) {
            Signal::Overloaded
        } else {
            Signal::Fine
        }
    }
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    waiting: usize,
    /// Growing by one per answer until the first cut.
    slow_start: bool,
    last_cut: Option<Instant>,
    /// The limit last logged, to log changes, not every step.
    shown: usize,
    lowest: usize,
    highest: usize,
}

/// The adaptive limit of one registry (or layout).
#[derive(Debug)]
pub struct Limiter {
    name: String,
    ceiling: usize,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

/// A slot taken; given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.limiter.state).in_flight -= 1;
        self.limiter.wake.notify_one();
    }
}

tokio::task_local! {
    /// The limiters whose slots the current task holds for a whole blob
    /// transfer: its requests to those registries take no second slot.
    static COVERED: Vec<Arc<Limiter>>;
}

impl Limiter {
    /// A limit that starts at [`INITIAL`] and adapts up to `ceiling`.
    pub fn new(name: &str, ceiling: usize) -> Arc<Limiter> {
        Limiter::starting_at(name, ceiling, INITIAL)
    }

    /// A limit that is at `slots` from the start (for a layout: nothing
    /// answers there to adapt to).
    pub fn fixed(name: &str, slots: usize) -> Arc<Limiter> {
        Limiter::starting_at(name, slots, slots)
    }

    fn starting_at(name: &str, ceiling: usize, initial: usize) -> Arc<Limiter> {
        let ceiling = ceiling.max(1);
        let initial = initial.clamp(1, ceiling);
        Arc::new(Limiter {
            name: name.to_string(),
            ceiling,
            state: Mutex::new(State {
                limit: initial as f64,
                in_flight: 0,
                waiting: 0,
                slow_start: true,
                last_cut: None,
                shown: initial,
                lowest: initial,
                highest: initial,
            }),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// The number of slots now.
    pub fn limit(&self) -> usize {
        lock(&self.state).limit as usize
    }

    /// The lowest and highest limit of the run so far.
    pub fn range(&self) -> (usize, usize) {
        let s = lock(&self.state);
        (s.lowest, s.highest)
    }

    /// Waits for a slot.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        // counted among the waiters until it gets a slot, or is dropped
        // (a copy abandoned at the deadline): a waiter that is gone must not
        // keep the limit growing
        struct Waiting<'a> {
            limiter: &'a Limiter,
            counted: bool,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if self.counted {
                    lock(&self.limiter.state).waiting -= 1;
                }
            }
        }
        let mut me = Waiting {
            limiter: self,
            counted: false,
        };
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = lock(&self.state);
                if s.in_flight < s.limit as usize {
                    s.in_flight += 1;
                    if me.counted {
                        s.waiting -= 1;
                        me.counted = false;
                    }
                    return Permit { limiter: self.clone() };
                }
                if !me.counted {
                    s.waiting += 1;
                    me.counted = true;
                }
            }
            notified.await;
        }
    }

    /// A slot, unless the current task already holds one here for a whole
    /// transfer.
    pub async fn acquire_uncovered(self: &Arc<Self>) -> Option<Permit> {
        let covered = COVERED
            .try_with(|c| c.iter().any(|l| Arc::ptr_eq(l, self)))
            .unwrap_or(false);
        if covered { None } else { Some(self.acquire().await) }
    }

    /// Runs `work` holding slots of `limiters` (taken in the order given:
    /// callers sort them) for its whole length; requests it makes to those
    /// registries take no further slot.
    pub async fn covering<T>(limiters: Vec<Arc<Limiter>>, work: impl Future<Output = T>) -> T {
        let mut permits = Vec::with_capacity(limiters.len());
        for l in &limiters {
            permits.push(l.acquire().await);
        }
        let out = COVERED.scope(limiters, work).await;
        drop(permits);
        out
    }

    /// Adapts the limit to a request that got no answer: overload, unless
    /// it was never sent (a request replicant could not build says nothing
    /// of the registry).
    pub fn record_failure(&self, e: &reqwest::Error) {
        if !e.is_builder() {
            self.record(Signal::Overloaded);
        }
    }

    /// Adapts the limit to one answer.
    pub fn record(&self, signal: Signal) {
        let (from, to, why) = {
            let mut s = lock(&self.state);
            let from = s.limit as usize;
            match signal {
                Signal::Overloaded => {
                    let now = Instant::now();
                    if s.last_cut.is_some_and(|t| now.duration_since(t) < CUT_SPACING) {
                        return;
                    }
                    s.last_cut = Some(now);
                    s.slow_start = false;
                    s.limit = (s.limit / 2.0).max(1.0);
                    (
                        from,
                        s.limit as usize,
                        "the registry answered 429 or 503, or did not answer",
                    )
                }
                Signal::Fine => {
                    // grow only when work waits or more than half the limit is in use:
                    // a limit never runs far ahead of what was tried
                    let in_use = s.waiting > 0 || s.in_flight * 2 > from;
                    if !in_use || s.limit >= self.ceiling as f64 {
                        return;
                    }
                    let step = if s.slow_start { 1.0 } else { 1.0 / s.limit };
                    s.limit = (s.limit + step).min(self.ceiling as f64);
                    (from, s.limit as usize, "answers come back fine")
                }
            }
        };
        if to > from {
            self.wake.notify_waiters();
        }
        let mut s = lock(&self.state);
        s.lowest = s.lowest.min(to);
        s.highest = s.highest.max(to);
        // log cuts, and growth when it has doubled (or reached the ceiling)
        let show = to < s.shown || to >= s.shown * 2 || (to == self.ceiling && s.shown != to);
        if show {
            // from the value last logged: the log reads as a sequence
            let from = std::mem::replace(&mut s.shown, to);
            drop(s);
            tracing::debug!(
                registry = %self.name,
                from,
                to,
                "concurrency {from} -> {to} ({why}; ceiling {})",
                self.ceiling
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_while_in_use_and_halves_once_per_burst() {
        let l = Limiter::new("r", 64);
        assert_eq!(l.limit(), INITIAL);
        // answers while the limit is not in use change nothing
        l.record(Signal::Fine);
        assert_eq!(l.limit(), INITIAL);
        let mut held = Vec::new();
        for _ in 0..INITIAL {
            held.push(l.acquire().await);
        }
        for _ in 0..8 {
            l.record(Signal::Fine);
        }
        assert_eq!(l.limit(), 16, "slow start: one more per answer");
        l.record(Signal::Fine);
        assert_eq!(l.limit(), 16, "8 of 16 in use, nothing waits: no need to grow");
        // a burst of 429s: one cut
        for _ in 0..10 {
            l.record(Signal::Overloaded);
        }
        assert_eq!(l.limit(), 8);
        assert_eq!(l.range(), (8, 16));
        // after the cut, one more per limit's worth of answers
        for _ in 0..8 {
            l.record(Signal::Fine);
        }
        assert_eq!(l.limit(), 8, "the step is 1/8 now");
        l.record(Signal::Fine);
        assert_eq!(l.limit(), 9);
        drop(held);
    }

    #[tokio::test]
    async fn a_connection_refused_halves_the_limit_like_a_429() {
        crate::http::install_crypto();
        // a port nothing listens on any more: the connection is refused
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let refused = reqwest::get(format!("http://127.0.0.1:{port}/v2/")).await.unwrap_err();
        let l = Limiter::starting_at("r", 64, 32);
        l.record_failure(&refused);
        assert_eq!(l.limit(), 16);
    }

    #[tokio::test]
    async fn never_below_one_never_above_the_ceiling() {
        let l = Limiter::new("r", 3);
        assert_eq!(l.limit(), 3);
        let _p = (l.acquire().await, l.acquire().await, l.acquire().await);
        for _ in 0..100 {
            l.record(Signal::Fine);
        }
        assert_eq!(l.limit(), 3);
        for _ in 0..5 {
            lock(&l.state).last_cut = None;
            l.record(Signal::Overloaded);
        }
        assert_eq!(l.limit(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_limiter_makes_the_next_wait_until_a_slot_is_given_back() {
        let l = Limiter::new("r", 1);
        let first = l.acquire().await;
        let waiting = tokio::spawn({
            let l = l.clone();
            async move { l.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(second.is_ok(), "the waiter got the slot given back");
    }

    #[tokio::test]
    async fn a_waiter_given_up_on_no_longer_counts_as_waiting() {
        let l = Limiter::new("r", 64);
        let mut held = Vec::new();
        for _ in 0..INITIAL {
            held.push(l.acquire().await);
        }
        let gave_up = tokio::time::timeout(Duration::from_millis(20), l.acquire()).await;
        assert!(gave_up.is_err());
        assert_eq!(lock(&l.state).waiting, 0);
        drop(held);
        // nothing in use, nothing waiting: no reason to grow
        l.record(Signal::Fine);
        assert_eq!(l.limit(), INITIAL);
    }

    #[tokio::test]
    async fn work_covered_by_a_transfer_takes_no_second_slot() {
        let l = Limiter::new("r", 1);
        let inner = Limiter::covering(vec![l.clone()], async {
            // would wait forever if it took a slot
            l.acquire_uncovered().await.is_none()
        });
        let covered = tokio::time::timeout(Duration::from_secs(5), inner).await;
        assert_eq!(covered.ok(), Some(true));
        assert!(l.acquire_uncovered().await.is_some());
    }
}
