//! What the run asked of each registry, for its metrics: requests by
//! method and status class, and the pull budget Docker Hub said remains.

use crate::lock;
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::model::Registry;

/// Requests per (registry, method, status class), and the last pull budget
/// each registry announced (`ratelimit-remaining`).
#[derive(Debug, Default)]
pub struct Traffic {
    requests: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    budgets: Mutex<BTreeMap<String, u64>>,
}

impl Traffic {
    /// One request and its status (`None`: no answer, a network error).
    pub(super) fn request(&self, registry: &Registry, method: &str, status: Option<u16>) {
        let class = match status.map(|s| s / 100) {
            Some(1) => "1xx",
            Some(2) => "2xx",
            Some(3) => "3xx",
            Some(4) => "4xx",
            Some(5) => "5xx",
            Some(_) => "other",
            None => "error",
        };
        *lock(&self.requests)
            .entry((registry.host.clone(), method.to_string(), class))
            .or_default() += 1;
    }

    pub(super) fn budget(&self, registry: &Registry, remaining: u64) {
        lock(&self.budgets).insert(registry.host.clone(), remaining);
    }

    /// ((registry, method, status class), requests), sorted.
    pub fn requests(&self) -> Vec<((String, String, &'static str), u64)> {
        lock(&self.requests).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// (registry, pulls remaining), sorted.
    pub fn budgets(&self) -> Vec<(String, u64)> {
        lock(&self.budgets).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}
