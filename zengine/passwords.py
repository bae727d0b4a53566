"""Provisioning-password hashing with argon2id (argon2-cffi), shared by every backend."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@cache
def hasher() -> PasswordHasher:
    # argon2-cffi's defaults follow RFC 9106's second recommendation (argon2id, 64 MiB, t=3).
    return PasswordHasher()


def hash_password(password: str) -> str:
    return hasher().hash(password)


@cache
def _dummy_hash() -> str:
    return hasher().hash("zengine-dummy-password-for-timing")


def verify_password(stored: str | None, password: str) -> bool:
    """Constant-time check. With ``stored=None`` (unknown user) the same work is still done,
    so an unknown user costs as much as a wrong password."""
    target = stored if stored is not None else _dummy_hash()
    try:
        ok = hasher().verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored is not None


def needs_rehash(stored: str) -> bool:
    try:
        return hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return False
