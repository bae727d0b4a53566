"""The token endpoint: Zoiper fetches ``token_url`` + token and gets the SIP credentials.

Unknown, malformed, expired, used and revoked tokens all get one answer (the audit log says
which). A use is given back when the answer cannot be built for a reason that is not the
token's (a backend down), so an outage never burns a user's link.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import anyio
import structlog
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from zengine.addresses import ClientAddresses
from zengine.errors import BackendUnavailable, BadRequest, TooManyAttempts, ZengineError
from zengine.models import Account, AuditEvent, Element, Identity, LoginAttempt, LoginResult
from zengine.pipeline import detect_client, status_for
from zengine.profiles import resolve_accounts
from zengine.request import build_request
from zengine.transforms import apply_transforms
from zengine.xmlio import error_document, serialize
from zengine_tokens.api import TokenService, token_service
from zengine_tokens.rows import Consumed, TokenRow
from zengine_tokens.settings import PLUGIN_NAME, TokensSettings

if TYPE_CHECKING:
    from zengine.runtime import Runtime

XML_MEDIA_TYPE = "application/xml; charset=utf-8"
# The body carries SIP passwords: nothing may keep it.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REFUSED_MESSAGE = ("This setup link is not valid: it may have expired or been used already. "
                   "Ask your provider for a new one.")
log = structlog.get_logger("zengine.tokens")

#: Set while a token's full document is being built, so that building it does not issue yet
#: another token into it.
redeeming: ContextVar[bool] = ContextVar("zengine_tokens_redeeming", default=False)


@dataclass(frozen=True)
class TokenReply:
    status: int
    body: bytes
    refused: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


class Gone(Exception):
    """The token was good but its user or account no longer exists: refused like any token."""


def token_param(query: bytes, name: str, limit: int) -> str:
    try:
        pairs = parse_qsl(query.decode("utf-8"), keep_blank_values=True, max_num_fields=8,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("undecodable token query",
                         public_message="Bad request: malformed token URL.") from None
    values = [value for key, value in pairs if key == name]
    if len(values) != 1:
        raise BadRequest(f"{len(values)} {name!r} parameters",
                         public_message=f"Bad request: the token URL needs one '{name}'.")
    return values[0][:limit]


def _credentials(accounts: list[Account]) -> bytes:
    """Zoiper's token document (OEM token-based provisioning): one ``<account>`` per account
    with ``username``, ``password`` and ``authentication_username``."""
    items = [Element("account", children=[
        Element("username", account.sip_username),
        Element("password", account.sip_password.get_secret_value()),
        Element("authentication_username", account.auth_username or account.sip_username),
    ]) for account in accounts]
    return serialize(Element("options", children=[Element("accounts", children=items)]))


def _full(runtime: Runtime, identity: Identity, accounts: list[Account], path: str,
          query: bytes, headers: Mapping[str, str], client_addr: str) -> bytes:
    """The accounts' whole document for the client's family, as a login would get it."""
    request = build_request(path=path, query=query, body=b"", headers=headers,
                            client_addr=client_addr, settings=runtime.settings)
    client = detect_client(request, runtime)
    resolved = resolve_accounts(accounts, identity, runtime.settings)
    document = runtime.hooks.build_document(resolved, client, identity, runtime)
    if document is None:
        raise ZengineError(f"no plugin builds the {client.family!r} family")
    apply_transforms(document, runtime.transforms)
    marker = redeeming.set(True)
    try:
        runtime.hooks.postprocess(document, identity, runtime)
    finally:
        redeeming.reset(marker)
    return serialize(document.root)


def _accounts_of(runtime: Runtime, row: TokenRow) -> tuple[Identity, list[Account]]:
    identity = runtime.hooks.find_identity(row.username, runtime, runtime.settings.auth.chain)
    if identity is None:
        raise Gone("user unknown")
    # A configured tenant's runtime holds only that tenant's users; elsewhere (the global
    # runtime, a tenant that is only a name on users) the user's own tenant must match.
    if row.tenant and row.tenant != runtime.tenant and (identity.tenant or "") != row.tenant:
        raise Gone("user in another tenant")
    # Whose token it is: on the global runtime (the backend's tenant on the identity, at
    # issue as here) a name several tenants use finds the untenanted user, never the
    # tenant's user the token was issued for.
    if runtime.root is None and row.user_tenant is not None \
            and (identity.tenant or "") != row.user_tenant:
        raise Gone("user in another tenant")
    accounts = runtime.hooks.load_accounts(identity, runtime)
    if row.account is not None:
        accounts = [a for a in accounts if a.ident == row.account]
    if not accounts:
        raise Gone("account gone")
    return identity, accounts


class Redemption:
    """One fetch of the endpoint, run in a worker thread."""

    def __init__(self, runtime: Runtime, config: TokensSettings, *, path: str, query: bytes,
                 headers: Mapping[str, str], client_addr: str) -> None:
        self.runtime = runtime
        self.config = config
        self.path = path
        self.query = query
        self.headers = headers
        self.client_addr = client_addr

    def attempt(self, token: str) -> LoginAttempt:
        """The fetch as the login guard sees it. A token names no user, so the "username" the
        guard counts failures under is the address itself: its smart lockout then locks an
        address that guesses tokens, and never every user's token fetches at once (which
        one shared name for all token attempts would)."""
        return LoginAttempt(username=self.client_addr, secret=SecretStr(token),
                            client_addr=self.client_addr, path=self.path, kind="token")

    def audit(self, event: str, outcome: str, row: TokenRow | None, detail: str) -> None:
        self.runtime.hooks.audit(AuditEvent(
            event=event, outcome=outcome, username=row.username if row else None,
            backend=PLUGIN_NAME, client_addr=self.client_addr,
            tenant=row.tenant if row else "",
            detail=f"{detail} id={row.id}" if row else detail), self.runtime)

    def refuse(self, row: TokenRow | None, reason: str) -> TokenReply:
        self.audit("token.refused", "refused", row, f"reason={reason}")
        log.info("token.request", outcome="refused", reason=reason,
                 ref=row.id if row else None, status=self.config.refused_status)
        return TokenReply(self.config.refused_status, error_document(REFUSED_MESSAGE, 1),
                          refused=True)

    def run(self) -> TokenReply:
        with structlog.contextvars.bound_contextvars(
                request_id=uuid.uuid4().hex[:16], path=self.path, client_addr=self.client_addr):
            start = time.perf_counter()
            try:
                return self._run(token_service(self.runtime))
            except ZengineError as exc:
                log_method = log.warning if exc.default_status >= 500 else log.info
                log_method("token.error", kind=exc.kind, detail=exc.detail)
                headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
                return TokenReply(status_for(exc, self.runtime),
                                  error_document(exc.public_message), headers=headers)
            except Exception:
                log.exception("token.crash")
                error = ZengineError("unexpected error")
                return TokenReply(status_for(error, self.runtime),
                                  error_document(error.public_message))
            finally:
                log.debug("token.done", duration_ms=round((time.perf_counter() - start) * 1000,
                                                          2))

    def redeem(self, service: TokenService,
               token: str) -> tuple[Consumed, TokenService, Runtime]:
        """Consume ``token`` in the store that holds it: the global runtime's, else a
        tenant's own (``[tenants.<name>.plugins.tokens]``, or the tenant's own SQL database):
        the one endpoint serves every tenant. A store several runtimes share is asked once."""
        consumed = service.redeem(token, self.client_addr)
        found_in = self.runtime
        asked = {service.location}
        for tenant in self.runtime.tenants.values():
            if consumed.row is not None or consumed.reason != "unknown":
                break
            other = token_service(tenant)
            if other.location in asked:
                continue
            asked.add(other.location)
            consumed, service, found_in = other.redeem(token, self.client_addr), other, tenant
        return consumed, service, found_in

    def _run(self, service: TokenService) -> TokenReply:
        token = token_param(self.query, self.config.param, 4096)
        attempt = self.attempt(token)
        try:
            # The login guard's limits apply before the store is asked.
            self.runtime.hooks.login_check(attempt, self.runtime)
        except TooManyAttempts as exc:
            self.audit("token.refused", "refused", None, f"reason=guard ({exc.detail})")
            raise
        consumed, service, found_in = self.redeem(service, token)
        del token  # never kept, logged or passed on
        self.runtime.hooks.login_result(attempt, LoginResult(
            accepted=consumed.outcome != "refused", backend=PLUGIN_NAME), self.runtime)
        row = consumed.row
        if consumed.outcome == "refused" or row is None:
            return self.refuse(row, consumed.reason or "unknown")
        # The token's tenant's runtime (its users file, directory, rows): the global
        # runtime may know a different user of the same name.
        served = self.runtime.for_tenant(row.tenant) or found_in
        try:
            identity, accounts = _accounts_of(served, row)
            # The token's tenant's own choice of answer, not the global runtime's.
            if served.config(PLUGIN_NAME, TokensSettings).reply == "full":
                body = _full(served, identity, accounts, self.path, self.query,
                             self.headers, self.client_addr)
            else:
                body = _credentials(accounts)
        except Gone as gone:
            return self.refuse(row, str(gone))
        except BaseException as exc:
            if consumed.outcome == "used":
                # Not the token's fault: the next try must still work.
                try:
                    service.release(row)
                except BackendUnavailable:
                    log.warning("token.release_failed", ref=row.id)
            if isinstance(exc, BackendUnavailable):
                self.audit("backend.unavailable", "unavailable", row, exc.detail)
            raise
        replay = consumed.outcome == "replay"
        self.audit("token.used", "replayed" if replay else "used", row,
                   f"replay={str(replay).lower()} uses={row.uses}/{row.max_uses} "
                   f"accounts={len(accounts)}")
        log.info("token.request", outcome="replayed" if replay else "used", ref=row.id,
                 username=row.username, status=200, account_count=len(accounts))
        return TokenReply(200, body)


def routes(runtime: Runtime) -> list[BaseRoute]:
    config = runtime.config(PLUGIN_NAME, TokensSettings)
    settings = runtime.settings
    addresses = ClientAddresses(settings.server.trusted_proxies)

    async def endpoint(request: Request) -> Response:
        if request.method == "HEAD":
            # Starlette adds HEAD to GET routes; a HEAD must never consume a token.
            return Response(error_document("Method not allowed: use GET or POST."),
                            status_code=405, media_type=XML_MEDIA_TYPE,
                            headers={**NO_STORE, "Allow": "GET, POST"})
        arrived = time.monotonic()
        work = Redemption(runtime, config, path=request.url.path,
                          query=request.scope.get("query_string", b""),
                          headers=request.headers,
                          # The real client (trusted proxies' headers applied): for the
                          # replay window, the audit log and the guard's limits.
                          client_addr=addresses.resolve(
                              request.client.host if request.client else "", request.headers))
        reply: TokenReply | None = None
        with anyio.move_on_after(settings.server.backend_timeout):
            reply = await anyio.to_thread.run_sync(work.run, abandon_on_cancel=True)
        if reply is None:
            log.warning("token.deadline", path=request.url.path)
            reply = TokenReply(503, error_document(BackendUnavailable.public_message))
        if reply.refused:
            # Held like a failed login, on the event loop: guessing is slow and costs no thread.
            floor = settings.auth.failure_floor_ms / 1000
            await asyncio.sleep(max(0.0, floor - (time.monotonic() - arrived)))
        return Response(reply.body, status_code=reply.status, media_type=XML_MEDIA_TYPE,
                        headers={**NO_STORE, **reply.headers})

    return [Route(config.path, endpoint, methods=["GET", "POST"])]
