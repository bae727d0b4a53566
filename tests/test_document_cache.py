"""The rendered-document cache: same bytes, built once, and never stale across a generation."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.testclient import TestClient

import zengine_static
import zengine_urls
import zengine_zoiper
from tests.test_login_cache import users_toml
from zengine import hookimpl
from zengine.app import create_app
from zengine.doccache import DocumentCache, DocumentCacheSettings, Rendered
from zengine.models import Account, ClientInfo, Identity, Version
from zengine.pipeline import Outcome, render_for
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine_static.users import load_users

MOBILE = ClientInfo("mobile", Version(1, 14), "1.14")


def make_runtime(tmp_path: Path, *extra: tuple[str, object], **cache: object) -> Runtime:
    (tmp_path / "users.toml").write_text(users_toml("wonderland"))
    settings = settings_from_mapping({
        "plugins": {"static": {"users_file": str(tmp_path / "users.toml")}},
        "document_cache": cache,
    }, environ={})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[
        ("zoiper", zengine_zoiper), ("static", zengine_static), ("urls", zengine_urls), *extra])
    runtime.start()
    return runtime


class Builds:
    """Counts the documents actually built."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = runtime.hooks.load_accounts

        def counted(*args: object, **kwargs: object) -> list[Account]:
            self.count += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(runtime.hooks, "load_accounts", counted)


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.stop()


def alice(runtime: Runtime) -> Identity:
    identity = runtime.hooks.find_identity("alice", runtime, ("static",))
    assert identity is not None
    return identity


def test_zengine_data_generation_lets_a_returning_phone_skip_the_build(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = Builds(rt, monkeypatch)
    first = render_for(alice(rt), MOBILE, rt, Outcome())
    outcome = Outcome()
    again = render_for(alice(rt), MOBILE, rt, outcome)
    assert again == first and b"sip-secret" in first
    assert builds.count == 1 and outcome.account_count == 1
    # Another version or family is another document.
    older = render_for(alice(rt), ClientInfo("mobile", Version(1, 5), "1.5"), rt, Outcome())
    assert older != first and builds.count == 2


def test_zengine_data_generation_changes_when_the_users_file_is_reloaded(
        rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = Builds(rt, monkeypatch)
    render_for(alice(rt), MOBILE, rt, Outcome())
    (tmp_path / "users.toml").write_text(users_toml("wonderland").replace(
        "sip-secret", "new-sip-secret"))
    rt.state["static"] = load_users(tmp_path / "users.toml", rt.settings.profiles)
    body = render_for(alice(rt), MOBILE, rt, Outcome())
    assert b"new-sip-secret" in body and builds.count == 2


class Silent:
    """Contributes accounts but says nothing about generations."""

    @hookimpl
    def zengine_load_accounts(self) -> None:
        return None


class Unknowing:
    @hookimpl
    def zengine_load_accounts(self) -> None:
        return None

    @hookimpl
    def zengine_data_generation(self) -> None:
        return None


@pytest.mark.parametrize("plugin", [Silent(), Unknowing()], ids=["no hook", "None"])
def test_zengine_data_generation_missing_or_none_means_no_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin: object) -> None:
    runtime = make_runtime(tmp_path, ("other", plugin))
    try:
        builds = Builds(runtime, monkeypatch)
        for _ in range(3):
            render_for(alice(runtime), MOBILE, runtime, Outcome())
        assert builds.count == 3 and len(runtime.documents) == 0
    finally:
        runtime.stop()


class Signer:
    """Post-processes documents without a generation, like the example plugin once did."""

    @hookimpl
    def zengine_postprocess_document(self) -> None:
        return None


def _startup_lines(tmp_path: Path, *extra: tuple[str, object],
                   **cache: object) -> list[MutableMapping[str, Any]]:
    (tmp_path / "users.toml").write_text(users_toml("wonderland"))
    settings = settings_from_mapping({
        "plugins": {"static": {"users_file": str(tmp_path / "users.toml")}},
        "document_cache": cache}, environ={})
    app = create_app(settings, load_entrypoints=False, plugins=[
        ("zoiper", zengine_zoiper), ("static", zengine_static), ("urls", zengine_urls), *extra])
    with structlog.testing.capture_logs() as logs, TestClient(app):
        pass
    return [line for line in logs if line["event"] == "document_cache.uncacheable"]


def test_startup_names_each_plugin_that_makes_documents_uncacheable(tmp_path: Path) -> None:
    lines = _startup_lines(tmp_path, ("signer", Signer()), ("other", Silent()),
                           ("unknowing", Unknowing()))
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["log_level"] == "warning" and line["plugins"] == ["other", "signer"]
    assert "signer (zengine_postprocess_document)" in str(line["reason"])
    assert "other (zengine_load_accounts)" in str(line["reason"])
    assert "fast path" in str(line["effect"])
    # Answering None for some identities is allowed (a backend that cannot tell): no line.
    assert _startup_lines(tmp_path, ("unknowing", Unknowing())) == []
    # With the cache off there is nothing to warn about.
    assert _startup_lines(tmp_path, ("signer", Signer()), enabled=False) == []


def test_document_cache_can_be_turned_off(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = make_runtime(tmp_path, enabled=False)
    try:
        builds = Builds(runtime, monkeypatch)
        render_for(alice(runtime), MOBILE, runtime, Outcome())
        render_for(alice(runtime), MOBILE, runtime, Outcome())
        assert builds.count == 2
    finally:
        runtime.stop()


def test_entries_expire_and_the_cache_is_bounded() -> None:
    now = [0.0]
    cache = DocumentCache(DocumentCacheSettings(ttl=5, max_entries=16), clock=lambda: now[0])
    identity = Identity(username="a", backend="static")
    key = cache.key(identity, MOBILE, ["static=1"])
    cache.put(key, Rendered(b"doc", 1))
    assert cache.get(key) == Rendered(b"doc", 1)
    other = Identity(username="a", backend="static", profile="p")
    assert cache.get(cache.key(other, MOBILE, ["static=1"])) is None  # every field counts
    now[0] = 6
    assert cache.get(key) is None
    for n in range(40):
        cache.put(cache.key(Identity(username=f"u{n}", backend="static"), MOBILE, []),
                  Rendered(b"x", 1))
    assert len(cache) == 16
