"""The zengine hook contract: the public API every plugin, built-in or third-party, implements.

Rules that hold for every hook:

* Hooks are synchronous. The pipeline runs in a worker thread, so a hook may block on a
  database or directory call within its own timeouts (a fully cached login runs on the event
  loop, and only when every plugin on its path says so: :func:`zengine_inline_safe`).
* ``runtime`` is the :class:`zengine.runtime.Runtime` of the running app: settings, the plugin's
  validated config (``runtime.config(name, Model)``) and per-plugin state (``runtime.state``).
  A hookimpl may leave out any parameter it does not need.
* Plugins raise :mod:`zengine.errors` exceptions; they never build HTTP responses.
* Never rename a hook in place: add the successor and deprecate the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from zengine.models import (
        Abstain,
        Account,
        AuditEvent,
        AuthResult,
        ClientInfo,
        Command,
        Credentials,
        Document,
        Identity,
        LoginAttempt,
        LoginResult,
        PluginSettingsSpec,
        ProvisionRequest,
        Readiness,
        ResolvedAccount,
        Transform,
    )
    from zengine.runtime import Runtime
    from zengine.store import SharedStore

hookspec = pluggy.HookspecMarker("zengine")

# The observation hooks (for metrics) live in zengine.observehooks; they are part of this
# contract, registered with it (``pm.add_hookspecs(hookspecs)`` sees them here).
# The fast path's declaration lives in zengine.fasthooks, registered the same way.
from zengine.fasthooks import zengine_inline_safe as zengine_inline_safe  # noqa: E402
from zengine.observehooks import zengine_observe as zengine_observe  # noqa: E402
from zengine.observehooks import (  # noqa: E402
    zengine_request_finished as zengine_request_finished,
)


@hookspec
def zengine_plugin_settings() -> PluginSettingsSpec | None:
    """Declare the plugin's configuration table.

    Return a :class:`~zengine.models.PluginSettingsSpec` naming the ``[plugins.<name>]`` table and
    the pydantic model that validates it (use ``extra="forbid"`` so a mistyped key is an error
    naming the key). The core validates every table at load time, so ``zengine check-config``
    reports plugin errors too. Return ``None`` when the plugin has no settings.

    Ordering: irrelevant; every plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_startup(runtime: Runtime) -> None:
    """Open what the plugin needs for its whole life: files, pools, connections.

    Called once per app, before the first request, after settings are validated. Store state in
    ``runtime.state[<plugin name>]`` rather than in module globals, so two apps in one process
    (as in tests) do not share it. Raise :class:`~zengine.errors.ConfigError` for a bad
    configuration; the server then refuses to start with that message.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_shutdown(runtime: Runtime) -> None:
    """Release what :func:`zengine_startup` opened. Called once, in reverse plugin order,
    also after a startup that failed part-way (so release only what ``runtime.state`` holds);
    an exception here is logged and does not stop the other plugins' shutdown.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def zengine_detect_client(request: ProvisionRequest, runtime: Runtime) -> ClientInfo | None:
    """Decide which document family and version the client gets.

    :param request: the parsed request (path, parameters, headers, requested version).
    :return: a :class:`~zengine.models.ClientInfo`, or ``None`` to let the next plugin decide.
      Raise :class:`~zengine.errors.BadVersion` for a version that cannot be served.

    Ordering: the first non-``None`` answer wins. A plugin that recognises a branded client
    (by User-Agent, path or parameter) should use ``tryfirst=True`` so it runs before the
    built-in Zoiper detection.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def zengine_resolve_tenant(request: ProvisionRequest, runtime: Runtime) -> str | None:
    """Name the tenant of a request before the built-in chain (``[tenants] resolve``) does.

    Called only when ``[tenants]`` configures tenants, once per request, on the global
    runtime, from :func:`zengine.tenancy.resolve_tenant` (the one function every request path
    uses). ``request.credentials`` still holds the username as the client sent it
    (``alice@acme``), ``request.path`` shows a path key masked (``/t/~/id.php``) and
    ``request.path_key`` holds the key (a ``SecretStr``: never log it).

    :return: the name of a configured tenant; ``None`` to leave the decision to the next
      plugin and then to the built-in chain. A name that is not configured refuses the
      request with exactly a wrong login's answer (the guard counts it), so return only
      names you know.

    After resolution the tenant is ``request.tenant`` (:class:`~zengine.models.ProvisionRequest`),
    ``identity.tenant``, ``attempt.tenant`` (:class:`~zengine.models.LoginAttempt`) and
    ``runtime.tenant`` of the runtime every later hook receives.

    Ordering: the first non-``None`` answer wins. Keep it fast and free of I/O if you can: it
    runs for every request, the ones an attacker sends included.

    .. versionadded:: 0.3
    """


@hookspec
def zengine_authenticate(
    credentials: Credentials, request: ProvisionRequest, runtime: Runtime
) -> AuthResult | Abstain | None:
    """Check a provisioning login.

    :param credentials: username and password (a ``SecretStr``; never log it).
    :return: an :class:`~zengine.models.Identity` to accept the login;
      :class:`~zengine.models.Rejected` when the backend owns this user but the password is
      wrong (the chain stops); ``None`` to abstain because the user is not this backend's;
      :class:`~zengine.models.Abstain` to abstain *after* spending what a wrong password costs
      this backend (the core then skips its dummy verification when this backend was the
      last one asked). Raise :class:`~zengine.errors.BackendUnavailable` when the backend
      cannot answer. Verify argon2 hashes with ``runtime.passwords.verify``: it runs in the
      bounded verification pool and may raise :class:`~zengine.errors.Overloaded`.

    Ordering: the core asks backends one at a time in the order of ``[auth] chain`` (by
    plugin name), not in pluggy's order; the first accept or reject ends the chain. An empty
    password must never be accepted. Compare secrets in constant time. Abstain at once for an
    unknown user: when no backend decides, the core spends one dummy argon2 verification, and
    the HTTP endpoint holds every failed login until ``[auth] failure_floor_ms``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 may return :class:`~zengine.models.Abstain`.
    """


@hookspec
def zengine_login_check(attempt: LoginAttempt, runtime: Runtime) -> None:
    """Decide whether a login may reach the authentication chain at all.

    Called before any backend or password check, for every login that carries a username and
    a password (provisioning logins, and any plugin's own sign-in that calls
    :func:`zengine.pipeline.check_login`). Raise :class:`~zengine.errors.TooManyAttempts`
    (with ``retry_after`` and a message the user can act on) to refuse it: the client gets
    ``[errors.status] too_many_attempts`` (429) with ``Retry-After``. The refusal must not
    depend on whether the user exists. Return ``None`` to let it through.

    :param attempt: username, the secret tried (never log it), the real client address,
      tenant and kind.

    Ordering: every plugin is asked; the first exception refuses the login. Keep it fast:
    it runs for every login, including the ones an attacker sends.

    .. versionadded:: 0.2
    """


@hookspec
def zengine_login_verification(attempt: LoginAttempt, runtime: Runtime) -> None:
    """Decide whether a login may spend a slow password verification.

    Called at most once per login that :func:`zengine_login_check` let through, just before
    its first slow verification: an argon2 verification (``runtime.passwords.verify``, the
    core's dummy verification for an unknown user) or a directory bind. A login the
    verified-login cache answers spends none and never gets here, so a flood limit kept here
    counts real work, not returning phones. Raise :class:`~zengine.errors.TooManyAttempts`
    to refuse (429 with ``Retry-After``, as for :func:`zengine_login_check`);
    :func:`zengine_login_result` is then not called. An unknown user and a wrong password
    both get here: never let the answer depend on which.

    A backend whose check is neither (a bind, say) calls
    :func:`zengine.verifying.announce_verification` right before it; see that module.

    Ordering: every plugin is asked; the first exception refuses the login.

    .. versionadded:: 0.2
    """


@hookspec
def zengine_login_result(attempt: LoginAttempt, result: LoginResult, runtime: Runtime) -> None:
    """Observe what the chain decided for an attempt :func:`zengine_login_check` let through.

    :param result: ``accepted``, and the identity and backend when there is one. An unknown
      user and a wrong password both arrive as ``accepted=False``; treat them alike.

    Called after the dummy verification, before the failure floor, so the work done here
    costs the same for both. An exception is logged and swallowed: recording never changes
    the answer.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def zengine_shared_store(runtime: Runtime) -> SharedStore | None:
    """Provide the :class:`~zengine.store.SharedStore` every plugin uses as ``runtime.store``.

    Called once in :meth:`~zengine.runtime.Runtime.start`, before
    :func:`zengine_startup`, so every plugin's startup already sees the store. Return
    ``None`` to leave the decision to another plugin; when nobody provides one, the core uses
    an in-process :class:`~zengine.store.MemoryStore` (right for a single worker). The store
    is closed after :func:`zengine_shutdown`.

    Ordering: the first non-``None`` answer wins.

    .. versionadded:: 0.2
    """


@hookspec
def zengine_find_identity(username: str, runtime: Runtime) -> Identity | None:
    """Look a user up *without* a password, for operator tools (``zengine render``, ``zengine
    tokens issue``) and for the token endpoint once a token has proved who the user is.

    Return the same :class:`~zengine.models.Identity` a successful
    :func:`zengine_authenticate` would, or ``None`` when the user is not this backend's.
    Never called with a username a client chose: only with one a token or an operator names.

    Ordering: asked in ``[auth] chain`` order, like authentication; first answer wins.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_load_accounts(identity: Identity, runtime: Runtime) -> Iterable[Account] | None:
    """Return the SIP accounts this plugin holds for ``identity``.

    A backend in the ``[auth] chain`` is asked only for its own logins and for the backends
    ``[auth] account_sources`` names (``{ldap = ["sql"]}``: log in by LDAP, accounts from SQL),
    so two backends that both know "alice" never mix her accounts. A plugin outside the chain
    is a pure account source, asked for every login. Results are merged; two accounts with the
    same ``ident`` are an error, never a silent overwrite.

    :return: the accounts, or ``None``/empty when this plugin has none for the user.
      Raise :class:`~zengine.errors.BackendUnavailable` when the backend cannot answer.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_data_generation(identity: Identity, runtime: Runtime) -> str | None:
    """Report a cheap token that changes whenever this plugin's part of ``identity``'s
    document changes, for the rendered-document cache (``[document_cache]``).

    Every plugin that contributes to a document (implements
    :func:`zengine_load_accounts`, :func:`zengine_build_document` or
    :func:`zengine_postprocess_document`) must implement this hook for documents to be cached
    at all: a pure function of its inputs returns a constant; a backend returns what changes
    with its data (the static backend: which load of the users file is in use). Return
    ``None`` when you cannot tell cheaply: that document is built on every request. Entries
    also expire after ``[document_cache] ttl`` seconds, which bounds how long data changed
    outside zengine can stay unseen. Called on the request path: no I/O.

    Ordering: every implementation is asked; one ``None`` makes the document uncacheable.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def zengine_build_document(
    accounts: list[ResolvedAccount], client: ClientInfo, identity: Identity, runtime: Runtime
) -> Document | None:
    """Build the document for ``client.family`` at that family's newest version.

    :param accounts: accounts with every catalogue field resolved (defaults, profile, user
      overrides, account fields), in a stable order.
    :return: a :class:`~zengine.models.Document`, or ``None`` if the plugin does not build this
      family. Version downgrades are :func:`zengine_transforms`' job, not the builder's.

    Ordering: first non-``None`` result wins.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_transforms(runtime: Runtime) -> Iterable[Transform] | None:
    """Register per-version transform steps (:class:`~zengine.models.Transform`).

    Each step turns a ``family`` document of ``version`` into the previous version's form
    (drop a field added in that version, restore an older name). The core applies, newest
    first, every step of the client's family whose version is newer than the client's; the
    builder has already written the negotiated version into ``prov_version``. Called once at
    startup.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_postprocess_document(document: Document, identity: Identity, runtime: Runtime) -> None:
    """Change the finished document in place just before it is serialised.

    The built-in ``urls`` plugin expands server-side fields in ``balance_url``, ``rate_url``,
    ``quality_rating_url`` and ``token_url`` here. ``document.accounts`` pairs each account
    element with the :class:`~zengine.models.ResolvedAccount` it came from. Element text is
    raw: the serialiser escapes it, so never escape it yourself.

    Ordering: every plugin runs; use ``trylast=True`` to see the others' changes.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_audit(event: AuditEvent, runtime: Runtime) -> None:
    """Observe an audit event (login accepted or refused, document served, backend outage).

    Observers can never change the response: an exception raised here is logged and swallowed.

    .. versionadded:: 0.1
    """


@hookspec
def zengine_cli_commands() -> Iterable[Command] | None:
    """Contribute ``zengine`` sub-commands (the SQL backend adds ``users`` and ``db``).

    .. versionadded:: 0.1
    """


@hookspec
def zengine_register_routes(runtime: Runtime) -> Iterable[BaseRoute] | None:
    """Contribute HTTP routes (Starlette ``Route``/``Mount`` objects), datasette-style.

    Called once while the app is built, after settings are validated and before
    :func:`zengine_startup`; close over ``runtime`` (or use ``request.app.state.runtime``) to
    reach plugin state at request time. The core mounts every contributed route after its own
    provisioning paths and health checks, never redirects a trailing slash on them (a redirect
    would echo a query string, which may hold a token), and adds the shared security headers to
    every response that does not set its own: ``Cache-Control: no-store``, ``nosniff``,
    ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY`` and a deny-all
    ``Content-Security-Policy`` (an HTML page that needs its own stylesheet sets its own, strict,
    policy). A route whose path is one of the core's paths is a configuration error.

    :return: the routes, or ``None`` when the plugin serves none.

    Ordering: routes are matched in plugin order after the core's; do not rely on it, use
    distinct paths.

    .. versionadded:: 0.2
    """


@hookspec
def zengine_readiness(runtime: Runtime) -> Iterable[Readiness] | None:
    """Say whether the plugin's backends can serve logins now, by trying them.

    A database backend connects and compares its schema revision with the packaged head; a
    directory backend binds as its service account; a shared store pings its server. Return one
    :class:`~zengine.models.Readiness` per backend (``ready=False`` with a ``reason`` that holds
    no secret, URL or host name), or ``None`` when the plugin has nothing to probe (an inert
    backend). Respect your own connect timeouts; raising is treated as "not ready" and logged.

    Called for the global runtime, then for each ``[tenants]`` tenant's runtime but only for
    the plugins whose ``[plugins.<name>]`` table that tenant overrides (tenants with the same
    table share one probe): so a probe must depend only on the plugin's own table and the
    runtime's shared state, never on another plugin's settings. Called in a worker thread for
    ``GET /readyz`` (at most once per ``[server] readiness_cache_seconds``, whatever the
    request rate) and by ``zengine check-config --probe``; never on the provisioning path.

    Ordering: every plugin is asked; ``/readyz`` answers 503 when any result is not ready.

    .. versionadded:: 0.2
    """


