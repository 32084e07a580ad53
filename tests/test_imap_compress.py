"""COMPRESS=DEFLATE (RFC 4978) through a raw client session on a real mailstored, with Python's
zlib as the client's raw DEFLATE (wbits=-15) in both directions: only after authentication,
the OK in the clear and everything after it compressed, NO [COMPRESSIONACTIVE] the second
time, garbage and decompression bombs end only their own connection, over IMAPS and STARTTLS
too."""

from __future__ import annotations

import base64
import random
import re
import zlib

from harness import HOST, PASSWORD, RawClient, insecure_context


class ZClient(RawClient):
    """A RawClient whose stream can switch to raw DEFLATE after COMPRESS; counts wire and
    inflated bytes received so tests can see the compression."""

    def __init__(self, port: int, tls: bool = False, timeout: float = 15):
        super().__init__(HOST, port, timeout)
        if tls:
            self.starttls()
        self.z_out = None
        self.z_in = None
        self.wire_in = 0
        self.plain_in = 0

    def starttls(self) -> None:
        self.sock = insecure_context().wrap_socket(self.sock, server_hostname=HOST)

    def compress(self) -> None:
        """Starts DEFLATE right after the tagged OK, as RFC 4978 3 says (nothing may be
        buffered: the server sends nothing uncompressed after its OK)."""
        assert self.buf == b"", self.buf
        self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.z_in = zlib.decompressobj(-15)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if self.z_out is not None:
            data = self.z_out.compress(data) + self.z_out.flush(zlib.Z_SYNC_FLUSH)
        self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float | None) -> None:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by server")
        self.wire_in += len(chunk)
        if self.z_in is not None:
            chunk = self.z_in.decompress(chunk)
        self.plain_in += len(chunk)
        self.buf += chunk

    def ok(self, text: str) -> list[bytes]:
        untagged, tagged = self.command(text)
        assert tagged.split()[1] == b"OK", (text, tagged, untagged)
        return untagged

    def start_compress(self) -> None:
        untagged, tagged = self.command("COMPRESS DEFLATE")
        assert tagged.split()[1] == b"OK", tagged
        assert untagged == []
        self.compress()


def logged_in(server, user: str, proto: str = "imap", tls: bool = False) -> ZClient:
    c = ZClient(server.ports[proto], tls=tls)
    assert c.readline().startswith(b"* OK")
    c.login(user)
    return c


def append(c: ZClient, box: str, msg: bytes, sync: bool) -> int:
    """APPEND with a synchronizing literal (the `+` continuation comes compressed) or a
    LITERAL+ one."""
    tag = c.next_tag()
    if sync:
        c.send(f"{tag} APPEND {box} (\\Seen) {{{len(msg)}}}\r\n".encode())
        assert c.readline().startswith(b"+ "), "continuation request"
        c.send(msg + b"\r\n")
    else:
        c.send(f"{tag} APPEND {box} (\\Seen) {{{len(msg)}+}}\r\n".encode() + msg + b"\r\n")
    _, tagged = c.read_until_tag(tag)
    m = re.search(rb"OK \[APPENDUID \d+ (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(1))


def fetch_body(c: ZClient, uid: int) -> bytes:
    untagged = c.ok(f"UID FETCH {uid} (BODY.PEEK[])")
    bodies = [u for u in untagged if b"BODY[]" in u]
    assert len(bodies) == 1, untagged
    m = re.search(rb"BODY\[\] \{(\d+)\}\r\n", bodies[0])
    assert m, bodies[0][:200]
    start = m.end()
    return bodies[0][start:start + int(m.group(1))]


def message(subject: str, body: str) -> bytes:
    return (f"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\n{body}").encode()


def large_message() -> bytes:
    """About 2 MB as mail really is: quoted text and a base64 attachment of random bytes."""
    rnd = random.Random(4978)
    words = ("the of and to in a is that for it as was with be by on not he this are or his "
             "from at which but have an they you were her she there been one all we their has "
             "would when if so no will can more other mailbox server client message folder").split()
    lines = []
    while sum(len(x) for x in lines) < 1_200_000:
        lines.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(8, 14))) + "\r\n")
    blob = bytes(rnd.getrandbits(8) for _ in range(600_000))
    b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
    body = ("--b\r\nContent-Type: text/plain\r\n\r\n" + "".join(lines) +
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + b64 + "--b--\r\n")
    head = ("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: big\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
    return (head + body).encode()


def test_capability_advertised(server, user):
    c = logged_in(server, user)
    caps = c.ok("CAPABILITY")[0].split()
    assert b"COMPRESS=DEFLATE" in caps, caps
    c.close()


def test_compress_before_login_refused(server):
    c = ZClient(server.ports["imap"])
    assert c.readline().startswith(b"* OK")
    _, tagged = c.command("COMPRESS DEFLATE")
    assert tagged.split()[1] in (b"BAD", b"NO"), tagged
    # Still uncompressed: a plain command is understood and answered in the clear.
    _, tagged = c.command("NOOP")
    assert tagged.split()[1] == b"OK", tagged
    c.login(server.new_user())
    c.start_compress()
    c.ok("NOOP")
    c.close()


def test_unknown_algorithm_is_bad(server, user):
    c = logged_in(server, user)
    _, tagged = c.command("COMPRESS LZW")
    assert tagged.split()[1] == b"BAD", tagged
    c.ok("NOOP")
    c.close()


def test_session_compressed_both_ways(server, user):
    c = logged_in(server, user)
    c.start_compress()
    # The server's bytes are no longer readable text.
    wire0 = c.wire_in
    untagged = c.ok("SELECT INBOX")
    assert any(b"EXISTS" in u for u in untagged), untagged
    assert c.wire_in > wire0
    first = message("one", "first body\r\n")
    second = message("two", "second body\r\n" * 50)
    uid1 = append(c, "INBOX", first, sync=True)
    uid2 = append(c, "INBOX", second, sync=False)
    assert fetch_body(c, uid1) == first
    assert fetch_body(c, uid2) == second
    untagged = c.ok("UID SEARCH SUBJECT two")
    assert untagged == [f"* SEARCH {uid2}\r\n".encode()], untagged
    untagged = c.ok(f"UID FETCH {uid1}:{uid2} (FLAGS)")
    assert len(untagged) == 2 and all(b"\\Seen" in u for u in untagged), untagged
    # Two commands in one compressed flush are both answered.
    c.send("p1 NOOP\r\np2 CAPABILITY\r\n")
    _, t1 = c.read_until_tag("p1")
    untagged, t2 = c.read_until_tag("p2")
    assert b"OK" in t1 and b"OK" in t2 and b"COMPRESS=DEFLATE" in untagged[0]
    c.ok("CREATE Zipped")
    c.ok(f"UID COPY {uid1} Zipped")
    untagged = c.ok('STATUS Zipped (MESSAGES)')
    assert b"MESSAGES 1" in untagged[0], untagged
    untagged, tagged = c.command("LOGOUT")
    assert untagged[0].startswith(b"* BYE") and b"OK" in tagged
    assert c.wait_closed(5)
    c.close()
    # What was done compressed is in the store, seen by an ordinary session.
    m = server.imap(user)
    typ, data = m.select("Zipped")
    assert typ == "OK" and data == [b"1"]
    m.logout()


def test_large_fetch_and_append(server, user):
    big = large_message()
    c = logged_in(server, user)
    c.start_compress()
    c.ok("SELECT INBOX")
    uid = append(c, "INBOX", big, sync=True)
    wire0, plain0 = c.wire_in, c.plain_in
    got = fetch_body(c, uid)
    wire, plain = c.wire_in - wire0, c.plain_in - plain0
    assert got == big
    ratio = wire / plain
    print(f"\nlarge FETCH: {plain} bytes inflated from {wire} on the wire, ratio {ratio:.3f}")
    assert ratio < 0.6, ratio
    c.close()


def test_idle_compressed(server, user):
    c = logged_in(server, user)
    c.start_compress()
    c.ok("SELECT INBOX")
    c.send("i1 IDLE\r\n")
    assert c.readline().startswith(b"+ ")
    server.deliver_ok(user, message("during idle", "hello\r\n"))
    line = c.readline(timeout=10)
    assert line == b"* 1 EXISTS\r\n", line
    c.send("DONE\r\n")
    _, tagged = c.read_until_tag("i1")
    assert b"OK" in tagged, tagged
    c.ok("NOOP")
    c.close()


def test_second_compress_refused(server, user):
    c = logged_in(server, user)
    c.start_compress()
    _, tagged = c.command("COMPRESS DEFLATE")
    assert re.match(rb"r\d+ NO \[COMPRESSIONACTIVE\]", tagged), tagged
    c.ok("NOOP")
    c.close()


def still_serving(server) -> None:
    c = logged_in(server, server.new_user())
    c.start_compress()
    c.ok("SELECT INBOX")
    c.close()
    assert server.running()


def test_garbage_ends_only_that_connection(server, user):
    other = logged_in(server, server.new_user())
    other.start_compress()
    c = logged_in(server, user)
    c.start_compress()
    c.send_raw(b"\xff" * 64)  # a block of the reserved type 3: not DEFLATE
    line = c.readline(timeout=10)
    assert line.startswith(b"* BYE"), line
    assert c.wait_closed(5)
    c.close()
    other.ok("NOOP")
    other.close()
    still_serving(server)


def test_uncompressed_input_after_compress_ends_the_connection(server, user):
    c = logged_in(server, user)
    c.start_compress()
    c.send_raw(b"a1 NOOP\r\n")
    assert c.wait_closed(10)
    c.close()
    still_serving(server)


def vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_decompression_bomb_is_bounded(server, user):
    """200 MB of one byte, compressed to about 200 KB and sent at once as a command line:
    refused as too long (max_line_bytes) without the server inflating more than a step of it."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    mb = b"a" * (1 << 20)
    bomb = b"".join(z.compress(mb) for _ in range(200)) + z.flush(zlib.Z_SYNC_FLUSH)
    c = logged_in(server, user)
    c.start_compress()
    c.ok("SELECT INBOX")
    before = vm_hwm_kb(server.proc.pid)
    try:
        c.send_raw(bomb)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server gave up on the line, as it should
    try:
        line = c.readline(timeout=10)
        assert line.startswith(b"* BYE") and b"TOOBIG" in line, line
    except (EOFError, ConnectionResetError):
        pass
    c.close()
    grown = vm_hwm_kb(server.proc.pid) - before
    print(f"\nbomb: {len(bomb)} bytes, peak grew {grown} kB")
    assert grown < 8 * 1024, f"server peak memory grew by {grown} kB for a {len(bomb)}-byte bomb"
    still_serving(server)


def test_over_imaps(server, user):
    c = logged_in(server, user, proto="imaps", tls=True)
    c.start_compress()
    c.ok("SELECT INBOX")
    msg = message("tls", "over tls and deflate\r\n" * 100)
    uid = append(c, "INBOX", msg, sync=True)
    assert fetch_body(c, uid) == msg
    _, tagged = c.command("COMPRESS DEFLATE")
    assert b"NO [COMPRESSIONACTIVE]" in tagged
    c.send_raw(b"\xff" * 64)
    assert c.readline(timeout=10).startswith(b"* BYE")
    assert c.wait_closed(5)
    c.close()
    still_serving(server)


def test_after_starttls(server, user):
    c = ZClient(server.ports["imap"])
    assert c.readline().startswith(b"* OK")
    _, tagged = c.command("STARTTLS")
    assert b"OK" in tagged
    c.starttls()
    c.login(user, PASSWORD)
    c.start_compress()
    untagged = c.ok("CAPABILITY")
    assert b"STARTTLS" not in untagged[0] and b"COMPRESS=DEFLATE" in untagged[0]
    c.ok("SELECT INBOX")
    c.close()
