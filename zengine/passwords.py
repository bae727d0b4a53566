"""Provisioning-password hashing with argon2id (argon2-cffi), shared by every backend.

The parameters come from ``[passwords]``; the runtime holds one :class:`Passwords` built from
them (``runtime.passwords``). A stored hash made with other parameters still verifies, and
``needs_rehash`` tells a backend that can write to refresh it on the next login.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from zengine.models import Observation
from zengine.verifying import announce_verification
from zengine.verifypool import VerifyPool, cores

__all__ = ["PasswordSettings", "Passwords", "VerifyPool", "cores", "default", "hash_password",
           "needs_rehash", "verify_password"]
_REAL = Observation("password.argon2", "real")
_DUMMY = Observation("password.argon2", "dummy")


class PasswordSettings(BaseModel):
    """argon2id cost. The defaults are RFC 9106's second recommendation (the low-memory one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_cost: int = Field(3, ge=1, le=64)
    memory_kib: int = Field(65536, ge=8, le=4 * 1024 * 1024)
    parallelism: int = Field(4, ge=1, le=64)
    #: Verifications that run at once in each worker process; 0 shares the CPU cores among
    #: ``[server] workers`` (at least one each), so that two workers on two cores run two
    #: verifications at once, not four that each take twice as long.
    pool_size: int = Field(0, ge=0, le=256)
    #: Verifications that may wait for a free slot, served fairly across client addresses
    #: (:mod:`zengine.verifypool`); beyond that a login is answered at once with ``503`` +
    #: ``Retry-After`` (kind ``overloaded``) instead of queueing without end.
    pool_queue: int = Field(16, ge=0, le=10000)
    #: Added to the nice value of the verification threads (Linux), so that a burst of slow
    #: verifications leaves the CPU to the requests that need little of it (cache hits, the
    #: event loop); 0 keeps them at the process's priority.
    pool_nice: int = Field(10, ge=0, le=19)

    @model_validator(mode="after")
    def _memory_per_lane(self) -> PasswordSettings:
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("memory_kib must be at least 8 times parallelism (argon2's minimum)")
        return self


class Passwords:
    def __init__(self, settings: PasswordSettings | None = None, *,
                 observe: Callable[[Observation], None] | None = None,
                 workers: int = 1) -> None:
        self.settings = settings or PasswordSettings()
        #: Told of every verification actually run (``password.argon2``, ``real`` or
        #: ``dummy``): the runtime passes :meth:`~zengine.runtime.Runtime.observe`.
        self.observe = observe
        self._hasher = PasswordHasher(
            time_cost=self.settings.time_cost, memory_cost=self.settings.memory_kib,
            parallelism=self.settings.parallelism, type=Type.ID)
        #: Every :meth:`verify` runs here, in the lane of the login in progress; see
        #: :mod:`zengine.verifypool`.
        size = self.settings.pool_size or max(1, cores() // max(1, workers))
        self.pool = VerifyPool(size, self.settings.pool_queue,
                               self.settings.pool_nice)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def warm(self) -> None:
        """Make the dummy hash now, so the first unknown user costs what later ones do."""
        _ = self._dummy

    @cached_property
    def _dummy(self) -> str:
        return self._hasher.hash("zengine-dummy-password-for-timing")

    def verify(self, stored: str | None, password: str) -> bool:
        """Constant-time check. With ``stored=None`` (unknown user) the same work is still
        done, so an unknown user costs as much as a wrong password.

        Announces the verification first (:func:`~zengine.verifying.announce_verification`):
        a guard's flood limit may refuse it with :class:`~zengine.errors.TooManyAttempts`."""
        announce_verification()
        target = stored if stored is not None else self._dummy
        ok = self.pool.run(lambda: self._verify(target, password))
        self._spent(stored)
        return ok and stored is not None

    async def verify_async(self, stored: str | None, password: str) -> bool:
        """:meth:`verify` for code on the event loop (a portal sign-in, say)."""
        announce_verification()
        target = stored if stored is not None else self._dummy
        ok = await self.pool.run_async(lambda: self._verify(target, password))
        self._spent(stored)
        return ok and stored is not None

    def _spent(self, stored: str | None) -> None:
        if self.observe is not None:
            self.observe(_DUMMY if stored is None else _REAL)

    def _verify(self, target: str, password: str) -> bool:
        try:
            return self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return False


@cache
def default() -> Passwords:
    """Default parameters, for tools and tests that have no runtime."""
    return Passwords()


def hash_password(password: str) -> str:
    return default().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    return default().verify(stored, password)


def needs_rehash(stored: str) -> bool:
    return default().needs_rehash(stored)
