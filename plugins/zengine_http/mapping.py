"""From the service's answers to zengine's terms: which outcome an answer means, and the
field maps that turn JSON into an :class:`Identity` and :class:`Account` objects.

Error messages name fields and JSON paths, never values: an answer carries SIP passwords.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from zengine.errors import AccountDataError
from zengine.models import Account, Identity
from zengine_http.client import Answer, Malformed
from zengine_http.settings import NAME, AccountsSettings, IdentityMap, RequestSettings

_MISSING = object()


def lookup(document: Any, path: str) -> Any:
    """``data.lines.0.user`` in a JSON document; a missing step gives ``_MISSING``."""
    node = document
    for step in path.split(".") if path else ():
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return _MISSING
    return node


def outcome(answer: Answer, request: RequestSettings, lists: Mapping[str, Sequence[int | str]],
            ) -> tuple[str, Any]:
    """The name of the answer list that matches, and the parsed JSON (``None`` if unread).

    A string the service puts at ``request.result`` is looked up first, then the status code.
    """
    document: Any = None
    if request.result and answer.body:
        document = answer.json()
        said = lookup(document, request.result)
        if isinstance(said, bool):
            said = "true" if said else "false"
        if isinstance(said, str | int) and not isinstance(said, bool):
            for name, entries in lists.items():
                if str(said) in [e for e in entries if isinstance(e, str)]:
                    return name, document
    for name, entries in lists.items():
        if answer.status in [e for e in entries if isinstance(e, int)]:
            return name, document
    return "", document


def _text(value: Any, where: str) -> str | None:
    if value is _MISSING or value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AccountDataError(f"{where} is {type(value).__name__}, not a string or number")
    return str(value)


def identity_from(document: Any, login: str, spec: IdentityMap) -> Identity:
    if not isinstance(document, dict):
        raise Malformed("identity answer is not a JSON object")
    where = "http identity answer:"
    username = login
    if spec.username:
        username = _text(lookup(document, spec.username), f"{where} {spec.username}") or login
    groups: tuple[str, ...] = ()
    if spec.groups:
        raw = lookup(document, spec.groups)
        if raw is not _MISSING and raw is not None:
            if not isinstance(raw, list):
                raise AccountDataError(f"{where} {spec.groups} is not a list")
            groups = tuple(_text(g, f"{where} {spec.groups}[]") or "" for g in raw)
    attributes = {}
    for name, path in spec.attributes.items():
        value = _text(lookup(document, path), f"{where} {path}")
        if value is not None:
            attributes[name] = value

    def field(path: str) -> str | None:
        return _text(lookup(document, path), f"{where} {path}") if path else None

    return Identity(username=username, backend=NAME, profile=field(spec.profile),
                    display_name=field(spec.display_name), tenant=field(spec.tenant),
                    groups=groups, attributes=attributes)


def accounts_from(document: Any, spec: AccountsSettings) -> list[Account]:
    items = lookup(document, spec.items)
    if not isinstance(items, list):
        raise Malformed(f"accounts answer has no list at {spec.items or 'the top level'!r}")
    accounts = []
    for index, item in enumerate(items):
        where = f"http accounts answer item {index}:"
        if not isinstance(item, dict):
            raise AccountDataError(f"{where} not a JSON object")
        values: dict[str, Any] = {}
        for target, path in spec.fields.items():
            raw = lookup(item, path)
            if target == "overrides":
                if raw is not _MISSING and raw is not None and not isinstance(raw, dict):
                    raise AccountDataError(f"{where} {path} (overrides) is not an object")
                values[target] = raw if isinstance(raw, dict) else {}
            else:
                values[target] = _text(raw, f"{where} {path} ({target})")
        for required in ("sip_username", "sip_password"):
            if values.get(required) is None:
                raise AccountDataError(f"{where} {spec.fields[required]} ({required}) is "
                                       "missing or empty")
        domain = values.get("domain") or spec.domain
        if domain is None:
            raise AccountDataError(f"{where} {spec.fields.get('domain')} (domain) is missing "
                                   "and accounts.domain is not set")
        token = values.get("token")
        accounts.append(Account(
            ident=values.get("ident") or f"{values['sip_username']}@{domain}",
            sip_username=values["sip_username"],
            sip_password=SecretStr(values["sip_password"]), domain=domain,
            name=values.get("name"), auth_username=values.get("auth_username"),
            caller_id=values.get("caller_id"), outbound_proxy=values.get("outbound_proxy"),
            transport=values.get("transport"), profile=values.get("profile"),
            token=SecretStr(token) if token is not None else None, source=NAME,
            overrides=values.get("overrides") or {}))
    return accounts
