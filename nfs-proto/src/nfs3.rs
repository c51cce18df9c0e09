//! NFS version 3 (RFC 1813): program 100003, all 22 procedures, arguments
//! and results in both directions.

use bytes::Bytes;

use crate::xdr::{decode_linked, encode_linked, Decoder, Encoder, Opaque, Result, Xdr, XdrError};
use crate::{xdr_enum, xdr_struct};

pub const PROGRAM: u32 = 100003;
pub const VERSION: u32 = 3;
pub const FHSIZE: usize = 64;
/// Longest name accepted on the wire; the server answers NAMETOOLONG past its own limit.
pub const MAX_NAME: usize = 1024;
pub const MAX_PATH: usize = 4096;
/// Largest READ/WRITE payload accepted on the wire (the server advertises less).
pub const MAX_DATA: usize = 16 << 20;

pub type NfsFh3 = Opaque<FHSIZE>;
pub type Filename3 = Opaque<MAX_NAME>;
pub type NfsPath3 = Opaque<MAX_PATH>;
/// cookieverf3, createverf3 and writeverf3: eight opaque bytes, as a big-endian u64.
pub type Verf3 = u64;

xdr_enum! {
    pub enum NfsProc3 {
        Null = 0,
        Getattr = 1,
        Setattr = 2,
        Lookup = 3,
        Access = 4,
        Readlink = 5,
        Read = 6,
        Write = 7,
        Create = 8,
        Mkdir = 9,
        Symlink = 10,
        Mknod = 11,
        Remove = 12,
        Rmdir = 13,
        Rename = 14,
        Link = 15,
        Readdir = 16,
        Readdirplus = 17,
        Fsstat = 18,
        Fsinfo = 19,
        Pathconf = 20,
        Commit = 21,
    }
}

xdr_enum! {
    pub enum NfsStat3 {
        Ok = 0,
        Perm = 1,
        NoEnt = 2,
        Io = 5,
        NxIo = 6,
        Acces = 13,
        Exist = 17,
        XDev = 18,
        NoDev = 19,
        NotDir = 20,
        IsDir = 21,
        Inval = 22,
        FBig = 27,
        NoSpc = 28,
        RoFs = 30,
        MLink = 31,
        NameTooLong = 63,
        NotEmpty = 66,
        DQuot = 69,
        Stale = 70,
        Remote = 71,
        BadHandle = 10001,
        NotSync = 10002,
        BadCookie = 10003,
        NotSupp = 10004,
        TooSmall = 10005,
        ServerFault = 10006,
        BadType = 10007,
        Jukebox = 10008,
    }
}

xdr_enum! {
    pub enum Ftype3 {
        Reg = 1,
        Dir = 2,
        Blk = 3,
        Chr = 4,
        Lnk = 5,
        Sock = 6,
        Fifo = 7,
    }
}

xdr_enum! {
    pub enum StableHow {
        Unstable = 0,
        DataSync = 1,
        FileSync = 2,
    }
}

/// ACCESS3 bits.
pub mod access {
    pub const READ: u32 = 0x01;
    pub const LOOKUP: u32 = 0x02;
    pub const MODIFY: u32 = 0x04;
    pub const EXTEND: u32 = 0x08;
    pub const DELETE: u32 = 0x10;
    pub const EXECUTE: u32 = 0x20;
}

/// FSINFO3 properties bits.
pub mod fsf {
    pub const LINK: u32 = 0x01;
    pub const SYMLINK: u32 = 0x02;
    pub const HOMOGENEOUS: u32 = 0x08;
    pub const CANSETTIME: u32 = 0x10;
}

xdr_struct! {
    #[derive(Copy)]
    pub struct NfsTime3 {
        pub seconds: u32,
        pub nseconds: u32,
    }
}

xdr_struct! {
    #[derive(Copy)]
    pub struct SpecData3 {
        pub specdata1: u32,
        pub specdata2: u32,
    }
}

xdr_struct! {
    #[derive(Copy)]
    pub struct Fattr3 {
        pub ftype: Ftype3,
        pub mode: u32,
        pub nlink: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub used: u64,
        pub rdev: SpecData3,
        pub fsid: u64,
        pub fileid: u64,
        pub atime: NfsTime3,
        pub mtime: NfsTime3,
        pub ctime: NfsTime3,
    }
}

/// Bytes of an encoded fattr3.
pub const FATTR3_SIZE: usize = 84;

pub type PostOpAttr = Option<Fattr3>;
pub type PostOpFh3 = Option<NfsFh3>;

xdr_struct! {
    #[derive(Copy)]
    pub struct WccAttr {
        pub size: u64,
        pub mtime: NfsTime3,
        pub ctime: NfsTime3,
    }
}

pub type PreOpAttr = Option<WccAttr>;

xdr_struct! {
    #[derive(Default)]
    pub struct WccData {
        pub before: PreOpAttr,
        pub after: PostOpAttr,
    }
}

/// set_atime / set_mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime3 {
    #[default]
    DontChange,
    ServerTime,
    ClientTime(NfsTime3),
}

impl Xdr for SetTime3 {
    fn encode(&self, e: &mut Encoder) {
        match self {
            SetTime3::DontChange => e.u32(0),
            SetTime3::ServerTime => e.u32(1),
            SetTime3::ClientTime(t) => {
                e.u32(2);
                t.encode(e);
            }
        }
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        match d.u32()? {
            0 => Ok(SetTime3::DontChange),
            1 => Ok(SetTime3::ServerTime),
            2 => Ok(SetTime3::ClientTime(NfsTime3::decode(d)?)),
            _ => Err(XdrError::BadValue),
        }
    }
}

xdr_struct! {
    #[derive(Default)]
    pub struct Sattr3 {
        pub mode: Option<u32>,
        pub uid: Option<u32>,
        pub gid: Option<u32>,
        pub size: Option<u64>,
        pub atime: SetTime3,
        pub mtime: SetTime3,
    }
}

xdr_struct! {
    pub struct DirOpArgs3 {
        pub dir: NfsFh3,
        pub name: Filename3,
    }
}

/// An NFS result union: `NFS3_OK` with `T`, any other status with `F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NfsResult<T, F> {
    Ok(T),
    Err(NfsStat3, F),
}

impl<T, F> NfsResult<T, F> {
    pub fn status(&self) -> NfsStat3 {
        match self {
            NfsResult::Ok(_) => NfsStat3::Ok,
            NfsResult::Err(s, _) => *s,
        }
    }

    pub fn ok(self) -> Option<T> {
        match self {
            NfsResult::Ok(v) => Some(v),
            NfsResult::Err(..) => None,
        }
    }
}

impl<T: Xdr, F: Xdr> Xdr for NfsResult<T, F> {
    fn encode(&self, e: &mut Encoder) {
        match self {
            NfsResult::Ok(v) => {
                e.u32(0);
                v.encode(e);
            }
            NfsResult::Err(s, f) => {
                s.encode(e);
                f.encode(e);
            }
        }
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        match NfsStat3::decode(d)? {
            NfsStat3::Ok => Ok(NfsResult::Ok(T::decode(d)?)),
            s => Ok(NfsResult::Err(s, F::decode(d)?)),
        }
    }
}

// ---- arguments ----

xdr_struct! {
    pub struct GetAttr3Args {
        pub object: NfsFh3,
    }
}

xdr_struct! {
    pub struct SetAttr3Args {
        pub object: NfsFh3,
        pub new_attributes: Sattr3,
        /// sattrguard3: apply only if the object's ctime is this.
        pub guard: Option<NfsTime3>,
    }
}

xdr_struct! {
    pub struct Access3Args {
        pub object: NfsFh3,
        pub access: u32,
    }
}

xdr_struct! {
    pub struct Read3Args {
        pub file: NfsFh3,
        pub offset: u64,
        pub count: u32,
    }
}

xdr_struct! {
    pub struct Write3Args {
        pub file: NfsFh3,
        pub offset: u64,
        pub count: u32,
        pub stable: StableHow,
        pub data: Opaque<MAX_DATA>,
    }
}

/// createhow3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateHow3 {
    Unchecked(Sattr3),
    Guarded(Sattr3),
    Exclusive(Verf3),
}

impl Xdr for CreateHow3 {
    fn encode(&self, e: &mut Encoder) {
        match self {
            CreateHow3::Unchecked(s) => {
                e.u32(0);
                s.encode(e);
            }
            CreateHow3::Guarded(s) => {
                e.u32(1);
                s.encode(e);
            }
            CreateHow3::Exclusive(v) => {
                e.u32(2);
                e.u64(*v);
            }
        }
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        match d.u32()? {
            0 => Ok(CreateHow3::Unchecked(Sattr3::decode(d)?)),
            1 => Ok(CreateHow3::Guarded(Sattr3::decode(d)?)),
            2 => Ok(CreateHow3::Exclusive(d.u64()?)),
            _ => Err(XdrError::BadValue),
        }
    }
}

xdr_struct! {
    pub struct Create3Args {
        pub where_: DirOpArgs3,
        pub how: CreateHow3,
    }
}

xdr_struct! {
    pub struct Mkdir3Args {
        pub where_: DirOpArgs3,
        pub attributes: Sattr3,
    }
}

xdr_struct! {
    pub struct Symlink3Args {
        pub where_: DirOpArgs3,
        pub attributes: Sattr3,
        pub data: NfsPath3,
    }
}

/// mknoddata3: what to make. Other types carry nothing (and are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MknodData3 {
    Chr(Sattr3, SpecData3),
    Blk(Sattr3, SpecData3),
    Sock(Sattr3),
    Fifo(Sattr3),
    Other(Ftype3),
}

impl Xdr for MknodData3 {
    fn encode(&self, e: &mut Encoder) {
        match self {
            MknodData3::Chr(s, r) | MknodData3::Blk(s, r) => {
                let t = if matches!(self, MknodData3::Chr(..)) {
                    Ftype3::Chr
                } else {
                    Ftype3::Blk
                };
                t.encode(e);
                s.encode(e);
                r.encode(e);
            }
            MknodData3::Sock(s) => {
                Ftype3::Sock.encode(e);
                s.encode(e);
            }
            MknodData3::Fifo(s) => {
                Ftype3::Fifo.encode(e);
                s.encode(e);
            }
            MknodData3::Other(t) => t.encode(e),
        }
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(match Ftype3::decode(d)? {
            Ftype3::Chr => MknodData3::Chr(Sattr3::decode(d)?, SpecData3::decode(d)?),
            Ftype3::Blk => MknodData3::Blk(Sattr3::decode(d)?, SpecData3::decode(d)?),
            Ftype3::Sock => MknodData3::Sock(Sattr3::decode(d)?),
            Ftype3::Fifo => MknodData3::Fifo(Sattr3::decode(d)?),
            t => MknodData3::Other(t),
        })
    }
}

xdr_struct! {
    pub struct Mknod3Args {
        pub where_: DirOpArgs3,
        pub what: MknodData3,
    }
}

xdr_struct! {
    pub struct Rename3Args {
        pub from: DirOpArgs3,
        pub to: DirOpArgs3,
    }
}

xdr_struct! {
    pub struct Link3Args {
        pub file: NfsFh3,
        pub link: DirOpArgs3,
    }
}

xdr_struct! {
    pub struct Readdir3Args {
        pub dir: NfsFh3,
        pub cookie: u64,
        pub cookieverf: Verf3,
        pub count: u32,
    }
}

xdr_struct! {
    pub struct Readdirplus3Args {
        pub dir: NfsFh3,
        pub cookie: u64,
        pub cookieverf: Verf3,
        pub dircount: u32,
        pub maxcount: u32,
    }
}

xdr_struct! {
    pub struct Commit3Args {
        pub file: NfsFh3,
        pub offset: u64,
        pub count: u32,
    }
}

/// The arguments of any NFSv3 call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nfs3Args {
    Null,
    Getattr(GetAttr3Args),
    Setattr(SetAttr3Args),
    Lookup(DirOpArgs3),
    Access(Access3Args),
    Readlink(GetAttr3Args),
    Read(Read3Args),
    Write(Write3Args),
    Create(Create3Args),
    Mkdir(Mkdir3Args),
    Symlink(Symlink3Args),
    Mknod(Mknod3Args),
    Remove(DirOpArgs3),
    Rmdir(DirOpArgs3),
    Rename(Rename3Args),
    Link(Link3Args),
    Readdir(Readdir3Args),
    Readdirplus(Readdirplus3Args),
    Fsstat(GetAttr3Args),
    Fsinfo(GetAttr3Args),
    Pathconf(GetAttr3Args),
    Commit(Commit3Args),
}

impl Nfs3Args {
    pub fn proc_(&self) -> NfsProc3 {
        use Nfs3Args as A;
        match self {
            A::Null => NfsProc3::Null,
            A::Getattr(_) => NfsProc3::Getattr,
            A::Setattr(_) => NfsProc3::Setattr,
            A::Lookup(_) => NfsProc3::Lookup,
            A::Access(_) => NfsProc3::Access,
            A::Readlink(_) => NfsProc3::Readlink,
            A::Read(_) => NfsProc3::Read,
            A::Write(_) => NfsProc3::Write,
            A::Create(_) => NfsProc3::Create,
            A::Mkdir(_) => NfsProc3::Mkdir,
            A::Symlink(_) => NfsProc3::Symlink,
            A::Mknod(_) => NfsProc3::Mknod,
            A::Remove(_) => NfsProc3::Remove,
            A::Rmdir(_) => NfsProc3::Rmdir,
            A::Rename(_) => NfsProc3::Rename,
            A::Link(_) => NfsProc3::Link,
            A::Readdir(_) => NfsProc3::Readdir,
            A::Readdirplus(_) => NfsProc3::Readdirplus,
            A::Fsstat(_) => NfsProc3::Fsstat,
            A::Fsinfo(_) => NfsProc3::Fsinfo,
            A::Pathconf(_) => NfsProc3::Pathconf,
            A::Commit(_) => NfsProc3::Commit,
        }
    }

    pub fn encode(&self, e: &mut Encoder) {
        use Nfs3Args as A;
        match self {
            A::Null => {}
            A::Getattr(a) | A::Readlink(a) | A::Fsstat(a) | A::Fsinfo(a) | A::Pathconf(a) => a.encode(e),
            A::Setattr(a) => a.encode(e),
            A::Lookup(a) | A::Remove(a) | A::Rmdir(a) => a.encode(e),
            A::Access(a) => a.encode(e),
            A::Read(a) => a.encode(e),
            A::Write(a) => a.encode(e),
            A::Create(a) => a.encode(e),
            A::Mkdir(a) => a.encode(e),
            A::Symlink(a) => a.encode(e),
            A::Mknod(a) => a.encode(e),
            A::Rename(a) => a.encode(e),
            A::Link(a) => a.encode(e),
            A::Readdir(a) => a.encode(e),
            A::Readdirplus(a) => a.encode(e),
            A::Commit(a) => a.encode(e),
        }
    }

    /// Decode the arguments of procedure `p`; the whole input must be used.
    pub fn decode(p: NfsProc3, d: &mut Decoder) -> Result<Self> {
        use Nfs3Args as A;
        let a = match p {
            NfsProc3::Null => A::Null,
            NfsProc3::Getattr => A::Getattr(Xdr::decode(d)?),
            NfsProc3::Setattr => A::Setattr(Xdr::decode(d)?),
            NfsProc3::Lookup => A::Lookup(Xdr::decode(d)?),
            NfsProc3::Access => A::Access(Xdr::decode(d)?),
            NfsProc3::Readlink => A::Readlink(Xdr::decode(d)?),
            NfsProc3::Read => A::Read(Xdr::decode(d)?),
            NfsProc3::Write => A::Write(Xdr::decode(d)?),
            NfsProc3::Create => A::Create(Xdr::decode(d)?),
            NfsProc3::Mkdir => A::Mkdir(Xdr::decode(d)?),
            NfsProc3::Symlink => A::Symlink(Xdr::decode(d)?),
            NfsProc3::Mknod => A::Mknod(Xdr::decode(d)?),
            NfsProc3::Remove => A::Remove(Xdr::decode(d)?),
            NfsProc3::Rmdir => A::Rmdir(Xdr::decode(d)?),
            NfsProc3::Rename => A::Rename(Xdr::decode(d)?),
            NfsProc3::Link => A::Link(Xdr::decode(d)?),
            NfsProc3::Readdir => A::Readdir(Xdr::decode(d)?),
            NfsProc3::Readdirplus => A::Readdirplus(Xdr::decode(d)?),
            NfsProc3::Fsstat => A::Fsstat(Xdr::decode(d)?),
            NfsProc3::Fsinfo => A::Fsinfo(Xdr::decode(d)?),
            NfsProc3::Pathconf => A::Pathconf(Xdr::decode(d)?),
            NfsProc3::Commit => A::Commit(Xdr::decode(d)?),
        };
        d.finish()?;
        Ok(a)
    }
}

// ---- results ----

xdr_struct! {
    pub struct Lookup3Ok {
        pub object: NfsFh3,
        pub obj_attributes: PostOpAttr,
        pub dir_attributes: PostOpAttr,
    }
}

xdr_struct! {
    pub struct Access3Ok {
        pub obj_attributes: PostOpAttr,
        pub access: u32,
    }
}

xdr_struct! {
    pub struct Readlink3Ok {
        pub symlink_attributes: PostOpAttr,
        pub data: NfsPath3,
    }
}

xdr_struct! {
    pub struct Read3Ok {
        pub file_attributes: PostOpAttr,
        pub count: u32,
        pub eof: bool,
        pub data: Opaque<MAX_DATA>,
    }
}

/// Encode a successful READ result up to and including the data length, so
/// the data itself can follow as separate buffers (then [`crate::xdr::pad`]
/// zero bytes).
pub fn encode_read_ok_head(e: &mut Encoder, attr: &PostOpAttr, eof: bool, len: u32) {
    e.u32(NfsStat3::Ok as u32);
    attr.encode(e);
    e.u32(len);
    e.bool(eof);
    e.u32(len);
}

xdr_struct! {
    pub struct Write3Ok {
        pub file_wcc: WccData,
        pub count: u32,
        pub committed: StableHow,
        pub verf: Verf3,
    }
}

xdr_struct! {
    /// Result of CREATE, MKDIR, SYMLINK and MKNOD.
    pub struct Create3Ok {
        pub obj: PostOpFh3,
        pub obj_attributes: PostOpAttr,
        pub dir_wcc: WccData,
    }
}

xdr_struct! {
    pub struct Rename3Wcc {
        pub fromdir_wcc: WccData,
        pub todir_wcc: WccData,
    }
}

xdr_struct! {
    pub struct Link3Wcc {
        pub file_attributes: PostOpAttr,
        pub linkdir_wcc: WccData,
    }
}

xdr_struct! {
    pub struct Entry3 {
        pub fileid: u64,
        pub name: Filename3,
        pub cookie: u64,
    }
}

/// Bytes an entry3 takes in a READDIR reply (with its "value follows" word).
pub fn entry3_size(name_len: usize) -> usize {
    4 + 8 + 4 + name_len + crate::xdr::pad(name_len) + 8
}

/// Bytes an entryplus3 takes in a READDIRPLUS reply.
pub fn entryplus3_size(name_len: usize, fh_len: usize) -> usize {
    entry3_size(name_len) + 4 + FATTR3_SIZE + 4 + 4 + fh_len + crate::xdr::pad(fh_len)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirList3 {
    pub entries: Vec<Entry3>,
    pub eof: bool,
}

impl Xdr for DirList3 {
    fn encode(&self, e: &mut Encoder) {
        encode_linked(e, &self.entries);
        e.bool(self.eof);
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(DirList3 {
            entries: decode_linked(d, usize::MAX)?,
            eof: d.bool()?,
        })
    }
}

xdr_struct! {
    pub struct Readdir3Ok {
        pub dir_attributes: PostOpAttr,
        pub cookieverf: Verf3,
        pub reply: DirList3,
    }
}

xdr_struct! {
    pub struct EntryPlus3 {
        pub fileid: u64,
        pub name: Filename3,
        pub cookie: u64,
        pub name_attributes: PostOpAttr,
        pub name_handle: PostOpFh3,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirListPlus3 {
    pub entries: Vec<EntryPlus3>,
    pub eof: bool,
}

impl Xdr for DirListPlus3 {
    fn encode(&self, e: &mut Encoder) {
        encode_linked(e, &self.entries);
        e.bool(self.eof);
    }
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(DirListPlus3 {
            entries: decode_linked(d, usize::MAX)?,
            eof: d.bool()?,
        })
    }
}

xdr_struct! {
    pub struct Readdirplus3Ok {
        pub dir_attributes: PostOpAttr,
        pub cookieverf: Verf3,
        pub reply: DirListPlus3,
    }
}

xdr_struct! {
    pub struct Fsstat3Ok {
        pub obj_attributes: PostOpAttr,
        pub tbytes: u64,
        pub fbytes: u64,
        pub abytes: u64,
        pub tfiles: u64,
        pub ffiles: u64,
        pub afiles: u64,
        pub invarsec: u32,
    }
}

xdr_struct! {
    pub struct Fsinfo3Ok {
        pub obj_attributes: PostOpAttr,
        pub rtmax: u32,
        pub rtpref: u32,
        pub rtmult: u32,
        pub wtmax: u32,
        pub wtpref: u32,
        pub wtmult: u32,
        pub dtpref: u32,
        pub maxfilesize: u64,
        pub time_delta: NfsTime3,
        pub properties: u32,
    }
}

xdr_struct! {
    pub struct Pathconf3Ok {
        pub obj_attributes: PostOpAttr,
        pub linkmax: u32,
        pub name_max: u32,
        pub no_trunc: bool,
        pub chown_restricted: bool,
        pub case_insensitive: bool,
        pub case_preserving: bool,
    }
}

xdr_struct! {
    pub struct Commit3Ok {
        pub file_wcc: WccData,
        pub verf: Verf3,
    }
}

pub type GetAttr3Res = NfsResult<Fattr3, ()>;
pub type WccRes = NfsResult<WccData, WccData>;
pub type Lookup3Res = NfsResult<Lookup3Ok, PostOpAttr>;
pub type Access3Res = NfsResult<Access3Ok, PostOpAttr>;
pub type Readlink3Res = NfsResult<Readlink3Ok, PostOpAttr>;
pub type Read3Res = NfsResult<Read3Ok, PostOpAttr>;
pub type Write3Res = NfsResult<Write3Ok, WccData>;
pub type Create3Res = NfsResult<Create3Ok, WccData>;
pub type Rename3Res = NfsResult<Rename3Wcc, Rename3Wcc>;
pub type Link3Res = NfsResult<Link3Wcc, Link3Wcc>;
pub type Readdir3Res = NfsResult<Readdir3Ok, PostOpAttr>;
pub type Readdirplus3Res = NfsResult<Readdirplus3Ok, PostOpAttr>;
pub type Fsstat3Res = NfsResult<Fsstat3Ok, PostOpAttr>;
pub type Fsinfo3Res = NfsResult<Fsinfo3Ok, PostOpAttr>;
pub type Pathconf3Res = NfsResult<Pathconf3Ok, PostOpAttr>;
pub type Commit3Res = NfsResult<Commit3Ok, WccData>;

/// The results of any NFSv3 call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nfs3Res {
    Null,
    Getattr(GetAttr3Res),
    /// SETATTR, REMOVE and RMDIR.
    Wcc(WccRes),
    Lookup(Lookup3Res),
    Access(Access3Res),
    Readlink(Readlink3Res),
    Read(Read3Res),
    Write(Write3Res),
    /// CREATE, MKDIR, SYMLINK and MKNOD.
    Create(Create3Res),
    Rename(Rename3Res),
    Link(Link3Res),
    Readdir(Readdir3Res),
    Readdirplus(Readdirplus3Res),
    Fsstat(Fsstat3Res),
    Fsinfo(Fsinfo3Res),
    Pathconf(Pathconf3Res),
    Commit(Commit3Res),
}

impl Nfs3Res {
    pub fn encode(&self, e: &mut Encoder) {
        use Nfs3Res as R;
        match self {
            R::Null => {}
            R::Getattr(r) => r.encode(e),
            R::Wcc(r) => r.encode(e),
            R::Lookup(r) => r.encode(e),
            R::Access(r) => r.encode(e),
            R::Readlink(r) => r.encode(e),
            R::Read(r) => r.encode(e),
            R::Write(r) => r.encode(e),
            R::Create(r) => r.encode(e),
            R::Rename(r) => r.encode(e),
            R::Link(r) => r.encode(e),
            R::Readdir(r) => r.encode(e),
            R::Readdirplus(r) => r.encode(e),
            R::Fsstat(r) => r.encode(e),
            R::Fsinfo(r) => r.encode(e),
            R::Pathconf(r) => r.encode(e),
            R::Commit(r) => r.encode(e),
        }
    }

    /// Decode the results of procedure `p`; the whole input must be used.
    pub fn decode(p: NfsProc3, d: &mut Decoder) -> Result<Self> {
        use Nfs3Res as R;
        use NfsProc3 as P;
        let r = match p {
            P::Null => R::Null,
            P::Getattr => R::Getattr(Xdr::decode(d)?),
            P::Setattr | P::Remove | P::Rmdir => R::Wcc(Xdr::decode(d)?),
            P::Lookup => R::Lookup(Xdr::decode(d)?),
            P::Access => R::Access(Xdr::decode(d)?),
            P::Readlink => R::Readlink(Xdr::decode(d)?),
            P::Read => R::Read(Xdr::decode(d)?),
            P::Write => R::Write(Xdr::decode(d)?),
            P::Create | P::Mkdir | P::Symlink | P::Mknod => R::Create(Xdr::decode(d)?),
            P::Rename => R::Rename(Xdr::decode(d)?),
            P::Link => R::Link(Xdr::decode(d)?),
            P::Readdir => R::Readdir(Xdr::decode(d)?),
            P::Readdirplus => R::Readdirplus(Xdr::decode(d)?),
            P::Fsstat => R::Fsstat(Xdr::decode(d)?),
            P::Fsinfo => R::Fsinfo(Xdr::decode(d)?),
            P::Pathconf => R::Pathconf(Xdr::decode(d)?),
            P::Commit => R::Commit(Xdr::decode(d)?),
        };
        d.finish()?;
        Ok(r)
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.into_bytes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::xdr::tests::round_trip;

    pub fn fh(n: u8) -> NfsFh3 {
        Opaque::new(vec![n; 30])
    }

    pub fn name(s: &str) -> Filename3 {
        Opaque::new(s.as_bytes().to_vec())
    }

    pub fn attr() -> Fattr3 {
        let t = NfsTime3 {
            seconds: 1_700_000_000,
            nseconds: 5,
        };
        Fattr3 {
            ftype: Ftype3::Reg,
            mode: 0o644,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size: 12345,
            used: 16384,
            rdev: SpecData3 {
                specdata1: 0,
                specdata2: 0,
            },
            fsid: 7,
            fileid: 99,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    pub fn wcc() -> WccData {
        WccData {
            before: Some(WccAttr {
                size: 1,
                mtime: attr().mtime,
                ctime: attr().ctime,
            }),
            after: Some(attr()),
        }
    }

    pub fn sattr() -> Sattr3 {
        Sattr3 {
            mode: Some(0o600),
            uid: None,
            gid: Some(5),
            size: Some(0),
            atime: SetTime3::ServerTime,
            mtime: SetTime3::ClientTime(attr().mtime),
        }
    }

    fn dirop() -> DirOpArgs3 {
        DirOpArgs3 {
            dir: fh(1),
            name: name("file.txt"),
        }
    }

    /// One value of every argument type.
    pub fn all_args() -> Vec<Nfs3Args> {
        use Nfs3Args as A;
        let g = GetAttr3Args { object: fh(2) };
        vec![
            A::Null,
            A::Getattr(g.clone()),
            A::Setattr(SetAttr3Args {
                object: fh(2),
                new_attributes: sattr(),
                guard: Some(attr().ctime),
            }),
            A::Lookup(dirop()),
            A::Access(Access3Args {
                object: fh(2),
                access: 0x3f,
            }),
            A::Readlink(g.clone()),
            A::Read(Read3Args {
                file: fh(3),
                offset: 1 << 40,
                count: 65536,
            }),
            A::Write(Write3Args {
                file: fh(3),
                offset: 7,
                count: 5,
                stable: StableHow::FileSync,
                data: Opaque::new(&b"hello"[..]),
            }),
            A::Create(Create3Args {
                where_: dirop(),
                how: CreateHow3::Unchecked(sattr()),
            }),
            A::Create(Create3Args {
                where_: dirop(),
                how: CreateHow3::Guarded(Sattr3::default()),
            }),
            A::Create(Create3Args {
                where_: dirop(),
                how: CreateHow3::Exclusive(0x0102_0304_0506_0708),
            }),
            A::Mkdir(Mkdir3Args {
                where_: dirop(),
                attributes: sattr(),
            }),
            A::Symlink(Symlink3Args {
                where_: dirop(),
                attributes: Sattr3::default(),
                data: Opaque::new(&b"../target"[..]),
            }),
            A::Mknod(Mknod3Args {
                where_: dirop(),
                what: MknodData3::Chr(
                    sattr(),
                    SpecData3 {
                        specdata1: 1,
                        specdata2: 3,
                    },
                ),
            }),
            A::Mknod(Mknod3Args {
                where_: dirop(),
                what: MknodData3::Blk(
                    sattr(),
                    SpecData3 {
                        specdata1: 8,
                        specdata2: 0,
                    },
                ),
            }),
            A::Mknod(Mknod3Args {
                where_: dirop(),
                what: MknodData3::Fifo(sattr()),
            }),
            A::Mknod(Mknod3Args {
                where_: dirop(),
                what: MknodData3::Sock(sattr()),
            }),
            A::Mknod(Mknod3Args {
                where_: dirop(),
                what: MknodData3::Other(Ftype3::Dir),
            }),
            A::Remove(dirop()),
            A::Rmdir(dirop()),
            A::Rename(Rename3Args {
                from: dirop(),
                to: DirOpArgs3 {
                    dir: fh(9),
                    name: name("new"),
                },
            }),
            A::Link(Link3Args {
                file: fh(4),
                link: dirop(),
            }),
            A::Readdir(Readdir3Args {
                dir: fh(1),
                cookie: 77,
                cookieverf: 88,
                count: 4096,
            }),
            A::Readdirplus(Readdirplus3Args {
                dir: fh(1),
                cookie: 0,
                cookieverf: 0,
                dircount: 512,
                maxcount: 8192,
            }),
            A::Fsstat(g.clone()),
            A::Fsinfo(g.clone()),
            A::Pathconf(g),
            A::Commit(Commit3Args {
                file: fh(3),
                offset: 0,
                count: 0,
            }),
        ]
    }

    /// One value of every result type, success and failure (with the procedure).
    pub fn all_results() -> Vec<(NfsProc3, Nfs3Res)> {
        use Nfs3Res as R;
        use NfsProc3 as P;
        let pa = Some(attr());
        vec![
            (P::Null, R::Null),
            (P::Getattr, R::Getattr(NfsResult::Ok(attr()))),
            (P::Getattr, R::Getattr(NfsResult::Err(NfsStat3::Stale, ()))),
            (P::Setattr, R::Wcc(NfsResult::Ok(wcc()))),
            (P::Remove, R::Wcc(NfsResult::Err(NfsStat3::NoEnt, wcc()))),
            (
                P::Lookup,
                R::Lookup(NfsResult::Ok(Lookup3Ok {
                    object: fh(5),
                    obj_attributes: pa,
                    dir_attributes: None,
                })),
            ),
            (P::Lookup, R::Lookup(NfsResult::Err(NfsStat3::NoEnt, pa))),
            (
                P::Access,
                R::Access(NfsResult::Ok(Access3Ok {
                    obj_attributes: pa,
                    access: 3,
                })),
            ),
            (
                P::Readlink,
                R::Readlink(NfsResult::Ok(Readlink3Ok {
                    symlink_attributes: pa,
                    data: Opaque::new(&b"/x/y"[..]),
                })),
            ),
            (
                P::Read,
                R::Read(NfsResult::Ok(Read3Ok {
                    file_attributes: pa,
                    count: 3,
                    eof: true,
                    data: Opaque::new(&b"abc"[..]),
                })),
            ),
            (P::Read, R::Read(NfsResult::Err(NfsStat3::IsDir, None))),
            (
                P::Write,
                R::Write(NfsResult::Ok(Write3Ok {
                    file_wcc: wcc(),
                    count: 5,
                    committed: StableHow::Unstable,
                    verf: 42,
                })),
            ),
            (
                P::Create,
                R::Create(NfsResult::Ok(Create3Ok {
                    obj: Some(fh(6)),
                    obj_attributes: pa,
                    dir_wcc: wcc(),
                })),
            ),
            (P::Mkdir, R::Create(NfsResult::Err(NfsStat3::Exist, wcc()))),
            (
                P::Rename,
                R::Rename(NfsResult::Ok(Rename3Wcc {
                    fromdir_wcc: wcc(),
                    todir_wcc: WccData::default(),
                })),
            ),
            (
                P::Link,
                R::Link(NfsResult::Err(
                    NfsStat3::XDev,
                    Link3Wcc {
                        file_attributes: pa,
                        linkdir_wcc: wcc(),
                    },
                )),
            ),
            (
                P::Readdir,
                R::Readdir(NfsResult::Ok(Readdir3Ok {
                    dir_attributes: pa,
                    cookieverf: 9,
                    reply: DirList3 {
                        entries: vec![
                            Entry3 {
                                fileid: 1,
                                name: name("."),
                                cookie: 1,
                            },
                            Entry3 {
                                fileid: 2,
                                name: name("abcde"),
                                cookie: 9,
                            },
                        ],
                        eof: true,
                    },
                })),
            ),
            (
                P::Readdirplus,
                R::Readdirplus(NfsResult::Ok(Readdirplus3Ok {
                    dir_attributes: pa,
                    cookieverf: 9,
                    reply: DirListPlus3 {
                        entries: vec![EntryPlus3 {
                            fileid: 2,
                            name: name("x"),
                            cookie: 5,
                            name_attributes: pa,
                            name_handle: Some(fh(7)),
                        }],
                        eof: false,
                    },
                })),
            ),
            (
                P::Fsstat,
                R::Fsstat(NfsResult::Ok(Fsstat3Ok {
                    obj_attributes: pa,
                    tbytes: 1,
                    fbytes: 2,
                    abytes: 3,
                    tfiles: 4,
                    ffiles: 5,
                    afiles: 6,
                    invarsec: 0,
                })),
            ),
            (
                P::Fsinfo,
                R::Fsinfo(NfsResult::Ok(Fsinfo3Ok {
                    obj_attributes: pa,
                    rtmax: 1 << 20,
                    rtpref: 1 << 20,
                    rtmult: 4096,
                    wtmax: 1 << 20,
                    wtpref: 1 << 20,
                    wtmult: 4096,
                    dtpref: 65536,
                    maxfilesize: u64::MAX,
                    time_delta: NfsTime3 {
                        seconds: 0,
                        nseconds: 1,
                    },
                    properties: fsf::LINK | fsf::SYMLINK,
                })),
            ),
            (
                P::Pathconf,
                R::Pathconf(NfsResult::Ok(Pathconf3Ok {
                    obj_attributes: pa,
                    linkmax: 1000,
                    name_max: 255,
                    no_trunc: true,
                    chown_restricted: true,
                    case_insensitive: false,
                    case_preserving: true,
                })),
            ),
            (
                P::Commit,
                R::Commit(NfsResult::Ok(Commit3Ok {
                    file_wcc: wcc(),
                    verf: 77,
                })),
            ),
            (P::Commit, R::Commit(NfsResult::Err(NfsStat3::Io, wcc()))),
        ]
    }

    #[test]
    fn every_argument_round_trips_and_truncations_fail() {
        for a in all_args() {
            let mut e = Encoder::new();
            a.encode(&mut e);
            let b = e.into_bytes();
            let back = Nfs3Args::decode(a.proc_(), &mut Decoder::new(b.clone())).unwrap();
            assert_eq!(back, a);
            for cut in 0..b.len() {
                assert!(
                    Nfs3Args::decode(a.proc_(), &mut Decoder::new(b.slice(..cut))).is_err(),
                    "{a:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn every_result_round_trips_and_truncations_fail() {
        for (p, r) in all_results() {
            let b = r.to_bytes();
            assert_eq!(Nfs3Res::decode(p, &mut Decoder::new(b.clone())).unwrap(), r);
            for cut in 0..b.len() {
                assert!(Nfs3Res::decode(p, &mut Decoder::new(b.slice(..cut))).is_err());
            }
        }
    }

    #[test]
    fn small_types_round_trip() {
        round_trip(&attr());
        assert_eq!(attr().to_bytes().len(), FATTR3_SIZE);
        round_trip(&wcc());
        round_trip(&sattr());
        round_trip(&Sattr3::default());
        for s in NfsStat3::ALL {
            round_trip(s);
        }
        for t in Ftype3::ALL {
            round_trip(t);
        }
        for p in NfsProc3::ALL {
            round_trip(p);
        }
        let e = Entry3 {
            fileid: 1,
            name: name("abcde"),
            cookie: 2,
        };
        assert_eq!(e.to_bytes().len() + 4, entry3_size(5));
    }

    #[test]
    fn split_read_encoding_matches_the_whole_one() {
        let ok = Read3Ok {
            file_attributes: Some(attr()),
            count: 5,
            eof: false,
            data: Opaque::new(&b"hello"[..]),
        };
        let whole = NfsResult::<Read3Ok, PostOpAttr>::Ok(ok.clone()).to_bytes();
        let mut e = Encoder::new();
        encode_read_ok_head(&mut e, &ok.file_attributes, ok.eof, 5);
        let mut split = e.as_slice().to_vec();
        split.extend_from_slice(b"hello\0\0\0");
        assert_eq!(&whole[..], &split[..]);
    }

    #[test]
    fn garbage_discriminants_fail() {
        let mut e = Encoder::new();
        e.opaque(&[1; 30]);
        e.opaque(b"n");
        e.u32(3); // no such createmode3
        let b = e.into_bytes();
        assert_eq!(
            Nfs3Args::decode(NfsProc3::Create, &mut Decoder::new(b)),
            Err(XdrError::BadValue)
        );
        let mut e = Encoder::new();
        e.opaque(&[1; 65]);
        assert_eq!(
            Nfs3Args::decode(NfsProc3::Getattr, &mut Decoder::new(e.into_bytes())),
            Err(XdrError::TooLong)
        );
    }
}
