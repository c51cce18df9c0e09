//! SPNEGO (RFC 4178, with Microsoft's NegTokenInit2 of MS-SPNG) tokens as
//! an SMB server sees them, with a small bounds-checked DER reader/writer.

use super::AuthFailure;

/// DER of OID 1.3.6.1.5.5.2 (SPNEGO), content bytes only.
pub const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// OID 1.3.6.1.4.1.311.2.2.10 (NTLMSSP).
pub const OID_NTLMSSP: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
/// OID 1.2.840.113554.1.2.2 (Kerberos 5).
pub const OID_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// OID 1.2.840.48018.1.2.2 (Microsoft's Kerberos 5 alias).
pub const OID_MS_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// The negHints principal Windows and Samba send (MS-SPNG 2.2.1).
pub const NEG_HINTS_PRINCIPAL: &str = "not_defined_in_RFC4178@please_ignore";

const TAG_OID: u8 = 0x06;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_ENUMERATED: u8 = 0x0a;
const TAG_GENERAL_STRING: u8 = 0x1b;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_APPLICATION_0: u8 = 0x60;

const fn ctx(n: u8) -> u8 {
    0xa0 | n
}

// ---------- DER writer ----------

/// Appends a definite-length DER TLV.
pub fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 6);
    tlv(&mut v, tag, content);
    v
}

// ---------- DER reader ----------

/// A cursor over DER bytes; every read is bounds-checked.
#[derive(Debug, Clone, Copy)]
pub struct Der<'a> {
    rest: &'a [u8],
}

fn malformed() -> AuthFailure {
    AuthFailure::Malformed("malformed SPNEGO DER")
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next tag byte, without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads one TLV: its tag, its content, and the whole encoding.
    pub fn read_any(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), AuthFailure> {
        let b = self.rest;
        let tag = *b.first().ok_or_else(malformed)?;
        if tag & 0x1f == 0x1f {
            // High tag numbers never occur in SPNEGO.
            return Err(malformed());
        }
        let first = *b.get(1).ok_or_else(malformed)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2usize)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                // Indefinite lengths are BER, not DER; > 4 GiB is nonsense.
                return Err(malformed());
            }
            let bytes = b.get(2..2 + n).ok_or_else(malformed)?;
            let len = bytes.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            (len, 2 + n)
        };
        let end = header.checked_add(len).ok_or_else(malformed)?;
        let whole = b.get(..end).ok_or_else(malformed)?;
        self.rest = &b[end..];
        Ok((tag, &whole[header..], whole))
    }

    /// Reads one TLV that must have tag `tag`; returns its content.
    pub fn read(&mut self, tag: u8) -> Result<&'a [u8], AuthFailure> {
        let (t, content, _) = self.read_any()?;
        if t != tag {
            return Err(malformed());
        }
        Ok(content)
    }

    /// Reads `[n] EXPLICIT inner` if it is next; returns the content of
    /// `inner`, which must have tag `inner_tag`.
    pub fn optional_inner(&mut self, n: u8, inner_tag: u8) -> Result<Option<&'a [u8]>, AuthFailure> {
        match self.optional(n)? {
            Some(t) => Der::new(t).read(inner_tag).map(Some),
            None => Ok(None),
        }
    }

    /// Reads `[n] EXPLICIT` if it is next.
    pub fn optional(&mut self, n: u8) -> Result<Option<&'a [u8]>, AuthFailure> {
        if self.peek_tag() == Some(ctx(n)) {
            self.read(ctx(n)).map(Some)
        } else {
            Ok(None)
        }
    }
}

// ---------- tokens ----------

/// The initiator's NegTokenInit (RFC 4178 4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegTokenInit<'a> {
    /// The mechanism OIDs (content bytes), most preferred first.
    pub mech_types: Vec<&'a [u8]>,
    /// The DER of the MechTypeList, as received: what mechListMIC covers.
    pub mech_types_der: &'a [u8],
    pub mech_token: Option<&'a [u8]>,
    pub mech_list_mic: Option<&'a [u8]>,
}

/// negState (RFC 4178 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegState {
    AcceptCompleted = 0,
    AcceptIncomplete = 1,
    Reject = 2,
    RequestMic = 3,
}

/// NegTokenResp (RFC 4178 4.2.2), in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegTokenResp<'a> {
    pub neg_state: Option<NegState>,
    pub supported_mech: Option<&'a [u8]>,
    pub response_token: Option<&'a [u8]>,
    pub mech_list_mic: Option<&'a [u8]>,
}

/// A token that reached the acceptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientToken<'a> {
    Init(NegTokenInit<'a>),
    Resp(NegTokenResp<'a>),
}

fn parse_mech_type_list(der: &[u8]) -> Result<Vec<&[u8]>, AuthFailure> {
    let mut d = Der::new(der);
    let mut list = Der::new(d.read(TAG_SEQUENCE)?);
    let mut mechs = Vec::new();
    while !list.is_empty() {
        mechs.push(list.read(TAG_OID)?);
        if mechs.len() > 64 {
            return Err(malformed());
        }
    }
    Ok(mechs)
}

fn parse_init_body(body: &[u8]) -> Result<NegTokenInit<'_>, AuthFailure> {
    let mut outer = Der::new(body);
    let mut seq = Der::new(outer.read(TAG_SEQUENCE)?);
    let mech_types_der = seq
        .optional(0)?
        .ok_or(AuthFailure::Malformed("NegTokenInit without mechTypes"))?;
    let mech_types = parse_mech_type_list(mech_types_der)?;
    // reqFlags [1] is ignored (deprecated in RFC 4178).
    seq.optional(1)?;
    let mech_token = seq.optional_inner(2, TAG_OCTET_STRING)?;
    let mech_list_mic = seq.optional_inner(3, TAG_OCTET_STRING)?;
    Ok(NegTokenInit {
        mech_types,
        mech_types_der,
        mech_token,
        mech_list_mic,
    })
}

fn parse_resp_body(body: &[u8]) -> Result<NegTokenResp<'_>, AuthFailure> {
    let mut outer = Der::new(body);
    let mut seq = Der::new(outer.read(TAG_SEQUENCE)?);
    let neg_state = match seq.optional_inner(0, TAG_ENUMERATED)? {
        Some(e) => Some(match e {
            [0] => NegState::AcceptCompleted,
            [1] => NegState::AcceptIncomplete,
            [2] => NegState::Reject,
            [3] => NegState::RequestMic,
            _ => return Err(malformed()),
        }),
        None => None,
    };
    let supported_mech = seq.optional_inner(1, TAG_OID)?;
    let response_token = seq.optional_inner(2, TAG_OCTET_STRING)?;
    let mech_list_mic = seq.optional_inner(3, TAG_OCTET_STRING)?;
    Ok(NegTokenResp {
        neg_state,
        supported_mech,
        response_token,
        mech_list_mic,
    })
}

/// Decodes a client's SPNEGO token: the GSS-API-framed NegTokenInit
/// (`[APPLICATION 0] { OID spnego, [0] NegTokenInit }`) or a bare
/// `[1] NegTokenResp`.
pub fn parse_client_token(token: &[u8]) -> Result<ClientToken<'_>, AuthFailure> {
    let mut d = Der::new(token);
    match d.peek_tag() {
        Some(TAG_APPLICATION_0) => {
            let mut app = Der::new(d.read(TAG_APPLICATION_0)?);
            if app.read(TAG_OID)? != OID_SPNEGO {
                return Err(AuthFailure::Malformed("GSS-API token is not SPNEGO"));
            }
            parse_init_body(app.read(ctx(0))?).map(ClientToken::Init)
        }
        // A NegTokenInit without GSS-API framing also occurs.
        Some(t) if t == ctx(0) => parse_init_body(d.read(ctx(0))?).map(ClientToken::Init),
        Some(t) if t == ctx(1) => parse_resp_body(d.read(ctx(1))?).map(ClientToken::Resp),
        _ => Err(AuthFailure::Malformed("not a SPNEGO token")),
    }
}

/// Decodes a `[1] NegTokenResp` (as the server sends it; for tests and
/// clients).
pub fn parse_neg_token_resp(token: &[u8]) -> Result<NegTokenResp<'_>, AuthFailure> {
    match parse_client_token(token)? {
        ClientToken::Resp(r) => Ok(r),
        ClientToken::Init(_) => Err(AuthFailure::Malformed("expected NegTokenResp")),
    }
}

/// The DER of a MechTypeList.
pub fn mech_type_list(mechs: &[&[u8]]) -> Vec<u8> {
    let mut oids = Vec::new();
    for m in mechs {
        tlv(&mut oids, TAG_OID, m);
    }
    wrap(TAG_SEQUENCE, &oids)
}

/// The NegTokenInit2 a server puts in its NEGOTIATE response (MS-SPNG
/// 2.2.1): the mechanisms it accepts and the conventional negHints.
pub fn neg_token_init2(mechs: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    tlv(&mut body, ctx(0), &mech_type_list(mechs));
    let hint_name = wrap(ctx(0), &wrap(TAG_GENERAL_STRING, NEG_HINTS_PRINCIPAL.as_bytes()));
    tlv(&mut body, ctx(3), &wrap(TAG_SEQUENCE, &hint_name));
    let mut app = Vec::new();
    tlv(&mut app, TAG_OID, OID_SPNEGO);
    tlv(&mut app, ctx(0), &wrap(TAG_SEQUENCE, &body));
    wrap(TAG_APPLICATION_0, &app)
}

/// A client's NegTokenInit (for tests and clients).
pub fn neg_token_init(mechs: &[&[u8]], mech_token: Option<&[u8]>, mech_list_mic: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    tlv(&mut body, ctx(0), &mech_type_list(mechs));
    if let Some(t) = mech_token {
        tlv(&mut body, ctx(2), &wrap(TAG_OCTET_STRING, t));
    }
    if let Some(m) = mech_list_mic {
        tlv(&mut body, ctx(3), &wrap(TAG_OCTET_STRING, m));
    }
    let mut app = Vec::new();
    tlv(&mut app, TAG_OID, OID_SPNEGO);
    tlv(&mut app, ctx(0), &wrap(TAG_SEQUENCE, &body));
    wrap(TAG_APPLICATION_0, &app)
}

/// Encodes a `[1] NegTokenResp`.
pub fn neg_token_resp(resp: &NegTokenResp<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(s) = resp.neg_state {
        tlv(&mut body, ctx(0), &wrap(TAG_ENUMERATED, &[s as u8]));
    }
    if let Some(m) = resp.supported_mech {
        tlv(&mut body, ctx(1), &wrap(TAG_OID, m));
    }
    if let Some(t) = resp.response_token {
        tlv(&mut body, ctx(2), &wrap(TAG_OCTET_STRING, t));
    }
    if let Some(m) = resp.mech_list_mic {
        tlv(&mut body, ctx(3), &wrap(TAG_OCTET_STRING, m));
    }
    wrap(ctx(1), &wrap(TAG_SEQUENCE, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neg_token_init2_matches_pyspnego() {
        // pyspnego: NegTokenInit(mech_types=[NTLMSSP],
        // hint_name=b"not_defined_in_RFC4178@please_ignore").pack()
        let expected = "604806062b0601050502a03e303ca00e300c060a2b06010401823702020a\
            a32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840\
            706c656173655f69676e6f7265";
        let expected: String = expected.split_whitespace().collect();
        assert_eq!(hex::encode(neg_token_init2(&[OID_NTLMSSP])), expected);
    }

    #[test]
    fn resp_round_trip() {
        let big = vec![7u8; 300];
        let r = NegTokenResp {
            neg_state: Some(NegState::AcceptIncomplete),
            supported_mech: Some(OID_NTLMSSP),
            response_token: Some(&big),
            mech_list_mic: Some(&[1, 2, 3]),
        };
        let enc = neg_token_resp(&r);
        assert_eq!(parse_neg_token_resp(&enc).unwrap(), r);
        let empty = NegTokenResp::default();
        assert_eq!(parse_neg_token_resp(&neg_token_resp(&empty)).unwrap(), empty);
    }

    #[test]
    fn init_round_trip_and_truncation() {
        let t = neg_token_init(&[OID_MS_KRB5, OID_NTLMSSP], Some(b"NTLMSSP\0xyz"), Some(b"mic"));
        match parse_client_token(&t).unwrap() {
            ClientToken::Init(init) => {
                assert_eq!(init.mech_types, vec![OID_MS_KRB5, OID_NTLMSSP]);
                assert_eq!(init.mech_types_der, mech_type_list(&[OID_MS_KRB5, OID_NTLMSSP]));
                assert_eq!(init.mech_token, Some(&b"NTLMSSP\0xyz"[..]));
                assert_eq!(init.mech_list_mic, Some(&b"mic"[..]));
            }
            other => panic!("{other:?}"),
        }
        for len in 0..t.len() {
            assert!(parse_client_token(&t[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn rejects_indefinite_and_huge_lengths() {
        assert!(parse_client_token(&[0x60, 0x80, 0, 0]).is_err());
        assert!(parse_client_token(&[0x60, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(parse_client_token(&[0x60, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse_client_token(&[0xa1, 0x1f]).is_err());
        assert!(parse_client_token(&[0x7f, 0x01, 0x00]).is_err());
    }
}
