"""LDAP / Active Directory backend: logins by directory password, SIP accounts from the
directory (or from another plugin), profiles from group membership.

Modules: ``settings`` (the ``[plugins.ldap]`` model and presets), ``servers`` (TLS and
failover), ``pool`` (bounded connection pools), ``directory`` (LDAP operations and escaping),
``mapping`` (entries to identities and accounts), ``auth`` (the backend logic).
The plugin is inert while ``[plugins.ldap] servers`` is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zengine import hookimpl
from zengine.errors import ConfigError
from zengine.models import (
    Abstain,
    Account,
    AuthResult,
    Credentials,
    Document,
    Identity,
    PluginSettingsSpec,
    Readiness,
)
from zengine.runtime import Runtime
from zengine.settings import resolve_secret
from zengine_ldap import contacts
from zengine_ldap.settings import NAME, LdapSettings

if TYPE_CHECKING:
    from zengine_ldap.auth import LdapBackend

__all__ = ["NAME", "LdapBackend", "LdapSettings"]

#: ``runtime.state`` key of the offered contact service and its profiles.
CONTACTS = f"{NAME}.contact_service"


def __getattr__(name: str) -> Any:
    # ldap3 (~6 MB per worker) is imported with the backend, only when servers are
    # configured; ``zengine_ldap.LdapBackend`` still works.
    if name == "LdapBackend":
        from zengine_ldap.auth import LdapBackend

        return LdapBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _backend(runtime: Runtime) -> LdapBackend | None:
    backend: LdapBackend | None = runtime.state.get(NAME)
    return backend


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, LdapSettings)


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    config = runtime.config(NAME, LdapSettings)
    if not config.enabled:
        runtime.state[NAME] = None
        return
    unknown = [rule.profile for rule in config.group_profiles
               if rule.profile not in runtime.settings.profiles]
    if unknown:
        raise ConfigError(f"[plugins.ldap] group_profiles names unknown profiles {unknown}; "
                          f"defined: {', '.join(sorted(runtime.settings.profiles)) or 'none'}")
    password = resolve_secret(config.service_password, config.service_password_file,
                              runtime.settings, "[plugins.ldap] service_password")
    from zengine_ldap.auth import LdapBackend

    # No connection is opened here: a directory that is down must not stop the server.
    runtime.state[NAME] = LdapBackend(config, runtime.settings, password, runtime.logins,
                                       observe=runtime.observe)
    if config.contact_service is not None:
        runtime.state[CONTACTS] = (contacts.build_service(
            config.contact_service, servers=config.servers, start_tls=config.start_tls,
            search_base=config.search_base, service_dn=config.service_dn,
            settings=runtime.settings), config.contact_service.profiles)


@hookimpl
def zengine_postprocess_document(document: Document, identity: Identity,
                                 runtime: Runtime) -> None:
    offered = runtime.state.get(CONTACTS)
    if offered is not None:
        contacts.offer(document, *offered)


@hookimpl
def zengine_shutdown(runtime: Runtime) -> None:
    backend = _backend(runtime)
    if backend is not None:
        backend.close()


@hookimpl
def zengine_authenticate(credentials: Credentials,
                         runtime: Runtime) -> AuthResult | Abstain | None:
    backend = _backend(runtime)
    if backend is None:
        return None
    return backend.authenticate(credentials.username, credentials.password)


@hookimpl
def zengine_find_identity(username: str, runtime: Runtime) -> Identity | None:
    backend = _backend(runtime)
    return backend.find_identity(username) if backend is not None else None


@hookimpl
def zengine_load_accounts(identity: Identity, runtime: Runtime) -> list[Account] | None:
    backend = _backend(runtime)
    return backend.load_accounts(identity) if backend is not None else None


@hookimpl
def zengine_readiness(runtime: Runtime) -> list[Readiness] | None:
    backend = _backend(runtime)
    return [backend.readiness()] if backend is not None else None


@hookimpl
def zengine_data_generation(runtime: Runtime) -> str | None:
    # The directory changes without telling us: an active LDAP backend is never cached.
    return None if _backend(runtime) is not None else "inert"


@hookimpl
def zengine_inline_safe() -> bool:
    # Configured, this backend reports no data generation, so its answers are never reused
    # and its authenticate always runs in the worker thread; inert, it answers nothing.
    return True
