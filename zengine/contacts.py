"""Zoiper5 contact services (``options/contact_services/contact_service``): the typed value an
operator configures per profile and a plugin (the LDAP directory) may offer, its validation,
and the document elements.

Only the two types whose fields Zoiper documents for provisioning are accepted: ``ldap``
(host, root DN, bind account, StartTLS, attribute mappings) and ``xml`` (a URI and its
authentication). Field names, order and values follow public-docs ``Desktop``
configuration-data.md ("Contact service options"); ``local`` "must not be provisioned", and the
other types (outlook, mac, google, windows) carry per-machine state. Desktop only: no mobile
document has contact services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from zengine.errors import AccountDataError, ConfigError
from zengine.models import Document, Element
from zengine.values import as_bool, as_uint, xml_invalid_char

#: The document family that has contact services.
FAMILY = "desktop"

Kind = Literal["string", "secret", "bool", "uint", "enum"]


@dataclass(frozen=True)
class ContactField:
    name: str
    kind: Kind
    values: tuple[str, ...] = ()
    required: bool = False


def _e(name: str, values: str) -> ContactField:
    return ContactField(name, "enum", tuple(values.split()))


#: Options every contact service has, in the documentation's order.
GENERIC: tuple[ContactField, ...] = (
    ContactField("ident", "string", required=True),
    ContactField("name", "string", required=True),
    ContactField("type", "enum", ("ldap", "xml"), required=True),
    ContactField("enabled", "bool"),
    _e("account_mapping_type", "none default custom"),
    ContactField("account_ident", "string"),
    _e("presence_account_mapping_type", "none custom"),
    ContactField("presence_account_ident", "string"),
    ContactField("hide_contacts_without_name", "bool"),
    ContactField("hide_contacts_without_phone", "bool"),
    ContactField("restart_time", "uint"),
)
#: Options per type, in the documentation's order; ``attribute_mappings`` sits after ``root``.
BY_TYPE: dict[str, tuple[ContactField, ...]] = {
    "ldap": (
        ContactField("limit", "uint"),
        ContactField("host", "string", required=True),
        ContactField("username", "string"),
        ContactField("password", "secret"),
        ContactField("root", "string"),
        _e("authentication_flags", "simple sasl_plain sasl_login sasl_digest_md5"),
        ContactField("use_start_tls", "bool"),
        ContactField("ignore_certificate_tls", "bool"),
    ),
    "xml": (
        ContactField("uri", "string", required=True),
        ContactField("username", "string"),
        ContactField("password", "secret"),
        _e("auth_type", "none basic url"),
    ),
}
#: ``attribute_mapping/property_type`` values (LDAP only).
PROPERTY_TYPES: tuple[str, ...] = tuple("""
    last_name first_name middle_name display_name company position profession home_fax work_fax
    home_mail work_mail home_cell work_cell home_phone work_phone home_pager work_pager
    home_custom work_custom home_ipphone work_ipphone home_zip work_zip home_city work_city
    home_state work_state home_street work_street home_country work_country""".split())
#: The ident Zoiper5 gives its own local address book, which must not be provisioned.
LOCAL_IDENT = "ContactServiceLocal"


@dataclass(frozen=True)
class ContactService:
    """One validated contact service: its options in document order, typed."""

    ident: str
    type: str
    #: ``(option name, value)`` in document order; only what was configured.
    options: tuple[tuple[str, str | bool | int], ...]
    #: ``(property_type, attribute_name)`` pairs (LDAP), in the order given.
    attribute_mappings: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # the bind password stays out of logs and tracebacks
        return f"ContactService(ident={self.ident!r}, type={self.type!r})"


def fields_for(kind: str) -> tuple[ContactField, ...]:
    return GENERIC + BY_TYPE.get(kind, ())


def _value(field: ContactField, raw: Any, where: str) -> str | bool | int:
    shown = "<secret>" if field.kind == "secret" else repr(raw)
    if field.kind == "bool":
        flag = as_bool(raw)
        if flag is None:
            raise ConfigError(f"{where}: {field.name} = {shown}: allowed true, false")
        return flag
    if field.kind == "uint":
        number = as_uint(raw)
        if number is None or number > 2**31 - 1:
            raise ConfigError(f"{where}: {field.name} = {shown}: allowed an unsigned integer")
        return number
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: {field.name} = {shown}: must be a string")
    if field.kind == "enum" and raw not in field.values:
        raise ConfigError(f"{where}: {field.name} = {shown}: allowed {', '.join(field.values)}")
    if xml_invalid_char(raw) is not None:
        raise ConfigError(f"{where}: {field.name} contains a character XML 1.0 cannot carry")
    return raw


def _mappings(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: attribute_mappings must be a table of contact property = "
                          "LDAP attribute, e.g. { display_name = \"cn\" }")
    pairs = []
    for prop, attribute in raw.items():
        if prop not in PROPERTY_TYPES:
            raise ConfigError(f"{where}: attribute_mappings: unknown contact property {prop!r}; "
                              f"allowed: {', '.join(PROPERTY_TYPES)}")
        if not isinstance(attribute, str) or not attribute or xml_invalid_char(attribute):
            raise ConfigError(f"{where}: attribute_mappings.{prop} must be an attribute name")
        pairs.append((str(prop), attribute))
    return tuple(pairs)


def contact_service(raw: Any, where: str) -> ContactService:
    """Validate one service table; errors name the option and never show a password."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a contact service must be a table")
    kind = raw.get("type")
    if kind not in BY_TYPE:
        raise ConfigError(f"{where}: type = {kind!r}: allowed ldap, xml (the types Zoiper "
                          "documents for provisioning; 'local' must not be provisioned)")
    fields = {f.name: f for f in fields_for(kind)}
    allowed = [*fields, *(["attribute_mappings"] if kind == "ldap" else [])]
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown option {key!r} for a {kind} contact service; "
                              f"allowed: {', '.join(allowed)}")
    for field in fields.values():
        if field.required and not raw.get(field.name):
            raise ConfigError(f"{where}: {field.name} is required for a {kind} contact service")
    options = tuple((f.name, _value(f, raw[f.name], where)) for f in fields_for(kind)
                    if f.name in raw)
    ident = str(raw["ident"])
    if ident == LOCAL_IDENT:
        raise ConfigError(f"{where}: ident {LOCAL_IDENT!r} is Zoiper's local address book, "
                          "which must not be provisioned")
    mappings = _mappings(raw["attribute_mappings"], where) if "attribute_mappings" in raw else ()
    return ContactService(ident, kind, options, mappings)


def coerce_contact_services(value: Any, where: str) -> tuple[ContactService, ...]:
    """The ``contact_services`` field: a list of service tables, idents unique."""
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: contact_services must be a list of tables")
    services = tuple(contact_service(item, f"{where} contact_services[{i}]")
                     for i, item in enumerate(value))
    seen: set[str] = set()
    for service in services:
        if service.ident in seen:
            raise ConfigError(f"{where}: contact service ident {service.ident!r} given twice")
        seen.add(service.ident)
    return services


def _text(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def service_element(service: ContactService) -> Element:
    children = [Element(name, _text(value)) for name, value in service.options]
    if service.attribute_mappings:
        mappings = Element("attribute_mappings", children=[
            Element("attribute_mapping", children=[
                Element("property_type", prop), Element("attribute_name", attribute),
                Element("enabled", "true")])
            for prop, attribute in service.attribute_mappings])
        # After ``root``, where the documentation lists the section.
        names = [name for name, _ in service.options]
        at = names.index("root") + 1 if "root" in names else len(children)
        children.insert(at, mappings)
    return Element("contact_service", children=children)


def _ident(node: Element) -> str | None:
    found = node.child("ident")
    return found.text if found is not None else None


def add_services(document: Document, services: Iterable[ContactService]) -> None:
    """Append services to a desktop document's ``contact_services`` (created on first use).

    A service whose ident is already there is skipped when it renders the same, and an error
    when it differs (two sources offering different directories under one ident).
    """
    section = document.root.child("contact_services")
    for service in services:
        element = service_element(service)
        if section is None:
            section = Element("contact_services")
            document.root.children.append(section)
        same = [node for node in section.children if _ident(node) == service.ident]
        if same:
            if same[0] != element:
                raise AccountDataError(f"contact service ident {service.ident!r} is offered "
                                       "twice, differently")
            continue
        section.children.append(element)
