"""Call plans for the hooks run on every request: each implementation's function and where its
arguments come from, worked out once instead of by pluggy on every call.

A returning login calls about a dozen hooks; through pluggy each call copies the
implementation list, merges default arguments, checks them and runs the generic multicall
loop, and the hooks :class:`~zengine.plugins.Hooks` loops over itself built a keyword dict
per implementation. Plugins are fixed once the runtime exists, so a plan — the
implementations in calling order and, for each, which of the call's values it takes — is
made at the first call and kept until the plugin manager changes (:class:`PluginManager`
counts its changes; a test may register a plugin on a running runtime).

Two kinds of plan, because :class:`~zengine.plugins.Hooks` calls hooks two ways:

* ``pluggy`` (:func:`pluggy_plan`): exactly what ``pm.hook.<name>(**kwargs)`` does — the
  implementations in pluggy's calling order (``get_hookimpls()`` reversed: ``tryfirst``
  first, the last registered first, ``trylast`` last), ``None`` results skipped, the first
  other one ending a ``firstresult`` hook, an exception propagating at once. A hook with a
  wrapper or an implementation pluggy would pass keyword arguments to gets no plan
  (``None``): the caller then calls pluggy.
* ``listed`` (:func:`listed_plan`): every implementation called whatever it returns (one that
  raises is logged, the next still runs), in pluggy's calling order too: the facade's own
  loops (``zengine_audit``, ``zengine_login_result``, the observers,
  ``zengine_data_generation``). Before the plans those loops went in ``get_hookimpls()``
  order, ``trylast`` first, the opposite of what a plugin marking ``tryfirst`` asks.

An implementation is called positionally with the values its parameters name, as pluggy's
multicall calls every implementation (``argnames`` are the function's own positional
parameters, so the binding is the same as by keyword).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pluggy

#: One implementation: what to call, its plugin's name and the slice of the call's values
#: it takes (consecutive as good as always: all of them, none, or ``runtime`` alone; a
#: tuple's full slice is the tuple itself). Every call site is ``function(*values[picks])``.
Step = tuple[Callable[..., Any], str, slice]
#: A pluggy call's plan: whether the hook is ``firstresult``, and its steps in calling order.
Planned = tuple[bool, tuple[Step, ...]]


class PluginManager(pluggy.PluginManager):
    """pluggy's, counting the changes that can change a hook's implementations or spec, so
    that plans made from it are dropped when it changes (``set_blocked`` and entry points go
    through ``unregister`` and ``register``)."""

    #: Bumped after each registration, unregistration or added spec (even a failed one).
    changes = 0

    def register(self, plugin: object, name: str | None = None) -> str | None:
        try:
            return super().register(plugin, name)
        finally:
            self.changes += 1

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        try:
            return super().unregister(plugin, name)
        finally:
            self.changes += 1

    def add_hookspecs(self, module_or_class: Any) -> None:
        try:
            super().add_hookspecs(module_or_class)
        finally:
            self.changes += 1

    #: Set for good once call monitoring (``enable_tracing`` too) was added: a monitor sees
    #: pluggy's calls only, so from then on every hook goes through pluggy.
    monitored = False

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        self.monitored = True
        self.changes += 1
        return super().add_hookcall_monitoring(before, after)


def _step(impl: pluggy.HookImpl, names: Sequence[str]) -> Step:
    at = tuple(list(names).index(arg) for arg in impl.argnames)
    if not at:
        return impl.function, impl.plugin_name, slice(0, 0)
    if at == tuple(range(at[0], at[0] + len(at))):
        return impl.function, impl.plugin_name, slice(at[0], at[0] + len(at))
    return _picking(impl.function, at), impl.plugin_name, slice(None)


def _picking(function: Callable[..., Any], at: tuple[int, ...]) -> Callable[..., Any]:
    """``function`` called with the values at ``at`` (its parameters in another order than
    the call's, or not consecutive): given all of them, so that its step is a slice too."""
    def call(*values: Any) -> Any:
        return function(*[values[i] for i in at])
    return call


def pluggy_plan(pm: pluggy.PluginManager, hook: str, names: Sequence[str]) -> Planned | None:
    """The plan of ``pm.hook.<hook>(**kwargs)`` with the keyword arguments ``names``, or
    ``None`` when only pluggy itself can run it (a wrapper, keyword parameters, spec
    defaults, an argument the call does not give, call monitoring)."""
    caller: pluggy.HookCaller = getattr(pm.hook, hook)
    if getattr(pm, "monitored", False) or caller.spec is None or caller.spec.kwargdefaults:
        return None
    impls = caller.get_hookimpls()
    for impl in impls:
        if impl.wrapper or impl.hookwrapper or set(impl.kwargnames) & set(names) \
                or not set(impl.argnames) <= set(names):
            return None
    return (bool(caller.spec.opts.get("firstresult", False)),
            tuple(_step(impl, names) for impl in reversed(impls)))


def run(plan: Planned, values: tuple[Any, ...]) -> Any:
    """What pluggy's call returns: for a ``firstresult`` hook the first result that is not
    ``None`` (the rest not called), else ``None``; for any other every result that is not
    ``None``, in calling order. An exception propagates at once, as from pluggy."""
    firstresult, steps = plan
    results = []
    for function, _plugin, picks in steps:
        result = function(*values[picks])
        if result is not None:
            if firstresult:
                return result
            results.append(result)
    return None if firstresult else results


def listed_plan(impls: Sequence[pluggy.HookImpl], names: Sequence[str]) -> tuple[Step, ...]:
    """The plan of a loop over ``impls`` in their order, each called with the values its
    ``argnames`` name out of ``names`` (the facade's ``_kwargs``)."""
    steps: list[Step] = []
    for impl in impls:
        missing = [arg for arg in impl.argnames if arg not in names]
        if missing:
            # What the facade's ``_kwargs`` raised for it, at the same point: its call.
            steps.append((_raiser(missing[0]), impl.plugin_name, slice(0, 0)))
        else:
            steps.append(_step(impl, names))
    return tuple(steps)


def _raiser(name: str) -> Callable[..., Any]:
    def missing() -> Any:
        raise KeyError(name)
    return missing


def each(steps: tuple[Step, ...], values: tuple[Any, ...], hook: str,
         failed: Callable[[str, str], None]) -> None:
    """Call every step; one that raises is reported (``failed(hook, plugin)``, inside the
    ``except``, so that it can log the traceback) and the next one still runs."""
    for function, plugin, picks in steps:
        try:
            function(*values[picks])
        except Exception:
            failed(hook, plugin)


def generations(steps: tuple[Step, ...], values: tuple[Any, ...]) -> list[str] | None:
    """``plugin=token`` for every step in order, or ``None`` as soon as one answers ``None``
    (:meth:`zengine.plugins.Hooks.data_generations`)."""
    tokens = []
    for function, plugin, picks in steps:
        token = function(*values[picks])
        if token is None:
            return None
        tokens.append(f"{plugin}={token}")
    return tokens


#: The hooks :class:`~zengine.plugins.Hooks` calls by plans (those called on every request):
#: how (``pluggy``: as pluggy would; ``listed``: a loop over every implementation, in
#: pluggy's order) and the names of the call's arguments, in the order the facade passes them.
PLANNED = {
    "zengine_detect_client": ("pluggy", ("request", "runtime")),
    "zengine_login_check": ("pluggy", ("attempt", "runtime")),
    "zengine_login_result": ("listed", ("attempt", "result", "runtime")),
    "zengine_audit": ("listed", ("event", "runtime")),
    "zengine_data_generation": ("listed", ("identity", "runtime")),
    "zengine_observe": ("listed", ("observation", "runtime")),
    "zengine_request_finished": ("listed", ("summary", "runtime")),
}


def plan_for(pm: pluggy.PluginManager, hook: str) -> Any:
    """The plan of one of the :data:`PLANNED` hooks for the plugins registered now
    (``zengine_data_generation``: ``None`` when no document can be cached)."""
    if hook == "zengine_data_generation":
        # Who must answer is decided with the plan, once for the plugins loaded.
        from zengine.doccache import silent_contributors

        if silent_contributors(pm.hook):
            return None
    kind, names = PLANNED[hook]
    if kind == "pluggy":
        return pluggy_plan(pm, hook, names)
    return listed_plan(tuple(reversed(getattr(pm.hook, hook).get_hookimpls())), names)


class _Uncounted:
    """Stands in for a manager that does not count its changes: never the same count twice,
    so that every call makes its plan anew (slower, never stale)."""

    @property
    def changes(self) -> object:
        return object()


class Plans:
    """The plans of one plugin manager (:func:`plan_for`), each made at its first use and all
    dropped when the manager changes."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._counter: PluginManager | _Uncounted = pm if isinstance(pm, PluginManager) \
            else _Uncounted()
        self._plans: dict[str, Any] = {}
        self._at: object = None

    def get(self, key: str) -> Any:
        if self._counter.changes == self._at:
            try:
                return self._plans[key]
            except KeyError:
                pass
        return self._fill(key)

    def _fill(self, key: str) -> Any:
        changes = self._counter.changes
        if changes != self._at:
            self._plans, self._at = {}, changes
        # Into the dict of the count read before the plan was made: a plan made while a
        # plugin was being registered lands in a dict already dropped, never in the next one.
        plans = self._plans
        plan = plans[key] = plan_for(self.pm, key)
        return plan
