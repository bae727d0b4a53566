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

The login also names its *lane* (:func:`lane_for`: the tenant and the real client address):
the verification pool (:class:`zengine.verifypool.VerifyPool`) serves waiting verifications
lane by lane, so that one address's burst of guesses never makes another address's login wait
behind it. Every verification of a login (the real one and the dummy one for an unknown user)
takes the login's lane, so the two cost alike there too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address, ip_network

#: Who a verification is queued for: (tenant, address or IPv6 /64).
Lane = tuple[str, str]
#: The lane of verifications outside any login (operator tools, tests).
NO_LANE: Lane = ("", "")


@dataclass
class _Login:
    announce: Callable[[], None]
    lane: Lane
    spent: bool = False


_current: ContextVar[_Login | None] = ContextVar("zengine_login_in_progress", default=None)


@functools.lru_cache(maxsize=4096)  # a pure function of two strings, asked per login
def lane_for(tenant: str, client_addr: str) -> Lane:
    """The lane of a login from ``client_addr`` (the real address, after trusted proxies).

    An IPv6 client gets its /64: one subscriber's line usually holds a whole /64, and an
    attacker who rotates addresses inside it must not get a lane per address. Anything that is
    not an address (``cli``, empty) is its own lane, by its text."""
    try:
        address = ip_address(client_addr)
    except ValueError:
        return (tenant, client_addr)
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return (tenant, str(address.ipv4_mapped))
        return (tenant, str(ip_network(f"{address}/64", strict=False)))
    return (tenant, str(address))


class login_in_progress:
    """Run a login's checks; ``announce()`` is called at most once, at its first slow
    verification (and never for a login that spends none). Its verifications queue in
    ``lane`` (:func:`lane_for`). A class, not ``@contextmanager``: entered on every login,
    and a generator's setup and teardown cost several times this."""

    __slots__ = ("_login", "_token")

    def __init__(self, announce: Callable[[], None], lane: Lane = NO_LANE) -> None:
        self._login = _Login(announce, lane)
        self._token: Token[_Login | None] | None = None

    def __enter__(self) -> None:
        self._token = _current.set(self._login)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)


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


def current_lane() -> Lane:
    """The lane of the login in progress (:data:`NO_LANE` outside a login)."""
    login = _current.get()
    return login.lane if login is not None else NO_LANE
