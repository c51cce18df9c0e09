//! Failed and concurrent logons per client address: a growing delay after
//! each failure, a lockout after too many in a row, and a bound on logons
//! in progress.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A logon in progress, counted by its throttle until dropped.
pub struct LogonAttempt {
    throttle: Arc<Mutex<LogonThrottle>>,
    client: IpAddr,
}

impl LogonAttempt {
    /// Start a logon from `client`, or say why not.
    pub fn begin(
        throttle: &Arc<Mutex<LogonThrottle>>,
        client: IpAddr,
        now: Instant,
    ) -> Result<LogonAttempt, NotNow> {
        let mut t = throttle.lock().unwrap_or_else(|e| e.into_inner());
        t.begin(client, now)?;
        Ok(LogonAttempt {
            throttle: throttle.clone(),
            client,
        })
    }
}

impl Drop for LogonAttempt {
    fn drop(&mut self) {
        let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        t.end(self.client);
    }
}

/// Slows down password guessing: after consecutive failed logons from one
/// client address, the next attempt is delayed exponentially (base, 2×base,
/// 4×base, … capped). A success resets the address. Time is passed in, so
/// the throttle is deterministic to test. After `lockout_after` failures
/// in a row the address is refused outright for `lockout_for`; and only so
/// many logons may be in progress at once, from one address and in all.
#[derive(Debug)]
pub struct LogonThrottle {
    base: Duration,
    cap: Duration,
    limits: LogonLimits,
    /// Logons in progress per address, and in all.
    in_progress: HashMap<IpAddr, usize>,
    in_progress_total: usize,
    /// Entries whose last failure is older than this are forgotten.
    forget_after: Duration,
    max_entries: usize,
    clients: HashMap<IpAddr, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// Refused until then.
    locked_until: Option<Instant>,
}

/// Bounds on logons (SMB sessions in setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogonLimits {
    /// Logons in progress at once from one client address.
    pub per_client: usize,
    /// Logons in progress at once, from all clients.
    pub total: usize,
    /// Sessions in setup at once on one connection.
    pub per_connection: usize,
    /// Failed logons in a row from one address that lock it out; 0: never.
    pub lockout_after: u32,
    /// How long a locked-out address is refused.
    pub lockout_for: Duration,
}

impl Default for LogonLimits {
    fn default() -> Self {
        LogonLimits {
            per_client: 32,
            total: 1024,
            per_connection: 8,
            lockout_after: 20,
            lockout_for: Duration::from_secs(5 * 60),
        }
    }
}

/// Why a logon may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNow {
    /// The address failed too often: refused until its lockout ends.
    LockedOut,
    /// Too many logons in progress, from the address or in all.
    Busy,
}

impl Default for LogonThrottle {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(4))
    }
}

impl LogonThrottle {
    /// A throttle whose first delay is `base` and whose delays never exceed
    /// `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            limits: LogonLimits::default(),
            in_progress: HashMap::new(),
            in_progress_total: 0,
            forget_after: Duration::from_secs(15 * 60),
            max_entries: 65_536,
            clients: HashMap::new(),
        }
    }

    pub fn set_limits(&mut self, limits: LogonLimits) {
        self.forget_after = self.forget_after.max(limits.lockout_for);
        self.limits = limits;
    }

    pub fn limits(&self) -> LogonLimits {
        self.limits
    }

    /// Whether `client` is locked out at `now`. A lockout that has ended
    /// forgives the failures that led to it.
    pub fn locked_out(&mut self, client: IpAddr, now: Instant) -> bool {
        let Some(f) = self.clients.get_mut(&client) else {
            return false;
        };
        match f.locked_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.clients.remove(&client);
                false
            }
            None => false,
        }
    }

    /// Start a logon from `client` (counted until [`LogonThrottle::end`]),
    /// or say why not.
    pub fn begin(&mut self, client: IpAddr, now: Instant) -> Result<(), NotNow> {
        if self.locked_out(client, now) {
            return Err(NotNow::LockedOut);
        }
        let n = self.in_progress.get(&client).copied().unwrap_or(0);
        if n >= self.limits.per_client || self.in_progress_total >= self.limits.total {
            return Err(NotNow::Busy);
        }
        self.in_progress.insert(client, n + 1);
        self.in_progress_total += 1;
        Ok(())
    }

    /// A logon [`LogonThrottle::begin`] started has ended, however.
    pub fn end(&mut self, client: IpAddr) {
        if let Some(n) = self.in_progress.get_mut(&client) {
            *n -= 1;
            self.in_progress_total -= 1;
            if *n == 0 {
                self.in_progress.remove(&client);
            }
        }
    }

    /// The full delay owed after `count` consecutive failures.
    fn penalty(&self, count: u32) -> Duration {
        if count == 0 {
            return Duration::ZERO;
        }
        let shift = (count - 1).min(31);
        self.base.saturating_mul(1u32 << shift).min(self.cap)
    }

    /// How long `client` must still wait at `now` before its next logon is
    /// processed (zero when it may go ahead).
    pub fn delay(&self, client: IpAddr, now: Instant) -> Duration {
        match self.clients.get(&client) {
            Some(f) => (f.last + self.penalty(f.count)).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// Records a failed logon from `client` at `now`; true when it locks
    /// the address out.
    pub fn record_failure(&mut self, client: IpAddr, now: Instant) -> bool {
        if self.clients.len() >= self.max_entries && !self.clients.contains_key(&client) {
            self.prune(now);
        }
        let e = self.clients.entry(client).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        e.count = e.count.saturating_add(1);
        e.last = now;
        let lock = self.limits.lockout_after;
        if lock > 0 && e.count >= lock && e.locked_until.is_none() {
            e.locked_until = Some(now + self.limits.lockout_for);
            return true;
        }
        false
    }

    /// Records a successful logon from `client`: its failures are forgiven.
    pub fn record_success(&mut self, client: IpAddr) {
        self.clients.remove(&client);
    }

    /// Drops clients whose last failure is long past; if the table is still
    /// full, the oldest entries go.
    pub fn prune(&mut self, now: Instant) {
        let forget = self.forget_after;
        self.clients
            .retain(|_, f| now.saturating_duration_since(f.last) < forget);
        if self.clients.len() >= self.max_entries {
            let mut by_age: Vec<_> = self.clients.iter().map(|(ip, f)| (f.last, *ip)).collect();
            by_age.sort_unstable();
            let excess = self.clients.len() + 1 - self.max_entries;
            for (_, ip) in by_age.into_iter().take(excess) {
                self.clients.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_backs_off_and_resets() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut t = LogonThrottle::new(Duration::from_millis(100), Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(t.delay(ip, t0), Duration::ZERO);
        t.record_failure(ip, t0);
        assert_eq!(t.delay(ip, t0), Duration::from_millis(100));
        assert_eq!(
            t.delay(ip, t0 + Duration::from_millis(40)),
            Duration::from_millis(60)
        );
        t.record_failure(ip, t0);
        assert_eq!(t.delay(ip, t0), Duration::from_millis(200));
        for _ in 0..40 {
            t.record_failure(ip, t0);
        }
        assert_eq!(t.delay(ip, t0), Duration::from_secs(2));
        assert_eq!(t.delay(ip, t0 + Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(t.delay(other, t0), Duration::ZERO);
        t.record_success(ip);
        assert_eq!(t.delay(ip, t0), Duration::ZERO);
    }

    #[test]
    fn throttle_forgets_old_clients() {
        let mut t = LogonThrottle::default();
        let t0 = Instant::now();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        t.record_failure(ip, t0);
        t.prune(t0 + Duration::from_secs(3600));
        assert!(t.clients.is_empty());
    }

    #[test]
    fn an_address_is_locked_out_after_repeated_failures_for_a_while() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut t = LogonThrottle::default();
        t.set_limits(LogonLimits {
            lockout_after: 3,
            lockout_for: Duration::from_secs(60),
            ..LogonLimits::default()
        });
        let t0 = Instant::now();
        assert!(!t.record_failure(ip, t0));
        assert!(!t.record_failure(ip, t0));
        assert_eq!(t.begin(ip, t0), Ok(()));
        t.end(ip);
        assert!(t.record_failure(ip, t0));
        assert_eq!(t.begin(ip, t0 + Duration::from_secs(59)), Err(NotNow::LockedOut));
        assert_eq!(t.begin(other, t0), Ok(()));
        t.end(other);
        // Once it ends, the failures before it are forgiven.
        assert_eq!(t.begin(ip, t0 + Duration::from_secs(60)), Ok(()));
        t.end(ip);
        assert!(!t.record_failure(ip, t0 + Duration::from_secs(61)));
        assert!(!t.record_failure(ip, t0 + Duration::from_secs(62)));
        assert!(t.record_failure(ip, t0 + Duration::from_secs(62)));
        // Pruning keeps a lockout as long as it lasts.
        t.prune(t0 + Duration::from_secs(62 + 59));
        assert!(t.locked_out(ip, t0 + Duration::from_secs(62 + 59)));
    }

    #[test]
    fn logons_in_progress_are_bounded_per_address_and_in_all() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let c: IpAddr = "192.0.2.9".parse().unwrap();
        let mut t = LogonThrottle::default();
        t.set_limits(LogonLimits {
            per_client: 2,
            total: 3,
            ..LogonLimits::default()
        });
        let now = Instant::now();
        assert_eq!(t.begin(a, now), Ok(()));
        assert_eq!(t.begin(a, now), Ok(()));
        assert_eq!(t.begin(a, now), Err(NotNow::Busy));
        assert_eq!(t.begin(b, now), Ok(()));
        assert_eq!(t.begin(c, now), Err(NotNow::Busy));
        t.end(a);
        assert_eq!(t.begin(c, now), Ok(()));
        t.end(a);
        t.end(b);
        t.end(c);
        assert!(t.in_progress.is_empty());
        assert_eq!(t.in_progress_total, 0);
    }
}
