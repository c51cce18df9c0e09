"""Golden values for smb-proto's crypto tests, computed with smbprotocol's
own functions (an independent implementation).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install smbprotocol cryptography
    /tmp/v/bin/python smb-proto/tests/vectors/smbprotocol_golden.py

Prints Rust constants to paste into smb-proto/tests/crypto_vectors.rs.
"""

import hashlib
import types

import smbprotocol.connection as conn
from smbprotocol import Dialects
from smbprotocol.header import Commands
from smbprotocol.connection import Ciphers, Connection, SigningAlgorithms
from smbprotocol.session import Session

SESSION_KEY = bytes.fromhex("7cd451825d0450d235424e44ba6e78cc")
FULL_KEY_32 = bytes.fromhex("7cd451825d0450d235424e44ba6e78cc0123456789abcdeffedcba9876543210")
NEG_REQ = bytes(range(0, 120))
NEG_RESP = bytes(range(100, 250))
SS_REQ1 = b"\x11" * 90
SS_RESP1 = b"\x22" * 200
SS_REQ2 = b"\x33" * 300


def out(name, data):
    print(f'const {name}: &str = "{data.hex()}";')


def kdf(key, label, ctx, length=16):
    return Session._smb3kdf(None, key, label, ctx, length)


h = b"\x00" * 64
for m in (NEG_REQ, NEG_RESP):
    h = hashlib.sha512(h + m).digest()
out("PREAUTH_CONN", h)
for m in (SS_REQ1, SS_RESP1, SS_REQ2):
    h = hashlib.sha512(h + m).digest()
out("PREAUTH_SESSION", h)

out("K300_SIGN", kdf(SESSION_KEY, b"SMB2AESCMAC\x00", b"SmbSign\x00"))
out("K300_APP", kdf(SESSION_KEY, b"SMB2APP\x00", b"SmbRpc\x00"))
out("K300_C2S", kdf(SESSION_KEY, b"SMB2AESCCM\x00", b"ServerIn \x00"))
out("K300_S2C", kdf(SESSION_KEY, b"SMB2AESCCM\x00", b"ServerOut\x00"))
out("K311_SIGN", kdf(SESSION_KEY, b"SMBSigningKey\x00", h))
out("K311_APP", kdf(SESSION_KEY, b"SMBAppKey\x00", h))
out("K311_C2S", kdf(SESSION_KEY, b"SMBC2SCipherKey\x00", h))
out("K311_S2C", kdf(SESSION_KEY, b"SMBS2CCipherKey\x00", h))
out("K311_256_C2S", kdf(FULL_KEY_32, b"SMBC2SCipherKey\x00", h, 32))
out("K311_256_S2C", kdf(FULL_KEY_32, b"SMBS2CCipherKey\x00", h, 32))


def header(command, flags, message_id, session_id=0x0000100000000011):
    hdr = bytearray(64)
    hdr[0:4] = b"\xfeSMB"
    hdr[4:6] = (64).to_bytes(2, "little")
    hdr[12:14] = command.to_bytes(2, "little")
    hdr[14:16] = (1).to_bytes(2, "little")
    hdr[16:20] = flags.to_bytes(4, "little")
    hdr[24:32] = message_id.to_bytes(8, "little")
    hdr[36:40] = (7).to_bytes(4, "little")
    hdr[40:48] = session_id.to_bytes(8, "little")
    return bytes(hdr)


SIGNED = 0x8
RESP = 0x1
BODY = bytes.fromhex("0900000048000000") + b"signed body bytes"
cases = [
    ("HMAC", Dialects.SMB_2_1_0, None, Commands.SMB2_READ, SIGNED | RESP, 5),
    ("CMAC", Dialects.SMB_3_0_2, None, Commands.SMB2_READ, SIGNED, 6),
    ("GMAC_REQ", Dialects.SMB_3_1_1, SigningAlgorithms.AES_GMAC, Commands.SMB2_READ, SIGNED, 7),
    ("GMAC_RESP", Dialects.SMB_3_1_1, SigningAlgorithms.AES_GMAC, Commands.SMB2_READ, SIGNED | RESP, 7),
    ("GMAC_CANCEL", Dialects.SMB_3_1_1, SigningAlgorithms.AES_GMAC, Commands.SMB2_CANCEL, SIGNED, 8),
]
sign_key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
for name, dialect, algo, command, flags, mid in cases:
    msg = header(command, flags, mid) + BODY
    fake = types.SimpleNamespace(dialect=dialect, signing_algorithm_id=algo)
    sig = Connection._generate_signature(fake, msg, sign_key, mid, bool(flags & RESP), command)
    out(f"MSG_{name}", msg)
    out(f"SIG_{name}", sig)

PLAIN = header(Commands.SMB2_READ, RESP, 9) + b"sealed payload, longer than one AES block."
out("SEAL_PLAIN", PLAIN)
nonce_src = bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabacadaeafb0")
conn.os.urandom = lambda n: nonce_src[:n]
for name, cid, key in [
    ("CCM128", Ciphers.AES_128_CCM, bytes.fromhex("00112233445566778899aabbccddeeff")),
    ("GCM128", Ciphers.AES_128_GCM, bytes.fromhex("00112233445566778899aabbccddeeff")),
    ("CCM256", Ciphers.AES_256_CCM, bytes(range(32))),
    ("GCM256", Ciphers.AES_256_GCM, bytes(range(32))),
]:
    fake = types.SimpleNamespace(dialect=Dialects.SMB_3_1_1, cipher_id=cid)
    sess = types.SimpleNamespace(session_id=0x0000100000000011, encryption_key=key)
    sealed = Connection._encrypt(fake, PLAIN, sess).pack()
    out(f"SEALED_{name}", sealed)
