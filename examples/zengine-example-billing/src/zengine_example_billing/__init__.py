"""zengine-example-billing: HMAC-signed balance and rate URLs, and ``zengine billing``.

A third-party plugin: everything it needs from zengine comes from :mod:`zengine.api`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from zengine.api import (
    Command,
    ConfigError,
    Document,
    Identity,
    PluginSettingsSpec,
    Runtime,
    hookimpl,
    resolve_secret,
)
from zengine_example_billing import cli
from zengine_example_billing.signing import sign_url

NAME = "example_billing"
SIGNABLE = ("balance_url", "rate_url", "quality_rating_url")


class BillingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The master secret shared with the billing server (or ``secret_file``); unset: inert.
    secret: SecretStr | None = None
    secret_file: Path | None = None
    #: Which account URLs get signed.
    fields: tuple[str, ...] = Field(("balance_url", "rate_url"), min_length=1)

    @field_validator("fields")
    @classmethod
    def _signable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(SIGNABLE)
        if unknown:
            raise ValueError(f"{sorted(unknown)} cannot be signed; allowed: "
                             f"{', '.join(SIGNABLE)}")
        return value


def secret_of(runtime: Runtime) -> bytes | None:
    """The master secret, read once at startup."""
    secret: bytes | None = runtime.state.get(NAME)
    return secret


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, BillingSettings)


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    config = runtime.config(NAME, BillingSettings)
    secret = resolve_secret(config.secret, config.secret_file, runtime.settings,
                            f"[plugins.{NAME}] secret")
    value = secret.get_secret_value().encode("utf-8") if secret is not None else None
    if value is not None and len(value) < 32:
        # Short secrets can be guessed offline from one signed URL.
        raise ConfigError(f"[plugins.{NAME}] secret: at least 32 bytes are needed "
                          f"(got {len(value)}); `zengine make-secret` makes one")
    runtime.state[NAME] = value


# trylast: the built-in urls plugin has expanded the templates by the time this runs.
@hookimpl(trylast=True)
def zengine_postprocess_document(document: Document, identity: Identity,
                                 runtime: Runtime) -> None:
    secret = secret_of(runtime)
    if secret is None:
        return
    fields = runtime.config(NAME, BillingSettings).fields
    for element, resolved in document.accounts:
        for node in element.children:
            if node.tag in fields and node.text:
                node.text = sign_url(node.text, secret, resolved.account.ident, node.tag)


# Without this hook no document that this plugin touches could be cached: the core cannot tell
# when our part of it changes, so every login would rebuild the document and the fast path
# would never answer one (see zengine_data_generation in docs/plugins.md). What we add is a pure
# function of the accounts and identity (already in the cache key and the backends'
# generations) and of the secret and fields, which are read once at startup: a reload builds a
# new runtime with an empty document cache. So our generation never changes.
@hookimpl
def zengine_data_generation() -> str:
    return "1"


# The core asks every plugin; ours never waits on I/O on the request path (an HMAC in memory;
# the secret file is read at startup), so answering True keeps the fast path on even if this
# plugin later grows a hook that runs there.
@hookimpl
def zengine_inline_safe() -> bool:
    return True


@hookimpl
def zengine_cli_commands() -> list[Command]:
    return [Command(name="billing", help="sign or verify billing URLs (example_billing plugin)",
                    configure=cli.configure, run=cli.run)]
