"""A provider's CRM, as the HTTP backend's tests talk to it: a small Starlette app served by a
real hypercorn on a loopback port (plain or TLS with a trustme CA), whose behaviour a test
switches (slow, dripping, malformed, huge, failing) and whose requests it records."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKEN = "crm-bearer-t0ken-7781"
BASIC = ("zengine", "crm-basic-pa55")
SIP_SECRET = "sip-Secret&<9>"
USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "wonderland", "active": True, "customer": 42,
              "name": "Alice Liddell", "plan": "gold"},
    "bob": {"password": "builder", "active": False, "customer": 43, "name": "Bob", "plan": ""},
    'o"dd/us?er&x=1': {"password": 'p"w\\&{x}', "active": True, "customer": 44,
                       "name": "Odd", "plan": ""},
}
LINES: dict[int, list[dict[str, Any]]] = {
    42: [{"id": "alice-1", "sip": {"user": "1001", "secret": SIP_SECRET},
          "domain": "sip.example.net", "label": "Alice mobile", "transport": "tls"},
         {"id": "alice-2", "sip": {"user": 1002, "secret": "second-Secret"},
          "domain": "sip.example.net", "label": "Alice desk",
          "zoiper": {"stun": {"use_stun": "custom"}}}],
    44: [],
}


@dataclass
class Seen:
    method: str
    raw_path: str
    query: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Crm:
    """What the service does next; tests set these, ``reset`` restores the defaults."""

    mode: str = "ok"
    delay: float = 0.0
    #: Answer this many requests with 503 first.
    fail_first: int = 0
    require_auth: str = "bearer"
    seen: list[Seen] = field(default_factory=list)
    #: Bumped by ``reset``: a request still sleeping out an earlier test's ``delay`` must not
    #: spend this test's ``fail_first`` (one did, in CI, and a 503 became a 200).
    generation: int = 0

    def reset(self) -> None:
        self.mode, self.delay, self.fail_first, self.require_auth = "ok", 0.0, 0, "bearer"
        self.seen.clear()
        self.generation += 1

    @property
    def hits(self) -> int:
        return len(self.seen)


def _authorized(crm: Crm, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    if crm.require_auth == "bearer":
        return header == f"Bearer {TOKEN}"
    if crm.require_auth == "basic":
        return header == "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()
    return True


async def _drip() -> AsyncIterator[bytes]:
    yield b'{"customer": {"id": 42}, "pad": "'
    for _ in range(200):
        await asyncio.sleep(0.1)
        yield b"x"


async def _endless() -> AsyncIterator[bytes]:
    yield b'{"pad": "'
    while True:
        yield b"x" * 65536
        await asyncio.sleep(0)


def _special(crm: Crm) -> Response | None:
    if crm.fail_first > 0:
        crm.fail_first -= 1
        return JSONResponse({"error": "try later"}, status_code=503)
    if crm.mode == "malformed":
        return Response(b'{"customer": {"id": 42, "secret": "' + SIP_SECRET.encode() + b'"',
                        media_type="application/json")
    if crm.mode == "html":
        return Response(b"<html>Bad gateway</html>", status_code=200, media_type="text/html")
    if crm.mode == "huge":
        return Response(b'{"pad": "' + b"x" * (3 * 1024 * 1024) + b'"}',
                        media_type="application/json")
    if crm.mode == "huge-chunked":
        return StreamingResponse(_endless(), media_type="application/json")
    if crm.mode == "gzip-bomb":
        return Response(gzip.compress(b'{"pad": "' + b" " * (8 * 1024 * 1024) + b'"}'),
                        media_type="application/json", headers={"Content-Encoding": "gzip"})
    if crm.mode == "drip":
        return StreamingResponse(_drip(), media_type="application/json")
    if crm.mode == "error":
        return JSONResponse({"error": "internal"}, status_code=500)
    if crm.mode == "teapot":
        return JSONResponse({"error": "?"}, status_code=418)
    return None


def make_app(crm: Crm) -> Starlette:
    async def record(request: Request) -> Response | None:
        body = await request.body()
        crm.seen.append(Seen(request.method, request.scope["raw_path"].decode("ascii"),
                             request.url.query, body, dict(request.headers)))
        if crm.delay:
            generation = crm.generation
            await asyncio.sleep(crm.delay)
            if crm.generation != generation:  # a straggler of a test that has ended
                return JSONResponse({"error": "stale"}, status_code=503)
        if not _authorized(crm, request):
            return JSONResponse({"error": "no token"}, status_code=401)
        return _special(crm)

    async def login(request: Request) -> Response:
        early = await record(request)
        if early is not None:
            return early
        data = json.loads(crm.seen[-1].body)
        user = USERS.get(data.get("user"))
        if user is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        if user["password"] != data.get("secret"):
            if crm.mode == "result-field":
                return JSONResponse({"status": "bad_password"})
            return JSONResponse({"error": "wrong password"}, status_code=401)
        if not user["active"]:
            return JSONResponse({"error": "suspended"}, status_code=403)
        return JSONResponse({"status": "ok", "customer": {"id": user["customer"],
                                                          "name": user["name"]},
                             "plan": user["plan"] or None, "groups": ["sales"]})

    async def lines(request: Request) -> Response:
        early = await record(request)
        if early is not None:
            return early
        if crm.mode == "missing-secret":
            return JSONResponse({"lines": [{"id": "x", "sip": {"user": "1"}}]})
        found = LINES.get(int(request.path_params["customer"]))
        if found is None:
            return JSONResponse({"error": "no customer"}, status_code=404)
        return JSONResponse({"lines": found})

    async def user(request: Request) -> Response:
        early = await record(request)
        if early is not None:
            return early
        name = request.path_params["name"]
        found = USERS.get(name)
        if found is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        return JSONResponse({"customer": {"id": found["customer"], "name": found["name"]}})

    async def anything(request: Request) -> Response:
        early = await record(request)
        return early or JSONResponse({"error": "no route"}, status_code=404)

    return Starlette(routes=[
        Route("/api/login", login, methods=["POST"]),
        Route("/api/customers/{customer:int}/lines", lines, methods=["GET"]),
        Route("/api/users/{name:path}", user, methods=["GET"]),
        Route("/{rest:path}", anything, methods=["GET", "POST", "PUT", "DELETE"]),
    ])


@dataclass
class Running:
    url: str
    stop: Any


def run(app: Starlette, *, tls: trustme.LeafCert | None = None,
        tmp: Path | None = None) -> Running:
    """hypercorn on 127.0.0.1, on a port the OS picks, in a thread of its own."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = Config()
    # hypercorn takes the descriptor over (and closes it at shutdown).
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.2
    if tls is not None and tmp is not None:
        cert, key = tmp / "crm-cert.pem", tmp / "crm-key.pem"
        tls.cert_chain_pems[0].write_to_path(str(cert))
        tls.private_key_pem.write_to_path(str(key))
        config.certfile, config.keyfile = str(cert), str(key)
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()
    ready = threading.Event()

    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Keep-alive connections still open at shutdown end in CancelledError: expected.
        if not isinstance(context.get("exception"), asyncio.CancelledError):
            loop.default_exception_handler(context)

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(quiet)
        loop.call_soon(ready.set)
        loop.run_until_complete(serve(app, config, shutdown_trigger=stopping.wait))  # type: ignore[arg-type]
        loop.close()

    thread = threading.Thread(target=main, name=f"crm-{port}", daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
            thread.join(10)

    scheme = "https" if tls is not None else "http"
    return Running(f"{scheme}://127.0.0.1:{port}", stop)


def serving(crm: Crm, *, tls: trustme.LeafCert | None = None,
            tmp: Path | None = None) -> Iterator[Running]:
    running = run(make_app(crm), tls=tls, tmp=tmp)
    try:
        yield running
    finally:
        running.stop()


def main() -> None:
    """``python -m tests.http.crm CERT KEY``: serve in a process of its own (for benchmarks,
    where a CRM in the measuring process would compete for its GIL); prints the URL, stops
    when its standard input closes."""
    import sys

    cert, key = sys.argv[1:3]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = config.errorlog = None
    config.certfile, config.keyfile = cert, key
    print(f"https://127.0.0.1:{port}", flush=True)

    async def serve_until_stdin_closes() -> None:
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(
            closed.set)), daemon=True).start()
        await serve(make_app(Crm()), config, shutdown_trigger=closed.wait)  # type: ignore[arg-type]

    asyncio.run(serve_until_stdin_closes())


if __name__ == "__main__":
    main()
