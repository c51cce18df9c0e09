//! Limits a front end puts on clients before it trusts them: how many
//! connections in all and from one address, and how long a connection may
//! sit silent. Counted at accept and close only, never per request.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connection limits of one front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once, from all clients.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_client: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 4096,
            max_per_client: 256,
        }
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The front end serves `max_connections` already.
    Total,
    /// The client's address has `max_per_client` open already.
    PerClient,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerClient => "per_client",
        }
    }
}

/// Per-address counts are split over this many locks, by address, so that
/// accepts on different shards seldom meet on one.
const STRIPES: usize = 16;

/// Counts a front end's open connections, in all and per client address.
pub struct ConnCounter {
    what: &'static str,
    limits: ConnLimits,
    total: AtomicUsize,
    per_client: [Mutex<HashMap<IpAddr, usize>>; STRIPES],
    warned: Throttled,
}

impl ConnCounter {
    /// `what` names the front end in log lines and metrics.
    pub fn new(what: &'static str, limits: ConnLimits) -> Arc<ConnCounter> {
        Arc::new(ConnCounter {
            what,
            limits,
            total: AtomicUsize::new(0),
            per_client: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            warned: Throttled::default(),
        })
    }

    fn stripe(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        let h = match ip {
            IpAddr::V4(a) => u32::from(a) as usize,
            IpAddr::V6(a) => (u128::from(a) ^ (u128::from(a) >> 64)) as usize,
        };
        &self.per_client[h.wrapping_mul(0x9E37_79B9) >> 8 & (STRIPES - 1)]
    }

    /// Count a new connection from `ip`, or refuse it (logged, and counted
    /// in `weir_connections_refused_total`).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let r = self.try_admit(ip);
        if let Err(why) = r {
            metrics::counter!("weir_connections_refused_total", "front" => self.what, "reason" => why.label())
                .increment(1);
            if self.warned.now() {
                tracing::warn!(
                    client = %ip,
                    "{}: connection refused: {} ({} open, at most {} in all and {} per client)",
                    self.what,
                    match why {
                        Refused::Total => "too many connections",
                        Refused::PerClient => "too many connections from this client",
                    },
                    self.total.load(Ordering::Relaxed),
                    self.limits.max_connections,
                    self.limits.max_per_client,
                );
            }
        }
        r
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.limits.max_connections {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Total);
        }
        let mut map = self.stripe(ip).lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limits.max_per_client {
            drop(map);
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::PerClient);
        }
        *n += 1;
        Ok(ConnPermit {
            counter: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// One counted connection; it stops counting when dropped.
pub struct ConnPermit {
    counter: Arc<ConnCounter>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let c = &self.counter;
        let mut map = c.stripe(self.ip).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        drop(map);
        c.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// True at most once every ten seconds: for warnings a flood would repeat.
#[derive(Default)]
pub struct Throttled(AtomicU64);

impl Throttled {
    pub const fn new() -> Throttled {
        Throttled(AtomicU64::new(0))
    }

    pub fn now(&self) -> bool {
        static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
        let t = EPOCH.elapsed().as_secs() + 10;
        let last = self.0.load(Ordering::Relaxed);
        (last == 0 || t >= last + 10)
            && self
                .0
                .compare_exchange(last, t, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// When a silent connection may be closed, asked again each time it is due.
pub enum Idle {
    /// Close it if nothing arrives by then.
    CloseAt(Instant),
    /// It is busy (calls in flight, files open): ask again at this instant.
    AskAt(Instant),
}

/// Run `read` until it finishes, or until `idle` says the connection has
/// been silent too long: then `None` (and the read is dropped).
pub async fn read_or_idle<F: Future>(read: F, mut idle: impl FnMut() -> Idle) -> Option<F::Output> {
    futures::pin_mut!(read);
    loop {
        let (at, close) = match idle() {
            Idle::CloseAt(at) => (at, true),
            Idle::AskAt(at) => (at, false),
        };
        let wait = at.saturating_duration_since(Instant::now());
        if close && wait.is_zero() {
            return None;
        }
        let timer = compio::time::sleep(wait.max(Duration::from_millis(1)));
        futures::pin_mut!(timer);
        match futures::future::select(read.as_mut(), timer).await {
            futures::future::Either::Left((out, _)) => return Some(out),
            futures::future::Either::Right(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_limited_in_all_and_per_client() {
        let c = ConnCounter::new(
            "test",
            ConnLimits {
                max_connections: 3,
                max_per_client: 2,
            },
        );
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let d: IpAddr = "::1".parse().unwrap();
        let a1 = c.admit(a).unwrap();
        let a2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).err(), Some(Refused::PerClient));
        // Another address still gets in, up to the total.
        let b1 = c.admit(b).unwrap();
        assert_eq!(c.admit(d).err(), Some(Refused::Total));
        assert_eq!(c.open(), 3);
        // A closed connection frees its place, for its own address too.
        drop(a1);
        let a3 = c.admit(a).unwrap();
        assert_eq!(c.admit(b).err(), Some(Refused::Total));
        drop((a2, a3, b1));
        assert_eq!(c.open(), 0);
        assert!(c.per_client.iter().all(|m| m.lock().unwrap().is_empty()));
    }

    #[test]
    fn a_silent_connection_is_closed_and_a_busy_one_is_asked_again() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let never = futures::future::pending::<()>();
            let now = Instant::now();
            assert_eq!(read_or_idle(never, || Idle::CloseAt(now)).await, None);
            // Busy at first, then silent: closed on the second ask.
            let mut asked = 0;
            let never = futures::future::pending::<()>();
            let out = read_or_idle(never, || {
                asked += 1;
                if asked == 1 {
                    Idle::AskAt(Instant::now())
                } else {
                    Idle::CloseAt(Instant::now())
                }
            })
            .await;
            assert_eq!((out, asked), (None, 2));
            // What arrives in time is returned.
            let ready = async { 7 };
            let far = Instant::now() + Duration::from_secs(3600);
            assert_eq!(read_or_idle(ready, || Idle::CloseAt(far)).await, Some(7));
        });
    }
}
