//! The per-core executor: each core's thread runs its own io_uring runtime
//! (compio), polling its ring for a while after work arrives instead of
//! sleeping in it; plus a small tokio runtime on the side for what only
//! exists for tokio.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    /// When this thread last received work (a job, a client request),
    /// called another shard or started a cache read.
    static LAST_WORK: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// Cache reads this thread has in flight.
    static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A cache read in flight on this thread: while one is, its shard polls
/// its ring rather than sleeping (when it polls at all, see `spin`).
pub(crate) struct ReadInFlight(());

impl ReadInFlight {
    pub(crate) fn start() -> Self {
        READS.with(|r| r.set(r.get() + 1));
        ReadInFlight(())
    }
}

impl Drop for ReadInFlight {
    fn drop(&mut self) {
        READS.with(|r| r.set(r.get().saturating_sub(1)));
        note_work();
    }
}

/// Note that this thread just received work, so its shard keeps polling for
/// the next piece a little longer before it sleeps (see `spin`).
pub fn note_work() {
    LAST_WORK.with(|w| w.set(Some(Instant::now())));
}

/// The io_uring runtime of one core's thread, pinned to `pin` when given,
/// running `event_interval` tasks between looks at its ring.
pub(crate) fn per_core_runtime(
    pin: Option<usize>,
    event_interval: usize,
) -> std::io::Result<compio::runtime::Runtime> {
    let mut builder = compio::runtime::RuntimeBuilder::new();
    builder.event_interval(event_interval);
    // One thread submits to and reaps each ring: completions need no
    // interrupt of the thread (cooperative task running), which saves a
    // context switch per I/O.
    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor
        .single_issuer(true)
        .defer_taskrun(true)
        .coop_taskrun(true)
        .taskrun_flag(true);
    builder.with_proactor(proactor);

    if let Some(core) = pin {
        builder.thread_affinity(std::iter::once(core).collect());
    }
    builder.build()
}

/// Reap what the ring has completed without sleeping in it. A wait with a
/// zero timeout still arms a kernel timer and switches to the idle thread
/// when nothing is complete (about 5 µs on a virtual machine); a runtime
/// already notified enters the ring without waiting (0.2 µs). It submits
/// what is queued too, and, unlike `Runtime::flush`, leaves the runtime
/// marked awake: wake-ups from other threads then cost them no eventfd
/// write.
pub(crate) fn poll_now(rt: &compio::runtime::Runtime, waker: &std::task::Waker) {
    waker.wake_by_ref();
    rt.poll_with(Some(Duration::ZERO));
}

/// The waker of the future `run_polling` drives: wakes the runtime and
/// notes the wake, so that the loop polls that future (the shard's job
/// queue) only when it has something to do, not on every turn.
struct MainWaker {
    woken: AtomicBool,
    runtime: std::task::Waker,
}

impl std::task::Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.runtime.wake_by_ref();
    }
}

/// A yield that takes this long ran another thread.
const CONTENDED: Duration = Duration::from_micros(50);
/// A yield that takes this long ran a thread that wants the core for whole
/// scheduler slices (a CPU-bound process), not one that did a little work.
const HOGGED: Duration = Duration::from_micros(500);
/// How long a shard stops polling after a hogged yield; doubled while that
/// lasts, up to `BACK_OFF_MAX`, and reset by a spell of polling that
/// nobody hogged.
const BACK_OFF_MIN: Duration = Duration::from_millis(1);
const BACK_OFF_MAX: Duration = Duration::from_secs(1);

/// `Runtime::block_on`, except that for `spin` after the last work arrived
/// the thread keeps polling its ring instead of sleeping in it. A request
/// that hops to another shard and back costs two thread wake-ups, each tens
/// of microseconds on a virtual machine; a shard still polling sees the hop
/// within a microsecond or two.
///
/// Between polls the thread yields, so other threads on the core are not
/// starved; once one of them runs in that yield, the thread sleeps until
/// its next event instead. A pinned thread that yields to a CPU-bound one
/// waits behind it for the rest of the scheduler's slice, milliseconds,
/// even when its next request arrives meanwhile, while a thread that
/// sleeps is run as soon as it is woken: after such a yield the shard
/// stops polling for a back-off period that grows while the core stays
/// shared. Nor does it poll while threads wait for a core (see `crowded`).
pub(crate) fn run_polling<F: Future>(rt: &compio::runtime::Runtime, spin: Duration, future: F) -> F::Output {
    rt.enter(|| {
        let waker = rt.waker();
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            runtime: waker.clone(),
        });
        let main_waker = std::task::Waker::from(main.clone());
        let mut cx = std::task::Context::from_waker(&main_waker);
        let mut future = std::pin::pin!(future);
        let mut back_off = BACK_OFF_MIN;
        // No polling before this instant.
        let mut calm_until: Option<Instant> = None;
        // The last yield ran another thread: sleep once what it woke has run.
        let mut contended = false;
        // This spell of polling has yielded without being hogged.
        let mut polled = false;
        // When the last yield or sleep ended: a clock read costs about
        // 0.1 µs here, a good part of a turn, so the checks that need no
        // fresher time than that share it.
        let mut last = Instant::now();
        let mut ticks = 0u64;
        loop {
            if main.woken.swap(false, Ordering::AcqRel) {
                if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    rt.run();
                    return out;
                }
            }
            if rt.run() {
                // Reap about as often as before ticks were short.
                ticks += 1;
                if ticks.is_multiple_of(4) {
                    poll_now(rt, &waker);
                }
                continue;
            }
            let recent = !spin.is_zero()
                && (READS.with(|r| r.get()) > 0
                    || LAST_WORK.with(|w| w.get()).is_some_and(|t| t.elapsed() < spin));
            if calm_until.is_some_and(|t| last >= t) {
                calm_until = None;
            }
            if recent && calm_until.is_none() && !contended && !crowded(last) {
                poll_now(rt, &waker);
                let yielded = Instant::now();
                std::thread::yield_now();
                last = Instant::now();
                let took = last - yielded;
                contended = took > CONTENDED;
                if took > HOGGED {
                    calm_until = Some(last + back_off);
                    back_off = (back_off * 2).min(BACK_OFF_MAX);
                    polled = false;
                } else {
                    polled = true;
                }
            } else {
                if !recent && std::mem::take(&mut polled) {
                    back_off = BACK_OFF_MIN;
                }
                contended = false;
                rt.poll();
                last = Instant::now();
            }
        }
    })
}

/// How often a polling shard rereads the machine's CPU pressure (the
/// kernel updates it every few milliseconds).
const CROWD_CHECK: Duration = Duration::from_millis(10);
/// The share of time some thread waited for a CPU above which the machine
/// counts as crowded.
const CROWDED: f64 = 0.5;

/// Whether threads have been waiting for a CPU for more than `CROWDED` of
/// the last `CROWD_CHECK` (the kernel's CPU pressure, `/proc/pressure/cpu`).
/// A polling shard never leaves its core idle, so the scheduler does not
/// move a thread waiting on another core's queue to it: on a crowded
/// machine (clients on the same host, say) polling slows the other work by
/// more than the wake-ups it saves. Without pressure figures, never.
fn crowded(now: Instant) -> bool {
    struct Crowd {
        pressure: Option<std::fs::File>,
        checked: Instant,
        stalled_us: Option<u64>,
        crowded: bool,
    }
    thread_local! {
        static CROWD: std::cell::RefCell<Crowd> = std::cell::RefCell::new(Crowd {
            pressure: std::fs::File::open("/proc/pressure/cpu").ok(),
            checked: Instant::now(),
            stalled_us: None,
            crowded: false,
        });
    }
    CROWD.with(|c| {
        let mut c = c.borrow_mut();
        let elapsed = now.saturating_duration_since(c.checked);
        if elapsed < CROWD_CHECK {
            return c.crowded;
        }
        let mut buf = [0u8; 256];
        let read = c
            .pressure
            .as_ref()
            .and_then(|f| std::os::unix::fs::FileExt::read_at(f, &mut buf, 0).ok());
        let stalled = read.and_then(|n| stalled_us(&buf[..n]));
        c.crowded = match (c.stalled_us, stalled) {
            (Some(before), Some(after)) => {
                after.saturating_sub(before) as f64 > CROWDED * elapsed.as_micros() as f64
            }
            _ => false,
        };
        c.stalled_us = stalled;
        c.checked = now;
        c.crowded
    })
}

/// Microseconds some thread has waited for a CPU, from `/proc/pressure/cpu`
/// ("some avg10=0.00 avg60=0.00 avg300=0.00 total=12345" on its first line).
fn stalled_us(text: &[u8]) -> Option<u64> {
    let some = std::str::from_utf8(text).ok()?.lines().next()?;
    let total = some
        .split_ascii_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    total.parse().ok()
}

/// The tokio runtime beside the shards (metrics exporter, later gRPC and object stores).
pub fn sidecar() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("weir-sidecar")
        .enable_all()
        .build()
}
#[cfg(test)]
mod tests {
    use super::stalled_us;

    #[test]
    fn cpu_pressure_total() {
        let text = b"some avg10=11.03 avg60=31.43 avg300=27.39 total=1725017157\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(stalled_us(text), Some(1_725_017_157));
        assert_eq!(stalled_us(b"some avg10=0.00 avg60=0.00 avg300=0.00"), None);
        assert_eq!(stalled_us(b"some total=x"), None);
        assert_eq!(stalled_us(b""), None);
    }
}
