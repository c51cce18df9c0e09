//! A sans-IO ONC RPC client over TCP: it builds calls (transaction id,
//! credentials, record marking), takes replies out of the bytes the caller
//! read and matches them to calls by xid, and decodes their results; the
//! portmapper's GETPORT is a call and a decoding on it. The caller owns the
//! sockets, the timers and any retransmission (a call sent again keeps its
//! xid: [`Client::encode`] builds it again for that xid).

use bytes::{Bytes, BytesMut};

use crate::portmap::{self, Mapping, PmapProc};
use crate::record::{RecordError, RecordReader};
use crate::rpc::{decode_reply, CallHeader, OpaqueAuth, ReplyStat};
use crate::xdr::{Decoder, Encoder, Xdr, XdrError};

/// Why a reply gave no results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The record stream broke (a record larger than allowed).
    Record(RecordError),
    /// A reply too broken to read.
    Garbled(XdrError),
    /// The server refused the call at the RPC level.
    Refused(ReplyStat),
    /// GETPORT: the program is not registered (port 0, or no port number).
    NotRegistered,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Record(e) => e.fmt(f),
            ClientError::Garbled(e) => write!(f, "unreadable reply: {e}"),
            ClientError::Refused(stat) => write!(f, "call refused: {stat:?}"),
            ClientError::NotRegistered => f.write_str("program not registered"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One connection's calls and replies.
#[derive(Debug)]
pub struct Client {
    xid: u32,
    replies: RecordReader,
}

impl Client {
    /// Calls are numbered from `first_xid` on (pick it at random, so a
    /// server's duplicate request cache does not take a new client's calls
    /// for an old one's); replies larger than `max_reply` break the stream.
    pub fn new(first_xid: u32, max_reply: usize) -> Client {
        Client {
            xid: first_xid,
            replies: RecordReader::new(max_reply),
        }
    }

    /// A transaction id not given out before by this client.
    pub fn next_xid(&mut self) -> u32 {
        let x = self.xid;
        self.xid = x.wrapping_add(1);
        x
    }

    /// A new call of `proc_` of `prog`/`vers`: its xid and its record (the
    /// record mark and header, then `args` as they are, not copied).
    pub fn call(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        cred: &OpaqueAuth,
        args: &[Bytes],
    ) -> (u32, Vec<Bytes>) {
        let xid = self.next_xid();
        (xid, Client::encode(xid, prog, vers, proc_, cred, args))
    }

    /// The record of the call `xid` (to send it, or send it again).
    pub fn encode(
        xid: u32,
        prog: u32,
        vers: u32,
        proc_: u32,
        cred: &OpaqueAuth,
        args: &[Bytes],
    ) -> Vec<Bytes> {
        let mut e = Encoder::with_capacity(64 + cred.body.len());
        e.u32(0); // record mark, patched below
        CallHeader {
            xid,
            prog,
            vers,
            proc_,
            cred: cred.clone(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut e);
        let len = e.len() - 4 + args.iter().map(Bytes::len).sum::<usize>();
        e.patch_u32(0, u32::from_be_bytes(crate::record::record_mark(len)));
        let mut parts = Vec::with_capacity(1 + args.len());
        parts.push(e.into_bytes());
        parts.extend(args.iter().filter(|a| !a.is_empty()).cloned());
        parts
    }

    /// A portmapper GETPORT call asking where `prog`/`vers` is served
    /// over TCP; [`port`] reads its results.
    pub fn getport(&mut self, prog: u32, vers: u32) -> (u32, Vec<Bytes>) {
        let m = Mapping {
            prog,
            vers,
            prot: portmap::IPPROTO_TCP,
            port: 0,
        };
        let (p, v, g) = (portmap::PROGRAM, portmap::VERSION, PmapProc::Getport as u32);
        self.call(p, v, g, &OpaqueAuth::none(), &[m.to_bytes()])
    }

    /// Bytes read from the connection go here.
    pub fn buffer(&mut self) -> &mut BytesMut {
        self.replies.buffer()
    }

    /// How many more bytes the reply in progress needs at least.
    pub fn wanted(&self) -> usize {
        self.replies.wanted()
    }

    /// The next whole reply record and its xid, if one has arrived. A
    /// record too short for an xid breaks the stream.
    pub fn next_reply(&mut self) -> Result<Option<(u32, Bytes)>, ClientError> {
        let Some(rec) = self.replies.next_record().map_err(ClientError::Record)? else {
            return Ok(None);
        };
        match rec.get(..4) {
            Some(b) => Ok(Some((u32::from_be_bytes([b[0], b[1], b[2], b[3]]), rec))),
            None => Err(ClientError::Garbled(XdrError::Truncated)),
        }
    }

    /// The results of the call `xid`, once its reply has arrived (replies
    /// to other calls are passed over).
    pub fn reply_to(&mut self, xid: u32) -> Result<Option<Decoder>, ClientError> {
        while let Some((x, rec)) = self.next_reply()? {
            if x == xid {
                return results(rec).map(Some);
            }
        }
        Ok(None)
    }
}

/// The results of a reply record the server accepted, as a decoder over
/// the record (no copy).
pub fn results(record: Bytes) -> Result<Decoder, ClientError> {
    let (h, d) = decode_reply(record).map_err(ClientError::Garbled)?;
    match h.stat {
        ReplyStat::Success => Ok(d),
        stat => Err(ClientError::Refused(stat)),
    }
}

/// The port in GETPORT's results.
pub fn port(results: Decoder) -> Result<u16, ClientError> {
    match u32::from_bytes(results.rest()) {
        Ok(p) if p > 0 && p <= u32::from(u16::MAX) => Ok(p as u16),
        _ => Err(ClientError::NotRegistered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::frame;
    use crate::rpc::{decode_call, AuthStat, ReplyHeader};

    fn reply(xid: u32, stat: ReplyStat, results: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new();
        ReplyHeader::new(xid, stat).encode(&mut e);
        let mut msg = e.into_inner().to_vec();
        msg.extend_from_slice(results);
        frame(&msg, usize::MAX)
    }

    #[test]
    fn a_call_is_one_record_with_its_arguments_behind_the_header() {
        let mut c = Client::new(7, 1 << 20);
        let args = [
            Bytes::from_static(b"abcd"),
            Bytes::new(),
            Bytes::from_static(b"efgh"),
        ];
        let (xid, parts) = c.call(100_003, 3, 6, &OpaqueAuth::none(), &args);
        assert_eq!((xid, c.next_xid()), (7, 8));
        assert_eq!(parts.len(), 3);
        let wire: Vec<u8> = parts.concat();
        let mut r = RecordReader::new(1 << 20);
        r.buffer().extend_from_slice(&wire);
        let rec = r.next_record().unwrap().unwrap();
        let mut d = Decoder::new(rec);
        let h = decode_call(&mut d).unwrap();
        assert_eq!((h.xid, h.prog, h.vers, h.proc_), (7, 100_003, 3, 6));
        assert_eq!(&d.rest()[..], b"abcdefgh");
        // Sent again, the same call is the same bytes.
        assert_eq!(
            Client::encode(7, 100_003, 3, 6, &OpaqueAuth::none(), &args),
            parts
        );
    }

    #[test]
    fn replies_are_matched_by_xid_in_any_chunking() {
        let mut c = Client::new(1, 1 << 20);
        let mut wire = reply(9, ReplyStat::Success, b"other");
        wire.extend(reply(1, ReplyStat::Success, b"mine"));
        let (first, rest) = wire.split_at(13);
        c.buffer().extend_from_slice(first);
        assert_eq!(c.reply_to(1).unwrap().map(|d| d.rest()), None);
        c.buffer().extend_from_slice(rest);
        assert_eq!(&c.reply_to(1).unwrap().unwrap().rest()[..], b"mine");
        assert_eq!(c.wanted(), 4);
    }

    #[test]
    fn refusals_and_garbage_are_errors() {
        let mut c = Client::new(1, 64);
        c.buffer()
            .extend_from_slice(&reply(1, ReplyStat::AuthError(AuthStat::TooWeak), b""));
        assert_eq!(
            c.reply_to(1).err(),
            Some(ClientError::Refused(ReplyStat::AuthError(AuthStat::TooWeak)))
        );
        c.buffer()
            .extend_from_slice(&frame(&[0, 0, 0, 1, 0, 0, 0, 1], usize::MAX));
        assert_eq!(
            c.reply_to(1).err(),
            Some(ClientError::Garbled(XdrError::Truncated))
        );
        c.buffer().extend_from_slice(&frame(&[1, 2], usize::MAX));
        assert_eq!(
            c.next_reply().err(),
            Some(ClientError::Garbled(XdrError::Truncated))
        );
        c.buffer().extend_from_slice(&frame(&[0; 65], usize::MAX));
        assert!(matches!(c.next_reply(), Err(ClientError::Record(_))));
    }

    #[test]
    fn getport_asks_for_tcp_and_reads_the_port() {
        let mut c = Client::new(3, 1 << 20);
        let (xid, parts) = c.getport(100_005, 3);
        let mut r = RecordReader::new(1 << 20);
        r.buffer().extend_from_slice(&parts.concat());
        let mut d = Decoder::new(r.next_record().unwrap().unwrap());
        let h = decode_call(&mut d).unwrap();
        assert_eq!(
            (h.xid, h.prog, h.vers, h.proc_),
            (xid, portmap::PROGRAM, portmap::VERSION, 3)
        );
        let m = Mapping::from_bytes(d.rest()).unwrap();
        assert_eq!(
            (m.prog, m.vers, m.prot, m.port),
            (100_005, 3, portmap::IPPROTO_TCP, 0)
        );
        for (answer, want) in [
            (635u32, Ok(635)),
            (0, Err(ClientError::NotRegistered)),
            (70_000, Err(ClientError::NotRegistered)),
        ] {
            c.buffer()
                .extend_from_slice(&reply(xid, ReplyStat::Success, &answer.to_be_bytes()));
            assert_eq!(port(c.reply_to(xid).unwrap().unwrap()), want);
        }
    }
}
