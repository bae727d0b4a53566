"""The provisioning pipeline: request in, document bytes out. No Starlette here."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from zengine.challenge import error_answer
from zengine.doccache import Rendered
from zengine.errors import (
    BackendUnavailable,
    LoginFailed,
    MissingPassword,
    MissingUsername,
    NoAccounts,
    ZengineError,
)
from zengine.log import held_lines
from zengine.logincheck import check_login as check_login  # its home before (api, plugins)
from zengine.logline import log_event
from zengine.models import (
    AuditEvent,
    ClientInfo,
    Identity,
    LoginAttempt,
    Observation,
    ProvisionRequest,
    Rejected,
)
from zengine.profiles import resolve_accounts
from zengine.runtime import Runtime
from zengine.tenancy import resolve_tenant, runtime_for
from zengine.transforms import apply_transforms
from zengine.xmlio import error_document, serialize

if TYPE_CHECKING:
    from zengine.fastpath import Hit

log = structlog.get_logger("zengine.pipeline")


@dataclass
class Outcome:
    """What the request turned into; filled in as the pipeline goes, for the request log."""

    outcome: str = "error"
    backend: str | None = None
    client: ClientInfo | None = None
    account_count: int = 0
    username: str | None = None
    #: The data generations the document was cached under (``None``: not cacheable).
    generations: list[str] | None = None


def authenticate(request: ProvisionRequest, runtime: Runtime, outcome: Outcome,
                 known: Identity | None = None, made: dict[str, Any] | None = None) -> Identity:
    """``made`` (a fast-path hit's, :attr:`zengine.fastpath.Hit.made`): what an earlier
    request of the same hit made from ``request`` and ``known`` alone, reused (all frozen)."""
    credentials = request.credentials
    if credentials is None or not credentials.username:
        raise MissingUsername("no username in request")
    outcome.username = credentials.username
    if not credentials.password.get_secret_value():
        raise MissingPassword("no password in request")
    attempt = made.get("attempt") if made is not None else None
    if attempt is None:
        attempt = LoginAttempt(username=credentials.username, secret=credentials.password,
                               client_addr=request.client_addr, tenant=request.tenant,
                               path=request.path)
        if made is not None:
            made["attempt"] = attempt
    result = check_login(attempt, credentials, request, runtime, known=known, made=made)
    if isinstance(result, Identity):
        outcome.backend = result.backend
        if runtime.tenant and result.tenant != runtime.tenant:
            # The tenant is the runtime's, whatever the backend's row says.
            result = dataclasses.replace(result, tenant=runtime.tenant)
        return result
    if isinstance(result, Rejected):
        outcome.backend = result.backend
        raise LoginFailed(f"rejected by {result.backend}: {result.reason}")
    raise LoginFailed("no backend knows this user")


def render_for(identity: Identity, client: ClientInfo, runtime: Runtime,
               outcome: Outcome) -> bytes:
    """Everything after authentication; the CLI ``render`` command uses this directly."""
    documents = runtime.documents
    key: tuple[str, ...] | None = None
    if documents.settings.enabled:
        generations = runtime.hooks.data_generations(identity, runtime)
        if generations is None:
            runtime.observe(_DOC_UNCACHEABLE)
        else:
            outcome.generations = generations
            key = documents.key(identity, client, generations)
            cached = documents.get(key)
            runtime.observe(_DOC_HIT if cached is not None else _DOC_MISS)
            if cached is not None:
                outcome.account_count = cached.account_count
                return cached.body
    body = _render(identity, client, runtime, outcome)
    if key is not None:
        documents.put(key, Rendered(body, outcome.account_count))
    return body


_DOC_HIT = Observation("document_cache", "hit")
_DOC_MISS = Observation("document_cache", "miss")
#: A plugin that shapes the document cannot tell when its data changes (docs/plugins.md).
_DOC_UNCACHEABLE = Observation("document_cache", "uncacheable")


def _render(identity: Identity, client: ClientInfo, runtime: Runtime, outcome: Outcome) -> bytes:
    accounts = runtime.hooks.load_accounts(identity, runtime)
    outcome.account_count = len(accounts)
    if not accounts:
        raise NoAccounts(f"no accounts for {identity.username!r}")
    resolved = resolve_accounts(accounts, identity, runtime.settings)
    document = runtime.hooks.build_document(resolved, client, identity, runtime)
    if document is None:
        raise ZengineError(f"no plugin builds the {client.family!r} family")
    apply_transforms(document, runtime.transforms)
    runtime.hooks.postprocess(document, identity, runtime)
    return serialize(document.root)


def detect_client(request: ProvisionRequest, runtime: Runtime) -> ClientInfo:
    client = runtime.hooks.detect_client(request, runtime)
    if client is None:
        raise ZengineError("no plugin recognised the client")
    return client


def admit(request: ProvisionRequest, runtime: Runtime) -> ClientInfo:
    """Everything decided from the (tenant-resolved) request alone before the login, on both
    the fast and the long path: which client it is. A new request-dependent step goes here
    (or, like the tenant, before the runtime is chosen: :func:`zengine.tenancy.resolve_tenant`
    runs in :func:`_handle` and in :meth:`zengine.fastpath.FastPath.lookup`), so that both
    paths decide alike; whatever it decides must reach the fast path's memo key."""
    return detect_client(request, runtime)


def provision(request: ProvisionRequest, runtime: Runtime, outcome: Outcome,
              hit: Hit | None = None) -> bytes:
    """Run one request through every hook; raises :class:`ZengineError` for error documents.

    ``hit`` (the fast path) carries the client, the chain's answer and the rendered document
    from the caches; every hook that observes or limits logins runs all the same."""
    outcome.client = hit.client if hit is not None else admit(request, runtime)
    try:
        identity = authenticate(request, runtime, outcome,
                                known=hit.identity if hit is not None else None,
                                made=hit.made if hit is not None else None)
    except LoginFailed as exc:
        outcome.outcome = "rejected"
        _audit(runtime, request, outcome, "login.refused", "rejected", exc.detail)
        raise
    # The directory's spelling from here on (LDAP answers ``Alice`` for ``alice``): the audit
    # trail and the request log name the account, not what was typed.
    outcome.username = identity.username
    try:
        if hit is not None:
            runtime.observe(_DOC_HIT)
            outcome.account_count = hit.rendered.account_count
            body = hit.rendered.body
        else:
            body = render_for(identity, outcome.client, runtime, outcome)
            if outcome.generations is not None and request.credentials is not None \
                    and runtime.started:
                runtime.fast.remember(request.credentials, identity, outcome.generations)
    finally:
        # After the accounts are loaded, so the line says how many the login gave (0 when
        # loading them failed); still written when the document is not.
        _audit(runtime, request, outcome, "login.accepted", "accepted",
               made=hit.made if hit is not None else None)
    outcome.outcome = "served"
    _audit(runtime, request, outcome, "document.served", "served",
           made=hit.made if hit is not None else None)
    return body


def _audit(runtime: Runtime, request: ProvisionRequest, outcome: Outcome, event: str,
           result: str, detail: str | None = None, made: dict[str, Any] | None = None) -> None:
    """``made`` (a fast-path hit's): the event an earlier request of the hit sent, when
    every value is the same (an AuditEvent is frozen: one may be sent again)."""
    client = outcome.client
    values = None
    if made is not None:
        values = (event, result, outcome.username, outcome.backend, request.client_addr,
                  client, outcome.account_count, detail, request.tenant)
        sent = made.get(event)
        if sent is not None and sent[0] == values:
            runtime.hooks.audit(sent[1], runtime)
            return
    audit = AuditEvent(
        event=event,
        outcome=result,
        username=outcome.username,
        backend=outcome.backend,
        client_addr=request.client_addr,
        family=client.family if client else None,
        version=str(client.version) if client else None,
        account_count=outcome.account_count,
        detail=detail,
        tenant=request.tenant,
    )
    if values is not None and made is not None:
        made[event] = (values, audit)
    runtime.hooks.audit(audit, runtime)


def monotonic_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    error_kind: str | None = None
    #: Extra response headers decided with the status (``WWW-Authenticate`` on a
    #: challenge, ``Retry-After`` when the error carries one).
    headers: tuple[tuple[str, str], ...] = ()
    #: What the request turned into and the client family, for
    #: :func:`~zengine.hookspecs.zengine_request_finished`.
    outcome: str = "error"
    family: str | None = None
    tenant: str = ""


def status_for(error: ZengineError, runtime: Runtime) -> int:
    status: int = getattr(runtime.settings.errors.status, error.kind, error.default_status)
    return status


def handle(make_request: Callable[[], ProvisionRequest], runtime: Runtime, *,
           path: str = "", client_addr: str = "", hit: Hit | None = None) -> Reply:
    """Parse, provision and log one request. Never raises: every failure is an error document.

    Runs in a worker thread, or on the event loop with a fast-path ``hit``;
    ``make_request`` is called here so that request parsing errors take the same path as
    every other error.
    """
    # Every line logged while handling this request carries its id, path (never the query
    # string) and client address. The id only ties one request's lines together: 64 bits
    # from the OS make two requests sharing one improbable, at a quarter of uuid4's cost.
    request_id = os.urandom(8).hex()
    bound = _BOUND
    if bound is None:
        tokens = structlog.contextvars.bind_contextvars(
            request_id=request_id, path=path, client_addr=client_addr)
        one, two, three = tokens.values()
        _remember_bound(one, two, three)
    else:
        one, two, three = bound[0].set(request_id), bound[1].set(path), bound[2].set(client_addr)
    tenant: list[Token[Any]] = []  # _handle's binding of the request's tenant, if any
    try:
        # The request's lines (audit, provision.request) in one write (zengine.log).
        with held_lines():
            return _handle(make_request, runtime, hit, tenant)
    finally:
        for token in tenant:
            token.var.reset(token)
        three.var.reset(three)
        two.var.reset(two)
        one.var.reset(one)


#: structlog's context variables for ``request_id``, ``path`` and ``client_addr``: what
#: ``bind_contextvars`` sets (a name's variable is made once and kept), taken from its
#: tokens at the first request, then set directly (its name lookups were a third of the
#: cost of binding).
_BOUND: tuple[ContextVar[Any], ContextVar[Any], ContextVar[Any]] | None = None


def _remember_bound(*tokens: Token[Any]) -> None:
    global _BOUND
    if _BOUND is None:
        _BOUND = (tokens[0].var, tokens[1].var, tokens[2].var)


def _handle(make_request: Callable[[], ProvisionRequest], runtime: Runtime,
            hit: Hit | None, tenant: list[Token[Any]]) -> Reply:
    start = time.perf_counter()
    outcome = Outcome()
    request: ProvisionRequest | None = None
    served = runtime
    headers: tuple[tuple[str, str], ...] = ()
    kind: str | None = None
    try:
        if hit is not None:
            # The fast path resolved the tenant already (resolve_tenant, the same function).
            request, served = hit.request, hit.runtime
        else:
            request = resolve_tenant(make_request(), runtime)
            served = runtime_for(request, runtime)
        if request.tenant:
            # Reset by handle, after the request's last line, like its other three.
            tenant.extend(structlog.contextvars.bind_contextvars(
                tenant=request.tenant).values())
        status, body = 200, provision(request, served, outcome, hit)
    except ZengineError as exc:
        if isinstance(exc, BackendUnavailable):
            outcome.outcome = "unavailable"
            if request is not None:
                _audit(served, request, outcome, "backend.unavailable", "unavailable",
                       exc.detail)
        elif outcome.outcome == "error" and exc.kind != "internal":
            outcome.outcome = exc.kind
        log_method = log.warning if exc.default_status >= 500 else log.info
        log_method("provision.error", kind=exc.kind, detail=exc.detail)
        status, headers = error_answer(exc, request, runtime.settings, status_for(exc, runtime))
        if exc.retry_after:
            headers = (*headers, ("Retry-After", str(exc.retry_after)))
        body, kind = error_document(exc.public_message), exc.kind
    except Exception:
        # A bug, not bad input: the traceback goes to the (redacted) log, never to the client.
        log.exception("provision.crash")
        error = ZengineError("unexpected error")
        status, body, kind = status_for(error, runtime), error_document(error.public_message), \
            "internal"
    client = outcome.client
    values = (status, body, kind, headers, outcome.outcome, client.family if client else None,
              request.tenant if request else "")
    # A fast-path hit's reply is the one before when every value is (a Reply is frozen).
    made = hit.made.get("reply") if hit is not None else None
    if made is not None and made[0] == values:
        reply: Reply = made[1]
    else:
        reply = Reply(*values)
        if hit is not None:
            hit.made["reply"] = (values, reply)
    # log.info("provision.request", ...)'s line, without structlog's call machinery.
    log_event(log, "info", "provision.request", {
        "outcome": outcome.outcome,
        "status": reply.status,
        "error": reply.error_kind,
        "backend": outcome.backend,
        "username": outcome.username,
        "client_family": client.family if client else None,
        "client_version": str(client.version) if client else None,
        "requested_version": client.requested if client else None,
        "account_count": outcome.account_count,
        "duration_ms": monotonic_ms(start),
    })
    return reply
