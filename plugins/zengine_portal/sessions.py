"""The server-side half of the portal's signed-cookie sessions.

The cookie alone cannot be taken back: a copy made before "Sign out" would stay valid until
it expires. So a sign-out, and "sign out my other devices", are also written to the shared
store (``runtime.store``: the guard's Redis store when configured, so every worker sees
them), and each request checks them. If the store cannot answer, the session counts as
signed out (fail closed).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

from zengine.errors import StoreUnavailable
from zengine.runtime import Runtime

log = structlog.get_logger("zengine.portal")


class Sessions:
    def __init__(self, runtime: Runtime, ttl: int) -> None:
        self.runtime = runtime
        # Records outlive every session they can concern.
        self.ttl = ttl + 60

    @staticmethod
    def _key(session: MutableMapping[str, Any], what: str, name: str) -> str:
        return f"portal:{session.get('tenant', '')}:{what}:{name}"

    def start(self, session: MutableMapping[str, Any], user: str, tenant: str) -> None:
        """A fresh session (new id and CSRF token) for a user who just signed in."""
        session.clear()
        session.update(user=user, tenant=tenant, sid=secrets.token_urlsafe(16),
                       since=time.time(), csrf=secrets.token_urlsafe(32))

    def user(self, session: MutableMapping[str, Any]) -> str | None:
        """The signed-in user, unless this session was signed out or superseded."""
        user, sid, since = session.get("user"), session.get("sid"), session.get("since")
        if not (isinstance(user, str) and isinstance(sid, str)
                and isinstance(since, int | float)):
            return None
        store = self.runtime.store
        try:
            if store.get(self._key(session, "out", sid)) is not None:
                return None
            cutoff = store.get(self._key(session, "since", user))
        except StoreUnavailable as exc:
            log.warning("portal.store_unavailable", detail=str(exc))
            return None
        if cutoff is not None and float(cutoff) > since:
            return None
        return user

    def end(self, session: MutableMapping[str, Any]) -> None:
        """Sign out: this session's id is dead everywhere, not just its cookie here."""
        sid = session.get("sid")
        if isinstance(sid, str):
            try:
                self.runtime.store.set(self._key(session, "out", sid), b"1", ttl=self.ttl)
            except StoreUnavailable as exc:
                log.warning("portal.store_unavailable", detail=str(exc))
        session.clear()

    def end_others(self, session: MutableMapping[str, Any]) -> bool:
        """Every other session of this user ends; this one carries on with a new id."""
        now = time.time()
        try:
            self.runtime.store.set(self._key(session, "since", str(session["user"])),
                                   repr(now).encode(), ttl=self.ttl)
        except StoreUnavailable as exc:
            log.warning("portal.store_unavailable", detail=str(exc))
            return False
        session.update(sid=secrets.token_urlsafe(16), since=now)
        return True
