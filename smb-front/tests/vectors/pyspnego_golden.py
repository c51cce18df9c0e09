"""Records NTLM and SPNEGO exchanges between pyspnego's client (an
independent implementation) and our acceptor, for tests/pyspnego.rs.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install pyspnego
    cargo build -p smb-front --example acceptor_stdio
    /tmp/v/bin/python smb-front/tests/vectors/pyspnego_golden.py $CARGO_TARGET_DIR/debug/examples/acceptor_stdio

The acceptor's challenge is fixed, so replaying the recorded client tokens
reproduces the exchange. pyspnego also checks the server's mechListMIC.
"""

import subprocess
import sys

import spnego

HELPER = sys.argv[1]
USER = "WORKGROUP\\render"
PASSWORD = "S3cret-pass"


class Server:
    def __init__(self):
        self.p = subprocess.Popen([HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def step(self, token):
        self.p.stdin.write(token.hex() + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().split()


def out(name, data):
    print(f'const {name}: &str = "{data.hex()}";')


def exchange(password, protocol):
    """Runs one exchange; returns the client tokens, the server's answers,
    the server's last result and the client."""
    srv = Server()
    c = spnego.client(USER, password, hostname="weir1", protocol=protocol)
    sent, answers = [c.step()], []
    while True:
        res = srv.step(sent[-1])
        if res[0] != "CONTINUE":
            return sent, answers, res, c
        answers.append(bytes.fromhex(res[1]))
        sent.append(c.step(answers[-1]))


# Raw NTLMSSP, as some clients send it without SPNEGO.
(neg, auth), (chal,), res, c = exchange(PASSWORD, "ntlm")
assert res[0] == "DONE" and bytes.fromhex(res[1]) == c.session_key, res
out("RAW_NEGOTIATE", neg)
out("RAW_CHALLENGE", chal)
out("RAW_AUTHENTICATE", auth)
out("RAW_SESSION_KEY", c.session_key)

# SPNEGO with NTLM, with mechListMIC both ways.
(t1, t3), (t2,), res, c = exchange(PASSWORD, "negotiate")
assert res[0] == "DONE" and bytes.fromhex(res[1]) == c.session_key, res
final = bytes.fromhex(res[2])
c.step(final)  # raises if our mechListMIC does not verify
assert c.complete
out("SPNEGO_INIT", t1)
out("SPNEGO_CHALLENGE", t2)
out("SPNEGO_AUTHENTICATE", t3)
out("SPNEGO_FINAL", final)
out("SPNEGO_SESSION_KEY", c.session_key)

# Wrong password: the recorded tokens must fail.
(neg, auth), _, res, _ = exchange("wrong-pass", "ntlm")
assert res[0] == "FAILED", res
out("WRONG_NEGOTIATE", neg)
out("WRONG_AUTHENTICATE", auth)
