//! The shard threads: one pinned thread per shard, each running the
//! per-core executor of [`crate::rt::poll`], fed by a bounded queue of jobs
//! that run with access to the shard's state.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{EngineState, Shard};
use crate::rt::{cpu, msgbuf, poll};
use crate::{Error, Result};

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Work sent to a shard: runs on the shard's thread with access to its state.
pub(crate) type Job = Box<dyn FnOnce(Rc<Shard>) -> LocalFuture + Send>;

thread_local! {
    /// The shard whose thread this is, if it is one.
    static CURRENT: std::cell::RefCell<Option<Rc<Shard>>> = const { std::cell::RefCell::new(None) };
}

/// The shard running on this thread, when it is shard `id`.
fn current(id: usize) -> Option<Rc<Shard>> {
    CURRENT.with(|c| c.borrow().as_ref().filter(|s| s.id == id).cloned())
}

/// The running shards: a job queue and a thread for each.
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
        let cpus = cpu::allowed_cpus();
        let pool = usize::try_from(shared.cfg.ram_bytes / 8).unwrap_or(usize::MAX);
        msgbuf::set_pool_limit(pool.max(msgbuf::MIN_POOL));
        if shared.policies.iter().any(|p| p.writeback_delay.is_some()) {
            // Buffers for 1 MiB writes (and their headers), as many as the
            // pool and the dirty quota take.
            const CAP: usize = (1 << 20) + (64 << 10);
            let bytes = pool
                .max(msgbuf::MIN_POOL)
                .min(usize::try_from(shared.cfg.dirty_max).unwrap_or(usize::MAX));
            msgbuf::prefill(bytes / CAP, CAP);
        }
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
        poll::note_work();
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
    let rt = match poll::per_core_runtime(pin, TASKS_PER_TICK) {
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
    poll::run_polling(&rt, spin, async move {
        let shard = match Shard::open(id, shared).await {
            Ok((s, records)) => {
                let s = Rc::new(s);
                s.replay(records).await;
                super::spawn_writeback(&s);
                s
            }
            Err(message) => {
                let _ = ready.send(Err(StartError::Shard { shard: id, message }));
                return;
            }
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(shard.clone()));
        let _ = ready.send(Ok(()));
        drop(ready);
        while let Ok(job) = queue.recv().await {
            poll::note_work();
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
