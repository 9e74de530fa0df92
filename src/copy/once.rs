//! Work done at most once per key per run, with concurrent askers waiting
//! for the one doing it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Keyed once-cells. A failed attempt leaves the cell empty, so the next
/// asker tries again (and gets its own error if it fails too).
pub struct OnceMap<V> {
    cells: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
}

impl<V> Default for OnceMap<V> {
    fn default() -> Self {
        OnceMap {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> OnceMap<V> {
    fn cell(&self, key: String) -> Arc<OnceCell<V>> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.entry(key).or_default().clone()
    }

    /// The value for `key`, computing it with `init` unless it is known or
    /// being computed by another task (then waiting for that).
    pub async fn get_or_try_init<E, F, Fut>(&self, key: String, init: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.cell(key).get_or_try_init(init).await.cloned()
    }

    /// Sets the value unless one is there already.
    pub fn set_if_empty(&self, key: String, value: V) {
        let _ = self.cell(key).set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_askers_share_one_computation_and_failures_are_retried() {
        let map: OnceMap<u32> = OnceMap::default();
        let runs = AtomicUsize::new(0);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok::<u32, ()>(7)
        };
        let (a, b) = tokio::join!(
            map.get_or_try_init("k".into(), work),
            map.get_or_try_init("k".into(), work)
        );
        assert_eq!((a, b), (Ok(7), Ok(7)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let failed: Result<u32, &str> = map.get_or_try_init("x".into(), || async { Err("no") }).await;
        assert_eq!(failed, Err("no"));
        assert_eq!(
            map.get_or_try_init("x".into(), || async { Ok::<u32, &str>(1) }).await,
            Ok(1)
        );
        map.set_if_empty("x".into(), 5);
        assert_eq!(
            map.get_or_try_init("x".into(), || async { Ok::<u32, &str>(9) }).await,
            Ok(1)
        );
    }
}
