//! The credit window (MS-SMB2 3.3.1.1, 3.3.5.2.3): which message ids a
//! client may use, what each request is charged, what each response
//! grants. Plain state: the connection charges and grants through it.

use std::collections::BTreeSet;

use smb_proto::crypto::Dialect;

/// Most credits a client may hold at once.
const MAX_CREDITS: u64 = 8192;

/// The sequence window: message ids the client may use.
#[derive(Debug)]
pub(crate) struct Credits {
    /// Every id below `low` is used.
    low: u64,
    /// Ids from `high` on are not granted yet.
    high: u64,
    used: BTreeSet<u64>,
}

impl Credits {
    /// A new connection's window: message id 0 only.
    pub fn new() -> Credits {
        Credits {
            low: 0,
            high: 1,
            used: BTreeSet::new(),
        }
    }

    /// Use the `charge` ids from `mid` on; false when any of them is
    /// outside the window or used already (the connection is dropped).
    pub fn admit(&mut self, mid: u64, charge: u64) -> bool {
        let Some(end) = mid.checked_add(charge) else {
            return false;
        };
        if mid < self.low || end > self.high || (mid..end).any(|m| self.used.contains(&m)) {
            return false;
        }
        self.used.extend(mid..end);
        while self.used.remove(&self.low) {
            self.low += 1;
        }
        true
    }

    /// Grant up to `requested` more (at least one, none past the most a
    /// client may hold, but always one when it holds none): how many.
    pub fn grant(&mut self, requested: u16) -> u16 {
        let outstanding = self.high - self.low - self.used.len() as u64;
        let room = MAX_CREDITS.saturating_sub(outstanding);
        let mut g = u64::from(requested.max(1)).min(room);
        if outstanding == 0 && g == 0 {
            g = 1;
        }
        self.high += g;
        g as u16
    }
}

/// The ids a request uses: its CreditCharge (at least one) from 2.1 on,
/// one before that or before NEGOTIATE settled a dialect.
pub(crate) fn charge(dialect: Option<Dialect>, credit_charge: u16) -> u64 {
    match dialect {
        Some(d) if d >= Dialect::Smb210 => u64::from(credit_charge.max(1)),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_used_once_inside_the_granted_window() {
        let mut c = Credits::new();
        assert!(!c.admit(1, 1), "only id 0 is granted at first");
        assert!(c.admit(0, 1));
        assert!(!c.admit(0, 1), "an id is used once");
        assert_eq!(c.grant(10), 10);
        // Out of order, and several at once for a large request.
        assert!(c.admit(5, 3));
        assert!(c.admit(1, 4));
        assert!(!c.admit(4, 2), "overlaps ids used already");
        assert!(c.admit(8, 3));
        assert!(!c.admit(11, 1), "past the window");
        assert!(!c.admit(u64::MAX, 2), "wraps around");
        assert_eq!((c.low, c.high, c.used.len()), (11, 11, 0));
    }

    #[test]
    fn grants_are_bounded_and_never_leave_a_client_without_credit() {
        let mut c = Credits::new();
        // A request for none still gets one.
        assert_eq!(c.grant(0), 1);
        assert_eq!(c.grant(u16::MAX), (MAX_CREDITS - 2) as u16);
        assert_eq!(c.grant(5), 0, "a client holding the most gets no more");
        assert!(c.admit(0, MAX_CREDITS));
        assert_eq!(c.grant(0), 1, "one holding none gets one");
    }

    #[test]
    fn the_charge_counts_from_smb_2_1_on() {
        assert_eq!(charge(None, 4), 1);
        assert_eq!(charge(Some(Dialect::Smb202), 4), 1);
        assert_eq!(charge(Some(Dialect::Smb210), 4), 4);
        assert_eq!(charge(Some(Dialect::Smb311), 0), 1);
    }
}
