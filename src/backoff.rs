//! The one backoff schedule, used by the registry transport between
//! attempts of an exchange and by the copy engine between restarts of a
//! broken transfer.

use std::time::Duration;

/// The wait after `failures` failed attempts: exponential from 250 ms,
/// capped at 15 s, with jitter (×0.5–1.0) so that parallel copies do not
/// retry in lockstep.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1 << failures.min(6))
        .min(Duration::from_secs(15));
    base.mul_f64(rand::random_range(0.5..1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_capped() {
        for n in 0..20 {
            let w = backoff(n);
            let base = Duration::from_millis(250)
                .saturating_mul(1 << n.min(6))
                .min(Duration::from_secs(15));
            assert!(w >= base / 2 && w <= base, "{n}: {w:?}");
        }
    }
}
