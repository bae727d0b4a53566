"""The ``[plugins.sql]`` table: connection, pool, mode, encryption keys and the table mapping."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from zengine.settings import SecretFile

PLUGIN_NAME = "sql"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Presets describe the tables a PBX already has. Column names follow the projects' published
#: schemas: Kamailio's ``subscriber`` (version 7) and Asterisk's realtime PJSIP tables as its
#: alembic scripts (contrib/ast-db-manage) create them.
PRESETS: dict[str, dict[str, Any]] = {
    "kamailio": {
        "table": "subscriber",
        "login_column": "username",
        "domain_column": "domain",
        "password_column": "password",
        "ha1_column": "ha1",
        # Kamailio's auth_db computes HA1 with the realm, which is the domain by default.
        "realm_from_domain": True,
        # Kamailio keeps plain text or HA1, never a password hash.
        "stored_as": "plain",
    },
    "asterisk_pjsip": {
        "table": "ps_auths",
        "key_column": "id",
        "login_column": "username",
        "password_column": "password",
        "ha1_column": "md5_cred",
        "realm_column": "realm",
        "auth_type_column": "auth_type",
        # Asterisk's default_realm when an auth row leaves ``realm`` empty.
        "default_realm": "asterisk",
        "stored_as": "plain",
        "accounts_table": "ps_endpoints",
        "accounts_join_column": "auth",
        "accounts_ident_column": "id",
        "accounts_caller_id_column": "callerid",
        "accounts_outbound_proxy_column": "outbound_proxy",
        "accounts_domain_column": "from_domain",
    },
}


class MappingSettings(_Model):
    """Where logins and SIP accounts live in tables zengine did not create.

    Every name is a table or column *name*, quoted by SQLAlchemy; no SQL text is accepted.
    Keys left out come from ``preset``.
    """

    preset: Literal["kamailio", "asterisk_pjsip"] | None = None
    db_schema: str | None = Field(None, alias="schema")
    table: str = Field(min_length=1, max_length=128)
    #: The row key other tables refer to (``ps_auths.id``); defaults to ``login_column``.
    key_column: str | None = None
    login_column: str = Field(min_length=1, max_length=128)
    domain_column: str | None = None
    password_column: str | None = None
    ha1_column: str | None = None
    realm_column: str | None = None
    #: Asterisk's ``auth_type``: ``md5`` rows are checked against HA1, ``userpass`` in plain.
    auth_type_column: str | None = None
    realm_from_domain: bool = False
    default_realm: str | None = None
    #: ``plain`` (constant-time compare), ``argon2`` (PHC string), or ``auto`` (argon2 when the
    #: stored value is an argon2 PHC string, plain otherwise).
    stored_as: Literal["plain", "argon2", "auto"] = "auto"
    #: Only rows of this domain log in; also the SIP domain when rows carry none.
    domain: str | None = None
    #: Accounts from a second table joined to the login row (Asterisk's ``ps_endpoints``);
    #: without it, the login row itself is the one SIP account.
    accounts_table: str | None = None
    accounts_join_column: str | None = None
    accounts_ident_column: str | None = None
    accounts_caller_id_column: str | None = None
    accounts_outbound_proxy_column: str | None = None
    accounts_domain_column: str | None = None
    #: Profile for every account from the mapped tables.
    profile: str | None = None
    #: A column of ``table`` naming each row's tenant: a tenant's runtime only logs in (and
    #: reads accounts of) rows whose value is ``tenant``, by default the tenant's name.
    tenant_column: str | None = None
    #: The value of ``tenant_column`` for this tenant (set it in the
    #: ``[tenants.<name>.plugins.sql.mapping]`` overlay when it differs from the name).
    tenant: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            return {**PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> MappingSettings:
        if self.password_column is None and self.ha1_column is None:
            raise ValueError("set password_column or ha1_column: logins need something to check")
        if self.accounts_table is not None and self.accounts_join_column is None:
            raise ValueError("accounts_table needs accounts_join_column")
        if self.tenant is not None and self.tenant_column is None:
            raise ValueError("tenant needs tenant_column, the column that holds it")
        return self


class SqlSettings(_Model):
    #: SQLAlchemy URL, e.g. ``postgresql+psycopg://zengine@db/zengine``; may carry a password.
    url: SecretStr | None = None
    url_file: SecretFile | None = None
    mode: Literal["own", "mapping"] = "own"
    mapping: MappingSettings | None = None
    #: Shortcut for ``[plugins.sql.mapping] preset``.
    preset: Literal["kamailio", "asterisk_pjsip"] | None = None

    pool_size: int = Field(5, ge=1, le=100)
    max_overflow: int = Field(5, ge=0, le=100)
    #: Seconds to wait for a free pooled connection.
    pool_timeout: float = Field(5.0, gt=0, le=120)
    #: Seconds to open a connection (PostgreSQL rounds up to at least 2).
    connect_timeout: int = Field(5, ge=1, le=120)
    #: Seconds one statement may run (PostgreSQL ``statement_timeout``, MySQL read timeout).
    statement_timeout: int = Field(10, ge=1, le=600)
    pool_recycle: int = Field(1800, ge=-1)

    #: Key id of the key new SIP passwords are encrypted with.
    encryption_key_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    #: ``key id -> base64url 32-byte key``; ``zengine db generate-key`` makes one.
    encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    #: A TOML file of ``key_id = "key"`` lines, instead of (or besides) ``encryption_keys``.
    encryption_keys_file: SecretFile | None = None

    #: Create the own schema at startup; ``zengine db upgrade`` is the normal way.
    create_schema_on_start: bool = False

    @model_validator(mode="before")
    @classmethod
    def _preset_shortcut(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            mapping = data.get("mapping") or {}
            if isinstance(mapping, dict):
                return {**data, "mapping": {"preset": data["preset"], **mapping}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SqlSettings:
        if self.url is not None and self.url_file is not None:
            raise ValueError("set url or url_file, not both")
        if self.mode == "mapping" and self.mapping is None:
            raise ValueError("mode 'mapping' needs a preset or a [plugins.sql.mapping] table")
        return self

    @property
    def configured(self) -> bool:
        return self.url is not None or self.url_file is not None
