//! Peak memory of a child process, read from its own `VmHWM` while it runs.
//! (wait4's `ru_maxrss` can carry the memory the forking process had.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Polls `/proc/<pid>/status` until stopped; VmHWM is a high-water mark, so
/// the last reading before the process exits is its peak.
pub struct PeakRss {
    done: Arc<AtomicBool>,
    thread: JoinHandle<i64>,
}

impl PeakRss {
    pub fn watch(pid: u32) -> PeakRss {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        // A pidfd stays with this process: once it has exited, its pid may
        // be given to another process (pids wrap at 32768 here), whose
        // VmHWM must not be read as this one's.
        // SAFETY: a plain syscall with integer arguments.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as libc::c_int;
        let exited = move || {
            if pidfd < 0 {
                return true;
            }
            let mut p = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd on the stack, no wait.
            unsafe { libc::poll(&mut p, 1, 0) != 0 }
        };
        let thread = std::thread::spawn(move || {
            let mut peak = 0i64;
            while !flag.load(Ordering::SeqCst) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                // still alive after the read: the reading was this process's
                if exited() {
                    break;
                }
                let hwm = status.lines().find(|l| l.starts_with("VmHWM:"));
                if let Some(kib) = hwm
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<i64>().ok())
                {
                    peak = peak.max(kib);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if pidfd >= 0 {
                // SAFETY: our own descriptor, closed once.
                unsafe { libc::close(pidfd) };
            }
            peak
        });
        PeakRss { done, thread }
    }

    /// Call once the process has exited: its peak RSS in KiB (0 if never read).
    pub fn stop(self) -> i64 {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or(0)
    }
}
