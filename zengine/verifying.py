"""Which logins spend a slow password verification.

A login that the verified-login cache answers costs an HMAC; one that misses costs an argon2
verification or a directory bind. A guard's flood limit on verifications must count only the
second kind, and only the code that is about to spend the verification knows which kind a
login is. So :func:`zengine.pipeline.check_login` runs the chain inside
:func:`login_in_progress`, and whatever is about to spend a slow verification calls
:func:`announce_verification` first (``runtime.passwords.verify`` does, so backends that
verify argon2 hashes need nothing; a backend whose check is a bind calls it itself). The first
announcement of a login asks :func:`~zengine.hookspecs.zengine_login_verification`, which may
refuse it; later ones (a second backend, the dummy verification) are free.

A context variable carries the login, so the backend API stays as it is; it is set in the
thread that runs the chain, the thread that announces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class _Login:
    announce: Callable[[], None]
    spent: bool = False


_current: ContextVar[_Login | None] = ContextVar("zengine_login_in_progress", default=None)


@contextmanager
def login_in_progress(announce: Callable[[], None]) -> Iterator[None]:
    """Run a login's checks; ``announce()`` is called at most once, at its first slow
    verification (and never for a login that spends none)."""
    token = _current.set(_Login(announce))
    try:
        yield
    finally:
        _current.reset(token)


def announce_verification() -> None:
    """Say that a slow verification (argon2, a bind) is about to be spent for the login in
    progress; may raise what the guard raises (:class:`~zengine.errors.TooManyAttempts`).
    Outside a login (operator tools, tests) and after the first call it does nothing."""
    login = _current.get()
    if login is None or login.spent:
        return
    login.spent = True
    login.announce()


def verification_spent() -> bool:
    """Whether the login in progress has announced a slow verification yet."""
    login = _current.get()
    return login is not None and login.spent
