"""Server-rendered pages for plugins (the portal, the console): small urlencoded forms, the
per-session CSRF token, the page security headers, and signed-cookie sessions that can be
ended server-side.

Every state-changing action is a POST carrying the session's CSRF token; a token is only ever
in the body of a ``no-store`` page, never in a URL, a cookie or a redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

from zengine.bodies import CLOSE, BodyIncomplete, BodyTimeout, BodyTooLarge, read_body
from zengine.errors import ConfigError, StoreUnavailable
from zengine.runtime import Runtime
from zengine.settings import SecretFile, resolve_secret

log = structlog.get_logger("zengine.web")

#: No script at all; styles and images only from the page's own site; forms only post back.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Security-Policy": CSP}
MAX_FORM_BYTES = 8192


class SessionSettings(BaseModel):
    """The session keys of a plugin's ``[plugins.<name>]`` table (the portal's, the
    console's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Key that signs the session cookie (at least 32 characters). Without it (or its file) a
    #: random key is made at startup: sessions then end with a restart.
    session_key: SecretStr | None = None
    #: File holding the session key (first line); relative to the config file.
    session_key_file: SecretFile | None = None
    #: Seconds a sign-in lasts.
    session_ttl: int = Field(900, ge=60, le=86400)

    @field_validator("session_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (try: python3 -c "
                             "'import secrets; print(secrets.token_urlsafe(32))')")
        return value


def session_key(secret: SecretStr | None, secret_file: SecretFile | None, runtime: Runtime,
                table: str) -> str:
    """The key that signs session cookies: from the config or its file, else a random one
    (one process only: each worker would make its own and refuse the others' cookies)."""
    where = f"{runtime.settings.source} [{table}]"
    resolved = resolve_secret(secret, secret_file, runtime.settings, f"{where} session_key")
    if resolved is not None:
        key = resolved.get_secret_value()
        if len(key) < 32:
            raise ConfigError(f"{where} session_key_file: the key must be at least 32 "
                              "characters")
        return key
    if runtime.settings.server.workers > 1:
        raise ConfigError(f"{where}: with [server] workers > 1 set session_key or "
                          "session_key_file, so that every worker signs sessions alike")
    prefix = table.rsplit(".", 1)[-1]
    variable = "ZENGINE_" + table.upper().replace(".", "__") + "__SESSION_KEY"
    log.warning(f"{prefix}.session_key_generated",
                hint=f"set [{table}] session_key_file (or {variable}) to keep sessions "
                     "across restarts")
    return secrets.token_urlsafe(32)


def signing_key(key: str, plugin: str) -> str:
    """The key ``plugin``'s session cookies are signed with: derived from its session key and
    its name. An operator may give the portal and the console one key file; signed with that
    key alike, a portal user's cookie, copied into the console's cookie, would be a console
    session (an LDAP admin's, with ``ldap_scope``). Each plugin's own key keeps them apart."""
    return hmac.new(key.encode(), f"zengine session cookie: {plugin}".encode(),
                    hashlib.sha256).hexdigest()


def session_middleware(key: str, plugin: str, *, cookie: str, max_age: int,
                       path: str) -> list[Middleware]:
    """The signed session cookie of ``plugin``'s own routes: scoped to its ``path`` (no
    provisioning request carries it), ``Secure``, ``SameSite=Strict``, signed with the
    plugin's :func:`signing_key`."""
    return [Middleware(SessionMiddleware, secret_key=signing_key(key, plugin),
                       session_cookie=cookie, max_age=max_age, path=path,
                       same_site="strict", https_only=True)]


class FormError(Exception):
    """The form body is not a well-formed, small, urlencoded form: a page with :attr:`status`,
    :attr:`heading` and :attr:`text` (and :attr:`headers`) answers it."""

    status = 400
    heading = "Bad request"
    text = "The form could not be read. Go back and try again."
    headers: Mapping[str, str] = {}


class FormRefused(FormError):
    """Refused before the body's end (not a form, or over :data:`MAX_FORM_BYTES`): the rest may
    follow, so the connection closes after the answer."""

    headers = CLOSE


class FormIncomplete(FormError):
    """The form did not arrive whole: not within ``[server] body_timeout``, or its client
    stopped sending half-way. The connection closes after the answer (the rest may follow)."""

    status = 408
    heading = "Request timeout"
    text = "The form did not arrive in time. Go back and try again."
    headers = CLOSE


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    value = request.session.get("csrf")
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        request.session["csrf"] = value
    return value


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    expected = request.session.get("csrf")
    given = form.get("csrf", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), given.encode())


async def read_form(request: Request, *, timeout: float, max_fields: int = 16,
                    ) -> dict[str, str]:
    """A small urlencoded form, every field at most once, read whole within ``timeout`` (the
    app's ``[server] body_timeout``) before any of it is used."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormRefused(f"content type {content_type!r}")
    try:
        body = await read_body(request.receive, limit=MAX_FORM_BYTES, timeout=timeout)
    except BodyTooLarge:
        raise FormRefused("form too large") from None
    except (BodyTimeout, BodyIncomplete) as exc:
        raise FormIncomplete(str(exc)) from None
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, encoding="utf-8",
                          errors="strict", max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise FormError("malformed form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise FormError(f"field {name!r} twice")
        form[name] = value
    return form


class Sessions:
    """The server-side half of signed-cookie sessions.

    The cookie alone cannot be taken back: a copy made before "Sign out" would stay valid
    until it expires. So a sign-out, and "sign out my other devices", are also written to the
    shared store (``runtime.store``: the guard's Redis store when configured, so every worker
    sees them), and each request checks them. If the store cannot answer, the session counts
    as signed out (fail closed). ``prefix`` keeps each plugin's records apart.
    """

    def __init__(self, runtime: Runtime, ttl: int, prefix: str = "portal") -> None:
        self.runtime = runtime
        # Records outlive every session they can concern.
        self.ttl = ttl + 60
        self.prefix = prefix

    def _key(self, session: MutableMapping[str, Any], what: str, name: str) -> str:
        return f"{self.prefix}:{session.get('tenant', '')}:{what}:{name}"

    def start(self, session: MutableMapping[str, Any], user: str, tenant: str,
              **extra: Any) -> None:
        """A fresh session (new id and CSRF token) for a user who just signed in."""
        session.clear()
        session.update(user=user, tenant=tenant, sid=secrets.token_urlsafe(16),
                       since=time.time(), csrf=secrets.token_urlsafe(32), **extra)

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
            log.warning(f"{self.prefix}.store_unavailable", detail=str(exc))
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
                log.warning(f"{self.prefix}.store_unavailable", detail=str(exc))
        session.clear()

    def end_others(self, session: MutableMapping[str, Any]) -> bool:
        """Every other session of this user ends; this one carries on with a new id."""
        now = time.time()
        try:
            self.runtime.store.set(self._key(session, "since", str(session["user"])),
                                   repr(now).encode(), ttl=self.ttl)
        except StoreUnavailable as exc:
            log.warning(f"{self.prefix}.store_unavailable", detail=str(exc))
            return False
        session.update(sid=secrets.token_urlsafe(16), since=now)
        return True
