"""HTTP/JSON backend: logins and SIP accounts from a provider's own web service (billing, CRM).

Configured entirely in ``[plugins.http]`` (docs/backends/http.md): the requests to send, how
the service says "wrong password", "unknown user" and "disabled", and which JSON fields become
the identity and the accounts. Without ``login`` and ``accounts`` the plugin is inert.
"""

from __future__ import annotations

from typing import Any

import structlog

from zengine import hookimpl
from zengine.errors import BackendUnavailable
from zengine.models import (
    Account,
    AuthResult,
    Credentials,
    Identity,
    PluginSettingsSpec,
    Rejected,
)
from zengine.runtime import Runtime
from zengine_http.client import Answer, Service
from zengine_http.mapping import accounts_from, identity_from, outcome
from zengine_http.settings import NAME, HttpSettings
from zengine_http.template import MissingValue

log = structlog.get_logger("zengine.http")


def _service(runtime: Runtime) -> Service | None:
    service: Service | None = runtime.state.get(NAME)
    return service


def _unexpected(what: str, answer: Answer) -> BackendUnavailable:
    log.warning("http.unexpected_answer", request=what, status=answer.status)
    return BackendUnavailable(f"http {what}: answer {answer.status} is in none of the "
                              "configured answer lists")


def _document(answer: Answer, parsed: Any) -> Any:
    if parsed is not None:
        return parsed
    return answer.json() if answer.body.strip() else {}


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, HttpSettings)


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    config = runtime.config(NAME, HttpSettings)
    runtime.state[NAME] = Service(config, runtime.settings) if config.enabled else None


@hookimpl
def zengine_shutdown(runtime: Runtime) -> None:
    service = _service(runtime)
    if service is not None:
        service.close()


@hookimpl
def zengine_authenticate(credentials: Credentials, runtime: Runtime) -> AuthResult | None:
    service = _service(runtime)
    login = service.config.login if service is not None else None
    if service is None or login is None:
        return None
    password = credentials.password.get_secret_value()
    if not password:
        return Rejected(NAME, "empty password")
    lists = {"accept": login.accept, "wrong_password": login.wrong_password,
             "unknown_user": login.unknown_user, "disabled": login.disabled}

    def decide(answer: Answer) -> AuthResult | None:
        said, parsed = outcome(answer, login, lists)
        if said == "unknown_user":
            # Abstain at once: the core spends the dummy verification and the failure floor.
            return None
        if said == "wrong_password":
            return Rejected(NAME, "wrong password")
        if said == "disabled":
            return Rejected(NAME, "user disabled")
        if said == "accept":
            return identity_from(_document(answer, parsed), credentials.username,
                                 service.config.identity)
        raise _unexpected("login", answer)

    return service.call("login", login, {"username": credentials.username,
                                         "password": password}, decide)


@hookimpl
def zengine_find_identity(username: str, runtime: Runtime) -> Identity | None:
    service = _service(runtime)
    lookup = service.config.lookup if service is not None else None
    if service is None or lookup is None:
        return None

    def decide(answer: Answer) -> Identity | None:
        said, parsed = outcome(answer, lookup, {"found": lookup.found,
                                                "unknown_user": lookup.unknown_user})
        if said == "unknown_user":
            return None
        if said == "found":
            return identity_from(_document(answer, parsed), username, service.config.identity)
        raise _unexpected("lookup", answer)

    return service.call("lookup", lookup, {"username": username}, decide)


@hookimpl
def zengine_load_accounts(identity: Identity, runtime: Runtime) -> list[Account] | None:
    service = _service(runtime)
    spec = service.config.accounts if service is not None else None
    if service is None or spec is None:
        return None

    def decide(answer: Answer) -> list[Account]:
        said, parsed = outcome(answer, spec, {"found": spec.found, "none": spec.none})
        if said == "none":
            return []
        if said == "found":
            return accounts_from(_document(answer, parsed), spec)
        raise _unexpected("accounts", answer)

    values = {"username": identity.username, **identity.attributes}
    try:
        return service.call("accounts", spec, values, decide)
    except MissingValue as exc:
        # A login from another backend that lacks an attribute the URL needs: not ours.
        log.info("http.accounts_skipped", missing=str(exc), backend=identity.backend)
        return None


@hookimpl
def zengine_data_generation(runtime: Runtime) -> str | None:
    # The remote service's data changes without telling us: never cached while configured.
    return None if _service(runtime) is not None else "inert"


@hookimpl
def zengine_inline_safe() -> bool:
    # Configured, this backend reports no data generation, so its answers are never reused
    # and its authenticate always runs in the worker thread; inert, it answers nothing.
    return True
