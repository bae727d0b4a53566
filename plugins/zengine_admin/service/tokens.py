"""One-time setup tokens: issue (the token, link and QR once), list, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from zengine.errors import ZengineError
from zengine_admin.models import IssuedTokenView, Revoked, TokenIssue, TokenPage, TokenView
from zengine_admin.problems import Conflict, Invalid, NotFound, Problem
from zengine_admin.service.base import Actor, backend_errors, find_identity, scoped

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def _tokens(runtime: Runtime) -> Any:
    from zengine_tokens.api import token_service

    try:
        return token_service(runtime)
    except RuntimeError:
        raise NotFound("the tokens plugin is not running") from None


def _token_tenant(runtime: Runtime, actor: Actor, username: str) -> str:
    identity = find_identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        raise NotFound(f"no user {username!r}")
    # The runtime's tenant ("" for the global one): the endpoint redeems the token with that
    # tenant's users, never with another tenant's user of the same name.
    return runtime.tenant


def _token_view(info: Any) -> TokenView:
    return TokenView(id=info.id, username=info.username, account=info.account,
                     tenant=info.tenant, purpose=info.purpose, state=info.state,
                     created=info.created, expires=info.expires, max_uses=info.max_uses,
                     uses=info.uses, revoked=info.revoked, last_used=info.last_used,
                     last_used_addr=info.last_used_addr, issued_by=info.issued_by)


@scoped
def issue_token(runtime: Runtime, actor: Actor, body: TokenIssue) -> IssuedTokenView:
    """A one-time setup token for a user: the answer carries the token, its link and the QR
    (SVG) this once; only its digest is stored."""
    actor.require("tokens")
    from zengine_tokens.api import qr_svg

    service = _tokens(runtime)
    tenant = _token_tenant(runtime, actor, body.username)
    ttl = timedelta(seconds=body.ttl_seconds) if body.ttl_seconds is not None else None
    try:
        issued = backend_errors(lambda: service.issue(
            body.username, tenant=tenant, account=body.account, ttl=ttl, uses=body.uses,
            revoke_older=not body.keep_older, actor=f"api:{actor.name}",
            client_addr=actor.client_addr))
    except ZengineError as exc:
        raise Invalid("account" if body.account else "username", exc.public_message) from None
    except ValueError as exc:
        raise Problem(str(exc)) from None
    return IssuedTokenView(id=issued.id, token=issued.token, username=issued.username,
                           account=issued.account, expires=issued.expires,
                           max_uses=issued.max_uses, link=issued.link,
                           qr_svg=qr_svg(issued.link) if issued.link else "")


@scoped
def list_tokens(runtime: Runtime, actor: Actor, username: str | None = None, *,
                offset: int = 0, limit: int = 50) -> TokenPage:
    """Tokens (id and state, never the token), newest first."""
    actor.require("tokens")
    service = _tokens(runtime)
    infos = backend_errors(lambda: service.list(username, tenant=runtime.tenant))
    if actor.tenant is not None:
        tenants: dict[str, bool] = {}

        def visible(name: str) -> bool:
            if name not in tenants:
                identity = find_identity(runtime, name)
                tenants[name] = identity is not None and actor.sees(identity.tenant)
            return tenants[name]

        infos = [i for i in infos if visible(i.username)]
    views = [_token_view(i) for i in infos]
    return TokenPage(items=views[offset:offset + limit], offset=offset, limit=limit,
                           total=len(views))


@scoped
def revoke_token(runtime: Runtime, actor: Actor, token_id: str) -> TokenView:
    actor.require("tokens")
    service = _tokens(runtime)
    listed = backend_errors(lambda: service.list(None, tenant=runtime.tenant))
    info = next((i for i in listed if i.id == token_id), None)
    if info is None:
        raise NotFound(f"no token {token_id!r}")
    _token_tenant(runtime, actor, info.username)
    revoked = backend_errors(lambda: service.revoke(
        token_id, tenant=runtime.tenant, actor=f"api:{actor.name}",
        client_addr=actor.client_addr))
    if revoked is None:
        raise Conflict(f"token {token_id!r} is already revoked")
    return _token_view(revoked)


@scoped
def revoke_user_tokens(runtime: Runtime, actor: Actor, username: str) -> Revoked:
    actor.require("tokens")
    service = _tokens(runtime)
    _token_tenant(runtime, actor, username)
    count = backend_errors(lambda: service.revoke_user(
        username, tenant=runtime.tenant, actor=f"api:{actor.name}",
        client_addr=actor.client_addr))
    return Revoked(revoked=int(count))
