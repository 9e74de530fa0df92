//! Running many units of work at once, and stopping: a stop signal starts
//! nothing new, and past a deadline the work still in flight is abandoned
//! (dropped). Abandoning is safe: an upload cut short is never committed,
//! and a tag is written only after everything it points at.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, stream};

/// How long copies in flight may go on after a stop signal before they are
/// abandoned (a Kubernetes pod gets 30 s between SIGTERM and SIGKILL).
/// Planning only reads, so it is abandoned at once.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Set by a signal handler: start nothing new, and abandon what is in flight
/// (planning at once, copies after [`SHUTDOWN_GRACE`]).
#[derive(Debug, Default)]
pub struct Interrupt(AtomicBool);

impl Interrupt {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Resolves `grace` after an interruption was requested.
    pub async fn deadline(&self, grace: Duration) {
        while !self.requested() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(grace).await;
    }
}

/// What became of one unit of work.
#[derive(Debug)]
pub enum Slot<T> {
    /// Never started: the run was stopping.
    NotStarted,
    /// Started, then dropped at the deadline.
    Abandoned,
    Done(T),
}

/// Runs `work` on every item, `jobs` at once, starting an item only while
/// `may_start()` holds, until all are done or `give_up` resolves. Results
/// come back in the items' order.
pub async fn run_all<'a, I, T, Fut>(
    items: &'a [I],
    jobs: usize,
    may_start: impl Fn() -> bool,
    work: impl Fn(&'a I) -> Fut,
    give_up: impl Future<Output = ()>,
) -> Vec<Slot<T>>
where
    Fut: Future<Output = T>,
{
    let started: Vec<AtomicBool> = items.iter().map(|_| AtomicBool::new(false)).collect();
    let mut results: Vec<Option<T>> = items.iter().map(|_| None).collect();
    let mut running = stream::iter(items.iter().enumerate())
        .map(|(n, item)| {
            let (started, may_start, work) = (&started[n], &may_start, &work);
            async move {
                if !may_start() {
                    return (n, None);
                }
                started.store(true, Ordering::SeqCst);
                (n, Some(work(item).await))
            }
        })
        .buffer_unordered(jobs.max(1));
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            next = running.next() => match next {
                Some((n, result)) => results[n] = result,
                None => break,
            },
            () = &mut give_up => break,
        }
    }
    drop(running);
    results
        .into_iter()
        .zip(&started)
        .map(|(result, started)| match result {
            Some(r) => Slot::Done(r),
            None if started.load(Ordering::SeqCst) => Slot::Abandoned,
            None => Slot::NotStarted,
        })
        .collect()
}

/// On SIGTERM or SIGINT: start nothing new, let copies in flight finish (or
/// abandon them after the grace period), then report. A second signal ends
/// the process at once. `signal` gets the number of the first one. Needs
/// a tokio runtime.
pub fn listen_for_signals(interrupt: std::sync::Arc<Interrupt>, signal: std::sync::Arc<std::sync::atomic::AtomicU8>) {
    use tokio::signal::unix::{SignalKind, signal as on};
    let (Ok(mut term), Ok(mut int)) = (on(SignalKind::terminate()), on(SignalKind::interrupt())) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT; they will end the run abruptly");
        return;
    };
    tokio::spawn(async move {
        for round in 0.. {
            let (name, number) = tokio::select! {
                _ = term.recv() => ("SIGTERM", 15u8),
                _ = int.recv() => ("SIGINT", 2u8),
            };
            if round > 0 {
                tracing::error!("{name} again: stopping now");
                std::process::exit(128 + i32::from(number));
            }
            tracing::warn!(
                "{name}: starting nothing new; planning stops now, copies in flight get {} s to finish",
                SHUTDOWN_GRACE.as_secs()
            );
            signal.store(number, std::sync::atomic::Ordering::SeqCst);
            interrupt.request();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn results_keep_item_order_and_work_past_the_deadline_is_abandoned() {
        let items = [30u64, 10, 1000, 5];
        let deadline = tokio::time::sleep(Duration::from_millis(200));
        let slots = run_all(
            &items,
            2,
            || true,
            |ms| async move {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                *ms
            },
            deadline,
        )
        .await;
        assert!(matches!(slots[0], Slot::Done(30)));
        assert!(matches!(slots[1], Slot::Done(10)));
        assert!(matches!(slots[2], Slot::Abandoned));
        assert!(matches!(slots[3], Slot::Done(5)));

        let none = run_all(&items, 2, || false, |ms| async move { *ms }, std::future::pending()).await;
        assert!(none.iter().all(|s| matches!(s, Slot::NotStarted)));
    }
}
