"""The per-request hooks' call plans (zengine.hookplans) against what they replace: pluggy's
own call for ``detect_client`` and ``login_check``, the facade's former loops for the others."""

from __future__ import annotations

from collections.abc import Collection, Generator
from typing import Any, TypedDict, Unpack

import pluggy
import pytest
import structlog

from zengine import hookimpl, hookplans, hookspecs
from zengine.plugins import Hooks, create_plugin_manager

RUNTIME: Any = object()  # passed through to the implementations, never looked at
#: Stand-ins for the hooks' other arguments: passed through, recorded by their repr.
REQUEST: Any = "r"
ATTEMPT: Any = "x"
OBSERVATION: Any = "o"
EVENT: Any = "e"
IDENTITY: Any = "id"


class Marks(TypedDict, total=False):
    """The ``hookimpl`` ordering marks a recorder takes."""

    tryfirst: bool
    trylast: bool


def _detect(hooks: Hooks) -> object:
    """``hooks.detect_client`` on the stand-in request. ``object``: the recorders answer
    strings where a real plugin would answer a ClientInfo."""
    return hooks.detect_client(REQUEST, RUNTIME)


def _recorder(calls: list[str], name: str, answers: dict[str, Any] | None = None,
              raising: Collection[str] = frozenset(), **marks: Unpack[Marks]) -> object:
    """A plugin implementing every planned hook: records its calls, answers ``answers[hook]``
    (default ``None``), raises for the hooks in ``raising``."""
    answers = answers or {}

    def answer(hook: str, *args: Any) -> Any:
        calls.append(f"{name}.{hook}{args!r}")
        if hook in raising:
            raise RuntimeError(f"{name} fails {hook}")
        return answers.get(hook)

    class Plugin:
        @hookimpl(**marks)
        def zengine_detect_client(self, request: Any, runtime: Any) -> Any:
            return answer("detect_client", request, runtime is RUNTIME)

        @hookimpl(**marks)
        def zengine_login_check(self, attempt: Any) -> Any:  # runtime not taken
            return answer("login_check", attempt)

        @hookimpl(**marks)
        def zengine_login_result(self, result: Any, attempt: Any) -> Any:  # reordered
            return answer("login_result", attempt, result)

        @hookimpl(**marks)
        def zengine_audit(self, event: Any, runtime: Any) -> Any:
            return answer("audit", event)

        @hookimpl(**marks)
        def zengine_data_generation(self, runtime: Any) -> Any:
            return answer("data_generation", runtime is RUNTIME)

        @hookimpl(**marks)
        def zengine_observe(self) -> Any:  # no argument at all
            return answer("observe")

        @hookimpl(**marks)
        def zengine_request_finished(self, summary: Any, runtime: Any) -> Any:
            return answer("request_finished", summary)

    return Plugin()


Spec = tuple[str, dict[str, Any], set[str], Marks]


def _manager(calls: list[str], *specs: Spec) -> pluggy.PluginManager:
    plugins = [(name, _recorder(calls, name, answers, raising, **marks))
               for name, answers, raising, marks in specs]
    return create_plugin_manager(load_entrypoints=False, plugins=plugins)


ORDERED: tuple[Spec, ...] = (("plain1", {}, set(), {}), ("last", {}, set(), {"trylast": True}),
           ("first", {}, set(), {"tryfirst": True}), ("plain2", {}, set(), {}))


@pytest.mark.parametrize("hook,method,args", [
    ("zengine_detect_client", "detect_client", {"request": "req"}),
    ("zengine_login_check", "login_check", {"attempt": "att"}),
])
def test_pluggy_hooks_call_what_pluggy_calls_in_its_order(hook: str, method: str,
                                                          args: dict[str, Any]) -> None:
    for answers in ({}, {"plain2": "P2", "plain1": "P1"}, {"last": "L"}, {"first": "F"}):
        calls: list[str] = []
        pm = _manager(calls, *((name, {method: answers.get(name)}, raising, marks)
                               for name, _a, raising, marks in ORDERED))
        hooks = Hooks(pm)
        assert hookplans.pluggy_plan(pm, hook, hookplans.PLANNED[hook][1]) is not None
        expected = getattr(pm.hook, hook)(**args, runtime=RUNTIME)
        pluggy_calls = list(calls)
        calls.clear()
        for _ in range(2):  # the plan made, then the plan kept
            assert getattr(hooks, method)(*args.values(), RUNTIME) == (
                expected if method == "detect_client" else None)
            assert calls == pluggy_calls
            calls.clear()
        # tryfirst first, then the last registered first, trylast last (firstresult: up to
        # the first answer that is not None).
        names = [call.split(".")[0] for call in pluggy_calls]
        assert names == ["first", "plain2", "plain1", "last"][:len(names)]


def test_a_firstresult_hook_skips_none_and_stops_at_the_first_answer() -> None:
    calls: list[str] = []
    pm = _manager(calls, ("a", {"detect_client": "A"}, set(), {}),
                  ("b", {}, set(), {}), ("c", {"detect_client": "C"}, set(), {}))
    hooks = Hooks(pm)
    # pluggy: c (last registered) first -> "C", b and a not called.
    assert pm.hook.zengine_detect_client(request="r", runtime=RUNTIME) == "C"
    assert _detect(hooks) == "C"
    assert [call.split(".")[0] for call in calls] == ["c", "c"]
    calls.clear()
    pm2 = _manager(calls, ("a", {"detect_client": "A"}, set(), {}), ("b", {}, set(), {}))
    assert _detect(Hooks(pm2)) == "A"
    assert [call.split(".")[0] for call in calls] == ["b", "a"]
    calls.clear()
    pm3 = _manager(calls, ("b", {}, set(), {}))
    assert _detect(Hooks(pm3)) is None
    assert _detect(Hooks(_manager(calls))) is None


def test_a_raising_implementation_propagates_as_from_pluggy() -> None:
    calls: list[str] = []
    pm = _manager(calls, ("a", {}, set(), {}), ("b", {}, {"login_check"}, {}),
                  ("c", {}, set(), {}))
    with pytest.raises(RuntimeError, match="b fails login_check"):
        pm.hook.zengine_login_check(attempt="x", runtime=RUNTIME)
    pluggy_calls = list(calls)
    calls.clear()
    with pytest.raises(RuntimeError, match="b fails login_check"):
        Hooks(pm).login_check(ATTEMPT, RUNTIME)
    assert calls == pluggy_calls and [c.split(".")[0] for c in calls] == ["c", "b"]


@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
def test_a_wrapper_means_pluggy_itself(style: str) -> None:
    calls: list[str] = []

    class Wrapping:
        if style == "wrapper":
            @hookimpl(wrapper=True)
            def zengine_detect_client(self, request: Any) -> Generator[None, Any, Any]:
                calls.append("wrap.before")
                result = yield
                calls.append("wrap.after")
                return f"wrapped {result}"
        else:
            @hookimpl(hookwrapper=True)
            def zengine_detect_client(self, request: Any) -> Generator[None, Any, None]:
                calls.append("wrap.before")
                outcome = yield
                calls.append("wrap.after")
                outcome.force_result(f"wrapped {outcome.get_result()}")

    pm = _manager(calls, ("a", {"detect_client": "A"}, set(), {}))
    pm.register(Wrapping(), name="wrapping")
    assert hookplans.pluggy_plan(pm, "zengine_detect_client", ("request", "runtime")) is None
    assert _detect(Hooks(pm)) == "wrapped A"
    assert calls[0] == "wrap.before" and calls[-1] == "wrap.after"


def _listed_reference(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[Any]:
    """The facade's loops before the plans, by keyword, each exception swallowed, in
    pluggy's calling order (``get_hookimpls()`` reversed)."""
    results = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        try:
            results.append(impl.function(**{name: kwargs[name] for name in impl.argnames}))
        except Exception as exc:
            results.append(type(exc))
    return results


@pytest.mark.parametrize("hook,method,args", [
    ("zengine_login_result", "login_result", {"attempt": "att", "result": "res"}),
    ("zengine_audit", "audit", {"event": "ev"}),
    ("zengine_observe", "observe", {"observation": "obs"}),
    ("zengine_request_finished", "request_finished", {"summary": "sum"}),
])
def test_listed_hooks_call_every_implementation_in_pluggys_order(
        hook: str, method: str, args: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # A logger of our own: the module's, once used while zengine's logging (which caches
    # loggers on first use) is configured, would escape a later test's capture_logs.
    monkeypatch.setattr("zengine.plugins.log", structlog.get_logger("zengine.plugins"))
    calls: list[str] = []
    short = method
    pm = _manager(calls, *((name, {short: "ignored"}, {short} if name == "plain1" else set(),
                            marks) for name, _a, _r, marks in ORDERED))
    _listed_reference(pm, hook, **args, runtime=RUNTIME)
    former = list(calls)
    calls.clear()
    hooks = Hooks(pm)
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            assert getattr(hooks, method)(*args.values(), RUNTIME) is None
            assert calls == former
            calls.clear()
    # pluggy's: tryfirst, the last registered first, trylast last.
    assert [call.split(".")[0] for call in former] == ["first", "plain2", "plain1", "last"]
    failed = [entry for entry in logs if entry["log_level"] == "error"]
    if hook in ("zengine_login_result", "zengine_audit"):
        assert [entry["event"] for entry in failed] == [f"{method}.hook_failed"] * 2
        assert all(entry["plugin"] == "plain1" for entry in failed)
    else:  # observers: logged once per hook and plugin
        assert [(e["event"], e["hook"], e["plugin"]) for e in failed] == [
            ("observer.hook_failed", hook, "plain1")]


def test_data_generations_as_before() -> None:
    calls: list[str] = []
    pm = _manager(calls, ("a", {"data_generation": 3}, set(), {}),
                  ("b", {"data_generation": "x"}, set(), {"tryfirst": True}))
    hooks = Hooks(pm)
    assert hooks.data_generations(IDENTITY, RUNTIME) == ["b=x", "a=3"]
    assert calls == ["b.data_generation(True,)", "a.data_generation(True,)"]
    pm.register(_recorder(calls, "c", {"data_generation": None}), name="c")
    calls.clear()
    assert hooks.data_generations(IDENTITY, RUNTIME) is None
    # pluggy's order: b (tryfirst), then c (the last registered); c's None ends it.
    assert calls == ["b.data_generation(True,)", "c.data_generation(True,)"]


def test_plans_follow_registrations() -> None:
    calls: list[str] = []
    pm = _manager(calls, ("a", {}, set(), {}))
    hooks = Hooks(pm)
    hooks.observe(OBSERVATION, RUNTIME)
    assert _detect(hooks) is None
    pm.register(_recorder(calls, "b", {"detect_client": "B"}), name="b")
    calls.clear()
    hooks.observe(OBSERVATION, RUNTIME)
    assert _detect(hooks) == "B"
    assert calls == ["b.observe()", "a.observe()", "b.detect_client('r', True)"]  # newest first
    pm.unregister(name="b")
    calls.clear()
    hooks.observe(OBSERVATION, RUNTIME)
    assert _detect(hooks) is None
    assert calls == ["a.observe()", "a.detect_client('r', True)"]
    pm.set_blocked("a")
    calls.clear()
    hooks.observe(OBSERVATION, RUNTIME)
    assert calls == []


def test_call_monitoring_sees_every_pluggy_hook_call() -> None:
    calls: list[str] = []
    pm = _manager(calls, ("a", {"detect_client": "A"}, set(), {}))
    hooks = Hooks(pm)
    assert _detect(hooks) == "A"
    seen: list[str] = []
    pm.add_hookcall_monitoring(lambda name, impls, kwargs: seen.append(name),
                               lambda outcome, name, impls, kwargs: None)
    assert _detect(hooks) == "A"
    assert seen == ["zengine_detect_client"]


def test_a_plain_pluggy_manager_is_never_stale() -> None:
    calls: list[str] = []
    pm = pluggy.PluginManager("zengine")
    pm.add_hookspecs(hookspecs)
    hooks = Hooks(pm)
    assert _detect(hooks) is None
    pm.register(_recorder(calls, "a", {"detect_client": "A"}), name="a")
    assert _detect(hooks) == "A"
    hooks.audit(EVENT, RUNTIME)
    assert calls == ["a.detect_client('r', True)", "a.audit('e',)"]
