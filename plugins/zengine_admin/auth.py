"""API key authentication for a request: ``Authorization: Bearer zk_…``.

Every presented key passes the login guard first (``zengine_login_check`` with kind
``apikey``; the guard counts failures under the client's address, as for tokens, so an address
guessing keys is locked out and nobody else is), then one primary-key lookup and a
constant-time digest comparison, then ``zengine_login_result``. Every refusal, whatever the
reason (malformed, unknown, wrong, revoked, expired, address not allowed), is the same 401,
held until ``[auth] failure_floor_ms`` after the request arrived: its timing says nothing.
The reason goes to the audit trail only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import anyio
from pydantic import SecretStr
from starlette.requests import Request

from zengine.addresses import ClientAddresses
from zengine.errors import AccessDenied, TooManyAttempts
from zengine.models import AuditEvent, LoginAttempt, LoginResult
from zengine.runtime import Runtime
from zengine_admin.keys import Checked, KeyStore, key_store
from zengine_admin.problems import Forbidden, TooMany, Unauthorized, Unavailable
from zengine_admin.service import Actor
from zengine_admin.settings import NAME

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="zengine-admin"'}


@dataclass(frozen=True)
class KeyCheck:
    actor: Actor | None
    refusal: str | None = None


def check_key(runtime: Runtime, store: KeyStore, presented: str, client_addr: str,
              path: str) -> KeyCheck:
    """Check ``presented`` for a request from ``client_addr`` (blocking: run it in a worker
    thread). Raises :class:`TooMany` when the guard refuses the attempt; the console uses this
    for its API key sign-in too."""
    attempt = LoginAttempt(username=client_addr, secret=SecretStr(presented),
                           client_addr=client_addr, path=path, kind="apikey")
    try:
        runtime.hooks.login_check(attempt, runtime)
    except TooManyAttempts as exc:
        _audit(runtime, client_addr, None, f"reason=guard ({exc.detail})")
        raise TooMany(exc.public_message,
                      headers={"Retry-After": str(exc.retry_after or 60)}) from None
    except AccessDenied:
        _audit(runtime, client_addr, None, "reason=address denied by the guard")
        raise Forbidden("requests from this address are not allowed") from None
    try:
        checked: Checked = store.authenticate(presented, client_addr)
    except Exception as exc:
        from zengine.errors import BackendUnavailable

        if isinstance(exc, BackendUnavailable):
            raise Unavailable(exc.public_message) from None
        raise
    accepted = checked.refusal is None and checked.key is not None
    runtime.hooks.login_result(attempt, LoginResult(accepted=accepted, backend=NAME), runtime)
    if not accepted or checked.key is None:
        _audit(runtime, client_addr, checked.key.name if checked.key else None,
               f"reason={checked.refusal}")
        return KeyCheck(None, checked.refusal)
    return KeyCheck(Actor.from_key(checked.key, client_addr))


def _audit(runtime: Runtime, client_addr: str, name: str | None, detail: str) -> None:
    runtime.hooks.audit(AuditEvent(
        event="admin.key_refused", outcome="refused", backend=NAME, client_addr=client_addr,
        detail=(f"key={name} " if name else "") + detail), runtime)


class KeyAuth:
    """Turns a request into an :class:`Actor`, or raises the problem to answer."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.addresses = ClientAddresses(runtime.settings.server.trusted_proxies)
        self.floor = runtime.settings.auth.failure_floor_ms / 1000

    def client_addr(self, request: Request) -> str:
        return self.addresses.resolve(request.client.host if request.client else "",
                                      request.headers)

    async def actor(self, request: Request) -> Actor:
        arrived = time.monotonic()
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if not header:
            raise Unauthorized("send an API key: Authorization: Bearer zk_… (make one with "
                               "`zengine apikeys create`)", headers=CHALLENGE)
        client_addr = self.client_addr(request)
        presented = presented.strip() if scheme.lower() == "bearer" else ""
        store = key_store(self.runtime)
        result = await anyio.to_thread.run_sync(
            check_key, self.runtime, store, presented, client_addr, request.url.path)
        del presented
        if result.actor is None:
            # Held like a failed login, on the event loop: guessing is slow, costs no thread,
            # and every refusal takes the same time.
            await asyncio.sleep(max(0.0, self.floor - (time.monotonic() - arrived)))
            raise Unauthorized("invalid API key", headers=CHALLENGE)
        return result.actor
