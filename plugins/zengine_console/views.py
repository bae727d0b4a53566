"""The console's HTTP side: pages and forms over :mod:`zengine_admin.service`.

The session cookie (signed, ``__Secure-``, path-scoped, SameSite=Strict) holds who signed in
(the key's name and id, or the directory login), the scope and tenant, never the API key;
each request re-reads the key, so a revoked or expired key ends its sessions at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import anyio
import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from zengine.addresses import ClientAddresses
from zengine.errors import ZengineError
from zengine.models import AuditEvent, Credentials, Identity, LoginAttempt, ProvisionRequest
from zengine.pipeline import check_login
from zengine.runtime import Runtime
from zengine.webforms import (
    PAGE_HEADERS,
    FormError,
    Sessions,
    csrf_ok,
    csrf_token,
    read_form,
    session_middleware,
)
from zengine_admin import service
from zengine_admin.auth import check_key
from zengine_admin.keys import key_store
from zengine_admin.models import TokenIssue
from zengine_admin.problems import Problem
from zengine_admin.service import Actor
from zengine_console.settings import NAME, ConsoleSettings

log = structlog.get_logger("zengine.console")

#: ``__Secure-``: a browser only accepts it over HTTPS (or from localhost) with Secure set.
COOKIE = "__Secure-zengine-console"
Handler = Callable[[Request], Awaitable[Response]]


class Console:
    """Built once per app while routes are registered; holds nothing per request."""

    def __init__(self, runtime: Runtime, config: ConsoleSettings, session_key: str) -> None:
        self.runtime = runtime
        self.config = config
        self.base = config.path
        env = Environment(loader=PackageLoader("zengine_console", "templates"),
                          autoescape=True, undefined=StrictUndefined)
        self.templates = Jinja2Templates(env=env)
        self._session_key = session_key
        self.sessions = Sessions(runtime, config.session_ttl, prefix=NAME)
        self.addresses = ClientAddresses(runtime.settings.server.trusted_proxies)
        self.css = (files("zengine_console") / "static" / "console.css").read_bytes()
        self.floor = runtime.settings.auth.failure_floor_ms / 1000

    def routes(self) -> list[BaseRoute]:
        # Session middleware on the console's own routes only, its cookie scoped to its path.
        session = session_middleware(self._session_key, NAME, cookie=COOKIE,
                                     max_age=self.config.session_ttl, path=self.base)
        base = self.base

        def route(path: str, handler: Handler, methods: list[str]) -> Route:
            return Route(f"{base}{path}", self._guarded(handler), methods=methods,
                         middleware=session)

        return [
            route("", self.home, ["GET"]),
            route("/signin", self.signin, ["GET", "POST"]),
            route("/signout", self.signout, ["GET", "POST"]),
            route("/users", self.users, ["GET"]),
            route("/user", self.user, ["GET"]),
            route("/lockouts/clear", self._action(self.clear_lockout), ["GET", "POST"]),
            route("/tokens/issue", self._action(self.issue_token), ["GET", "POST"]),
            route("/tokens/revoke", self._action(self.revoke_token), ["GET", "POST"]),
            Route(f"{base}/static/console.css", self.stylesheet, methods=["GET"]),
        ]

    # -- plumbing --------------------------------------------------------------------------

    def _page(self, request: Request, template: str, status: int = 200,
              headers: dict[str, str] | None = None, **context: Any) -> Response:
        return self.templates.TemplateResponse(
            request, template, {"title": self.config.title, "base": self.base,
                                "csrf": csrf_token(request),
                                "who": request.session.get("user"), **context},
            status_code=status, headers={**PAGE_HEADERS, **(headers or {})})

    def _message(self, request: Request, status: int, heading: str, text: str) -> Response:
        return self._page(request, "message.html", status, heading=heading, text=text)

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except FormError as exc:
                # A malformed form (400), or one that did not arrive whole in time (408).
                return self._page(request, "message.html", exc.status, dict(exc.headers),
                                  heading=exc.heading, text=exc.text)
            except Problem as exc:
                return self._page(request, "message.html", exc.status, exc.headers,
                                  heading=exc.title, text=exc.detail)
            except Exception:
                # A bug: the traceback goes to the (redacted) log, never to the page.
                log.exception("console.crash", path=request.url.path)
                return self._message(request, 500, "Something went wrong",
                                     "Please try again later.")
        return run

    def _form(self, request: Request) -> Awaitable[dict[str, str]]:
        return read_form(request, timeout=self.runtime.settings.server.body_timeout)

    def _client_addr(self, request: Request) -> str:
        return self.addresses.resolve(request.client.host if request.client else "",
                                      request.headers)

    def _refused(self, request: Request) -> Response:
        request.session.clear()
        return self._message(request, 403, "Please sign in again",
                             "This form has expired or did not come from this page.")

    async def _actor(self, request: Request) -> Actor | None:
        """Who this session is, re-checked: signed out elsewhere, or a key revoked or expired
        since, is nobody."""
        session = request.session
        if await anyio.to_thread.run_sync(self.sessions.user, session) is None:
            session.pop("user", None)
            return None
        addr = self._client_addr(request)
        if session.get("via") == "apikey":
            key = await anyio.to_thread.run_sync(key_store(self.runtime).get,
                                                 str(session.get("key_id")))
            if (key is None or key.state(datetime.now(UTC)) != "active"
                    or not key.allows(addr)):
                session.clear()
                return None
            return Actor.from_key(key, addr, via="console")
        if session.get("via") != "ldap" or self.config.ldap_admin_group is None:
            # Only a directory sign-in makes a directory admin, and only while directory
            # admins are on: a session of theirs from before the group was unset ends.
            session.clear()
            return None
        tenant = session.get("tenant")
        return Actor(name=str(session["user"]), scope=self.config.ldap_scope,
                     tenant=tenant if isinstance(tenant, str) and tenant else None,
                     client_addr=addr, via="console-ldap")

    async def _posted(self, request: Request) -> tuple[Actor, dict[str, str]] | None:
        form = await self._form(request)
        actor = await self._actor(request) if csrf_ok(request, form) else None
        return (actor, form) if actor is not None else None

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return anyio.to_thread.run_sync(lambda: fn(self.runtime, *args, **kwargs))

    # -- sign-in ---------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        actor = await self._actor(request)
        if actor is None:
            return self._page(request, "signin.html", ldap=self.config.ldap_admin_group
                              is not None, error=None)
        return self._page(request, "search.html", query="", page=None)

    async def signin(self, request: Request) -> Response:
        if request.method != "POST":
            return RedirectResponse(self.base, status_code=303)
        arrived = time.monotonic()
        form = await self._form(request)
        if not csrf_ok(request, form):
            return self._refused(request)
        addr = self._client_addr(request)
        limit = self.runtime.settings.server.max_param_length
        if any(len(v) > limit for v in form.values()):
            raise FormError("oversized field")
        error = "Wrong API key." if form.get("api_key") else "Wrong username or password."
        status, headers = 403, {}
        try:
            if form.get("api_key"):
                checked = await anyio.to_thread.run_sync(
                    check_key, self.runtime, key_store(self.runtime), form["api_key"], addr,
                    request.url.path)
                if checked.actor is not None:
                    key = await anyio.to_thread.run_sync(key_store(self.runtime).get,
                                                         checked.actor.name)
                    self.sessions.start(request.session, checked.actor.name,
                                        checked.actor.tenant or "", via="apikey",
                                        key_id=key.id if key else "")
                    return RedirectResponse(self.base, status_code=303)
            elif self.config.ldap_admin_group is not None and form.get("username"):
                user = await anyio.to_thread.run_sync(
                    self._directory_admin, form["username"], form.get("password", ""), addr,
                    request.url.path)
                if user is not None:
                    self.sessions.start(request.session, user.username, user.tenant or "",
                                        via="ldap")
                    return RedirectResponse(self.base, status_code=303)
        except Problem as exc:
            error, status, headers = exc.detail, exc.status, exc.headers
        except ZengineError as exc:
            error, status = exc.public_message, max(exc.default_status, 400)
            # A lockout's or a full pool's wait, as the portal and the API tell it.
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        # Held like a failed provisioning login, on the event loop.
        await asyncio.sleep(max(0.0, self.floor - (time.monotonic() - arrived)))
        return self._page(request, "signin.html", status, headers,
                          ldap=self.config.ldap_admin_group is not None, error=error)

    def _directory_admin(self, username: str, password: str, addr: str,
                         path: str) -> Identity | None:
        """The guarded login chain (the LDAP backend binds as the user); only an LDAP identity
        in the admin group may sign in."""
        credentials = Credentials(username, SecretStr(password), source="console")
        attempt = LoginAttempt(username=username, secret=credentials.password,
                               client_addr=addr, path=path, kind="console")
        request = ProvisionRequest(path=path, params={}, headers={}, client_addr=addr,
                                   version_raw=None, credentials=credentials)
        result = (check_login(attempt, credentials, request, self.runtime)
                  if username and password else None)
        group = (self.config.ldap_admin_group or "").casefold()
        member = (isinstance(result, Identity) and result.backend == "ldap"
                  and any(g.casefold() == group for g in result.groups))
        self.runtime.hooks.audit(AuditEvent(
            event="console.signin", outcome="accepted" if member else "refused",
            username=username, backend=getattr(result, "backend", None), client_addr=addr,
            detail=None if member else "not an LDAP member of the admin group"
            if isinstance(result, Identity) else "wrong login"), self.runtime)
        return result if member and isinstance(result, Identity) else None

    async def signout(self, request: Request) -> Response:
        if request.method != "POST":
            return RedirectResponse(self.base, status_code=303)
        form = await self._form(request)
        if not csrf_ok(request, form):
            return self._refused(request)
        await anyio.to_thread.run_sync(self.sessions.end, request.session)
        return RedirectResponse(self.base, status_code=303)

    # -- pages -----------------------------------------------------------------------------

    async def users(self, request: Request) -> Response:
        actor = await self._actor(request)
        if actor is None:
            return RedirectResponse(self.base, status_code=303)
        query = request.query_params.get("q", "")[:255]
        page = await self._call(service.find_users, actor, query, limit=50)
        return self._page(request, "search.html", query=query, page=page)

    async def user(self, request: Request) -> Response:
        actor = await self._actor(request)
        if actor is None:
            return RedirectResponse(self.base, status_code=303)
        return await self._user_page(request, actor,
                                     request.query_params.get("name", "")[:255], None)

    async def _user_page(self, request: Request, actor: Actor, username: str,
                         message: str | None, issued: Any = None) -> Response:
        detail = await self._call(service.user_detail, actor, username)
        family = request.query_params.get("family") or None
        try:
            preview = (await self._call(service.preview, actor, username,
                                        family=family)).document
        except Problem as exc:
            preview = f"({exc.detail})"
        before = request.query_params.get("before") if request.method == "GET" else None
        logins, older, audit_note = await anyio.to_thread.run_sync(
            self._recent, actor, username, (before or "")[:200] or None)
        lockouts = [lock for lock in await self._call(service.lockouts, actor)
                    if lock.name == username]
        try:
            tokens = (await self._call(service.list_tokens, actor, username)).items
        except Problem:
            tokens = []
        return self._page(
            request, "user.html", user=detail, preview=preview, logins=logins,
            audit_note=audit_note, older=older, lockouts=lockouts, tokens=tokens, message=message,
            issued=issued, family=family or "",
            # segno's SVG of the link: markup from the QR library, nothing from the user.
            qr=Markup(issued.qr_svg) if issued is not None else None)  # noqa: S704

    def _recent(self, actor: Actor, username: str,
                cursor: str | None) -> tuple[list[Any], str | None, str | None]:
        """The user's audit events, newest first, a page at a time (the audit store's typed
        query and its stable cursor, in the actor's tenant): rows, the next page's cursor, a
        note when there is nothing to show."""
        actor.require("read")
        try:
            from zengine_audit.api import AuditQuery, AuditStoreOff, BadCursor, audit_service

            audit = audit_service(self.runtime)
            audit.flush(1.0)  # what this console just did shows at once
            page = audit.query(AuditQuery(username=username, tenant=actor.tenant,
                                          limit=self.config.audit_page, cursor=cursor))
        except (ImportError, RuntimeError, AuditStoreOff):
            return [], None, ("The audit store is off ([plugins.audit] store): no login "
                              "history.")
        except BadCursor:
            return [], None, "That page of events does not exist: start from the newest."
        except ZengineError as exc:
            return [], None, f"The audit store cannot be reached: {exc.public_message}"
        return list(page.records), page.next_cursor, None

    # -- actions ---------------------------------------------------------------------------

    def _action(self, step: Callable[[Request, Actor, dict[str, str]], Awaitable[Response]]
                ) -> Handler:
        """A POST from a signed-in session with its CSRF token, or the sign-in again; a GET
        goes back to the start (nothing changes on a GET)."""
        async def run(request: Request) -> Response:
            if request.method != "POST":
                return RedirectResponse(self.base, status_code=303)
            posted = await self._posted(request)
            if posted is None:
                return self._refused(request)
            return await step(request, *posted)
        return run

    async def clear_lockout(self, request: Request, actor: Actor,
                            form: dict[str, str]) -> Response:
        name = form.get("name", "")
        if not name:
            raise FormError("no name")
        cleared = await self._call(service.clear_lockouts, actor, name)
        return await self._user_page(request, actor, form.get("user", name),
                                     f"Lockout cleared ({cleared.cleared} entries).")

    async def issue_token(self, request: Request, actor: Actor,
                          form: dict[str, str]) -> Response:
        try:
            body = TokenIssue(username=form.get("user", ""),
                              account=form.get("account") or None)
        except ValidationError:
            raise FormError("bad token form") from None
        issued = await self._call(service.issue_token, actor, body)
        return await self._user_page(request, actor, issued.username,
                                     "New setup code issued: scan it now, it is shown once.",
                                     issued)

    async def revoke_token(self, request: Request, actor: Actor,
                           form: dict[str, str]) -> Response:
        revoked = await self._call(service.revoke_token, actor, form.get("id", ""))
        return await self._user_page(request, actor, revoked.username,
                                     f"Token {revoked.id} revoked.")

    async def stylesheet(self, request: Request) -> Response:
        return Response(self.css, media_type="text/css; charset=utf-8")
