//! MS-DTYP security structures: SID (2.4.2), ACE (2.4.4), ACL (2.4.5) and
//! the self-relative SECURITY_DESCRIPTOR (2.4.6), plus access mask bits.
//! SACLs are not supported: a descriptor carrying one is rejected on decode.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::wire::{check_count, Reader, WriteExt};

/// Access mask bits (MS-SMB2 2.2.13.1, MS-DTYP 2.4.3).
pub mod access {
    pub const FILE_READ_DATA: u32 = 0x0000_0001;
    pub const FILE_LIST_DIRECTORY: u32 = 0x0000_0001;
    pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
    pub const FILE_ADD_FILE: u32 = 0x0000_0002;
    pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
    pub const FILE_ADD_SUBDIRECTORY: u32 = 0x0000_0004;
    pub const FILE_READ_EA: u32 = 0x0000_0008;
    pub const FILE_WRITE_EA: u32 = 0x0000_0010;
    pub const FILE_EXECUTE: u32 = 0x0000_0020;
    pub const FILE_TRAVERSE: u32 = 0x0000_0020;
    pub const FILE_DELETE_CHILD: u32 = 0x0000_0040;
    pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
    pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0000_0100;
    pub const DELETE: u32 = 0x0001_0000;
    pub const READ_CONTROL: u32 = 0x0002_0000;
    pub const WRITE_DAC: u32 = 0x0004_0000;
    pub const WRITE_OWNER: u32 = 0x0008_0000;
    pub const SYNCHRONIZE: u32 = 0x0010_0000;
    pub const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
    pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
    pub const GENERIC_ALL: u32 = 0x1000_0000;
    pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
    pub const GENERIC_WRITE: u32 = 0x4000_0000;
    pub const GENERIC_READ: u32 = 0x8000_0000;
    /// Every specific and standard right on a file.
    pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
}

/// AdditionalInformation bits of QUERY_INFO / SET_INFO for security.
pub mod additional_info {
    pub const OWNER_SECURITY_INFORMATION: u32 = 0x0000_0001;
    pub const GROUP_SECURITY_INFORMATION: u32 = 0x0000_0002;
    pub const DACL_SECURITY_INFORMATION: u32 = 0x0000_0004;
    pub const SACL_SECURITY_INFORMATION: u32 = 0x0000_0008;
    pub const LABEL_SECURITY_INFORMATION: u32 = 0x0000_0010;
}

/// SECURITY_DESCRIPTOR Control bits.
pub mod control {
    pub const OWNER_DEFAULTED: u16 = 0x0001;
    pub const GROUP_DEFAULTED: u16 = 0x0002;
    pub const DACL_PRESENT: u16 = 0x0004;
    pub const DACL_DEFAULTED: u16 = 0x0008;
    pub const SACL_PRESENT: u16 = 0x0010;
    pub const DACL_AUTO_INHERITED: u16 = 0x0400;
    pub const DACL_PROTECTED: u16 = 0x1000;
    pub const SELF_RELATIVE: u16 = 0x8000;
}

pub mod ace_flags {
    pub const OBJECT_INHERIT: u8 = 0x01;
    pub const CONTAINER_INHERIT: u8 = 0x02;
    pub const NO_PROPAGATE_INHERIT: u8 = 0x04;
    pub const INHERIT_ONLY: u8 = 0x08;
    pub const INHERITED: u8 = 0x10;
}

const MAX_SUB_AUTHORITIES: usize = 15;

/// A security identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sid {
    /// 48-bit IdentifierAuthority (big-endian on the wire).
    pub authority: u64,
    pub sub_authorities: Vec<u32>,
}

impl Sid {
    pub fn new(authority: u64, sub_authorities: &[u32]) -> Self {
        Sid {
            authority,
            sub_authorities: sub_authorities.to_vec(),
        }
    }

    /// S-1-1-0, Everyone.
    pub fn everyone() -> Self {
        Sid::new(1, &[0])
    }

    pub fn wire_len(&self) -> usize {
        8 + 4 * self.sub_authorities.len()
    }

    pub fn decode(r: &mut Reader) -> Result<Sid> {
        let rev = r.u8("SID Revision")?;
        if rev != 1 {
            return Err(DecodeError::InvalidValue {
                what: "SID Revision",
                value: rev.into(),
            });
        }
        let n = usize::from(r.u8("SubAuthorityCount")?);
        if n > MAX_SUB_AUTHORITIES {
            return Err(DecodeError::InvalidValue {
                what: "SubAuthorityCount",
                value: n as u64,
            });
        }
        let a: [u8; 6] = r.array("IdentifierAuthority")?;
        let authority = a.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        check_count(n, 4, r.remaining(), "SubAuthority")?;
        let sub_authorities = (0..n).map(|_| r.u32("SubAuthority")).collect::<Result<_>>()?;
        Ok(Sid {
            authority,
            sub_authorities,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(1);
        out.put_u8(self.sub_authorities.len().min(MAX_SUB_AUTHORITIES) as u8);
        out.put_slice(&self.authority.to_be_bytes()[2..]);
        for &s in self.sub_authorities.iter().take(MAX_SUB_AUTHORITIES) {
            out.put_u32_le(s);
        }
    }
}

impl std::str::FromStr for Sid {
    type Err = DecodeError;

    /// Parse `S-1-<authority>-<sub>...` (authority decimal or 0x hex).
    fn from_str(s: &str) -> Result<Sid> {
        let bad = || DecodeError::InvalidValue {
            what: "SID string",
            value: s.len() as u64,
        };
        let mut parts = s.split('-');
        if !matches!(parts.next(), Some("S" | "s")) || parts.next() != Some("1") {
            return Err(bad());
        }
        let a = parts.next().ok_or_else(bad)?;
        let authority = match a.strip_prefix("0x").or_else(|| a.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => a.parse(),
        }
        .map_err(|_| bad())?;
        if authority >= 1 << 48 {
            return Err(bad());
        }
        let sub_authorities = parts
            .map(|p| p.parse::<u32>().map_err(|_| bad()))
            .collect::<Result<Vec<u32>>>()?;
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(bad());
        }
        Ok(Sid {
            authority,
            sub_authorities,
        })
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // MS-DTYP 2.4.2.1: large authorities print in hex.
        if self.authority >= 1 << 32 {
            write!(f, "S-1-{:#014X}", self.authority)?;
        } else {
            write!(f, "S-1-{}", self.authority)?;
        }
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

pub mod ace_type {
    pub const ACCESS_ALLOWED: u8 = 0x00;
    pub const ACCESS_DENIED: u8 = 0x01;
    pub const SYSTEM_AUDIT: u8 = 0x02;
}

/// One access control entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ace {
    Allowed {
        flags: u8,
        mask: u32,
        sid: Sid,
    },
    Denied {
        flags: u8,
        mask: u32,
        sid: Sid,
    },
    /// Any other type, kept whole (body after the 4-byte ACE header).
    Other {
        ace_type: u8,
        flags: u8,
        body: Bytes,
    },
}

impl Ace {
    fn decode(r: &mut Reader) -> Result<Ace> {
        let ty = r.u8("AceType")?;
        let flags = r.u8("AceFlags")?;
        let size = usize::from(r.u16("AceSize")?);
        let body = r.bytes(
            size.checked_sub(4).ok_or(DecodeError::InvalidValue {
                what: "AceSize",
                value: size as u64,
            })?,
            "ACE body",
        )?;
        let mut b = Reader::new(body.clone());
        Ok(match ty {
            ace_type::ACCESS_ALLOWED | ace_type::ACCESS_DENIED => {
                let mask = b.u32("ACE Mask")?;
                let sid = Sid::decode(&mut b)?;
                if ty == ace_type::ACCESS_ALLOWED {
                    Ace::Allowed { flags, mask, sid }
                } else {
                    Ace::Denied { flags, mask, sid }
                }
            }
            _ => Ace::Other {
                ace_type: ty,
                flags,
                body,
            },
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        match self {
            Ace::Allowed { flags, mask, sid } | Ace::Denied { flags, mask, sid } => {
                let ty = if matches!(self, Ace::Allowed { .. }) {
                    ace_type::ACCESS_ALLOWED
                } else {
                    ace_type::ACCESS_DENIED
                };
                out.put_u8(ty);
                out.put_u8(*flags);
                out.put_u16_le(0);
                out.put_u32_le(*mask);
                sid.encode(out);
            }
            Ace::Other {
                ace_type,
                flags,
                body,
            } => {
                out.put_u8(*ace_type);
                out.put_u8(*flags);
                out.put_u16_le(0);
                out.put_slice(body);
            }
        }
        out.pad_to(start, 4);
        let size = (out.len() - start) as u16;
        out.patch_u16(start + 2, size);
    }
}

/// An access control list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub revision: u8,
    pub aces: Vec<Ace>,
}

impl Acl {
    pub fn new(aces: Vec<Ace>) -> Self {
        Acl { revision: 2, aces }
    }

    pub fn decode(r: &mut Reader) -> Result<Acl> {
        let revision = r.u8("AclRevision")?;
        if !(2..=4).contains(&revision) {
            return Err(DecodeError::InvalidValue {
                what: "AclRevision",
                value: revision.into(),
            });
        }
        r.skip(1, "Sbz1")?;
        let size = usize::from(r.u16("AclSize")?);
        let count = usize::from(r.u16("AceCount")?);
        r.skip(2, "Sbz2")?;
        let body = r.bytes(
            size.checked_sub(8).ok_or(DecodeError::InvalidValue {
                what: "AclSize",
                value: size as u64,
            })?,
            "ACL body",
        )?;
        let mut b = Reader::new(body);
        check_count(count, 8, b.remaining(), "AceCount")?;
        let aces = (0..count).map(|_| Ace::decode(&mut b)).collect::<Result<_>>()?;
        Ok(Acl { revision, aces })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u8(self.revision);
        out.put_u8(0);
        out.put_u16_le(0);
        out.put_u16_le(self.aces.len() as u16);
        out.put_u16_le(0);
        for a in &self.aces {
            a.encode(out);
        }
        let size = (out.len() - start) as u16;
        out.patch_u16(start + 2, size);
    }
}

/// A security descriptor (owner, group, DACL; no SACL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityDescriptor {
    /// Control bits other than SELF_RELATIVE / DACL_PRESENT / SACL_PRESENT,
    /// which follow from the fields.
    pub control: u16,
    pub owner: Option<Sid>,
    pub group: Option<Sid>,
    /// `None`: no DACL (full access); `Some` with no ACEs: no access.
    pub dacl: Option<Acl>,
}

impl SecurityDescriptor {
    /// Decode a self-relative descriptor.
    pub fn decode(buf: Bytes) -> Result<SecurityDescriptor> {
        let mut r = Reader::new(buf);
        let rev = r.u8("SD Revision")?;
        if rev != 1 {
            return Err(DecodeError::InvalidValue {
                what: "SD Revision",
                value: rev.into(),
            });
        }
        r.skip(1, "Sbz1")?;
        let control = r.u16("Control")?;
        if control & control::SELF_RELATIVE == 0 {
            return Err(DecodeError::InvalidValue {
                what: "SD Control (not self-relative)",
                value: control.into(),
            });
        }
        let owner = r.u32("OffsetOwner")?;
        let group = r.u32("OffsetGroup")?;
        let sacl = r.u32("OffsetSacl")?;
        let dacl = r.u32("OffsetDacl")?;
        if control & control::SACL_PRESENT != 0 && sacl != 0 {
            return Err(DecodeError::Unsupported {
                what: "SACL in security descriptor",
                class: sacl,
            });
        }
        let at = |off: u32, what| -> Result<Option<Reader>> {
            if off == 0 {
                return Ok(None);
            }
            if off < 20 {
                return Err(DecodeError::OutOfBounds {
                    what,
                    offset: off.into(),
                    len: 0,
                    size: r.buf().len(),
                });
            }
            r.from_offset(off.into(), what).map(Some)
        };
        let owner = at(owner, "OffsetOwner")?
            .map(|mut s| Sid::decode(&mut s))
            .transpose()?;
        let group = at(group, "OffsetGroup")?
            .map(|mut s| Sid::decode(&mut s))
            .transpose()?;
        let dacl = if control & control::DACL_PRESENT != 0 {
            at(dacl, "OffsetDacl")?
                .map(|mut s| Acl::decode(&mut s))
                .transpose()?
        } else {
            None
        };
        Ok(SecurityDescriptor {
            control: control & !(control::SELF_RELATIVE | control::DACL_PRESENT | control::SACL_PRESENT),
            owner,
            group,
            dacl,
        })
    }

    /// Encode self-relative, with only the parts `info`
    /// (OWNER/GROUP/DACL_SECURITY_INFORMATION bits) asks for.
    pub fn encode(&self, info: u32, out: &mut BytesMut) {
        use additional_info as ai;
        let start = out.len();
        let want_dacl = info & ai::DACL_SECURITY_INFORMATION != 0;
        let mut ctl = self.control | control::SELF_RELATIVE;
        if want_dacl && self.dacl.is_some() {
            ctl |= control::DACL_PRESENT;
        }
        if !want_dacl {
            ctl &= !(control::DACL_AUTO_INHERITED | control::DACL_PROTECTED | control::DACL_DEFAULTED);
        }
        out.put_u8(1);
        out.put_u8(0);
        out.put_u16_le(ctl);
        out.put_bytes(0, 16);
        let put_at = |field: usize, out: &mut BytesMut, f: &dyn Fn(&mut BytesMut)| {
            let off = (out.len() - start) as u32;
            out.patch_u32(start + field, off);
            f(out);
        };
        if let (true, Some(o)) = (info & ai::OWNER_SECURITY_INFORMATION != 0, &self.owner) {
            put_at(4, out, &|out| o.encode(out));
        }
        if let (true, Some(g)) = (info & ai::GROUP_SECURITY_INFORMATION != 0, &self.group) {
            put_at(8, out, &|out| g.encode(out));
        }
        if let (true, Some(d)) = (want_dacl, &self.dacl) {
            put_at(16, out, &|out| d.encode(out));
        }
    }

    /// Encode everything this descriptor holds.
    pub fn to_bytes(&self) -> Bytes {
        use additional_info as ai;
        let mut b = BytesMut::new();
        let all =
            ai::OWNER_SECURITY_INFORMATION | ai::GROUP_SECURITY_INFORMATION | ai::DACL_SECURITY_INFORMATION;
        self.encode(all, &mut b);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use additional_info as ai;

    fn sd() -> SecurityDescriptor {
        SecurityDescriptor {
            control: control::DACL_PROTECTED,
            owner: Some(Sid::new(5, &[21, 1, 2, 3, 1000])),
            group: Some(Sid::new(5, &[32, 544])),
            dacl: Some(Acl::new(vec![
                Ace::Allowed {
                    flags: ace_flags::OBJECT_INHERIT | ace_flags::CONTAINER_INHERIT,
                    mask: access::FILE_ALL_ACCESS,
                    sid: Sid::everyone(),
                },
                Ace::Denied {
                    flags: 0,
                    mask: access::WRITE_DAC,
                    sid: Sid::new(5, &[11]),
                },
            ])),
        }
    }

    #[test]
    fn sid_bytes_and_display() {
        let s = Sid::new(5, &[32, 544]);
        let mut b = BytesMut::new();
        s.encode(&mut b);
        assert_eq!(&b[..], &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0]);
        assert_eq!(s.to_string(), "S-1-5-32-544");
        assert_eq!(Sid::decode(&mut Reader::new(b.freeze())).unwrap(), s);
        assert_eq!(Sid::new(0x1_0000_0000, &[]).to_string(), "S-1-0x000100000000");
        for text in [
            "S-1-5-32-544",
            "S-1-1-0",
            "S-1-5-21-1-2-3-1000",
            "S-1-0x000100000000",
        ] {
            assert_eq!(text.parse::<Sid>().unwrap().to_string(), text);
        }
        for bad in [
            "",
            "S-2-5",
            "S-1",
            "S-1-x",
            "S-1-5-4294967296",
            "S-1-0x1000000000000",
        ] {
            assert!(bad.parse::<Sid>().is_err(), "{bad}");
        }
        // 16 sub-authorities, bad revision, truncated.
        assert!(Sid::decode(&mut Reader::new(Bytes::from_static(&[1, 16, 0, 0, 0, 0, 0, 5]))).is_err());
        assert!(Sid::decode(&mut Reader::new(Bytes::from_static(&[2, 0, 0, 0, 0, 0, 0, 5]))).is_err());
        assert!(Sid::decode(&mut Reader::new(Bytes::from_static(&[1, 2, 0, 0, 0, 0, 0, 5, 1]))).is_err());
    }

    #[test]
    fn descriptor_byte_image() {
        // Owner S-1-1-0 only, then an empty DACL.
        let b = [
            1, 0, 0x04, 0x80, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, // header
            1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, // S-1-1-0
            2, 0, 8, 0, 0, 0, 0, 0, // empty ACL
        ];
        let d = SecurityDescriptor::decode(Bytes::copy_from_slice(&b)).unwrap();
        assert_eq!(d.owner, Some(Sid::everyone()));
        assert_eq!(d.group, None);
        assert_eq!(d.dacl, Some(Acl::new(vec![])));
        assert_eq!(&d.to_bytes()[..], &b[..]);
    }

    #[test]
    fn descriptor_round_trip_and_selection() {
        let full = sd().to_bytes();
        assert_eq!(SecurityDescriptor::decode(full.clone()).unwrap(), sd());
        let mut b = BytesMut::new();
        sd().encode(ai::OWNER_SECURITY_INFORMATION, &mut b);
        let only = SecurityDescriptor::decode(b.freeze()).unwrap();
        assert_eq!(only.owner, sd().owner);
        assert!(only.group.is_none() && only.dacl.is_none());
        assert_eq!(only.control, 0);
    }

    #[test]
    fn hostile_descriptors_are_errors() {
        let full = sd().to_bytes().to_vec();
        for n in 0..full.len() {
            assert!(
                SecurityDescriptor::decode(Bytes::copy_from_slice(&full[..n])).is_err(),
                "{n}"
            );
        }
        let mut bad = full.clone();
        bad[16..20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert!(SecurityDescriptor::decode(Bytes::from(bad)).is_err());
        let mut bad = full.clone();
        bad[2] |= 0x10;
        bad[12] = 20;
        assert!(matches!(
            SecurityDescriptor::decode(Bytes::from(bad)),
            Err(DecodeError::Unsupported { .. })
        ));
        let mut bad = full.clone();
        bad[4] = 4; // owner inside the header
        assert!(SecurityDescriptor::decode(Bytes::from(bad)).is_err());
        let mut bad = full;
        bad[3] = 0; // not self-relative
        assert!(SecurityDescriptor::decode(Bytes::from(bad)).is_err());
    }
}
