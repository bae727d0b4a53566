"""The portal's HTTP side: pages, forms, the signed session cookie and CSRF checks
(:mod:`zengine.webforms`, shared with the console).

Every state-changing action is a POST carrying the session's CSRF token; a token is only ever
in the body of a ``no-store`` POST response, never in a URL, a cookie or a redirect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from zengine.addresses import ClientAddresses
from zengine.errors import BadRequest, LoginFailed, NoAccounts, ZengineError
from zengine.models import AuditEvent, Credentials, Identity, ProvisionRequest
from zengine.pipeline import Outcome, authenticate
from zengine.request import refuse_unstorable
from zengine.runtime import Runtime
from zengine.tenancy import resolve_tenant, runtime_for
from zengine.webforms import PAGE_HEADERS, FormError, Sessions, read_form, session_middleware
from zengine.webforms import csrf_ok as _csrf_ok
from zengine.webforms import csrf_token as _csrf
from zengine_portal.assets import Assets
from zengine_portal.settings import PortalSettings
from zengine_portal.tokens import TokensApi, qr_svg

log = structlog.get_logger("zengine.portal")

#: ``__Secure-``: a browser only accepts this cookie over HTTPS (or from localhost) with the
#: Secure flag, so a network attacker cannot plant one over plain HTTP.
COOKIE = "__Secure-zengine-portal"
# HTML statuses of sign-in failures; the [errors.status] table is about what Zoiper shows.
STATUS = {"missing_credentials": 400, "wrong_login": 403, "backend_unavailable": 503,
          "too_many_attempts": 429, "no_accounts": 403}
AUDIT_OUTCOME = {"missing_credentials": "refused", "wrong_login": "refused",
                 "backend_unavailable": "unavailable"}


@dataclass(frozen=True)
class SignedIn:
    identity: Identity
    accounts: int
    #: The tenant the sign-in was resolved to, as a phone's login would be (host, suffix).
    tenant: str = ""


Handler = Callable[[Request], Awaitable[Response]]


class Portal:
    """Built once per app while routes are registered; holds nothing per request."""

    def __init__(self, runtime: Runtime, config: PortalSettings, session_key: str) -> None:
        self.runtime = runtime
        self.config = config
        self.base = config.path
        self.assets = Assets.load(config, runtime.settings)
        env = Environment(loader=PackageLoader("zengine_portal", "templates"), autoescape=True,
                          undefined=StrictUndefined)
        self.templates = Jinja2Templates(env=env)
        self._session_key = session_key
        self.api = TokensApi(runtime)
        self.sessions = Sessions(runtime, config.session_ttl)
        # The real client address, as the provisioning endpoint sees it (trusted proxies).
        self.addresses = ClientAddresses(runtime.settings.server.trusted_proxies)

    def routes(self) -> list[BaseRoute]:
        # The session middleware is on the portal's own routes only; its cookie is scoped to
        # the portal's path, so provisioning requests never carry it.
        session = session_middleware(self._session_key, "portal", cookie=COOKIE,
                                     max_age=self.config.session_ttl, path=self.base)
        base = self.base
        return [
            Route(base, self._guarded(self.home), methods=["GET"], middleware=session),
            Route(f"{base}/signin", self._guarded(self.signin), methods=["GET", "POST"],
                  middleware=session),
            Route(f"{base}/token", self._guarded(self.new_token), methods=["GET", "POST"],
                  middleware=session),
            Route(f"{base}/revoke", self._guarded(self.revoke), methods=["GET", "POST"],
                  middleware=session),
            Route(f"{base}/signout", self._guarded(self.signout), methods=["GET", "POST"],
                  middleware=session),
            Route(f"{base}/static/{{name}}", self.static_file, methods=["GET"]),
        ]

    # -- pages -----------------------------------------------------------------------------

    def _page(self, request: Request, template: str, status: int = 200,
              headers: dict[str, str] | None = None, **context: Any) -> Response:
        brand = {"title": self.config.title, "language": self.config.language,
                 "logo": self.assets.logo_url(self.base)}
        return self.templates.TemplateResponse(
            request, template, {"brand": brand, "base": self.base, **context},
            status_code=status, headers={**PAGE_HEADERS, **(headers or {})})

    def _signin_page(self, request: Request, status: int = 200, error: str | None = None,
                     username: str = "", headers: dict[str, str] | None = None) -> Response:
        return self._page(request, "signin.html", status, headers, error=error,
                          username=username, csrf=_csrf(request))

    def _home_page(self, request: Request, message: str | None = None) -> Response:
        return self._page(request, "home.html", user=request.session["user"],
                          csrf=_csrf(request), message=message)

    def _refused(self, request: Request) -> Response:
        # The session expired, cookies are off, or the form did not come from this page.
        request.session.clear()
        return self._page(request, "message.html", 403, heading="Please try again",
                          text="This form has expired or did not come from this page. "
                               "Go back to the start and try again.")

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except FormError as exc:
                # A malformed form (400), or one that did not arrive whole in time (408).
                return self._page(request, "message.html", exc.status, dict(exc.headers),
                                  heading=exc.heading, text=exc.text)
            except Exception:
                # A bug: the traceback goes to the (redacted) log, never to the page.
                log.exception("portal.crash", path=request.url.path)
                return self._page(request, "message.html", 500, heading="Something went wrong",
                                  text="Please try again later.")
        return run

    # -- endpoints -------------------------------------------------------------------------

    def _form(self, request: Request) -> Awaitable[dict[str, str]]:
        return read_form(request, timeout=self.runtime.settings.server.body_timeout)

    async def _user(self, request: Request) -> str | None:
        user = await run_in_threadpool(self.sessions.user, request.session)
        if user is None and "user" in request.session:
            request.session.clear()  # signed out elsewhere, or superseded: drop it here too
        return user

    def _client_addr(self, request: Request) -> str:
        return self.addresses.resolve(request.client.host if request.client else "",
                                      request.headers)

    async def home(self, request: Request) -> Response:
        if await self._user(request) is None:
            return self._signin_page(request)
        return self._home_page(request)

    async def signin(self, request: Request) -> Response:
        if request.method != "POST":
            return RedirectResponse(self.base, status_code=303)
        arrived = time.monotonic()
        form = await self._form(request)
        if not _csrf_ok(request, form):
            return self._refused(request)
        username = form.get("username", "")
        password = form.get("password", "")
        limit = self.runtime.settings.server.max_param_length
        if len(username) > limit or len(password) > limit:
            raise FormError("oversized field")
        addr = self._client_addr(request)
        try:
            signed_in = await run_in_threadpool(self._sign_in, username, password, addr,
                                                request.url.path, request.headers)
        except ZengineError as exc:
            if isinstance(exc, LoginFailed):
                # Asleep on the event loop like a phone's failed login, to the same floor.
                floor = self.runtime.settings.auth.failure_floor_ms / 1000
                await asyncio.sleep(max(0.0, floor - (time.monotonic() - arrived)))
            retry = exc.retry_after
            return self._signin_page(
                request, STATUS.get(exc.kind, max(exc.default_status, 400)),
                exc.public_message, "" if isinstance(exc, BadRequest) else username,
                {"Retry-After": str(retry)} if retry else None)
        # A fresh session (new id and CSRF token) for the signed-in user.
        self.sessions.start(request.session, signed_in.identity.username, signed_in.tenant)
        # Just authenticated, accounts loaded: the service need not look the user up again.
        return await self._issue(request, check_user=False,
                                 user_tenant=signed_in.identity.tenant or "")

    def _sign_in(self, username: str, password: str, addr: str, path: str,
                 headers: Mapping[str, str]) -> SignedIn:
        """The same tenant resolution, authentication (and guard) a phone's provisioning
        login goes through."""
        credentials = Credentials(username, SecretStr(password), source="portal")
        request = ProvisionRequest(path=path, params={}, headers=headers, client_addr=addr,
                                   version_raw=None, credentials=credentials)
        outcome = Outcome(username=username or None)
        served = self.runtime
        try:
            # What a phone's request is checked for before any backend sees it.
            refuse_unstorable(credentials)
            request = resolve_tenant(request, self.runtime)
            served = runtime_for(request, self.runtime)
            identity = authenticate(request, served, outcome)
            accounts = len(served.hooks.load_accounts(identity, served))
            if not accounts:
                raise NoAccounts(f"no accounts for {identity.username!r}")
        except ZengineError as exc:
            self._audit(AUDIT_OUTCOME.get(exc.kind, exc.kind), outcome, addr, exc.detail,
                        request.tenant)
            raise
        self._audit("accepted", outcome, addr, None, request.tenant)
        return SignedIn(identity, accounts, request.tenant)

    def _audit(self, result: str, outcome: Outcome, addr: str, detail: str | None,
               tenant: str = "") -> None:
        self.runtime.hooks.audit(AuditEvent(
            event="portal.signin", outcome=result, username=outcome.username,
            backend=outcome.backend, client_addr=addr, detail=detail, tenant=tenant),
            self.runtime)

    async def new_token(self, request: Request) -> Response:
        if request.method != "POST":
            return RedirectResponse(self.base, status_code=303)
        form = await self._form(request)
        if not _csrf_ok(request, form) or await self._user(request) is None:
            return self._refused(request)
        return await self._issue(request)

    async def _issue(self, request: Request, *, check_user: bool = True,
                     user_tenant: str | None = None) -> Response:
        user, tenant = request.session["user"], request.session.get("tenant", "")
        try:
            issued = await run_in_threadpool(
                self.api.service(tenant).issue, user, tenant=tenant, ttl=self.config.token_ttl,
                revoke_older=True, actor="portal", client_addr=self._client_addr(request),
                check_user=check_user, user_tenant=user_tenant)
            if not issued.link:
                raise ZengineError("tokens have no link: set [server] public_url or "
                                   "[plugins.tokens] provider_id")
            svg = await run_in_threadpool(qr_svg, issued.link)
        except ZengineError as exc:
            log.warning("portal.issue_failed", kind=exc.kind, detail=exc.detail)
            status = 403 if isinstance(exc, LoginFailed | NoAccounts) else 503
            return self._page(request, "message.html", status, heading="No setup code",
                              text=exc.public_message)
        return self._page(
            request, "token.html", user=user, csrf=_csrf(request), link=issued.link,
            # segno's SVG of the link: markup from the QR library, nothing from the user.
            qr=Markup(svg),  # noqa: S704
            expires=issued.expires.strftime("%Y-%m-%d %H:%M UTC"),
            expires_iso=issued.expires.isoformat(), uses=issued.max_uses)

    async def revoke(self, request: Request) -> Response:
        if request.method != "POST":
            return RedirectResponse(self.base, status_code=303)
        form = await self._form(request)
        if not _csrf_ok(request, form) or await self._user(request) is None:
            return self._refused(request)
        tenant = request.session.get("tenant", "")
        try:
            count = await run_in_threadpool(
                self.api.service(tenant).revoke_user, request.session["user"],
                tenant=tenant, actor="portal",
                client_addr=self._client_addr(request))
        except ZengineError as exc:
            log.warning("portal.revoke_failed", kind=exc.kind, detail=exc.detail)
            return self._page(request, "message.html", 503, heading="Please try again later",
                              text=exc.public_message)
        # The user's portal sessions elsewhere end too; this one carries on.
        await run_in_threadpool(self.sessions.end_others, request.session)
        what = "1 unused setup code was" if count == 1 else f"{count} unused setup codes were"
        return self._home_page(request, f"Done: {what} cancelled, and your other "
                                        "sign-ins ended.")

    async def signout(self, request: Request) -> Response:
        if request.method != "POST":
            return RedirectResponse(self.base, status_code=303)
        form = await self._form(request)
        if not _csrf_ok(request, form):
            return self._refused(request)
        await run_in_threadpool(self.sessions.end, request.session)
        return RedirectResponse(self.base, status_code=303)

    async def static_file(self, request: Request) -> Response:
        asset = self.assets.files.get(request.path_params["name"])
        if asset is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        # The core's headers apply: no-store, and a deny-all CSP that keeps an SVG logo from
        # running script when opened on its own.
        return Response(asset.body, media_type=asset.media_type)
