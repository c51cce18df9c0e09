use super::*;

const C1: ClientGuid = [1; 16];
const C2: ClientGuid = [2; 16];
const K1: LeaseKey = [0x11; 16];
const K2: LeaseKey = [0x22; 16];

const RW_ALL: u32 = access::FILE_READ_DATA | access::FILE_WRITE_DATA;
const SHARE_ALL: u32 = share_access::READ | share_access::WRITE | share_access::DELETE;

fn t0() -> Instant {
    Instant::now()
}

fn fresh() -> (FileLeases, Instant) {
    (FileLeases::default(), t0())
}

fn lease_req(open: OpenId, client: ClientGuid, key: LeaseKey, state: LeaseState) -> OpenRequest {
    OpenRequest {
        open,
        caching: Caching::Lease(LeaseRequest {
            client,
            key,
            state,
            v2: None,
        }),
        access: RW_ALL,
        share: SHARE_ALL,
        disposition: disposition::OPEN,
        directory: false,
    }
}

fn oplock_req(open: OpenId, level: OplockLevel) -> OpenRequest {
    OpenRequest {
        open,
        caching: Caching::Oplock(level),
        access: RW_ALL,
        share: SHARE_ALL,
        disposition: disposition::OPEN,
        directory: false,
    }
}

fn granted_state(a: &Actions<OpenOutcome>) -> LeaseState {
    match &a.result {
        OpenOutcome::Granted(Granted::Lease { state, .. }) => *state,
        other => panic!("not a lease grant: {other:?}"),
    }
}

fn granted_level(a: &Actions<OpenOutcome>) -> OplockLevel {
    match &a.result {
        OpenOutcome::Granted(Granted::Oplock(l)) => *l,
        other => panic!("not an oplock grant: {other:?}"),
    }
}

fn list(ids: &BTreeSet<BreakId>) -> Vec<BreakId> {
    ids.iter().copied().collect()
}

fn waits(a: &Actions<OpenOutcome>) -> BTreeSet<BreakId> {
    match &a.result {
        OpenOutcome::Wait(w) => w.clone(),
        other => panic!("not waiting: {other:?}"),
    }
}

/// The single lease break in `a`: (key, from, to, ack required).
fn lease_break(a: &[Break]) -> (LeaseKey, LeaseState, LeaseState, bool) {
    match a {
        [Break {
            to: BreakTo::Lease { key, from, to, .. },
            ack_required,
            ..
        }] => (*key, *from, *to, *ack_required),
        other => panic!("not one lease break: {other:?}"),
    }
}

#[test]
fn same_key_shares_one_lease_without_breaks() {
    let (mut f, now) = fresh();
    let a = f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    assert_eq!(granted_state(&a), LeaseState::RWH);
    let b = f.open(&lease_req(2, C1, K1, LeaseState::RWH), now);
    assert_eq!(granted_state(&b), LeaseState::RWH);
    assert!(b.breaks.is_empty());
    // A write through one of the lease's opens breaks nothing.
    let w = f.write(By::Open(2), now);
    assert_eq!(w.result, Proceed::Now);
    assert!(w.breaks.is_empty());
    // Closing one open keeps the lease; the last one ends it.
    assert_eq!(f.close(1).result, None);
    assert_eq!(f.lease_state(C1, K1), Some(LeaseState::RWH));
    assert_eq!(f.close(2).result, Some((C1, K1)));
    assert!(f.is_idle());
}

#[test]
fn same_key_from_another_client_is_another_lease() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let b = f.open(&lease_req(2, C2, K1, LeaseState::RWH), now);
    assert_eq!(
        lease_break(&b.breaks),
        (K1, LeaseState::RWH, LeaseState::RH, true)
    );
}

#[test]
fn second_key_breaks_write_caching_and_waits_for_the_ack() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let b = f.open(&lease_req(2, C2, K2, LeaseState::RWH), now);
    let w = waits(&b);
    assert_eq!(
        lease_break(&b.breaks),
        (K1, LeaseState::RWH, LeaseState::RH, true)
    );
    let BreakTo::Lease { opens, .. } = &b.breaks[0].to else {
        unreachable!()
    };
    assert_eq!(opens, &vec![1]);
    assert_eq!(w, BTreeSet::from([b.breaks[0].id]));
    // Asked again before the ack: still waiting on the same break, no new notice.
    let again = f.open(&lease_req(2, C2, K2, LeaseState::RWH), now);
    assert_eq!(waits(&again), w);
    assert!(again.breaks.is_empty());

    let ack = f.ack_lease(C1, K1, LeaseState::RH, now);
    assert_eq!(ack.result, Ok(LeaseState::RH));
    assert_eq!(ack.resolved, list(&w));
    // Read and handle caching are shared; write is not.
    let c = f.open(&lease_req(2, C2, K2, LeaseState::RWH), now);
    assert_eq!(granted_state(&c), LeaseState::RH);
    assert!(c.breaks.is_empty());
}

#[test]
fn write_caching_only_when_alone() {
    let (mut f, now) = fresh();
    let mut plain = oplock_req(1, OplockLevel::None);
    plain.access = access::FILE_READ_DATA;
    assert_eq!(granted_level(&f.open(&plain, now)), OplockLevel::None);
    let a = f.open(&lease_req(2, C1, K1, LeaseState::RWH), now);
    assert_eq!(granted_state(&a), LeaseState::RH);
    f.close(1);
    // Upgrade to a superset once alone.
    let b = f.open(&lease_req(3, C1, K1, LeaseState::RWH), now);
    assert_eq!(granted_state(&b), LeaseState::RWH);
    // A request for less does not downgrade.
    let c = f.open(&lease_req(4, C1, K1, LeaseState::R), now);
    assert_eq!(granted_state(&c), LeaseState::RWH);
}

#[test]
fn illegal_states_and_directories() {
    let (mut f, now) = fresh();
    let a = f.open(&lease_req(1, C1, K1, LeaseState::W.union(LeaseState::H)), now);
    assert_eq!(granted_state(&a), LeaseState::NONE);

    let mut d = FileLeases::default();
    let mut r = lease_req(1, C1, K1, LeaseState::RWH);
    r.directory = true;
    assert_eq!(granted_state(&d.open(&r, now)), LeaseState::NONE);
    let mut o = oplock_req(2, OplockLevel::Batch);
    o.directory = true;
    assert_eq!(granted_level(&d.open(&o, now)), OplockLevel::None);
}

#[test]
fn sharing_violation_breaks_handle_caching_first() {
    let (mut f, now) = fresh();
    let mut first = lease_req(1, C1, K1, LeaseState::RH);
    first.share = share_access::READ;
    f.open(&first, now);
    let mut second = lease_req(2, C2, K2, LeaseState::RH);
    second.access = access::FILE_WRITE_DATA;
    let a = f.open(&second, now);
    let w = waits(&a);
    assert_eq!(lease_break(&a.breaks), (K1, LeaseState::RH, LeaseState::R, true));

    // The client keeps its handle open: the violation is reported after the ack.
    let ack = f.ack_lease(C1, K1, LeaseState::R, now);
    assert_eq!(ack.resolved, list(&w));
    let b = f.open(&second, now);
    assert_eq!(b.result, OpenOutcome::SharingViolation);
    assert_eq!(b.result.status(), Some(NtStatus::SHARING_VIOLATION));
    assert!(b.breaks.is_empty());

    // Had it closed the handle, the open would have gone through.
    f.close(1);
    assert_eq!(granted_state(&f.open(&second, now)), LeaseState::RH);
}

#[test]
fn sharing_violation_without_handle_caching_fails_at_once() {
    let (mut f, now) = fresh();
    let mut first = oplock_req(1, OplockLevel::II);
    first.share = 0;
    f.open(&first, now);
    let a = f.open(&lease_req(2, C1, K1, LeaseState::RH), now);
    assert_eq!(a.result, OpenOutcome::SharingViolation);
    assert!(a.breaks.is_empty());
    // Opens of one lease are bound by share modes too, without breaks.
    let mut g = FileLeases::default();
    let mut x = lease_req(1, C1, K1, LeaseState::RWH);
    x.share = 0;
    g.open(&x, now);
    let b = g.open(&lease_req(2, C1, K1, LeaseState::RWH), now);
    assert_eq!(b.result, OpenOutcome::SharingViolation);
    assert!(b.breaks.is_empty());
}

#[test]
fn write_breaks_read_caching_of_others_without_ack() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::R), now);
    f.open(&lease_req(2, C2, K2, LeaseState::R), now);
    let w = f.write(By::Open(2), now);
    assert_eq!(w.result, Proceed::Now);
    assert_eq!(
        lease_break(&w.breaks),
        (K1, LeaseState::R, LeaseState::NONE, false)
    );
    assert_eq!(f.lease_state(C1, K1), Some(LeaseState::NONE));
    assert_eq!(f.lease_state(C2, K2), Some(LeaseState::R));
    assert_eq!(f.next_deadline(), None);
}

#[test]
fn write_from_elsewhere_waits_for_write_caching_to_be_given_up() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let w = f.write(By::Other, now);
    assert_eq!(
        lease_break(&w.breaks),
        (K1, LeaseState::RWH, LeaseState::NONE, true)
    );
    let Proceed::WaitFor(ids) = &w.result else {
        panic!("{w:?}")
    };
    assert_eq!(f.next_deadline(), Some(now + DEFAULT_BREAK_TIMEOUT));
    let ack = f.ack_lease(C1, K1, LeaseState::NONE, now);
    assert_eq!(ack.resolved, list(ids));
    assert_eq!(f.write(By::Other, now).result, Proceed::Now);
}

#[test]
fn write_does_not_wait_for_handle_only_breaks() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RH), now);
    let w = f.write(By::Other, now);
    assert_eq!(w.result, Proceed::Now);
    assert_eq!(
        lease_break(&w.breaks),
        (K1, LeaseState::RH, LeaseState::NONE, true)
    );
}

#[test]
fn level_two_breaks_to_none_without_ack() {
    let (mut f, now) = fresh();
    assert_eq!(
        granted_level(&f.open(&oplock_req(1, OplockLevel::II), now)),
        OplockLevel::II
    );
    assert_eq!(
        granted_level(&f.open(&oplock_req(2, OplockLevel::II), now)),
        OplockLevel::II
    );
    let w = f.write(By::Open(1), now);
    assert_eq!(w.result, Proceed::Now);
    assert_eq!(
        w.breaks,
        vec![Break {
            id: w.breaks[0].id,
            to: BreakTo::Oplock {
                open: 2,
                from: OplockLevel::II,
                to: OplockLevel::None
            },
            ack_required: false
        }]
    );
    assert_eq!(f.held_by(2), Some(Granted::Oplock(OplockLevel::None)));
    assert_eq!(f.held_by(1), Some(Granted::Oplock(OplockLevel::II)));
    // An ack for a break that needed none is refused.
    assert_eq!(
        f.ack_oplock(2, oplock_level::NONE, now).result,
        Err(AckError::NotBreaking)
    );
}

#[test]
fn batch_breaks_to_two_on_a_second_open_and_needs_an_ack() {
    let (mut f, now) = fresh();
    assert_eq!(
        granted_level(&f.open(&oplock_req(1, OplockLevel::Batch), now)),
        OplockLevel::Batch
    );
    let a = f.open(&oplock_req(2, OplockLevel::Batch), now);
    let w = waits(&a);
    assert_eq!(
        a.breaks[0].to,
        BreakTo::Oplock {
            open: 1,
            from: OplockLevel::Batch,
            to: OplockLevel::II
        }
    );
    assert!(a.breaks[0].ack_required);
    let ack = f.ack_oplock(1, oplock_level::II, now);
    assert_eq!(ack.result, Ok(OplockLevel::II));
    assert_eq!(ack.resolved, list(&w));
    // Not alone any more: level II at most.
    assert_eq!(
        granted_level(&f.open(&oplock_req(2, OplockLevel::Batch), now)),
        OplockLevel::II
    );
}

#[test]
fn exclusive_breaks_to_none_on_overwrite() {
    let (mut f, now) = fresh();
    f.open(&oplock_req(1, OplockLevel::Exclusive), now);
    let mut o = oplock_req(2, OplockLevel::None);
    o.disposition = disposition::OVERWRITE_IF;
    let a = f.open(&o, now);
    waits(&a);
    assert_eq!(
        a.breaks[0].to,
        BreakTo::Oplock {
            open: 1,
            from: OplockLevel::Exclusive,
            to: OplockLevel::None
        }
    );
    // Acking with a level above the one broken to is a protocol error, and
    // the oplock is gone.
    let ack = f.ack_oplock(1, oplock_level::II, now);
    assert_eq!(ack.result, Err(AckError::BadOplockLevel));
    assert_eq!(AckError::BadOplockLevel.status(), NtStatus(0xC000_00E3));
    assert_eq!(ack.resolved.len(), 1);
    assert_eq!(f.held_by(1), Some(Granted::Oplock(OplockLevel::None)));
    assert_eq!(granted_level(&f.open(&o, now)), OplockLevel::None);
}

#[test]
fn oplock_ack_errors() {
    let (mut f, now) = fresh();
    assert_eq!(f.ack_oplock(9, 0, now).result, Err(AckError::FileClosed));
    f.open(&oplock_req(1, OplockLevel::Batch), now);
    assert_eq!(f.ack_oplock(1, 0, now).result, Err(AckError::NotBreaking));
    f.write(By::Other, now);
    let a = f.ack_oplock(1, oplock_level::LEASE, now);
    assert_eq!(a.result, Err(AckError::LeaseLevelInOplockAck));
    assert_eq!(a.result.unwrap_err().status(), NtStatus::INVALID_PARAMETER);
    assert_eq!(a.resolved.len(), 1);
    assert_eq!(f.next_deadline(), None);
}

#[test]
fn lease_ack_errors() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let e = f.ack_lease(C1, K2, LeaseState::NONE, now).result.unwrap_err();
    assert_eq!(e.status(), NtStatus::OBJECT_NAME_NOT_FOUND);
    let e = f.ack_lease(C2, K1, LeaseState::NONE, now).result.unwrap_err();
    assert_eq!(e, AckError::UnknownLease);
    let e = f.ack_lease(C1, K1, LeaseState::R, now).result.unwrap_err();
    assert_eq!(
        (e, e.status()),
        (AckError::LeaseNotBreaking, NtStatus::UNSUCCESSFUL)
    );
    f.open(&lease_req(2, C2, K2, LeaseState::R), now);
    // Broken to RH: acking RWH is refused and the break stays in flight.
    let e = f.ack_lease(C1, K1, LeaseState::RWH, now).result.unwrap_err();
    assert_eq!(
        (e, e.status()),
        (AckError::StateNotSubset, NtStatus::REQUEST_NOT_ACCEPTED)
    );
    assert!(f.next_deadline().is_some());
    // Less than broken to is fine.
    assert_eq!(f.ack_lease(C1, K1, LeaseState::R, now).result, Ok(LeaseState::R));
}

#[test]
fn same_key_during_a_break_gets_current_state_with_flag() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    waits(&f.open(&lease_req(2, C2, K2, LeaseState::RH), now));
    let a = f.open(&lease_req(3, C1, K1, LeaseState::RWH), now);
    let OpenOutcome::Granted(Granted::Lease { state, flags, .. }) = a.result else {
        panic!("{a:?}")
    };
    assert_eq!(state, LeaseState::RWH);
    assert_eq!(
        flags & lease_bits::FLAG_BREAK_IN_PROGRESS,
        lease_bits::FLAG_BREAK_IN_PROGRESS
    );
}

#[test]
fn v2_epoch_moves_with_every_state_change() {
    let (mut f, now) = fresh();
    let parent = [9; 16];
    let mut r = lease_req(1, C1, K1, LeaseState::RH);
    if let Caching::Lease(l) = &mut r.caching {
        l.v2 = Some(LeaseV2 {
            parent: Some(parent),
            epoch: 0,
        });
    }
    let a = f.open(&r, now);
    let OpenOutcome::Granted(Granted::Lease {
        epoch,
        flags,
        parent: p,
        ..
    }) = a.result
    else {
        panic!("{a:?}")
    };
    assert_eq!((epoch, p), (1, Some(parent)));
    assert_eq!(flags, lease_bits::FLAG_PARENT_LEASE_KEY_SET);
    // Upgrade to RWH: epoch 2.
    if let Caching::Lease(l) = &mut r.caching {
        l.state = LeaseState::RWH;
    }
    r.open = 2;
    let b = f.open(&r, now);
    assert!(
        matches!(b.result, OpenOutcome::Granted(Granted::Lease { epoch: 2, .. })),
        "{b:?}"
    );
    // A break announces epoch 3.
    let w = f.write(By::Other, now);
    assert!(
        matches!(
            &w.breaks[..],
            [Break {
                to: BreakTo::Lease { epoch: 3, .. },
                ..
            }]
        ),
        "{w:?}"
    );
}

#[test]
fn a_lower_break_asked_during_a_break_follows_the_ack() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let a = f.open(&lease_req(2, C2, K2, LeaseState::R), now);
    let first = waits(&a);
    // A write from elsewhere meanwhile waits on the same break.
    let w = f.write(By::Other, now);
    assert_eq!(w.result, Proceed::WaitFor(first.clone()));
    assert!(w.breaks.is_empty());
    // The ack to RH immediately starts RH -> NONE.
    let ack = f.ack_lease(C1, K1, LeaseState::RH, now);
    assert_eq!(ack.resolved, list(&first));
    assert_eq!(
        lease_break(&ack.breaks),
        (K1, LeaseState::RH, LeaseState::NONE, true)
    );
}

#[test]
fn timeout_ends_a_break_as_none() {
    let mut f = FileLeases::new(Duration::from_secs(5));
    let now = t0();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let a = f.open(&lease_req(2, C2, K2, LeaseState::RWH), now);
    let w = waits(&a);
    assert!(f.timeout(now + Duration::from_secs(4)).resolved.is_empty());
    let t = f.timeout(now + Duration::from_secs(5));
    assert_eq!(t.resolved, list(&w));
    assert_eq!(f.lease_state(C1, K1), Some(LeaseState::NONE));
    assert_eq!(f.next_deadline(), None);
    assert_eq!(
        granted_state(&f.open(&lease_req(2, C2, K2, LeaseState::RWH), now)),
        LeaseState::RH
    );
}

#[test]
fn closing_the_holder_resolves_its_break() {
    let (mut f, now) = fresh();
    f.open(&oplock_req(1, OplockLevel::Batch), now);
    let w = waits(&f.open(&oplock_req(2, OplockLevel::Batch), now));
    let c = f.close(1);
    assert_eq!(c.resolved, list(&w));
    assert_eq!(
        granted_level(&f.open(&oplock_req(2, OplockLevel::Batch), now)),
        OplockLevel::Batch
    );
}

#[test]
fn rename_breaks_handle_caching_and_waits() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RH), now);
    f.open(&lease_req(2, C2, K2, LeaseState::RH), now);
    let r = f.rename_or_delete(By::Open(2), now);
    assert_eq!(lease_break(&r.breaks), (K1, LeaseState::RH, LeaseState::R, true));
    assert!(matches!(r.result, Proceed::WaitFor(_)));
    assert_eq!(f.lease_state(C2, K2), Some(LeaseState::RH));
}

#[test]
fn duplicate_open_is_refused() {
    let (mut f, now) = fresh();
    f.open(&oplock_req(1, OplockLevel::II), now);
    assert_eq!(
        f.open(&oplock_req(1, OplockLevel::II), now).result,
        OpenOutcome::AlreadyOpen
    );
}

#[test]
fn breaks_become_wire_notifications() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let w = f.write(By::Other, now);
    assert_eq!(
        w.breaks[0].notification(|_| None),
        Some(Notification::Lease(LeaseBreakNotification {
            new_epoch: 0,
            flags: LEASE_BREAK_ACK_REQUIRED,
            lease_key: K1,
            current_lease_state: 7,
            new_lease_state: 0,
        }))
    );
    let mut g = FileLeases::default();
    g.open(&oplock_req(1, OplockLevel::II), now);
    let w = g.write(By::Other, now);
    let id = FileId {
        persistent: 5,
        volatile: 6,
    };
    let lookup = |o: OpenId| (o == 1).then_some(id);
    assert_eq!(
        w.breaks[0].notification(lookup),
        Some(Notification::Oplock(OplockBreak {
            oplock_level: oplock_level::NONE,
            file_id: id
        }))
    );
    // The open is gone: nothing to send.
    assert_eq!(w.breaks[0].notification(|_| None), None);
}

#[test]
fn batch_oplock_gives_up_handle_caching_on_a_sharing_violation() {
    let (mut f, now) = fresh();
    let mut first = oplock_req(1, OplockLevel::Batch);
    first.share = 0;
    f.open(&first, now);
    let a = f.open(&oplock_req(2, OplockLevel::II), now);
    let w = waits(&a);
    assert_eq!(
        a.breaks[0].to,
        BreakTo::Oplock {
            open: 1,
            from: OplockLevel::Batch,
            to: OplockLevel::II
        }
    );
    let ack = f.ack_oplock(1, oplock_level::II, now);
    assert_eq!(ack.resolved, list(&w));
    assert_eq!(
        f.open(&oplock_req(2, OplockLevel::II), now).result,
        OpenOutcome::SharingViolation
    );
}

#[test]
fn an_attribute_only_open_breaks_nothing_but_blocks_write_caching() {
    let (mut f, now) = fresh();
    f.open(&lease_req(1, C1, K1, LeaseState::RWH), now);
    let mut stat = lease_req(2, C2, K2, LeaseState::RWH);
    stat.access = access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE;
    stat.share = 0;
    let a = f.open(&stat, now);
    assert!(a.breaks.is_empty());
    // No read caching beside someone else's write caching.
    assert_eq!(granted_state(&a), LeaseState::NONE);
    assert_eq!(f.lease_state(C1, K1), Some(LeaseState::RWH));
    // Nor does it break a batch oplock.
    let (mut g, _) = fresh();
    g.open(&oplock_req(1, OplockLevel::Batch), now);
    let mut stat_oplock = oplock_req(2, OplockLevel::II);
    stat_oplock.access = stat.access;
    let b = g.open(&stat_oplock, now);
    assert!(b.breaks.is_empty());
    assert_eq!(granted_level(&b), OplockLevel::None);
    assert_eq!(g.held_by(1), Some(Granted::Oplock(OplockLevel::Batch)));
    // It keeps a new lease from getting W.
    f.close(1);
    assert_eq!(
        granted_state(&f.open(&lease_req(3, C1, K1, LeaseState::RWH), now)),
        LeaseState::RH
    );
}

mod model {
    //! Random event sequences against the invariants.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Ev {
        Open {
            open: u8,
            /// (client, key, version 2)
            lease: Option<(u8, u8, bool)>,
            level: u8,
            state: u8,
            access: u8,
            share: u8,
            overwrite: bool,
        },
        Close(u8),
        Write(Option<u8>),
        Rename(Option<u8>),
        AckLease {
            client: u8,
            key: u8,
            state: u8,
        },
        AckOplock {
            open: u8,
            level: u8,
        },
        Advance(u8),
    }

    const ACCESS: [u32; 3] = [
        RW_ALL | access::DELETE,
        access::FILE_READ_DATA,
        access::FILE_READ_ATTRIBUTES,
    ];

    fn ev() -> impl Strategy<Value = Ev> {
        let lease = proptest::option::of((0..2u8, 0..3u8, any::<bool>()));
        prop_oneof![
            4 => (0..6u8, lease, 0..4u8, 0..8u8, 0..3u8, 0..8u8, any::<bool>()).prop_map(
                |(open, lease, level, state, access, share, overwrite)| Ev::Open {
                    open, lease, level, state, access, share, overwrite
                }
            ),
            2 => (0..6u8).prop_map(Ev::Close),
            2 => proptest::option::of(0..6u8).prop_map(Ev::Write),
            1 => proptest::option::of(0..6u8).prop_map(Ev::Rename),
            3 => (0..2u8, 0..3u8, 0..8u8).prop_map(|(client, key, state)| Ev::AckLease { client, key, state }),
            2 => (0..6u8, 0..3u8).prop_map(|(open, level)| Ev::AckOplock { open, level }),
            1 => (0..40u8).prop_map(Ev::Advance),
        ]
    }

    /// No two holders with write caching; write caching never beside
    /// anyone else's read caching.
    fn check_exclusive(f: &FileLeases) -> Result<(), TestCaseError> {
        let holding: Vec<(&HolderKey, LeaseState)> = f
            .holders
            .iter()
            .map(|(k, h)| (k, h.state))
            .filter(|(_, s)| *s != LeaseState::NONE)
            .collect();
        for (k, s) in &holding {
            if s.contains(LeaseState::W) {
                prop_assert_eq!(holding.len(), 1, "W held by {:?} beside {:?}", k, holding);
            }
        }
        Ok(())
    }

    /// What the run has seen: breaks awaiting an ack, last epoch per lease.
    #[derive(Default)]
    struct Seen {
        pending: BTreeSet<BreakId>,
        epochs: BTreeMap<(ClientGuid, LeaseKey), u16>,
    }

    impl Seen {
        fn record<T>(&mut self, f: &FileLeases, a: &Actions<T>) -> Result<(), TestCaseError> {
            for b in &a.breaks {
                if b.ack_required {
                    prop_assert!(self.pending.insert(b.id));
                }
                if let BreakTo::Lease {
                    client, key, epoch, ..
                } = &b.to
                {
                    let v2 = f
                        .holders
                        .get(&HolderKey::Lease(*client, *key))
                        .and_then(|h| h.v2)
                        .is_some();
                    let last = self.epochs.entry((*client, *key)).or_default();
                    if v2 {
                        prop_assert!(*epoch > *last, "break epoch {} after {}", epoch, last);
                    }
                    *last = *epoch;
                }
            }
            for id in &a.resolved {
                prop_assert!(self.pending.remove(id), "resolved {:?} twice or never issued", id);
            }
            Ok(())
        }

        fn waits_in_flight(&self, w: &BTreeSet<BreakId>) -> Result<(), TestCaseError> {
            for id in w {
                prop_assert!(self.pending.contains(id), "waits on {:?}, not in flight", id);
            }
            Ok(())
        }
    }

    fn by(o: Option<u8>) -> By {
        o.map(|o| By::Open(u64::from(o))).unwrap_or(By::Other)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn random_events_keep_invariants(evs in proptest::collection::vec(ev(), 1..60)) {
            let mut now = Instant::now();
            let mut f = FileLeases::new(Duration::from_secs(35));
            let mut seen = Seen::default();
            for e in evs {
                match e {
                    Ev::Open { open, lease, level, state, access, share, overwrite } => {
                        let caching = match lease {
                            Some((c, k, v2)) => Caching::Lease(LeaseRequest {
                                client: [c; 16], key: [k; 16],
                                state: LeaseState::from_wire(u32::from(state)),
                                v2: v2.then_some(LeaseV2 { parent: None, epoch: 0 }),
                            }),
                            None => Caching::Oplock([OplockLevel::None, OplockLevel::II, OplockLevel::Exclusive, OplockLevel::Batch][level as usize]),
                        };
                        let req = OpenRequest {
                            open: u64::from(open), caching, access: ACCESS[access as usize],
                            share: u32::from(share),
                            disposition: if overwrite { disposition::OVERWRITE_IF } else { disposition::OPEN },
                            directory: false,
                        };
                        let a = f.open(&req, now);
                        seen.record(&f, &a)?;
                        match &a.result {
                            OpenOutcome::Wait(w) => seen.waits_in_flight(w)?,
                            OpenOutcome::Granted(Granted::Lease { epoch, .. }) => {
                                let Some((c, k, true)) = lease else { continue };
                                let last = seen.epochs.entry(([c; 16], [k; 16])).or_default();
                                prop_assert!(*epoch >= *last, "granted epoch {} after {}", epoch, last);
                                *last = *epoch;
                            }
                            _ => {}
                        }
                    }
                    Ev::Close(o) => {
                        let a = f.close(u64::from(o));
                        seen.record(&f, &a)?;
                        if let Some(ended) = a.result {
                            // A new lease of that key starts from the client's epoch.
                            seen.epochs.remove(&ended);
                        }
                    }
                    Ev::Write(o) => {
                        let a = f.write(by(o), now);
                        seen.record(&f, &a)?;
                        if let Proceed::WaitFor(w) = &a.result {
                            seen.waits_in_flight(w)?;
                        }
                    }
                    Ev::Rename(o) => {
                        let a = f.rename_or_delete(by(o), now);
                        seen.record(&f, &a)?;
                    }
                    Ev::AckLease { client, key, state } => {
                        let a = f.ack_lease([client; 16], [key; 16], LeaseState::from_wire(u32::from(state)), now);
                        seen.record(&f, &a)?;
                    }
                    Ev::AckOplock { open, level } => {
                        let lv = [oplock_level::NONE, oplock_level::II, oplock_level::LEASE][level as usize];
                        let a = f.ack_oplock(u64::from(open), lv, now);
                        seen.record(&f, &a)?;
                    }
                    Ev::Advance(s) => {
                        now += Duration::from_secs(u64::from(s));
                        let a = f.timeout(now);
                        seen.record(&f, &a)?;
                    }
                }
                check_exclusive(&f)?;
                let in_flight: BTreeSet<BreakId> = f.holders.values().filter_map(|h| h.breaking.as_ref().map(|b| b.id)).collect();
                prop_assert_eq!(&in_flight, &seen.pending);
            }
            // Every break that needs an ack ends by its timeout at the latest,
            // and a timeout starts no new one.
            let a = f.timeout(now + Duration::from_secs(35));
            seen.record(&f, &a)?;
            prop_assert!(seen.pending.is_empty(), "unresolved: {:?}", seen.pending);
            prop_assert_eq!(f.next_deadline(), None);
        }
    }
}
