"""zengine's own schema: tenants, users, SIP accounts. Alembic migrations create it.

Table names carry a ``zengine_`` prefix (and the Alembic version table is
``zengine_alembic_version``) so the schema can live in a PBX database next to its own tables,
including Asterisk's own ``alembic_version``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from zengine.sqltypes import login_string

VERSION_TABLE = "zengine_alembic_version"


def utcnow() -> datetime:
    return datetime.now(UTC)


#: Explicit constraint names, so migrations and reflection agree on every database.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(SQLModel, registry=registry(metadata=sa.MetaData(naming_convention=NAMING))):
    """A private registry keeps these tables out of any other SQLModel metadata."""


class Tenant(Base, table=True):
    __tablename__ = "zengine_tenants"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(login_string(64), nullable=False, unique=True))


class User(Base, table=True):
    __tablename__ = "zengine_users"
    # Unique per tenant (the naming convention names it after its first column). A NULL
    # tenant is not compared by the database; the admin path checks those names itself.
    __table_args__ = (sa.UniqueConstraint("tenant_id", "username",
                                          name="uq_zengine_users_tenant_id"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("zengine_tenants.id"),
                                          nullable=True, index=True))
    #: The provisioning login; unique within its tenant (``[tenants]``: the request names it).
    username: str = Field(sa_column=sa.Column(login_string(255), nullable=False, index=True))
    #: argon2id PHC string; ``None`` means "no provisioning login here" (e.g. LDAP logs in).
    password_hash: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    display_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    profile: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    enabled: bool = Field(default=True, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                            server_default=sa.true()))
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class SipAccount(Base, table=True):
    __tablename__ = "zengine_sip_accounts"
    __table_args__ = (sa.UniqueConstraint("user_id", "ident",
                                          name="uq_zengine_sip_accounts_user_ident"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=sa.Column(
        sa.Integer, sa.ForeignKey("zengine_users.id", ondelete="CASCADE"), nullable=False,
        index=True))
    #: Stable across edits: Zoiper matches accounts on it when it re-provisions.
    ident: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    position: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False,
                                                         server_default="0"))
    sip_username: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    #: ``<key id>:<base64url(nonce || AES-GCM ciphertext)>``; never the password itself.
    sip_password: str = Field(sa_column=sa.Column(sa.String(512), nullable=False))
    #: Copy of the key id, so ``zengine db rotate-key`` finds stale rows with one query.
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, index=True))
    domain: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    auth_username: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    caller_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    outbound_proxy: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    transport: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    profile: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    enabled: bool = Field(default=True, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                            server_default=sa.true()))
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      sa_column=sa.Column(sa.JSON, nullable=False))


def metadata() -> sa.MetaData:
    return Base.metadata


TENANTS: sa.Table = Tenant.__table__  # type: ignore[attr-defined]
USERS: sa.Table = User.__table__  # type: ignore[attr-defined]
ACCOUNTS: sa.Table = SipAccount.__table__  # type: ignore[attr-defined]
