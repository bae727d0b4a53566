"""A seeded generator of hostile HTTP/1.1 requests as raw bytes, and a checker for what a
zengine server answers them. Used by tests/test_fuzz_http.py (a few thousand requests) and by
bench/fuzz.py (larger runs, by hand). Traffic goes to 127.0.0.1 only; every run is bounded by
its request count.
"""

from __future__ import annotations

import base64
import json
import random
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

from lxml import etree

from zengine.http_layer import is_api_target

KNOWN_NAMES = ["u", "p", "v", "username", "password", "version", "user", "pass", "format"]
USERS = ["alice", "bob", "nobody", "", "alice ", "ALICE", "%USER%", "{username}"]
PATHS = ["/id.php"] * 6 + ["/provision"] * 3 + ["/desktop"] * 2 + [
    "/id.php/", "/provision/", "/desktop/", "/healthz", "/", "/id.php/x", "//id.php", "/ID.PHP",
    "/portal", "/api/v1/tokens"]
NASTY = ["\x00", "\x1b[31m", "\x07", "\r\n", "\u2028", "\ud800", "\ufffe", "\U0001f600", "'",
         '"', "<", "&amp;", "]]>", "%", "+", "=", "&", ";", "\\", "é", "\xff", "../", "*",
         "(", ")", "\t", " ", "\u202e"]
METHODS = [b"GET"] * 8 + [b"POST"] * 4 + [b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                                          b"get", b"TRACE", b"CONNECT", b"PRI", b"G\xffT"]


def _text(rng: random.Random, limit: int = 24) -> str:
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(USERS)
    if kind < 0.6:
        return "".join(rng.choice(NASTY + list("abcXYZ019-_.@")) for _ in range(rng.randint(0, 8)))
    if kind < 0.8:
        return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 6)))
    if kind < 0.9:
        return "w" * rng.choice([255, 256, 257, 1000, 5000])
    return "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(0, limit)))


def _encode(rng: random.Random, text: str) -> bytes:
    """Percent-encoded UTF-8 mostly; sometimes invalid UTF-8, raw bytes or surrogates."""
    data = text.encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.1:
        data += rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82"])
    if roll > 0.95:
        return data  # raw bytes in the request target
    return quote_from_bytes(data, safe=rng.choice(["", "/", "&=+%"])).encode("ascii")


def _params(rng: random.Random) -> bytes:
    pairs = []
    for _ in range(rng.choice([0, 1, 2, 2, 3, 3, 4, 6, 40])):
        name = rng.choice(KNOWN_NAMES) if rng.random() < 0.7 else _text(rng, 8)
        pairs.append(_encode(rng, name) + (b"=" if rng.random() < 0.95 else b"") +
                     _encode(rng, _text(rng)))
    if rng.random() < 0.3:
        pairs += [b"u=alice", b"p=wonderland", b"v=1.14"][: rng.randint(1, 3)]
    return rng.choice([b"&", b"&", b";", b"&&"]).join(pairs)


def _basic(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.4:
        raw = (_text(rng) + ":" + _text(rng)).encode(rng.choice(["utf-8", "latin-1"]), "replace")
    elif roll < 0.7:
        raw = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 40)))
    else:
        return rng.choice([b"Basic", b"Basic ", b"Basic ===", b"Bearer x", b"basic YTpi",
                           b"Basic \xff\xfe", b"Digest a=b", b"Basic YWxpY2U6d29uZGVybGFuZA=="])
    return b"Basic " + base64.b64encode(raw)


def _header_value(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.75:
        text = _text(rng).encode("utf-8", "surrogatepass")
        # Mostly what HTTP allows in a value (so the request reaches the app), sometimes not.
        return text if rng.random() < 0.2 else bytes(b for b in text if b >= 0x20 and b != 0x7F)
    if roll < 0.9:
        return bytes(rng.randint(0x20, 0xFF) for _ in range(rng.randint(0, 30)))
    return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 10)))


def generate(rng: random.Random) -> bytes:
    """One request, as the bytes a client would put on the wire."""
    if rng.random() < 0.03:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 200)))
    method = rng.choice(METHODS)
    path = rng.choice(PATHS).encode()
    if rng.random() < 0.05:
        path += _encode(rng, _text(rng))
    query = _params(rng)
    target = path + (b"?" + query if query or rng.random() < 0.1 else b"")
    version = rng.choice([b"HTTP/1.1"] * 12 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2",
                                                 b"HTTP/9", b"HTTPS/1.1", b""])
    headers: list[tuple[bytes, bytes]] = []
    if rng.random() < 0.93:
        headers.append((b"Host", b"127.0.0.1"))
    if rng.random() < 0.05:
        headers.append((b"Host", _header_value(rng)))
    if rng.random() < 0.5:
        headers.append((b"User-Agent", rng.choice([b"Zoiper", b"Zoiper5 5.6.1"]) +
                        _header_value(rng)))
    if rng.random() < 0.25:
        headers.append((b"Authorization", _basic(rng)))
    if rng.random() < 0.05:
        headers.append((b"X-Big", b"a" * rng.choice([8000, 17000, 70000])))
    if rng.random() < 0.1:
        headers.append((_encode(rng, _text(rng, 8)) or b"X", _header_value(rng)))
    if rng.random() < 0.05:
        headers.append((b"Upgrade", rng.choice([b"h2c", b"websocket", b"TLS/1.2"])))
        headers.append((b"Connection", b"Upgrade"))
    if rng.random() < 0.05:
        headers.append((b"X-Forwarded-For", _header_value(rng)))
    body = b""
    if method == b"POST" or rng.random() < 0.05:
        body = _params(rng) if rng.random() < 0.8 else _header_value(rng)
        if rng.random() < 0.8:
            headers.append((b"Content-Type", rng.choice([
                b"application/x-www-form-urlencoded", b"text/plain", b"application/json",
                b"multipart/form-data; boundary=x", b"application/x-www-form-urlencoded; x"])))
        framing = rng.random()
        if framing < 0.7:
            headers.append((b"Content-Length", str(len(body)).encode()))
        elif framing < 0.8:
            headers.append((b"Transfer-Encoding", b"chunked"))
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        elif framing < 0.9:
            headers.append((b"Transfer-Encoding", rng.choice([b"gzip", b"identity", b"x",
                                                              b"gzip, chunked"])))
        else:
            headers.append((b"Content-Length", rng.choice([b"-1", b"x", b"99999999999",
                                                          str(len(body) + 3).encode(),
                                                          b"1, 2"])))
    if rng.random() < 0.02:
        headers.append((b"Expect", b"100-continue"))
    headers.append((b"Connection", b"close"))
    rng.shuffle(headers)
    head = method + b" " + target + (b" " + version if version else b"") + b"\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


@dataclass
class Answer:
    status: int | None
    problem: str | None = None


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, bytes] = field(default_factory=dict)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def exchange(address: tuple[str, int], request: bytes, timeout: float) -> bytes:
    with socket.create_connection(address, timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def check(request: bytes, raw: bytes) -> Answer:
    """Is ``raw`` a well-formed answer: an HTTP/1.1 status line, headers, and for anything
    but the health check an XML body that parses (below ``/api/``: or a problem document),
    with ``no-store``?"""
    while raw.startswith(b"HTTP/1.1 100"):
        raw = raw.partition(b"\r\n\r\n")[2]
    if not raw:
        return Answer(None, "no answer")
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if not sep or len(parts) < 2 or parts[0] != b"HTTP/1.1" or not parts[1].isdigit():
        return Answer(None, "malformed status line")
    status = int(parts[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get(b"content-length")
    if length is not None and length.isdigit():
        body = body[: int(length)]
    if status >= 500:
        return Answer(status, f"status {status}")
    if headers.get(b"content-type", b"").startswith(b"text/plain") and status == 200:
        return Answer(status)  # /healthz
    if request.split(b" ", 1)[0] == b"HEAD" and not body:
        return Answer(status)
    if headers.get(b"cache-control") != b"no-store":
        return Answer(status, "no no-store")
    if headers.get(b"content-type") == b"application/problem+json" and is_api_target(request):
        # Below /api/ the HTTP layer's own answers are RFC 9457 problems, as the API's are.
        try:
            problem = json.loads(body)
        except ValueError:
            return Answer(status, "problem JSON does not parse")
        return Answer(status) if problem.get("status") == status else Answer(
            status, "problem status differs")
    if not headers.get(b"content-type", b"").startswith(b"application/xml"):
        return Answer(status, "not XML")
    try:
        etree.fromstring(body)
    except etree.XMLSyntaxError:
        return Answer(status, "XML does not parse")
    return Answer(status)


def run(address: tuple[str, int], seed: int, count: int, *, threads: int = 6,
        timeout: float = 10.0, progress: Callable[[int], None] | None = None) -> Tally:
    """Send ``count`` generated requests (seeded: the same seed sends the same bytes)."""
    rng = random.Random(seed)
    requests = [generate(rng) for _ in range(count)]
    tally = Tally()

    def one(request: bytes) -> tuple[bytes, Answer]:
        try:
            raw = exchange(address, request, timeout)
        except OSError as exc:
            return request, Answer(None, f"connect: {type(exc).__name__}")
        return request, check(request, raw)

    results: Iterable[tuple[bytes, Answer]]
    with ThreadPoolExecutor(threads) as pool:
        results = pool.map(one, requests)
        for done, (request, answer) in enumerate(results, 1):
            tally.requests += 1
            if answer.status is not None:
                tally.statuses[answer.status] += 1
            if answer.problem is not None:
                tally.problems[answer.problem] += 1
                tally.examples.setdefault(answer.problem, request[:600])
            if progress is not None and done % 1000 == 0:
                progress(done)
    return tally
