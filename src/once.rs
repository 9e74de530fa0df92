//! Work done at most once per key per run, with concurrent askers waiting
//! for the one doing it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use tokio::sync::watch;

enum Slot<V, E> {
    /// Being computed; the receiver yields the outcome.
    Running(watch::Receiver<Option<Result<V, E>>>),
    Done(V),
}

/// At most this many bytes of known values, as the function counts them.
type Budget<V> = (usize, fn(&V) -> usize);

/// Known values in the order they came, with their weights, and the total.
type Kept = (VecDeque<(String, usize)>, usize);

/// Keyed once-cells. Askers that arrive while a value is being computed
/// wait for that computation and get its outcome, success or failure. A
/// failure is not remembered: the next asker after it tries again.
///
/// With a budget, known values are kept only up to that many bytes (as
/// `weigh` counts them), the oldest forgotten first: a forgotten value is
/// computed again if asked for again.
pub struct OnceMap<V, E> {
    slots: Mutex<HashMap<String, Slot<V, E>>>,
    budget: Option<Budget<V>>,
    kept: Mutex<Kept>,
}

impl<V, E> Default for OnceMap<V, E> {
    fn default() -> Self {
        OnceMap {
            slots: Mutex::new(HashMap::new()),
            budget: None,
            kept: Mutex::new((VecDeque::new(), 0)),
        }
    }
}

impl<V, E> OnceMap<V, E> {
    /// Keeps known values up to `bytes` in all.
    pub fn with_budget(bytes: usize, weigh: fn(&V) -> usize) -> Self {
        OnceMap {
            budget: Some((bytes, weigh)),
            ..OnceMap::default()
        }
    }
}

enum Turn<V, E> {
    Known(V),
    Wait(watch::Receiver<Option<Result<V, E>>>),
    Compute(watch::Sender<Option<Result<V, E>>>),
}

impl<V: Clone, E: Clone> OnceMap<V, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot<V, E>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn turn(&self, key: &str) -> Turn<V, E> {
        let mut slots = self.lock();
        match slots.get(key) {
            Some(Slot::Done(v)) => Turn::Known(v.clone()),
            Some(Slot::Running(rx)) => Turn::Wait(rx.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                slots.insert(key.to_string(), Slot::Running(rx));
                Turn::Compute(tx)
            }
        }
    }

    /// The value for `key`: known, computed by `init`, or waited for when
    /// another task is computing it (then its outcome is this one's too).
    pub async fn get_or_try_init<F, Fut>(&self, key: String, init: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let mut init = Some(init);
        loop {
            match self.turn(&key) {
                Turn::Known(v) => return Ok(v),
                Turn::Wait(mut rx) => {
                    if let Ok(outcome) = rx.wait_for(Option::is_some).await
                        && let Some(outcome) = outcome.clone()
                    {
                        return outcome;
                    }
                    // the computing task was dropped (an abandoned copy): try
                    // again, perhaps computing it ourselves
                }
                Turn::Compute(tx) => {
                    // Clears the slot if this future is dropped mid-way, so
                    // that waiters do not wait for nothing.
                    let guard = Reset {
                        map: self,
                        key: &key,
                        armed: true,
                    };
                    let Some(init) = init.take() else {
                        unreachable!("a task computes a key at most once per call")
                    };
                    let outcome = init().await;
                    let mut guard = guard;
                    guard.armed = false;
                    {
                        let mut slots = self.lock();
                        match &outcome {
                            Ok(v) => {
                                slots.insert(key.clone(), Slot::Done(v.clone()));
                                self.keep_within_budget(&mut slots, &key, v);
                            }
                            Err(_) => {
                                slots.remove(&key);
                            }
                        }
                    }
                    let _ = tx.send(Some(outcome.clone()));
                    return outcome;
                }
            }
        }
    }

    /// Records a new known value and forgets the oldest ones past the
    /// budget (never the one just computed).
    fn keep_within_budget(&self, slots: &mut HashMap<String, Slot<V, E>>, key: &str, v: &V) {
        let Some((budget, weigh)) = self.budget else { return };
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let weight = weigh(v);
        kept.0.push_back((key.to_string(), weight));
        kept.1 += weight;
        while kept.1 > budget && kept.0.len() > 1 {
            let Some((old, w)) = kept.0.pop_front() else { break };
            kept.1 -= w;
            if matches!(slots.get(&old), Some(Slot::Done(_))) {
                slots.remove(&old);
            }
        }
    }

    /// Sets the value unless one is there or being computed.
    pub fn set_if_empty(&self, key: String, value: V) {
        self.lock().entry(key).or_insert(Slot::Done(value));
    }
}

/// Removes a running slot whose computation was dropped.
struct Reset<'a, V, E> {
    map: &'a OnceMap<V, E>,
    key: &'a str,
    armed: bool,
}

impl<V, E> Drop for Reset<'_, V, E> {
    fn drop(&mut self) {
        if self.armed {
            let mut slots = self.map.slots.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(slots.get(self.key), Some(Slot::Running(_))) {
                slots.remove(self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn concurrent_askers_share_one_outcome_and_later_askers_retry_failures() {
        let map: OnceMap<u32, &str> = OnceMap::default();
        let runs = AtomicUsize::new(0);
        let work = |result: Result<u32, &'static str>| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                result
            }
        };
        let (a, b) = tokio::join!(
            map.get_or_try_init("k".into(), work(Ok(7))),
            map.get_or_try_init("k".into(), work(Ok(8)))
        );
        assert_eq!((a, b), (Ok(7), Ok(7)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // a failure reaches those who waited for it, without a second run
        let (a, b) = tokio::join!(
            map.get_or_try_init("x".into(), work(Err("no"))),
            map.get_or_try_init("x".into(), work(Ok(1)))
        );
        assert_eq!((a, b), (Err("no"), Err("no")));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // ...but the next asker tries again
        assert_eq!(map.get_or_try_init("x".into(), work(Ok(1))).await, Ok(1));
        map.set_if_empty("x".into(), 5);
        assert_eq!(map.get_or_try_init("x".into(), work(Ok(9))).await, Ok(1));
    }

    #[tokio::test]
    async fn a_budget_forgets_the_oldest_values() {
        let map: OnceMap<Vec<u8>, ()> = OnceMap::with_budget(10, Vec::len);
        let runs = AtomicUsize::new(0);
        let make = |n: usize| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(vec![0; n])
            }
        };
        for key in ["a", "b", "c"] {
            map.get_or_try_init(key.into(), make(4)).await.unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // "a" was forgotten to stay within 10 bytes; "c" is still known
        map.get_or_try_init("c".into(), make(4)).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        map.get_or_try_init("a".into(), make(4)).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_computation_lets_waiters_compute() {
        let map: OnceMap<u32, ()> = OnceMap::default();
        let slow = map.get_or_try_init("k".into(), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(1)
        });
        // start the slow one, then drop it while a waiter waits
        let waiter = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            map.get_or_try_init("k".into(), || async { Ok(2) }).await
        };
        let abandoned = async {
            let _ = tokio::time::timeout(Duration::from_millis(30), slow).await;
        };
        let ((), got) = tokio::join!(abandoned, waiter);
        assert_eq!(got, Ok(2));
    }
}
