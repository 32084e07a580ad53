"""Parsing of IMAP response data (RFC 3501 §9 `fetch-att`, `body`, `envelope`) for assertions.

`parse()` turns response bytes into Python values: lists for parenthesised lists, `Atom` for
atoms (a `str`), `int` for numbers, `bytes` for quoted strings and literals, `None` for NIL.
"""

from __future__ import annotations

import re
from datetime import datetime


class Atom(str):
    pass


class ParseError(ValueError):
    pass


def parse(data: bytes) -> list:
    p = _Parser(data)
    items = p.items(end=None)
    return items


class _Parser:
    def __init__(self, data: bytes):
        self.d = data
        self.i = 0

    def items(self, end):
        out = []
        while True:
            self._ws()
            if self.i >= len(self.d):
                if end is not None:
                    raise ParseError(f"unterminated list in {self.d[:200]!r}")
                return out
            c = self.d[self.i:self.i + 1]
            if c == b")":
                if end is None:
                    raise ParseError(f"unbalanced ')' at {self.i} in {self.d[:200]!r}")
                self.i += 1
                return out
            out.append(self.value())

    def _ws(self):
        while self.i < len(self.d) and self.d[self.i:self.i + 1] in (b" ", b"\r", b"\n"):
            self.i += 1

    def value(self):
        c = self.d[self.i:self.i + 1]
        if c == b"(":
            self.i += 1
            return self.items(end=b")")
        if c == b'"':
            self.i += 1
            out = bytearray()
            while True:
                if self.i >= len(self.d):
                    raise ParseError("unterminated quoted string")
                ch = self.d[self.i]
                self.i += 1
                if ch == 0x5C:
                    out.append(self.d[self.i])
                    self.i += 1
                elif ch == 0x22:
                    return bytes(out)
                else:
                    out.append(ch)
        if c == b"{":
            m = re.compile(rb"\{(\d+)\+?\}\r\n").match(self.d, self.i)
            if not m:
                raise ParseError(f"bad literal at {self.i}: {self.d[self.i:self.i + 20]!r}")
            n = int(m.group(1))
            start = m.end()
            self.i = start + n
            return self.d[start:start + n]
        # atom, possibly with a [section] (which may contain spaces and parens) and <partial>
        start = self.i
        depth = 0
        while self.i < len(self.d):
            ch = self.d[self.i:self.i + 1]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif depth == 0 and ch in (b" ", b"(", b")", b"\r", b"\n"):
                break
            self.i += 1
        tok = self.d[start:self.i].decode("latin-1")
        if tok.upper() == "NIL":
            return None
        if tok.isdigit():
            return int(tok)
        return Atom(tok)


def flatten_imaplib(data) -> list[bytes]:
    """imaplib returns FETCH data as a mix of bytes and (head, literal) tuples; rebuild each
    response as one byte string with literals inlined."""
    out, cur = [], b""
    for el in data:
        if el is None:
            continue
        if isinstance(el, tuple):
            cur += el[0] + b"\r\n" + el[1]
        else:
            cur += el
            out.append(cur)
            cur = b""
    if cur:
        out.append(cur)
    return out


def norm_key(k: str) -> str:
    return k.upper().replace('"', "")


def parse_fetch(data) -> dict[int, dict[str, object]]:
    """imaplib FETCH/UID FETCH data -> {sequence number: {ITEM-NAME: value}}."""
    res: dict[int, dict[str, object]] = {}
    for resp in flatten_imaplib(data):
        vals = parse(resp)
        if len(vals) < 2 or not isinstance(vals[0], int) or not isinstance(vals[-1], list):
            raise ParseError(f"not a FETCH response: {resp[:300]!r}")
        lst = vals[-1]
        items = res.setdefault(vals[0], {})
        for k, v in zip(lst[0::2], lst[1::2]):
            items[norm_key(str(k))] = v
    return res


def fetch(m, seqset: str, items: str, uid: bool = False) -> dict[int, dict[str, object]]:
    if uid:
        typ, data = m.uid("FETCH", seqset, items)
    else:
        typ, data = m.fetch(seqset, items)
    assert typ == "OK", f"FETCH {seqset} {items} -> {typ} {data!r}"
    return parse_fetch(data)


def fetch_one(m, seqset: str, items: str, uid: bool = False) -> dict[str, object]:
    res = fetch(m, seqset, items, uid)
    assert len(res) == 1, f"expected one FETCH response for {seqset} {items}, got {res!r}"
    return next(iter(res.values()))


def by_uid(res: dict[int, dict[str, object]]) -> dict[int, dict[str, object]]:
    return {v["UID"]: v for v in res.values()}


def flags_of(v) -> set[str]:
    return {str(f) for f in v}


def search(m, *criteria, uid: bool = False, charset: str | None = None) -> list[int]:
    if uid:
        args = (["CHARSET", charset] if charset else []) + list(criteria)
        typ, data = m.uid("SEARCH", *args)
    else:
        typ, data = m.search(charset, *criteria)
    assert typ == "OK", f"SEARCH {criteria} -> {typ} {data!r}"
    nums = []
    for d in data:
        if d:
            nums += [int(x) for x in d.split()]
    return sorted(nums)


def serialize(v) -> str:
    if v is None:
        return "NIL"
    if isinstance(v, list):
        return "(" + " ".join(serialize(x) for x in v) + ")"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Atom):
        return str(v)
    if isinstance(v, bytes):
        return '"' + v.decode("utf-8", "replace").replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(v)


def _trim(ext: list) -> list:
    ext = list(ext)
    while ext and ext[-1] is None:
        ext.pop()
    return ext


def norm_body(b, extensions: bool = True) -> list:
    """Body structure with trailing NIL extension fields dropped (RFC 3501 lets a server stop
    the extension data at any field), so equivalent answers compare equal."""
    if isinstance(b[0], list):
        i, parts = 0, []
        while isinstance(b[i], list):
            parts.append(norm_body(b[i], extensions))
            i += 1
        return parts + [b[i]] + (_trim(b[i + 1:]) if extensions else [])
    typ = b[0].lower() if isinstance(b[0], bytes) else b""
    sub = b[1].lower() if isinstance(b[1], bytes) else b""
    if typ == b"text":
        n = 8
        fixed = list(b[:n])
    elif typ == b"message" and sub == b"rfc822":
        n = 10
        fixed = list(b[:7]) + [b[7], norm_body(b[8], extensions), b[9]]
    else:
        n = 7
        fixed = list(b[:n])
    return fixed + (_trim(b[n:]) if extensions else [])


def body_text(b, extensions: bool = True) -> str:
    return serialize(norm_body(b, extensions)).upper()


def parse_internaldate(v) -> datetime:
    s = v.decode() if isinstance(v, bytes) else str(v)
    return datetime.strptime(s.strip(), "%d-%b-%Y %H:%M:%S %z")


def strip_added_headers(raw: bytes) -> tuple[bytes, dict[str, list[bytes]]]:
    """Remove the Return-Path and Delivered-To lines LMTP delivery adds; return the rest and
    the removed values."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    kept, added = [], {"return-path": [], "delivered-to": []}
    for line in head.split(b"\r\n"):
        name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
        if name in added and b":" in line:
            added[name].append(line.split(b":", 1)[1].strip())
        else:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body, added


def crlf(text: str) -> bytes:
    """Message text written with \\n in the test source, sent with CRLF as on the wire."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def simple_message(subject: str, body: str = "Hello.\n", sender: str = "alice@example.org",
                   to: str = "bob@example.net", msgid: str | None = None,
                   extra: str = "") -> bytes:
    msgid = msgid or f"<{abs(hash((subject, body)))}@example.org>"
    return crlf(
        f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
        f"Date: Mon, 04 Mar 2024 12:00:00 +0000\nMessage-ID: {msgid}\n{extra}"
        f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}"
    )


def untagged(m, name: str) -> list[bytes]:
    """Pop imaplib's collected untagged responses of one kind."""
    typ, data = m.response(name)
    return [d for d in data if d is not None]


def list_mailboxes(m, ref: str = '""', pattern: str = '"*"', cmd: str = "LIST"
                   ) -> dict[str, set[str]]:
    """LIST/LSUB -> {name as sent on the wire: {lower-case attributes}}."""
    if cmd == "LIST":
        typ, data = m.list(ref, pattern)
    else:
        typ, data = m.lsub(ref, pattern)
    assert typ == "OK", f"{cmd} {ref} {pattern} -> {typ} {data!r}"
    out = {}
    for d in flatten_imaplib(data):
        if not d:
            continue
        v = parse(d)
        attrs, name = v[0], v[2]
        name = name.decode() if isinstance(name, bytes) else str(name)
        out[name] = {str(a).lower() for a in attrs}
    return out


def appenduid(data) -> tuple[int, int]:
    text = b" ".join(d for d in data if isinstance(d, bytes))
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", text, re.I)
    assert m, f"no [APPENDUID] in APPEND reply {data!r}"
    return int(m.group(1)), int(m.group(2))


def uid_set(s: bytes | str) -> list[int]:
    s = s.decode() if isinstance(s, bytes) else s
    out = []
    for part in s.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out += list(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


def copyuid(m, data) -> tuple[int, list[int], list[int]]:
    """[COPYUID v src dst] from the tagged reply or an untagged OK (RFC 4315 §3, 6851 §4.3)."""
    texts = [d for d in data if isinstance(d, bytes)]
    for d in texts:
        mm = re.search(rb"\[COPYUID (\d+) (\S+) ([^\]\s]+)\]", d, re.I)
        if mm:
            return int(mm.group(1)), uid_set(mm.group(2)), uid_set(mm.group(3))
    for d in untagged(m, "COPYUID"):
        parts = d.split()
        return int(parts[0]), uid_set(parts[1]), uid_set(parts[2].rstrip(b"]"))
    raise AssertionError(f"no [COPYUID] in reply {data!r}")


def attempt(f, *args):
    """Call an imaplib command; a BAD (which imaplib raises) comes back as ("BAD", [reason])."""
    import imaplib

    try:
        return f(*args)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as e:
        return "BAD", [str(e).encode()]
