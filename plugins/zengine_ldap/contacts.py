"""The directory as a Zoiper5 contact service: ``[plugins.ldap.contact_service]``.

Zoiper5 binds to the directory itself to search contacts, so the document must carry a bind
DN and its password. That is never the user's password and never the plugin's own
``service_dn`` (which searches users and may read their SIP passwords): it is a separate,
read-only account the operator creates for phones, whose password every desktop client
receives. Host, root DN and StartTLS default to what the plugin itself uses.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from zengine import contacts
from zengine.errors import ConfigError
from zengine.models import Document
from zengine.settings import SecretFile, Settings, resolve_secret

WHERE = "[plugins.ldap.contact_service]"


class LdapContactService(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Stable: Zoiper matches a provisioned service by it.
    ident: str = Field("zengine-ldap", min_length=1)
    #: What the phone shows as the directory's name.
    name: str = Field("Directory", min_length=1)
    #: The read-only account phones bind with (required; not ``service_dn``).
    bind_dn: str = Field(min_length=1)
    bind_password: SecretStr | None = None
    bind_password_file: SecretFile | None = None
    #: ``host:port`` phones connect to; default: the first ``ldap://`` server.
    host: str | None = None
    #: Where phones search; default: ``search_base``.
    root: str | None = None
    #: Contact property = LDAP attribute (Zoiper's defaults when empty).
    attribute_mappings: dict[str, str] = Field(default_factory=dict)
    #: Most contacts one search returns (Zoiper's default 0: no limit).
    limit: int | None = Field(None, ge=0)
    ignore_certificate_tls: bool = False
    #: Only documents with an account of one of these profiles; empty: every desktop document.
    profiles: tuple[str, ...] = ()


def _default_host(servers: tuple[str, ...]) -> str:
    for url in servers:
        parts = urlsplit(url)
        if parts.scheme == "ldap" and parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            return f"{host}:{parts.port or 389}"
    # Zoiper5 documents StartTLS (use_start_tls) but no ldaps:// for contact services.
    raise ConfigError(f"{WHERE}: no ldap:// server to offer (Zoiper documents StartTLS, not "
                      "ldaps://, for its directory): set host")


def build_service(config: LdapContactService, *, servers: tuple[str, ...], start_tls: bool,
                  search_base: str | None, service_dn: str | None,
                  settings: Settings) -> contacts.ContactService:
    """Validate the table against the plugin's settings and make the contact service."""
    if service_dn is not None and config.bind_dn.strip().lower() == service_dn.strip().lower():
        raise ConfigError(f"{WHERE}: bind_dn is the plugin's service_dn, which searches users "
                          "and may read their SIP passwords; give phones a separate read-only "
                          "account (every desktop client receives its password)")
    unknown = [p for p in config.profiles if p not in settings.profiles]
    if unknown:
        raise ConfigError(f"{WHERE}: profiles names unknown profiles {unknown}; defined: "
                          f"{', '.join(sorted(settings.profiles)) or 'none'}")
    password = resolve_secret(config.bind_password, config.bind_password_file, settings,
                              f"{WHERE} bind_password")
    if password is None:
        raise ConfigError(f"{WHERE}: set bind_password or bind_password_file (a bind DN "
                          "without a password is an unauthenticated bind)")
    root = config.root or search_base
    if not root:
        raise ConfigError(f"{WHERE}: set root (the plugin has no search_base to default to)")
    raw: dict[str, Any] = {
        "ident": config.ident, "name": config.name, "type": "ldap",
        "host": config.host or _default_host(servers),
        "username": config.bind_dn, "password": password.get_secret_value(), "root": root,
        # The plugin refuses plain ldap:// without StartTLS unless allowed: phones follow it.
        "use_start_tls": start_tls,
    }
    if config.limit is not None:
        raw["limit"] = config.limit
    if config.attribute_mappings:
        raw["attribute_mappings"] = config.attribute_mappings
    if config.ignore_certificate_tls:
        raw["ignore_certificate_tls"] = True
    return contacts.contact_service(raw, WHERE)


def offer(document: Document, service: contacts.ContactService,
          profiles: tuple[str, ...]) -> None:
    """Add the directory to a desktop document whose accounts' profiles want it."""
    if document.client.family != contacts.FAMILY:
        return
    if profiles and not any(account.profile in profiles for _, account in document.accounts):
        return
    contacts.add_services(document, [service])
