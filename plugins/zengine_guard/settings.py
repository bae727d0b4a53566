"""``[plugins.guard]``: lockout, limits, address lists and the shared store."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


def _networks(value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    for path, entries in value.items():
        if path != "*" and not path.startswith("/"):
            raise ValueError(f"path {path!r} must start with '/' (or be '*' for every path)")
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} (for {path}) is not an IP address or CIDR") from None
    return value


class GuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True

    # -- smart lockout per (tenant, username) -------------------------------------------
    #: Distinct wrong passwords within ``window`` that lock the account (for addresses it
    #: never logged in from) and the (account, address) pair.
    lockout_threshold: int = Field(10, ge=1, le=1000)
    #: Seconds over which failures are counted.
    window: int = Field(3600, ge=60, le=86400)
    #: First lockout, seconds; each further distinct failure doubles it ...
    lockout_base: int = Field(60, ge=1, le=86400)
    #: ... up to this many seconds.
    lockout_max: int = Field(3600, ge=1, le=86400)
    #: Distinct failures per account per ``window`` after which every address is refused,
    #: even the ones the user logged in from (NIST SP 800-63B 5.2.2: at most 100).
    hard_cap: int = Field(100, ge=1, le=100000)
    #: Days an address that logged in successfully stays "familiar" to the account: the
    #: account lockout (caused by others) does not refuse it, only its own failures do.
    familiar_days: int = Field(30, ge=0, le=365)

    # -- per address and per tenant -------------------------------------------------------
    #: Distinct failed logins (any username) per address per ``window``. High by default:
    #: behind carrier-grade NAT thousands of phones share one address.
    address_max_failures: int = Field(1000, ge=1, le=10_000_000)
    #: Slow password verifications (verified-login cache misses) per tenant in
    #: ``flood_window`` seconds; a cache hit never counts (``zengine_login_verification``).
    tenant_max_verifications: int = Field(600, ge=1, le=10_000_000)
    flood_window: int = Field(10, ge=1, le=3600)

    #: Keys each table of the in-process store keeps (accounts, addresses, locks, familiar
    #: addresses, in-flight checks); past it the least recently written goes first. Bounds
    #: a worker's guard memory (at most about 85 MB at the default, see docs/security.md)
    #: against unlimited usernames and addresses. Redis expires its own keys instead.
    memory_max_entries: int = Field(50_000, ge=100, le=10_000_000)

    # -- allow and deny lists, per path ("*" = every path) --------------------------------
    #: ``{"/id.php" = ["10.0.0.0/8"]}``: only these may log in on that path.
    allow: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: ``{"*" = ["192.0.2.0/24"]}``: these may never log in there (deny wins over allow).
    deny: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    # -- shared state ---------------------------------------------------------------------
    #: ``redis://[:password@]host:6379/0`` (or ``rediss://``); unset: this process's memory.
    redis_url: SecretStr | None = None
    #: File holding the URL (first line), instead of ``redis_url``.
    redis_url_file: Path | None = None
    #: Prefix of every key in Redis; the guard adds ``guard:<tenant>:``.
    key_prefix: str = Field("zengine:", max_length=64)
    #: Seconds a Redis command may take before it counts as unreachable.
    redis_timeout: float = Field(0.5, gt=0, le=30)
    #: When Redis cannot be reached: ``local`` keeps guarding with this process's memory
    #: (per-worker limits, logged loudly); ``closed`` refuses every login with 503;
    #: ``open`` lets logins through unguarded.
    on_redis_error: Literal["local", "closed", "open"] = "local"
    #: Key for the digests of attempted passwords; unset: a random key kept in Redis (or in
    #: memory), so every worker computes the same digest.
    digest_key: SecretStr | None = None
    digest_key_file: Path | None = None

    @field_validator("allow", "deny")
    @classmethod
    def _lists_are_networks(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return _networks(value)
