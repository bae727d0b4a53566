"""The ``/api/v1`` routes: one table of operations, from which both the Starlette routes and
the OpenAPI 3.1 document (:mod:`zengine_admin.openapi`) are made.

Plain Starlette with pydantic models rather than FastAPI (docs/api.md says why). Every answer
is JSON; every refusal is ``application/problem+json``; nothing unexpected becomes a
traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from zengine.bodies import CLOSE, BodyIncomplete, BodyTimeout, BodyTooLarge, read_body
from zengine.runtime import Runtime
from zengine_admin import models as m
from zengine_admin import queries as q
from zengine_admin import service
from zengine_admin.auth import KeyAuth
from zengine_admin.keys import TENANT_RE
from zengine_admin.keys import Scope as KeyScope
from zengine_admin.problems import (
    FieldError,
    Forbidden,
    Invalid,
    MethodNotAllowed,
    NotFound,
    Problem,
    problem_response,
)
from zengine_admin.service import Actor
from zengine_admin.settings import NAME, PREFIX, AdminSettings

log = structlog.get_logger("zengine.admin")
#: Largest request body read (a user with 64 accounts fits many times over).
MAX_BODY = 256 * 1024


class UnsupportedMedia(Problem):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class Incomplete(Problem):
    """The body did not arrive whole: not within ``[server] body_timeout``, or its client
    stopped sending half-way. The connection closes after the answer (the rest may follow)."""

    status = 408
    slug = "request-timeout"
    title = "Request timeout"


class Internal(Problem):
    status = 500
    slug = "internal"
    title = "Internal error"


class TooLarge(Problem):
    status = 413
    slug = "too-large"
    title = "Request body too large"


@dataclass(frozen=True)
class Args:
    path: Mapping[str, str]
    query: Any
    body: Any
    config: AdminSettings


Handler = Callable[[Runtime, Actor, Args], Any]


@dataclass(frozen=True)
class Op:
    """One operation: what the route runs and what the OpenAPI document says about it."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    scope: KeyScope
    call: Handler
    #: The answer's type (a model, ``list[Model]``), or ``None`` for 204 No Content.
    response: Any
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    #: Error statuses besides the ones every operation can answer.
    errors: tuple[int, ...] = ()
    description: str = ""
    adapter: TypeAdapter[Any] | None = field(default=None, compare=False)


def _limit(args: Args) -> int:
    return min(int(args.query.limit), args.config.max_page_size)


def _user(args: Args) -> str:
    return args.path["username"]


OPS: list[Op] = [
    Op("GET", "/status", "getStatus", "Readiness of every backend, with detail", "status",
       "read", lambda rt, a, x: service.status(rt, a), m.StatusView),
    Op("GET", "/plugins", "listPlugins", "Loaded plugins and the hooks they implement",
       "status", "read", lambda rt, a, x: service.plugins(rt, a), list[m.PluginView]),
    Op("GET", "/tenants", "listTenants", "Tenants zengine knows of", "tenants", "read",
       lambda rt, a, x: service.tenants(rt, a), list[m.TenantView]),
    Op("GET", "/profiles", "listProfiles", "Configured profiles", "profiles", "read",
       lambda rt, a, x: service.profiles(rt, a), list[m.ProfileView]),
    Op("GET", "/users", "listUsers", "Find users", "users", "read",
       lambda rt, a, x: service.find_users(rt, a, x.query.q, offset=x.query.offset,
                                           limit=_limit(x)),
       m.UserPage, query=q.UsersQuery,
       description="Users whose name contains `q` in the SQL own schema and the static "
                   "file; LDAP and mapped tables cannot be listed, so there `q` must be the "
                   "exact username."),
    Op("POST", "/users", "createUser", "Create a user (SQL own schema)", "users", "write",
       lambda rt, a, x: service.create_user(rt, a, x.body), m.UserDetail, status=201,
       body=m.UserCreate, errors=(409,)),
    Op("GET", "/users/{username}", "getUser", "A user and their SIP accounts", "users",
       "read", lambda rt, a, x: service.user_detail(rt, a, _user(x)), m.UserDetail,
       errors=(404,)),
    Op("PATCH", "/users/{username}", "updateUser",
       "Change a user: display name, profile, enabled (disable), overrides", "users",
       "write", lambda rt, a, x: service.update_user(rt, a, _user(x), x.body), m.UserDetail,
       body=m.UserUpdate, errors=(404, 409)),
    Op("DELETE", "/users/{username}", "deleteUser", "Delete a user and their accounts",
       "users", "write", lambda rt, a, x: service.delete_user(rt, a, _user(x)), None,
       status=204, errors=(404, 409)),
    Op("PUT", "/users/{username}/password", "setPassword",
       "Set (or, with null, remove) the provisioning password", "users", "write",
       lambda rt, a, x: service.set_password(rt, a, _user(x), x.body.password), None,
       status=204, body=m.PasswordSet, errors=(404, 409)),
    Op("POST", "/users/{username}/accounts", "addAccount", "Add a SIP account", "users",
       "write", lambda rt, a, x: service.add_account(rt, a, _user(x), x.body), m.UserDetail,
       status=201, body=m.AccountCreate, errors=(404, 409)),
    Op("PUT", "/users/{username}/accounts/{ident}/sip-password", "setSipPassword",
       "Set a SIP account's password", "users", "write",
       lambda rt, a, x: service.set_sip_password(rt, a, _user(x), x.path["ident"],
                                                 x.body.sip_password),
       None, status=204, body=m.SipPasswordSet, errors=(404, 409)),
    Op("DELETE", "/users/{username}/accounts/{ident}", "deleteAccount", "Delete a SIP account",
       "users", "write",
       lambda rt, a, x: service.delete_account(rt, a, _user(x), x.path["ident"]), None,
       status=204, errors=(404, 409)),
    Op("GET", "/users/{username}/preview", "previewDocument",
       "The document the user's client gets, passwords masked", "users", "read",
       lambda rt, a, x: service.preview(rt, a, _user(x), family=x.query.family,
                                        version=x.query.version),
       m.PreviewView, query=q.PreviewQuery, errors=(400, 404)),
    Op("GET", "/tokens", "listTokens", "Provisioning tokens (never the token itself)",
       "tokens", "tokens",
       lambda rt, a, x: service.list_tokens(rt, a, x.query.username, offset=x.query.offset,
                                            limit=_limit(x)),
       m.TokenPage, query=q.TokensQuery, errors=(404,)),
    Op("POST", "/tokens", "issueToken",
       "Issue a one-time setup token: the answer carries it, its link and QR, once",
       "tokens", "tokens", lambda rt, a, x: service.issue_token(rt, a, x.body),
       m.IssuedTokenView, status=201, body=m.TokenIssue, errors=(400, 404)),
    Op("DELETE", "/tokens/{id}", "revokeToken", "Revoke a token", "tokens", "tokens",
       lambda rt, a, x: service.revoke_token(rt, a, x.path["id"]), m.TokenView,
       errors=(404, 409)),
    Op("GET", "/lockouts", "listLockouts", "Login failures and lockouts", "lockouts", "read",
       lambda rt, a, x: service.lockouts(rt, a), list[m.LockoutView], errors=(404,)),
    Op("GET", "/audit", "queryAudit", "Stored audit events, newest first", "audit", "read",
       lambda rt, a, x: service.audit_events(
           rt, a, username=x.query.username, since=x.query.since, until=x.query.until,
           outcomes=x.query.outcome, events=x.query.event, limit=x.query.limit,
           cursor=x.query.cursor),
       m.AuditPageView, query=q.AuditQuery, errors=(400, 404),
       description="Logins (accepted, refused and why), documents served, token and admin "
                   "actions, from the audit store (`[plugins.audit] store`). Page on with "
                   "`cursor` = the previous page's `next_cursor`."),
    Op("DELETE", "/lockouts", "clearLockouts",
       "Clear the failures and lockouts of one user or address (name), or all", "lockouts",
       "write", lambda rt, a, x: service.clear_lockouts(rt, a, x.query.name), m.Cleared,
       query=q.LockoutClearQuery, errors=(404,)),
]

#: Statuses every authenticated operation may answer.
COMMON_ERRORS = (401, 403, 422, 429, 503)


def _adapter(op: Op) -> TypeAdapter[Any] | None:
    return TypeAdapter(op.response) if op.response is not None else None


def _field(loc: tuple[int | str, ...]) -> str:
    return "/".join(str(part) for part in loc) or "body"


def _invalid(exc: ValidationError, where: str) -> Problem:
    errors = [FieldError(_field(err["loc"]), err["msg"]) for err in exc.errors(
        include_url=False, include_input=False)]
    first = errors[0] if errors else FieldError(where, "invalid")
    problem = Problem(f"{first.field}: {first.detail}", errors=errors)
    problem.status, problem.slug, problem.title = 422, "invalid", "Invalid request"
    return problem


async def _body(request: Request, model: type[BaseModel], timeout: float) -> BaseModel:
    """The JSON body, read whole (within ``timeout``) before any of it is looked at. A refusal
    before the body's end closes the connection: the rest may follow."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMedia("send the body as application/json", headers=CLOSE)
    try:
        raw = await read_body(request.receive, limit=MAX_BODY, timeout=timeout)
    except BodyTooLarge:
        raise TooLarge(f"the body may hold at most {MAX_BODY} bytes", headers=CLOSE) from None
    except (BodyTimeout, BodyIncomplete) as exc:
        raise Incomplete(str(exc), headers=CLOSE) from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(f"the body is not JSON: {exc.__class__.__name__}") from None
    except ValueError:  # an integer past Python's int_max_str_digits (4300): not a 500
        raise Problem("the body is not JSON: a number has too many digits") from None
    except RecursionError:  # nested past Python's limit: the decoder gives up, not a 500
        raise Problem("the body is not JSON: nested too deeply") from None
    try:
        # Strict: the JSON types the OpenAPI document gives (no "2" for an integer, no
        # "yes" for a boolean); the bodies hold no type JSON lacks (dates, bytes).
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise _invalid(exc, "body") from None


def _check_parameters(request: Request, model: type[BaseModel] | None) -> None:
    """An unknown or repeated query parameter is refused, naming it: a mistyped filter must
    not silently widen a list (``?usernme=alice`` listing everybody)."""
    known = {"tenant", *(model.model_fields if model is not None else ())}
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in known:
            raise Invalid(name, f"unknown query parameter; known here: "
                                f"{', '.join(sorted(known))}")
        if name in seen:
            raise Invalid(name, "given more than once")
        seen.add(name)


def _query(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise _invalid(exc, "query") from None


def _target(request: Request, actor: Actor) -> Actor:
    """``?tenant=``: which tenant an all-tenants key works on (a bound key: only its own)."""
    tenant = request.query_params.get("tenant")
    if tenant is None:
        return actor
    if not TENANT_RE.fullmatch(tenant):
        raise Invalid("tenant", "1-64 letters, digits, '.', '_', '-', starting with a letter "
                                "or digit")
    if actor.tenant is not None and tenant != actor.tenant:
        raise Forbidden(f"this API key may only see tenant {actor.tenant!r}")
    return replace(actor, target=tenant)


class _Asgi:
    """A request handler as a plain ASGI app: a ``Route`` given one checks no method, so the
    handler answers every method itself (405 as a problem document, with ``Allow``)."""

    def __init__(self, handle: Callable[[Request], Any]) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)


class Api:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config(NAME, AdminSettings)
        self.auth = KeyAuth(runtime)
        self.adapters = {op.operation_id: _adapter(op) for op in OPS}
        from zengine_admin.openapi import document

        self.openapi = json.dumps(document(OPS, COMMON_ERRORS), indent=2).encode()

    async def run(self, request: Request, op: Op) -> Response:
        actor = await self.auth.actor(request)
        # The key's scope is checked before the input: a read key learns nothing of a write
        # operation's rules.
        actor.require(op.scope)
        _check_parameters(request, op.query)
        actor = _target(request, actor)
        query = _query(request, op.query) if op.query is not None else None
        body = (await _body(request, op.body, self.runtime.settings.server.body_timeout)
                if op.body is not None else None)
        args = Args(path=dict(request.path_params), query=query, body=body,
                    config=self.config)
        result = await anyio.to_thread.run_sync(op.call, self.runtime, actor, args)
        if op.response is None:
            return Response(status_code=op.status)
        adapter = self.adapters[op.operation_id]
        assert adapter is not None  # noqa: S101 - set for every op with a response
        return JSONResponse(adapter.dump_python(result, mode="json"), status_code=op.status)

    def endpoint(self, ops: dict[str, Op]) -> Callable[[Request], Any]:
        allow = ", ".join(sorted(ops))

        async def handle(request: Request) -> Response:
            op = ops.get(request.method)
            try:
                if op is None:
                    raise MethodNotAllowed(f"{request.method} is not allowed here; use "
                                           f"{allow}", headers={"Allow": allow})
                return await self.run(request, op)
            except Problem as problem:
                return problem_response(problem)
            except Exception:
                # Never a traceback to the client; the log has the exception (no secret is
                # in it: bodies are never logged).
                log.exception("admin.crash", path=request.url.path, method=request.method)
                return problem_response(Internal("unexpected error; the server log has the "
                                                 "details"))

        return handle

    async def openapi_json(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return problem_response(MethodNotAllowed("use GET", headers={"Allow": "GET"}))
        return Response(self.openapi, media_type="application/json")

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(NotFound("no such resource"))(scope, receive, send)

    def routes(self) -> list[BaseRoute]:
        by_path: dict[str, dict[str, Op]] = {}
        for op in OPS:
            by_path.setdefault(op.path, {})[op.method] = op
        inner: list[BaseRoute] = [Route("/openapi.json", _Asgi(self.openapi_json))]
        inner.extend(Route(path, _Asgi(self.endpoint(ops))) for path, ops in by_path.items())
        # Unmatched paths below the prefix get a problem document, not the core's plain 404;
        # no trailing-slash redirect (it would echo the query string).
        router = Router(inner, redirect_slashes=False, default=self.not_found)
        mount = Mount(PREFIX, app=router)
        # Starlette's pattern stops at a newline ("." without DOTALL): a path parameter with
        # a %0A would fall through to the core's XML 404 instead of this API's problem.
        mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
        return [mount]


def routes(runtime: Runtime) -> list[BaseRoute]:
    api = Api(runtime)
    runtime.state[f"{NAME}.api"] = api
    return api.routes()
