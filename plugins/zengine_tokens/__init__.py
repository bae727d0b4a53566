"""Token-based provisioning: one-time links and QR codes instead of typed passwords.

A token is issued for a user (one account, or all of them), handed out as Zoiper's OEM
QR-howto link, and fetched once by Zoiper from ``token_url`` + token; the endpoint answers with
the account's SIP credentials. Tokens are stored only as SHA-256 digests, in the SQL backend's
database when it is configured, else in an embedded SQLite file. The Python API for other
plugins is :mod:`zengine_tokens.api`.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from zengine import hookimpl
from zengine.models import Command, Document, Identity, PluginSettingsSpec, Readiness
from zengine.runtime import Runtime
from zengine_tokens.api import TokenService
from zengine_tokens.settings import PLUGIN_NAME, TokensSettings


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(PLUGIN_NAME, TokensSettings)


# After the SQL plugin's startup, whose engine the store may share.
@hookimpl(trylast=True)
def zengine_startup(runtime: Runtime) -> None:
    service = TokenService(runtime, runtime.config(PLUGIN_NAME, TokensSettings))
    service.check()
    runtime.state[PLUGIN_NAME] = service


# Before the SQL plugin disposes of the engine the store may share.
@hookimpl(tryfirst=True)
def zengine_shutdown(runtime: Runtime) -> None:
    service = runtime.state.pop(PLUGIN_NAME, None)
    if isinstance(service, TokenService):
        service.close()


@hookimpl
def zengine_register_routes(runtime: Runtime) -> list[BaseRoute]:
    from zengine_tokens.endpoint import routes

    return routes(runtime)


@hookimpl
def zengine_cli_commands() -> list[Command]:
    from zengine_tokens.cli import commands

    return commands()


# Last, so a token_url template from a profile is already expanded by the urls plugin.
@hookimpl(trylast=True)
def zengine_postprocess_document(document: Document, identity: Identity,
                                 runtime: Runtime) -> None:
    from zengine_tokens.documents import add_tokens

    add_tokens(document, identity, runtime)


@hookimpl
def zengine_readiness(runtime: Runtime) -> list[Readiness] | None:
    service = runtime.state.get(PLUGIN_NAME)
    return [service.readiness()] if isinstance(service, TokenService) else None


@hookimpl
def zengine_data_generation(runtime: Runtime) -> str | None:
    # A document that gets a freshly issued token is new every time: never cached. Without this
    # server's token URL, or with issuing off, the post-processing is a pure function.
    service = runtime.state.get(PLUGIN_NAME)
    if (isinstance(service, TokenService) and service.token_url is not None
            and service.config.issue_in_documents):
        return None
    return "no-issuing"
