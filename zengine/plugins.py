"""Plugin manager factory and a typed facade over the hooks.

The core calls hooks only through :class:`Hooks`, never ``pm.hook.x(**loose_keywords)``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy
import structlog

from zengine import hookplans, hookspecs
from zengine.errors import AccountDataError, ConfigError
from zengine.models import (
    Abstain,
    Account,
    AuditEvent,
    AuthResult,
    ClientInfo,
    Command,
    Credentials,
    Document,
    Identity,
    LoginAttempt,
    LoginResult,
    Observation,
    PluginSettingsSpec,
    ProvisionRequest,
    Readiness,
    Rejected,
    RequestSummary,
    ResolvedAccount,
    Transform,
)

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from zengine.runtime import Runtime
    from zengine.store import SharedStore

ENTRY_POINT_GROUP = "zengine"
log = structlog.get_logger("zengine.plugins")


def create_plugin_manager(
    *, disabled: Iterable[str] = (), load_entrypoints: bool = True,
    plugins: Sequence[tuple[str, object]] = (),
) -> pluggy.PluginManager:
    # Counting its changes, for the hook call plans (zengine.hookplans).
    pm = hookplans.PluginManager("zengine")
    pm.add_hookspecs(hookspecs)
    # Blocking must happen before entry points load, or the plugin is already registered.
    for name in disabled:
        pm.set_blocked(name)
    for name, plugin in plugins:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def check_disabled(disabled: Iterable[str], plugins: Sequence[tuple[str, object]] = ()) -> None:
    """A name in ``[plugins] disabled`` that no installed plugin has is a typo, not a no-op:
    the plugin the operator meant to turn off would still run."""
    known = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    known.update(name for name, _ in plugins)
    unknown = sorted(set(disabled) - known)
    if unknown:
        raise ConfigError(f"[plugins] disabled names {unknown}, which no installed plugin is "
                          f"called; installed plugins: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


class Hooks:
    """One typed method per hook."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        #: The hooks called on every request run by plans made once (zengine.hookplans).
        self._plans = hookplans.Plans(pm)
        self._failed: set[tuple[str, str]] = set()

    @property
    def _h(self) -> Any:
        return self.pm.hook

    def _pluggy(self, hook: str, values: tuple[Any, ...]) -> Any:
        """``pm.hook.<hook>(**kwargs)``, by its plan when it has one."""
        plan = self._plans.get(hook)
        if plan is None:
            names = hookplans.PLANNED[hook][1]
            return getattr(self._h, hook)(**dict(zip(names, values, strict=True)))
        return hookplans.run(plan, values)

    def _each(self, hook: str, values: tuple[Any, ...]) -> None:
        """Every implementation of ``hook`` in pluggy's calling order, by a plan; one that
        raises is logged (:meth:`_hook_failed`) and the others still run."""
        hookplans.each(self._plans.get(hook), values, hook, self._hook_failed)

    def plugin_names(self) -> list[str]:
        # Blocked plugins are listed with ``None`` by pluggy: they are not loaded.
        return [name for name, plugin in self.pm.list_name_plugin() if name and plugin is not None]

    def plugin_info(self) -> list[PluginInfo]:
        dists = {plugin: dist for plugin, dist in self.pm.list_plugin_distinfo()}
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = dists.get(plugin)
            hooks = tuple(sorted(
                caller.name for caller in self.pm.get_hookcallers(plugin) or ()
            ))
            infos.append(PluginInfo(
                name=name,
                distribution=dist.project_name if dist is not None else None,
                version=dist.version if dist is not None else None,
                hooks=hooks,
            ))
        return infos

    def plugin_settings(self) -> list[PluginSettingsSpec]:
        return [spec for spec in self._h.zengine_plugin_settings() if spec is not None]

    def startup(self, runtime: Runtime) -> None:
        self._h.zengine_startup(runtime=runtime)

    def shutdown(self, runtime: Runtime) -> None:
        # Reverse of startup, one plugin at a time, so one failure does not skip the rest.
        for impl in self._h.zengine_shutdown.get_hookimpls():
            try:
                impl.function(**_kwargs(impl, runtime=runtime))
            except Exception:
                log.exception("plugin.shutdown_failed", plugin=impl.plugin_name)

    def detect_client(self, request: ProvisionRequest, runtime: Runtime) -> ClientInfo | None:
        result: ClientInfo | None = self._pluggy("zengine_detect_client", (request, runtime))
        return result

    def resolve_tenant(self, request: ProvisionRequest, runtime: Runtime) -> str | None:
        result = self._h.zengine_resolve_tenant(request=request, runtime=runtime)
        if result is not None and not isinstance(result, str):
            raise TypeError(f"zengine_resolve_tenant returned {type(result).__name__}; "
                            "expected a tenant name or None")
        return result

    def _chain(self, hook: str, chain: Sequence[str]) -> list[pluggy.HookImpl]:
        """Implementations of ``hook`` in ``[auth] chain`` order (pluggy's order if empty)."""
        impls = getattr(self._h, hook).get_hookimpls()
        if not chain:
            return list(reversed(impls))
        by_name = {impl.plugin_name: impl for impl in impls}
        return [by_name[name] for name in chain if name in by_name]

    def authenticate(
        self, credentials: Credentials, request: ProvisionRequest, runtime: Runtime,
        chain: Sequence[str],
    ) -> AuthResult | Abstain | None:
        """Ask backends one by one in ``chain`` order; the first accept or reject decides.

        When nobody decides, the last backend's abstention is returned: an
        :class:`~zengine.models.Abstain` there means the dummy cost is already spent.
        """
        last: Abstain | None = None
        for impl in self._chain("zengine_authenticate", chain):
            with self.timed("backend.authenticate", impl.plugin_name, runtime):
                result = impl.function(**_kwargs(impl, credentials=credentials,
                                                 request=request, runtime=runtime))
            if isinstance(result, Identity | Rejected):
                return result
            if result is not None and not isinstance(result, Abstain):
                raise TypeError(f"plugin {impl.plugin_name!r} returned {type(result).__name__} "
                                "from zengine_authenticate; expected Identity, Rejected, "
                                "Abstain or None")
            last = result
        return last

    def login_check(self, attempt: LoginAttempt, runtime: Runtime) -> None:
        """Every guard may refuse by raising; the first exception wins."""
        self._pluggy("zengine_login_check", (attempt, runtime))

    def login_verification(self, attempt: LoginAttempt, runtime: Runtime) -> None:
        """Every guard may refuse the login's first slow verification by raising."""
        self._h.zengine_login_verification(attempt=attempt, runtime=runtime)

    def login_result(self, attempt: LoginAttempt, result: LoginResult, runtime: Runtime) -> None:
        self._each("zengine_login_result", (attempt, result, runtime))

    def shared_store(self, runtime: Runtime) -> SharedStore | None:
        result: SharedStore | None = self._h.zengine_shared_store(runtime=runtime)
        return result

    def find_identity(self, username: str, runtime: Runtime,
                      chain: Sequence[str]) -> Identity | None:
        for impl in self._chain("zengine_find_identity", chain):
            result = impl.function(**_kwargs(impl, username=username, runtime=runtime))
            if isinstance(result, Identity):
                return result
            if result is not None:
                raise TypeError(f"plugin {impl.plugin_name!r} returned {type(result).__name__} "
                                "from zengine_find_identity; expected Identity or None")
        return None

    def auth_backends(self) -> list[str]:
        return [impl.plugin_name for impl in self._h.zengine_authenticate.get_hookimpls()]

    def load_accounts(self, identity: Identity, runtime: Runtime,
                      account_sources: Mapping[str, Sequence[str]] | None = None) -> list[Account]:
        """Merge every source's accounts for ``identity``.

        A backend in the authentication chain answers only for its own logins and for the
        backends ``[auth] account_sources`` lets it serve, so two backends that both know "alice"
        never mix her accounts. A plugin outside the chain is a pure account source and answers
        for every login.
        """
        if account_sources is None:
            account_sources = runtime.settings.auth.account_sources
        chain = runtime.settings.auth.chain
        backends = set(chain) if chain else set(self.auth_backends())
        trusted = {identity.backend, *account_sources.get(identity.backend, ())}
        merged: dict[str, Account] = {}
        for impl in reversed(self._h.zengine_load_accounts.get_hookimpls()):
            if impl.plugin_name in backends and impl.plugin_name not in trusted:
                continue
            with self.timed("backend.load_accounts", impl.plugin_name, runtime):
                batch = impl.function(**_kwargs(impl, identity=identity, runtime=runtime))
            for account in batch or ():
                if not isinstance(account, Account):
                    raise TypeError(f"zengine_load_accounts returned {type(account).__name__}")
                other = merged.get(account.ident)
                if other is not None:
                    raise AccountDataError(
                        f"duplicate account ident {account.ident!r} from "
                        f"{other.source or '?'} and {account.source or '?'}"
                    )
                merged[account.ident] = account
        return list(merged.values())

    def data_generations(self, identity: Identity, runtime: Runtime) -> list[str] | None:
        """Every plugin's :func:`~zengine.hookspecs.zengine_data_generation` token, or ``None``
        when the document cannot be cached (a contributor without the hook, or one that said
        ``None``)."""
        steps = self._plans.get("zengine_data_generation")
        return None if steps is None else hookplans.generations(steps, (identity, runtime))

    def build_document(self, accounts: list[ResolvedAccount], client: ClientInfo,
                       identity: Identity, runtime: Runtime) -> Document | None:
        result: Document | None = self._h.zengine_build_document(
            accounts=accounts, client=client, identity=identity, runtime=runtime)
        return result

    def transforms(self, runtime: Runtime) -> list[Transform]:
        steps: list[Transform] = []
        for batch in self._h.zengine_transforms(runtime=runtime):
            steps.extend(batch or ())
        return steps

    def postprocess(self, document: Document, identity: Identity, runtime: Runtime) -> None:
        self._h.zengine_postprocess_document(document=document, identity=identity,
                                             runtime=runtime)

    def audit(self, event: AuditEvent, runtime: Runtime) -> None:
        self._each("zengine_audit", (event, runtime))

    def request_finished(self, summary: RequestSummary, runtime: Runtime) -> None:
        """:func:`~zengine.hookspecs.zengine_request_finished`; safe on the event loop."""
        self._each("zengine_request_finished", (summary, runtime))

    def observe(self, observation: Observation, runtime: Runtime) -> None:
        """:func:`~zengine.hookspecs.zengine_observe`; safe on the event loop and in threads."""
        self._each("zengine_observe", (observation, runtime))

    def _hook_failed(self, hook: str, plugin: str) -> None:
        event = _RECORDERS.get(hook)
        if event is not None:
            # Recording and auditing never change the answer.
            log.exception(event, plugin=plugin)
        # Observers never change the answer. Logged once per plugin and hook: called several
        # times per request, a broken one would otherwise flood the log and slow every
        # request down with tracebacks.
        elif (hook, plugin) not in self._failed:
            self._failed.add((hook, plugin))
            log.exception("observer.hook_failed", hook=hook, plugin=plugin)

    @contextlib.contextmanager
    def timed(self, name: str, backend: str, runtime: Runtime) -> Iterator[None]:
        """Report one backend call as an :class:`~zengine.models.Observation`: its seconds and
        ``ok`` or the error kind it raised (the exception still propagates)."""
        start = time.perf_counter()
        result = "ok"
        try:
            yield
        except Exception as exc:
            result = getattr(exc, "kind", "error")
            raise
        finally:
            self.observe(Observation(name, result, backend, time.perf_counter() - start),
                         runtime)

    def register_routes(self, runtime: Runtime) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for batch in self._h.zengine_register_routes(runtime=runtime):
            routes.extend(batch or ())
        return routes

    def readiness(self, runtime: Runtime, only: Collection[str] | None = None) -> list[Readiness]:
        """Every plugin's probes (or ``only`` these plugins'); a probe that raises is "not
        ready", never an exception."""
        results: list[Readiness] = []
        for impl in reversed(self._h.zengine_readiness.get_hookimpls()):
            if only is not None and impl.plugin_name not in only:
                continue
            try:
                batch = impl.function(**_kwargs(impl, runtime=runtime))
            except Exception as exc:
                # Its message may quote a URL or a password: only the type is kept.
                log.error("plugin.readiness_failed", plugin=impl.plugin_name,
                          error=type(exc).__name__)
                results.append(Readiness(impl.plugin_name, False, "probe failed",
                                         type(exc).__name__))
                continue
            for item in batch or ():
                if not isinstance(item, Readiness):
                    raise TypeError(f"plugin {impl.plugin_name!r} returned "
                                    f"{type(item).__name__} from zengine_readiness")
                results.append(item)
        return results

    def document_builders(self) -> list[str]:
        return [impl.plugin_name for impl in self._h.zengine_build_document.get_hookimpls()]

    def cli_commands(self) -> list[Command]:
        commands: list[Command] = []
        for batch in self._h.zengine_cli_commands():
            commands.extend(batch or ())
        return commands


def _kwargs(impl: pluggy.HookImpl, **available: Any) -> dict[str, Any]:
    return {name: available[name] for name in impl.argnames}


#: What a raising implementation of these hooks logs (each time: they run once a request).
_RECORDERS = {"zengine_login_result": "login_result.hook_failed",
              "zengine_audit": "audit.hook_failed"}


def check_chain(chain: Sequence[str], backends: Sequence[str],
                account_sources: Mapping[str, Sequence[str]] | None = None, *,
                where: str = "") -> None:
    # A tenant's chain names its table: "zengine.toml [tenants.acme] [auth] chain ...".
    prefix = f"{where} " if "[tenants." in where else ""
    twice = sorted({name for name in chain if list(chain).count(name) > 1})
    if twice:
        raise ConfigError(f"{prefix}[auth] chain names {twice} more than once")
    named = {"chain": list(chain)}
    for backend, sources in (account_sources or {}).items():
        named[f"account_sources.{backend}"] = [backend, *sources]
    for key, names in named.items():
        unknown = [name for name in names if name not in backends]
        if unknown:
            raise ConfigError(
                f"{prefix}[auth] {key} names {unknown} but the loaded authentication backends are "
                f"{sorted(backends) or 'none'}"
            )
