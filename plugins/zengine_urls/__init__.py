"""Post-processing: expand server-side fields in the account URL templates.

``balance_url``, ``rate_url``, ``quality_rating_url`` and ``token_url`` are set per profile as
templates. Templates from the config are checked at startup; ones from a backend at render time.
"""

from __future__ import annotations

from typing import Any

from zengine import hookimpl
from zengine.errors import AccountDataError, ConfigError
from zengine.models import Document, Identity, ResolvedAccount
from zengine.runtime import Runtime
from zengine_urls.template import Template, TemplateError, parse

URL_FIELDS = ("balance_url", "rate_url", "quality_rating_url", "token_url")


def server_values(account: ResolvedAccount, identity: Identity) -> dict[str, str | None]:
    a = account.account
    return {
        "username": identity.username,
        "sip_username": a.sip_username,
        "auth_username": a.auth_username or a.sip_username,
        "ident": a.ident,
        "domain": a.domain,
        "tenant": identity.tenant,
        "profile": account.profile,
        "name": a.name,
    }


def _check(values: dict[str, Any], where: str) -> None:
    for field in URL_FIELDS:
        if field in values:
            try:
                parse(values[field])
            except TemplateError as exc:
                raise ConfigError(f"{where}: {field}: {exc}") from None


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    settings = runtime.settings
    _check(dict(settings.defaults), f"{settings.source} [defaults]")
    for name, profile in settings.profiles.items():
        _check(dict(profile), f"{settings.source} [profiles.{name}]")
    runtime.state["urls"] = {}


def _parsed(runtime: Runtime, text: str) -> Template:
    cache: dict[str, Template] = runtime.state.setdefault("urls", {})
    template = cache.get(text)
    if template is None:
        try:
            template = parse(text)
        except TemplateError as exc:
            raise AccountDataError(f"bad URL template from backend: {exc}") from None
        if len(cache) < 1024:  # templates come from config, so this stays small
            cache[text] = template
    return template


@hookimpl
def zengine_postprocess_document(document: Document, identity: Identity,
                                 runtime: Runtime) -> None:
    for element, account in document.accounts:
        values: dict[str, str | None] | None = None
        for node in element.children:
            if node.tag in URL_FIELDS and node.text:
                values = values or server_values(account, identity)
                node.text = _parsed(runtime, node.text).expand(values)


@hookimpl
def zengine_data_generation() -> str:
    # URL expansion depends only on the identity and the accounts, which the key holds.
    return "1"
