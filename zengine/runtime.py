"""The running engine: settings, plugins and their state, built once per app."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from zengine import logincache
from zengine.doccache import DocumentCache
from zengine.errors import ConfigError
from zengine.models import Observation, Transform
from zengine.passwords import Passwords
from zengine.plugins import Hooks, check_chain, check_disabled, create_plugin_manager
from zengine.settings import Settings, format_validation_error
from zengine.store import MemoryStore, SharedStore
from zengine.tenancy import TenantResolver

if TYPE_CHECKING:
    from zengine.fastpath import FastPath

M = TypeVar("M", bound=BaseModel)


@dataclass
class Runtime:
    settings: Settings
    hooks: Hooks
    #: Validated ``[plugins.<name>]`` tables.
    plugin_configs: dict[str, BaseModel] = field(default_factory=dict)
    #: Per-plugin state, keyed by plugin name; plugins own their entries.
    state: dict[str, Any] = field(default_factory=dict)
    transforms: list[Transform] = field(default_factory=list)
    #: Shared key-value state (see :mod:`zengine.store`); set by :meth:`start`.
    store: SharedStore = field(default_factory=MemoryStore)
    started: bool = False
    #: The tenant this runtime serves (``""``: the global runtime, the only one without
    #: ``[tenants]``). Plugins key their state by it; a metrics label reads it here.
    tenant: str = ""
    #: On the global runtime: each configured tenant's runtime, by name (same plugins, its
    #: own settings and plugin state), built with it and started by :meth:`start`.
    tenants: dict[str, Runtime] = field(default_factory=dict, repr=False, compare=False)
    #: On a tenant's runtime: the global one (which owns the password pool).
    root: Runtime | None = field(default=None, repr=False, compare=False)

    @cached_property
    def passwords(self) -> Passwords:
        """argon2id with the ``[passwords]`` parameters: hash, verify, needs_rehash."""
        # Every worker process builds its own pool: they share the cores between them.
        return Passwords(self.settings.passwords, observe=self.observe,
                         workers=self.settings.server.workers)

    @cached_property
    def logins(self) -> logincache.LoginCache:
        """The verified-login cache (``[login_cache]``); built by :meth:`start`."""
        # The shared store (Redis) when a plugin provides one; the core's MemoryStore is no
        # better than the cache's own bounded LRU.
        shared = self.store if self.store.kind != "memory" else None
        return logincache.build(self.settings.login_cache, self.settings.resolve_path, shared,
                                tenant=self.tenant, observe=self.observe)

    @cached_property
    def resolver(self) -> TenantResolver:
        """The built-in tenant chain's lookups (``[tenants]``), built with the runtime."""
        return TenantResolver(self.settings)

    @cached_property
    def documents(self) -> DocumentCache:
        """The rendered-document cache (``[document_cache]``), in this process only."""
        return DocumentCache(self.settings.document_cache)

    def observe(self, observation: Observation) -> None:
        """Report something countable to :func:`~zengine.hookspecs.zengine_observe`; cheap,
        safe from worker threads and the event loop."""
        self.hooks.observe(observation, self)

    @cached_property
    def fast(self) -> FastPath:
        """The event-loop path for fully cached logins (:mod:`zengine.fastpath`)."""
        from zengine.fastpath import FastPath  # it imports the pipeline, which imports us

        fast = FastPath(self)
        self.logins.listeners.append(fast.forget)
        return fast

    def config(self, name: str, model: type[M]) -> M:
        """The validated settings of plugin ``name`` (defaults when its table is absent)."""
        value = self.plugin_configs.get(name)
        if value is None:
            value = model()
            self.plugin_configs[name] = value
        if not isinstance(value, model):
            raise TypeError(f"settings of plugin {name!r} are {type(value).__name__}, "
                            f"not {model.__name__}")
        return value

    def for_tenant(self, name: str) -> Runtime | None:
        """The runtime of tenant ``name`` (``""``: the global one), from any runtime."""
        top = self.root or self
        return top if name == "" else top.tenants.get(name)

    def start(self) -> None:
        if self.started:
            return
        try:
            self._start()
        except BaseException:
            # What did open (pools, connections, threads, started tenants) is released: a
            # SIGHUP with a config whose startup fails would otherwise leak them each time.
            self._release()
            raise

    def _start(self) -> None:
        if self.root is not None:
            # One bounded verification pool for every tenant: it bounds the machine.
            self.__dict__["passwords"] = self.root.passwords
        self.passwords.warm()
        self.documents.open()  # a straggler's put after a stop is not kept: until now
        self.store = self.hooks.shared_store(self) or MemoryStore()
        _ = self.logins
        self.hooks.startup(self)
        self.transforms = self.hooks.transforms(self)
        # After startup: the guard knows by then whether its counters live in Redis.
        self.fast.decide()
        self.started = True
        # Every tenant's plugin state (users files, pools, guard) is built now, not on
        # its first request.
        for tenant in self.tenants.values():
            tenant.start()

    def serve_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """After :meth:`start`, on the event loop that serves it (the app's lifespan): the
        timer that drops expired entries holding passwords with no request to find them runs
        there (:mod:`zengine.deadlines`), again after a :meth:`stop` closed it: the memo's
        (the root's, for every tenant's entries) and each runtime's document cache's."""
        self.fast.deadlines.start(loop)
        for runtime in (self, *self.tenants.values()):
            runtime.documents.deadlines.start(loop)

    def stop(self) -> None:
        if self.started:
            self._release()

    def _release(self) -> None:
        """Close what :meth:`start` opened; also after a start that failed part-way (each
        plugin's ``zengine_shutdown`` releases only what its state says it opened)."""
        for tenant in reversed(list(self.tenants.values())):
            tenant.stop()
        # The memo's kept parses hold passwords: gone with the runtime (a reload keeps
        # the old one referenced until it is collected). Only if it was ever built.
        fast: FastPath | None = self.__dict__.get("fast")
        if fast is not None:
            fast.close()
        documents: DocumentCache | None = self.__dict__.get("documents")
        if documents is not None:  # its SIP passwords, likewise
            documents.close()
        self.hooks.shutdown(self)
        self.store.close()
        if self.root is None:
            self.passwords.pool.close()
        self.started = False


def build_runtime(
    settings: Settings, *, load_entrypoints: bool = True,
    plugins: Sequence[tuple[str, object]] = (),
) -> Runtime:
    """Load plugins and validate their settings; nothing is opened until :meth:`Runtime.start`."""
    check_disabled(settings.disabled_plugins, plugins)
    pm = create_plugin_manager(disabled=settings.disabled_plugins,
                               load_entrypoints=load_entrypoints, plugins=plugins)
    hooks = Hooks(pm)
    runtime = _configured(Runtime(settings=settings, hooks=hooks))
    for name, tenant in settings.tenants.tenants.items():
        runtime.tenants[name] = _configured(Runtime(settings=tenant.settings, hooks=hooks,
                                                    tenant=name, root=runtime))
    # Validated at load (check-config too): hosts, digests, the path keys' secret.
    _ = runtime.resolver
    return runtime


def _configured(runtime: Runtime) -> Runtime:
    """Validate every plugin table of ``runtime.settings`` and its auth chain."""
    settings, hooks = runtime.settings, runtime.hooks
    specs = {spec.name: spec for spec in hooks.plugin_settings()}
    for name, table in settings.plugin_tables.items():
        if name in settings.disabled_plugins:
            continue
        spec = specs.get(name)
        if spec is None:
            raise ConfigError(f"{settings.source}: [plugins.{name}] configures no loaded plugin; "
                              f"plugins with settings: {', '.join(sorted(specs)) or 'none'}")
        try:
            runtime.plugin_configs[name] = spec.model.model_validate(table)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(
                exc, f"{settings.source} [plugins.{name}]", env=settings.env_sources,
                table=("plugins", name))) from None
    for name, spec in specs.items():
        if name not in runtime.plugin_configs:
            try:
                runtime.plugin_configs[name] = spec.model()
            except ValidationError as exc:
                raise ConfigError(format_validation_error(
                    exc, f"{settings.source} [plugins.{name}] (missing)")) from None
    check_chain(settings.auth.chain, hooks.auth_backends(), settings.auth.account_sources,
                where=settings.source)
    return runtime


def check_servable(runtime: Runtime) -> None:
    """A server that cannot build any document answers every login with an error: refuse it."""
    if not runtime.hooks.document_builders():
        disabled = ", ".join(runtime.settings.disabled_plugins) or "none"
        raise ConfigError(f"{runtime.settings.source}: no loaded plugin builds documents "
                          f"([plugins] disabled: {disabled}); enable zoiper or install a "
                          "plugin that implements zengine_build_document")
