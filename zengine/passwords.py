"""Provisioning-password hashing with argon2id (argon2-cffi), shared by every backend.

The parameters come from ``[passwords]``; the runtime holds one :class:`Passwords` built from
them (``runtime.passwords``). A stored hash made with other parameters still verifies, and
``needs_rehash`` tells a backend that can write to refresh it on the next login.
"""

from __future__ import annotations

from functools import cache, cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, model_validator


class PasswordSettings(BaseModel):
    """argon2id cost. The defaults are RFC 9106's second recommendation (the low-memory one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_cost: int = Field(3, ge=1, le=64)
    memory_kib: int = Field(65536, ge=8, le=4 * 1024 * 1024)
    parallelism: int = Field(4, ge=1, le=64)

    @model_validator(mode="after")
    def _memory_per_lane(self) -> PasswordSettings:
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("memory_kib must be at least 8 times parallelism (argon2's minimum)")
        return self


class Passwords:
    def __init__(self, settings: PasswordSettings | None = None) -> None:
        self.settings = settings or PasswordSettings()
        self._hasher = PasswordHasher(
            time_cost=self.settings.time_cost, memory_cost=self.settings.memory_kib,
            parallelism=self.settings.parallelism, type=Type.ID)

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
        done, so an unknown user costs as much as a wrong password."""
        target = stored if stored is not None else self._dummy
        try:
            ok = self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and stored is not None

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
