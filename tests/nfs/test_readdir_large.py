"""READDIR and READDIRPLUS over a directory of 10,000 entries with small counts: every
name exactly once, the cookie verifier echoed, resumption from a cookie."""

import os

import pytest
from pyNfsClient import const as C

from nfsclient import lookup_fh, ok, random_name, readdir_entries

N = 10_000


@pytest.fixture(scope="module")
def big(sess):
    name = random_name("big")
    path = sess.export.backdir / name
    path.mkdir()
    for i in range(N):
        os.close(os.open(path / f"entry-{i:05d}-{'x' * (i % 37)}", os.O_CREAT | os.O_WRONLY, 0o644))
    names = set(os.listdir(path))
    assert len(names) == N
    return lookup_fh(sess.nfs, sess.root, name), names


def walk(call, first_verf=b"\0" * 8, cookie=0):
    """All entries from `cookie` on; checks that every reply carries the verifier back."""
    entries, verf, calls = [], first_verf, 0
    while True:
        res = ok(call(cookie, verf), f"directory read at cookie {cookie}")["resok"]
        calls += 1
        got = readdir_entries(res)
        if cookie != 0:
            assert res["cookieverf"] == verf, "cookie verifier changed during the walk"
        verf = res["cookieverf"]
        entries += got
        if res["reply"]["eof"]:
            return entries, calls
        assert got, "a reply with no entries and no eof"
        cookie = got[-1]["cookie"]
        assert calls < 10 * N, "the walk does not end"


def check_exactly_once(entries, names):
    got = [e["name"].decode() for e in entries if e["name"] not in (b".", b"..")]
    dup = {n for n in got if got.count(n) > 1} if len(got) != len(set(got)) else set()
    assert not dup, f"{len(dup)} names came more than once, e.g. {sorted(dup)[:5]}"
    missing = names - set(got)
    assert not missing, f"{len(missing)} names missing, e.g. {sorted(missing)[:5]}"
    assert set(got) == names, f"unexpected names {sorted(set(got) - names)[:5]}"
    cookies = [e["cookie"] for e in entries]
    assert len(set(cookies)) == len(cookies), "two entries share a cookie"


def test_readdir_10000_small_count(sess, big):
    fh, names = big
    entries, calls = walk(lambda c, v: sess.nfs.readdir(fh, cookie=c, cookie_verf=v, count=1024))
    check_exactly_once(entries, names)
    assert calls > 100, f"count=1024 still returned everything in {calls} replies"


def test_readdirplus_10000_small_count(sess, big):
    fh, names = big
    entries, calls = walk(lambda c, v: sess.nfs.readdirplus(fh, cookie=c, cookie_verf=v,
                                                            dircount=512, maxcount=4096))
    check_exactly_once(entries, names)
    assert calls > 100
    for e in entries[::997]:
        if e["name"] in (b".", b".."):
            continue
        assert e["name_attributes"]["present"] and e["name_handle"]["present"]
        assert e["name_attributes"]["attributes"]["fileid"] == e["fileid"]


def test_readdir_resume_from_cookie(sess, big):
    fh, names = big
    nfs = sess.nfs
    entries, _ = walk(lambda c, v: nfs.readdir(fh, cookie=c, cookie_verf=v, count=8192))
    first = ok(nfs.readdir(fh, count=1024))["resok"]
    verf = first["cookieverf"]
    mid = len(entries) // 2
    rest, _ = walk(lambda c, v: nfs.readdir(fh, cookie=c, cookie_verf=v, count=2048),
                   first_verf=verf, cookie=entries[mid]["cookie"])
    assert [e["name"] for e in rest] == [e["name"] for e in entries[mid + 1:]]
