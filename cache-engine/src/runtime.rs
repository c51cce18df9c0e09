//! Thread-per-core runtime: one pinned thread per shard, each with its own
//! io_uring runtime (compio), fed by a bounded queue of jobs; plus a small
//! tokio runtime on the side for what only exists for tokio.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shard::{EngineState, Shard};
use crate::{Error, Result};

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Work sent to a shard: runs on the shard's thread with access to its state.
pub(crate) type Job = Box<dyn FnOnce(Rc<Shard>) -> LocalFuture + Send>;

thread_local! {
    /// The shard whose thread this is, if it is one.
    static CURRENT: std::cell::RefCell<Option<Rc<Shard>>> = const { std::cell::RefCell::new(None) };
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

/// The shard running on this thread, when it is shard `id`.
fn current(id: usize) -> Option<Rc<Shard>> {
    CURRENT.with(|c| c.borrow().as_ref().filter(|s| s.id == id).cloned())
}

pub(crate) struct ShardSet {
    queues: Vec<async_channel::Sender<Job>>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("shard {shard}: {message}")]
    Shard { shard: usize, message: String },
    #[error("{0}")]
    Setup(String),
}

impl ShardSet {
    pub fn start(shared: Arc<EngineState>) -> std::result::Result<Self, StartError> {
        let n = shared.cfg.shard_count();
        let cpus = allowed_cpus();
        let pool = usize::try_from(shared.cfg.ram_bytes / 8).unwrap_or(usize::MAX);
        crate::front::large::set_pool_limit(pool.max(crate::front::large::MIN_POOL));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut queues = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for id in 0..n {
            let (tx, rx) = async_channel::bounded::<Job>(shared.cfg.queue_depth.max(1));
            queues.push(tx);
            let shared = shared.clone();
            let ready = ready_tx.clone();
            let pin = shared.cfg.pin_threads.then(|| cpus[id % cpus.len()]);
            let spawned = std::thread::Builder::new()
                .name(format!("weir-shard-{id}"))
                .spawn(move || shard_main(id, pin, shared, rx, ready));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => return Err(StartError::Setup(format!("cannot start shard thread {id}: {e}"))),
            }
        }
        drop(ready_tx);
        let set = ShardSet {
            queues,
            threads: std::sync::Mutex::new(threads),
        };
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    set.stop();
                    return Err(e);
                }
                Err(_) => {
                    set.stop();
                    return Err(StartError::Setup("a shard thread died while starting".into()));
                }
            }
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Run `f` on shard `shard` and wait for its answer.
    pub async fn call<R, F, Fut>(&self, shard: usize, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R>> + 'static,
    {
        // Already on the owning shard: run it right here, with no queue, no
        // task and no wake of another thread. The wrapper makes the call's
        // future `Send` for callers elsewhere; this future is only polled and
        // dropped on this thread, since a compio task never changes threads.
        // The shard itself is wrapped too: the compiler counts it as held
        // across the await, which would make this future !Send.
        if let Some(s) = current(shard).map(send_wrapper::SendWrapper::new) {
            return send_wrapper::SendWrapper::new(f(s.take())).await;
        }
        let (tx, rx) = futures::channel::oneshot::channel();
        let job: Job = Box::new(move |s| {
            Box::pin(async move {
                let _ = tx.send(f(s).await);
            })
        });
        // Keep polling a while for the answer, as after any work: most
        // calls answer within microseconds, and a sleeping shard takes tens
        // to wake. Not until it comes: some wait on the core filer.
        note_work();
        self.queues[shard]
            .send(job)
            .await
            .map_err(|_| Error::ServerFault)?;
        rx.await.map_err(|_| Error::ServerFault)?
    }

    /// Queue `f` on shard `shard` without waiting for it to run (only for
    /// room in the queue): it runs before anything queued there later.
    pub async fn post<F, Fut>(&self, shard: usize, f: F)
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let job: Job = Box::new(move |s| Box::pin(f(s)));
        // A closed queue means the engine is stopping: nothing left to tell.
        let _ = self.queues[shard].send(job).await;
    }

    /// Close every queue and wait for the shards to drain and exit.
    pub fn stop(&self) {
        for q in &self.queues {
            q.close();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Tasks a shard runs between looks at its job queue. Jobs from other
/// shards carry their callers' next reads: a short tick sends those out
/// before a burst of completions has been worked through, and keeps the
/// device's queue full.
const TASKS_PER_TICK: usize = 4;

fn shard_main(
    id: usize,
    pin: Option<usize>,
    shared: Arc<EngineState>,
    queue: async_channel::Receiver<Job>,
    ready: mpsc::Sender<std::result::Result<(), StartError>>,
) {
    let mut builder = compio::runtime::RuntimeBuilder::new();
    builder.event_interval(TASKS_PER_TICK);
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
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StartError::Shard {
                shard: id,
                message: format!("io_uring runtime: {e}"),
            }));
            return;
        }
    };
    let spin = shared.cfg.spin;
    run_polling(&rt, spin, async move {
        let shard = match Shard::open(id, shared).await {
            Ok(s) => Rc::new(s),
            Err(message) => {
                let _ = ready.send(Err(StartError::Shard { shard: id, message }));
                return;
            }
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(shard.clone()));
        let _ = ready.send(Ok(()));
        drop(ready);
        while let Ok(job) = queue.recv().await {
            note_work();
            let mut job = job(shard.clone());
            // Start the job here and now: its first step (a cache read's
            // submission, say) goes out before the tasks already queued
            // run, instead of after them. What is left runs as a task of
            // its own, whose first poll takes over the job's wake-ups.
            // A panic ends the job, not the shard, as it would in a task.
            let first = std::future::poll_fn(|cx| {
                let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.as_mut().poll(cx)));
                std::task::Poll::Ready(step)
            })
            .await;
            match first {
                Ok(std::task::Poll::Pending) => compio::runtime::spawn(job).detach(),
                Ok(std::task::Poll::Ready(())) => {}
                Err(_) => tracing::error!(shard = id, "a job panicked; its caller gets a server fault"),
            }
        }
        CURRENT.with(|c| c.borrow_mut().take());
        shard.shutdown().await;
    });
}

/// The CPUs this thread may run on (its affinity mask, inherited from the
/// process: a cpuset, a `taskset`), in order. Shards are pinned to these,
/// never to others.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills in.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0 {
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        if !cpus.is_empty() {
            return cpus;
        }
    }
    let n = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    (0..n).collect()
}

/// Run this thread, and every thread or process it starts from now on, on
/// `cpus` only.
pub fn pin_self(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: as in `allowed_cpus`; `set` outlives the call.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
fn run_polling<F: Future>(rt: &compio::runtime::Runtime, spin: Duration, future: F) -> F::Output {
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
    use super::{allowed_cpus, pin_self, stalled_us};

    #[test]
    fn shards_are_pinned_only_to_cpus_the_process_may_use() {
        let all = allowed_cpus();
        assert!(!all.is_empty());
        let last = *all.last().unwrap();
        // In a thread of its own: the mask is per thread and inherited.
        let seen = std::thread::spawn(move || {
            pin_self(&[last]).unwrap();
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(seen, [last]);
    }

    #[test]
    fn cpu_pressure_total() {
        let text = b"some avg10=11.03 avg60=31.43 avg300=27.39 total=1725017157\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(stalled_us(text), Some(1_725_017_157));
        assert_eq!(stalled_us(b"some avg10=0.00 avg60=0.00 avg300=0.00"), None);
        assert_eq!(stalled_us(b"some total=x"), None);
        assert_eq!(stalled_us(b""), None);
    }
}
