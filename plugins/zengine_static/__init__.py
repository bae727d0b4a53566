"""Static backend: provisioning users and their SIP accounts in a TOML file.

The reference shape of a backend plugin: settings, startup, authenticate, find_identity and
load_accounts, all through the public hooks.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from zengine import hookimpl
from zengine.logincache import LoginKey
from zengine.models import (
    Account,
    AuthResult,
    Credentials,
    Identity,
    PluginSettingsSpec,
    Rejected,
)
from zengine.runtime import Runtime
from zengine.settings import SecretFile
from zengine_static.users import StaticUser, accounts_of, identity_of, load_users

NAME = "static"


class StaticSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: TOML file with ``[users.<name>]`` tables; relative to the config file.
    users_file: SecretFile | None = None


def _users(runtime: Runtime) -> dict[str, StaticUser]:
    users: dict[str, StaticUser] = runtime.state.get(NAME, {})
    return users


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, StaticSettings)


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    config = runtime.config(NAME, StaticSettings)
    if config.users_file is None:
        runtime.state[NAME] = {}
        return
    path = runtime.settings.resolve_path(config.users_file)
    runtime.state[NAME] = load_users(path, runtime.settings.profiles)


@hookimpl
def zengine_authenticate(credentials: Credentials, runtime: Runtime) -> AuthResult | None:
    user = _users(runtime).get(credentials.username)
    if user is None:
        # Abstain at once: the core spends one dummy verification when no backend decides.
        return None
    password = credentials.password.get_secret_value()
    # The stored hash is part of the cache key: a reloaded file with a new hash never hits.
    key = LoginKey(NAME, user.tenant, credentials.username, user.password_hash)
    if not runtime.logins.verify(key, password,
                                 lambda: runtime.passwords.verify(user.password_hash, password)):
        return Rejected(NAME, "wrong password")
    if not user.enabled:
        return Rejected(NAME, "user disabled")
    return identity_of(credentials.username, user)


@hookimpl
def zengine_find_identity(username: str, runtime: Runtime) -> Identity | None:
    user = _users(runtime).get(username)
    return identity_of(username, user) if user is not None else None


@hookimpl
def zengine_load_accounts(identity: Identity, runtime: Runtime) -> list[Account] | None:
    user = _users(runtime).get(identity.username)
    if user is None or not user.enabled:
        return None
    return accounts_of(user)


@hookimpl
def zengine_data_generation(runtime: Runtime) -> str:
    # Which load of the users file is in use: a reload is a new mapping, and a new generation.
    return str(id(_users(runtime)))


@hookimpl
def zengine_inline_safe() -> bool:
    # Every answer comes from the loaded users file, and its generation (which load is in
    # use) changes with any change to it: a disabled user or a new hash is a new load.
    return True
