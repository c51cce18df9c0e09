//! Compounded requests (MS-SMB2 3.3.5.2.7): what each request of a chain
//! inherits from the one before it (session, tree, the FileId of the
//! CREATE before it) and which are refused without running. Plain state:
//! the connection asks it about each request of a frame in turn.

use smb_proto::header::flags;
use smb_proto::{Command, FileId, Header, NtStatus};

/// One frame's chain of requests, walked in order.
#[derive(Debug, Default)]
pub(crate) struct Compound {
    /// Requests seen so far.
    seen: usize,
    session_id: u64,
    tree_id: u32,
    last_fid: Option<FileId>,
    /// The status of a failed CREATE, which the related requests after it share.
    create_failed: Option<NtStatus>,
}

/// What one request of a chain works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// It is related to the request before it.
    pub related: bool,
    pub session_id: u64,
    pub tree_id: u32,
    /// The FileId the CREATE before it gave out.
    pub last_fid: Option<FileId>,
    /// It is answered with this status without running.
    pub refused: Option<NtStatus>,
}

impl Compound {
    /// The next request of the chain, with header `hdr`.
    pub fn next(&mut self, hdr: &Header) -> Member {
        let first = self.seen == 0;
        self.seen += 1;
        let related = !first && hdr.has(flags::RELATED_OPERATIONS);
        if !related {
            self.session_id = hdr.session_id;
            self.tree_id = hdr.tree_id().unwrap_or(0);
            self.last_fid = None;
        } else {
            if hdr.session_id != u64::MAX {
                self.session_id = hdr.session_id;
            }
            if let Some(t) = hdr.tree_id().filter(|&t| t != u32::MAX) {
                self.tree_id = t;
            }
        }
        // A related request after a failed CREATE has no FileId to work
        // on: it fails the same way (other failures do not propagate, so
        // a CLOSE after a failed SET_INFO still closes).
        let refused = if let Some(status) = self.create_failed.filter(|_| related) {
            Some(status)
        } else if (first && hdr.has(flags::RELATED_OPERATIONS))
            || (related && (self.session_id == u64::MAX || self.tree_id == u32::MAX))
            || (hdr.command == Command::ChangeNotify && hdr.next_command != 0)
        {
            // A first request marked related, a related one with nothing
            // valid to inherit, a CHANGE_NOTIFY that is not last.
            Some(NtStatus::INVALID_PARAMETER)
        } else {
            None
        };
        Member {
            related,
            session_id: self.session_id,
            tree_id: self.tree_id,
            last_fid: self.last_fid,
            refused,
        }
    }

    /// The request `hdr` (`m` of [`Compound::next`]) was answered with
    /// `status`, in session `session_id` (a SESSION_SETUP may have made
    /// one); `fid` is the FileId a CREATE gave out.
    pub fn answered(
        &mut self,
        hdr: &Header,
        m: &Member,
        status: NtStatus,
        fid: Option<FileId>,
        session_id: u64,
    ) {
        if hdr.command == Command::Create {
            self.create_failed = status.is_error().then_some(status);
        } else if !m.related {
            self.create_failed = None;
        }
        if let Some(fid) = fid {
            self.last_fid = Some(fid);
        }
        self.session_id = session_id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb_proto::header::HeaderId;

    fn req(command: Command, related: bool, session_id: u64, tree_id: u32, last: bool) -> Header {
        let mut h = Header::request(command, 1);
        h.session_id = session_id;
        h.id = HeaderId::Sync {
            process_id: 0,
            tree_id,
        };
        if related {
            h.flags |= flags::RELATED_OPERATIONS;
        }
        h.next_command = if last { 0 } else { 64 };
        h
    }

    const FID: FileId = FileId {
        persistent: 1,
        volatile: 2,
    };

    #[test]
    fn related_requests_inherit_session_tree_and_the_created_file() {
        let mut c = Compound::default();
        let create = req(Command::Create, false, 5, 7, false);
        let m = c.next(&create);
        assert_eq!(
            (m.related, m.session_id, m.tree_id, m.last_fid, m.refused),
            (false, 5, 7, None, None)
        );
        c.answered(&create, &m, NtStatus::SUCCESS, Some(FID), 5);
        let read = req(Command::Read, true, u64::MAX, u32::MAX, false);
        let m = c.next(&read);
        assert_eq!(
            (m.related, m.session_id, m.tree_id, m.last_fid, m.refused),
            (true, 5, 7, Some(FID), None)
        );
        c.answered(&read, &m, NtStatus::END_OF_FILE, None, 5);
        // A failure other than CREATE's does not spread.
        let close = req(Command::Close, true, u64::MAX, u32::MAX, true);
        assert_eq!(c.next(&close).refused, None);
        // An unrelated request starts over.
        let m = c.next(&req(Command::Read, false, 6, 8, true));
        assert_eq!((m.session_id, m.tree_id, m.last_fid), (6, 8, None));
    }

    #[test]
    fn requests_related_to_a_failed_create_fail_the_same_way() {
        let mut c = Compound::default();
        let create = req(Command::Create, false, 5, 7, false);
        let m = c.next(&create);
        c.answered(&create, &m, NtStatus::OBJECT_NAME_NOT_FOUND, None, 5);
        let q = req(Command::QueryInfo, true, u64::MAX, u32::MAX, false);
        assert_eq!(c.next(&q).refused, Some(NtStatus::OBJECT_NAME_NOT_FOUND));
        let m = c.next(&req(Command::Read, false, 5, 7, true));
        assert_eq!(m.refused, None);
    }

    #[test]
    fn malformed_chains_are_refused_as_invalid() {
        let invalid = Some(NtStatus::INVALID_PARAMETER);
        // A first request marked related.
        let mut c = Compound::default();
        assert_eq!(c.next(&req(Command::Read, true, 5, 7, false)).refused, invalid);
        // A related request with no session to inherit.
        let mut c = Compound::default();
        c.next(&req(Command::Read, false, u64::MAX, 7, false));
        assert_eq!(
            c.next(&req(Command::Read, true, u64::MAX, 7, true)).refused,
            invalid
        );
        // A CHANGE_NOTIFY that is not last.
        let mut c = Compound::default();
        assert_eq!(
            c.next(&req(Command::ChangeNotify, false, 5, 7, false)).refused,
            invalid
        );
        assert_eq!(
            c.next(&req(Command::ChangeNotify, false, 5, 7, true)).refused,
            None
        );
    }
}
