"""The guarded authentication chain (:func:`check_login`), for provisioning
(:func:`zengine.pipeline.authenticate`) and for any plugin's own sign-in."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from zengine.errors import (
    AccessDenied,
    BackendUnavailable,
    Overloaded,
    TooManyAttempts,
    ZengineError,
)
from zengine.logincache import prefetching
from zengine.models import (
    UNKNOWN_TENANT,
    Abstain,
    AuthResult,
    Credentials,
    Identity,
    LoginAttempt,
    LoginResult,
    Observation,
    ProvisionRequest,
    Rejected,
)
from zengine.runtime import Runtime
from zengine.verifying import lane_for, login_in_progress


def check_login(attempt: LoginAttempt, credentials: Credentials, request: ProvisionRequest,
                runtime: Runtime, *, known: Identity | None = None,
                made: dict[str, Any] | None = None) -> AuthResult | None:
    """The guarded authentication chain, for provisioning and for any plugin's own sign-in.

    :func:`~zengine.hookspecs.zengine_login_check` may refuse first (raising
    :class:`~zengine.errors.TooManyAttempts`); then the chain decides, and the first slow
    verification it spends asks :func:`~zengine.hookspecs.zengine_login_verification` (which
    may refuse too, see :mod:`zengine.verifying`); an unknown user costs
    one dummy verification unless the last backend already spent it
    (:class:`~zengine.models.Abstain`); :func:`~zengine.hookspecs.zengine_login_result`
    records the outcome. Returns the :class:`Identity`, the :class:`Rejected`, or ``None``
    for a user no backend knows. May raise :class:`~zengine.errors.Overloaded`.

    ``known`` (the fast path, :mod:`zengine.fastpath`) is the chain's answer for this very
    password a moment ago, with the backend's data unchanged: it stands in for the chain;
    the guard's hooks run all the same (``made``: see :func:`authenticate`).
    """
    start = time.perf_counter()
    verdict = "error"
    try:
        # The guard may read the user's verified-login entry with its own check (one Redis
        # round trip for both); what it read is for this login only.
        with prefetching():
            decided = _check_login(attempt, credentials, request, runtime, known, made)
        # An unknown user and a wrong password are one result here too.
        verdict = "accepted" if isinstance(decided, Identity) else "rejected"
        return decided
    except ZengineError as exc:
        verdict = _LOGIN_RESULTS.get(exc.kind, "error")
        raise
    finally:
        runtime.observe(Observation("login", verdict, None, time.perf_counter() - start))


#: ``login`` observation results for the errors a login can end in.
_LOGIN_RESULTS = {TooManyAttempts.kind: "refused", AccessDenied.kind: "denied",
                  Overloaded.kind: "overloaded", BackendUnavailable.kind: "unavailable"}


def _check_login(attempt: LoginAttempt, credentials: Credentials, request: ProvisionRequest,
                 runtime: Runtime, known: Identity | None,
                 made: dict[str, Any] | None = None) -> AuthResult | None:
    try:
        runtime.hooks.login_check(attempt, runtime)
    except TooManyAttempts:
        # Locked out: the verified-login cache forgets this user, so that the lockout's end
        # is followed by a full password check, not by a cached one.
        runtime.logins.forget(attempt.username)
        raise
    # A verified-login cache hit spends no slow verification, so it never reaches
    # zengine_login_verification (a guard's flood limit on verifications); neither does the
    # fast path's answer (``known``), which is one. Its verifications wait in the lane of its
    # real address, so that another address's burst does not queue ahead (zengine.verifypool).
    with login_in_progress(lambda: runtime.hooks.login_verification(attempt, runtime),
                           lane_for(attempt.tenant, attempt.client_addr)):
        if known is not None:
            # The memo is the verified-login cache's answer: metrics count it as a hit.
            runtime.observe(Observation("login_cache", "hit", known.backend) if made is None
                            else _made(made, "cache_hit", _cache_hit, known))
            result: AuthResult | Abstain | None = known
        else:
            # An unknown tenant asks no backend (it has none), and then costs and answers
            # exactly what an unknown user does.
            result = None if attempt.tenant == UNKNOWN_TENANT else runtime.hooks.authenticate(
                credentials, request, runtime, runtime.settings.auth.chain)
        if result is None:
            # Nobody knows this user: spend what a wrong password costs, once for the chain.
            runtime.passwords.verify(None, credentials.password.get_secret_value())
    decided = result if isinstance(result, Identity | Rejected) else None
    runtime.hooks.login_result(attempt, _login_result(decided) if made is None or
                               decided is not known else _made(made, "result", _login_result,
                                                               decided), runtime)
    return decided


def _login_result(decided: Identity | Rejected | None) -> LoginResult:
    return LoginResult(accepted=isinstance(decided, Identity),
                       identity=decided if isinstance(decided, Identity) else None,
                       backend=decided.backend if decided is not None else None)


def _cache_hit(known: Identity) -> Observation:
    return Observation("login_cache", "hit", known.backend)


T = TypeVar("T")
A = TypeVar("A")


def _made(made: dict[str, Any], name: str, make: Callable[[A], T], source: A) -> T:
    """``make(source)``, made once per fast-path hit (``source`` is one of its parts)."""
    value: T | None = made.get(name)
    if value is None:
        value = made[name] = make(source)
    return value
