"""Version parsing and negotiation, and family selection by path and format parameter."""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

import pytest

from zengine.errors import BadRequest, BadVersion
from zengine.models import ClientInfo, ProvisionRequest, Transform, Version
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine_zoiper import detect


def _runtime(**config: object) -> Runtime:
    runtime = build_runtime(settings_from_mapping(config, environ={}), load_entrypoints=False,
                            plugins=plugin_list("zoiper"))
    runtime.start()
    return runtime


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = _runtime()
    yield rt
    rt.stop()


def request(version: str | None = None, path: str = "/id.php",
            **params: str) -> ProvisionRequest:
    return ProvisionRequest(path=path, params=MappingProxyType(params),
                            headers=MappingProxyType({}), client_addr="test", credentials=None,
                            version_raw=version)


def served(runtime: Runtime, version: str | None, **kw: str) -> tuple[str, str]:
    client = runtime.hooks.detect_client(request(version, **kw), runtime)
    assert client is not None
    return client.family, str(client.version)


@pytest.mark.parametrize(("raw", "family", "version"), [
    ("1", "legacy", "1.0"),
    ("1.0", "legacy", "1.0"),
    (" 1.0 ", "legacy", "1.0"),
    ("1.0.7", "legacy", "1.0"),
    ("1.14", "mobile", "1.14"),
    ("\t1.14\n", "mobile", "1.14"),
    ("1.12.1", "mobile", "1.12"),
    # Read as Zoiper's example server reads versions (major and minor, the rest dropped).
    ("1.2.3.4", "mobile", "1.2"),
    ("1.14-beta", "mobile", "1.14"),
    ("1.14.3", "mobile", "1.14"),
    ("1.12.1-rc2", "mobile", "1.12"),
    ("1.0-beta", "legacy", "1.0"),
    ("1.0.0.1", "legacy", "1.0"),
    ("1.13", "mobile", "1.13"),
    ("1.5", "mobile", "1.5"),
    # No since-annotation below 1.5: 1.1-1.4 get the document every step applied to.
    ("1.3", "mobile", "1.3"),
    ("1.1", "mobile", "1.1"),
    # Newer than the newest known: the newest, never an error.
    ("1.99", "mobile", "1.14"),
    ("1.15", "mobile", "1.14"),
    ("2.0", "mobile", "1.14"),
    ("2", "mobile", "1.14"),
    ("99999", "mobile", "1.14"),
    ("99999999999999999999999.1", "mobile", "1.14"),
    # Absent, empty or an unsubstituted placeholder: no version (default: newest mobile).
    (None, "mobile", "1.14"),
    ("", "mobile", "1.14"),
    ("  ", "mobile", "1.14"),
    ("[version]", "mobile", "1.14"),
    ("{version}", "mobile", "1.14"),
    ("$VERSION", "mobile", "1.14"),
])
def test_version_negotiation(runtime: Runtime, raw: str | None, family: str,
                             version: str) -> None:
    assert served(runtime, raw) == (family, version)


@pytest.mark.parametrize("raw", ["abc", "1.x", "0.9", "0", "0.99.1", "-1", "1..2", "1.14-",
                                 "1,14", "v1.14", "1e3",
                                 "\uff11.\uff11\uff14",  # full-width digits
                                 "\u0661.\u0661\u0664"])  # Arabic-Indic digits
def test_bad_versions_are_a_clear_error(runtime: Runtime, raw: str) -> None:
    with pytest.raises(BadVersion) as info:
        runtime.hooks.detect_client(request(raw), runtime)
    assert info.value.public_message.startswith("Unknown provisioning version")


def test_requested_version_is_kept_for_logs(runtime: Runtime) -> None:
    client = runtime.hooks.detect_client(request("1.99"), runtime)
    assert client == ClientInfo("mobile", Version(1, 14), "1.99")
    assert client is not None and client.requested == "1.99"


def test_no_version_can_mean_legacy() -> None:
    runtime = _runtime(clients={"no_version": "legacy"})
    try:
        assert served(runtime, None) == ("legacy", "1.0")
        assert served(runtime, "[version]") == ("legacy", "1.0")
        assert served(runtime, "1.14") == ("mobile", "1.14")
        # An explicit format still wins over the no-version rule.
        assert served(runtime, None, format="mobile") == ("mobile", "1.14")
    finally:
        runtime.stop()


def test_desktop_by_path_ignores_any_version(runtime: Runtime) -> None:
    assert served(runtime, None, path="/desktop") == ("desktop", "5.0")
    assert served(runtime, "1.14", path="/desktop") == ("desktop", "5.0")
    # Zoiper5 has no [version] placeholder: an operator copying a mobile URL gets it literally.
    assert served(runtime, "[version]", path="/desktop") == ("desktop", "5.0")


def test_desktop_paths_are_configurable() -> None:
    runtime = _runtime(clients={"desktop_paths": ["/z5", "/pc"]})
    try:
        assert served(runtime, None, path="/pc")[0] == "desktop"
        assert served(runtime, None, path="/desktop")[0] == "mobile"
    finally:
        runtime.stop()


@pytest.mark.parametrize(("params", "version", "expected"), [
    ({"format": "desktop"}, None, ("desktop", "5.0")),
    ({"format": " Desktop "}, "1.12", ("desktop", "5.0")),
    ({"format": "legacy"}, "1.14", ("legacy", "1.0")),
    ({"format": "LEGACY"}, None, ("legacy", "1.0")),
    ({"format": "mobile"}, "1.8", ("mobile", "1.8")),
    ({"format": "mobile"}, None, ("mobile", "1.14")),
    # Forced mobile with the legacy version: the oldest mobile document.
    ({"format": "mobile"}, "1.0", ("mobile", "1.1")),
])
def test_format_parameter_forces_the_family(runtime: Runtime, params: dict[str, str],
                                            version: str | None,
                                            expected: tuple[str, str]) -> None:
    assert served(runtime, version, **params) == expected


def test_format_parameter_wins_over_desktop_path(runtime: Runtime) -> None:
    assert served(runtime, "1.10", path="/desktop", format="mobile") == ("mobile", "1.10")


def test_format_parameter_names_are_configurable() -> None:
    runtime = _runtime(request={"format_params": ["fmt", "family"]})
    try:
        assert served(runtime, None, family="legacy") == ("legacy", "1.0")
        assert served(runtime, None, format="legacy") == ("mobile", "1.14")
        with pytest.raises(BadRequest):  # the same value under two configured names
            runtime.hooks.detect_client(request(None, fmt="legacy", family="legacy"), runtime)
    finally:
        runtime.stop()


def test_unknown_format_is_a_bad_request(runtime: Runtime) -> None:
    with pytest.raises(BadRequest) as info:
        runtime.hooks.detect_client(request(None, format="xmpp"), runtime)
    assert "mobile, legacy, desktop" in info.value.public_message


def test_mobile_version_helper_never_exceeds_newest() -> None:
    newest = Version(1, 14)
    assert detect.mobile_version(Version(1, 14, 9), newest) == Version(1, 14)
    assert str(detect.mobile_version(Version(1, 12, 1), newest)) == "1.12"
    assert detect.mobile_version(Version(7, 3), newest) == newest


# -- the memo: a returning phone's answer is remembered per (path, version, format) ---------

def test_an_answer_is_remembered_for_that_request_shape_only() -> None:
    runtime = _runtime()
    try:
        first = runtime.hooks.detect_client(request("1.12"), runtime)
        assert runtime.hooks.detect_client(request("1.12"), runtime) is first
        # Anything detection reads is in the key: the version, the path, the format.
        assert served(runtime, "1.8") == ("mobile", "1.8")
        assert served(runtime, "1.12", path="/desktop") == ("desktop", "5.0")
        assert served(runtime, "1.12", format="legacy") == ("legacy", "1.0")
        assert served(runtime, "1.12") == ("mobile", "1.12")
        # What is remembered is what detection computes afresh.
        memo = runtime.state["zoiper"]
        for (path, raw, *formats), client in memo.answers.items():
            params = {"format": formats[0]} if formats[0] is not None else {}
            assert client == detect._detect(request(raw, path=path, **params), runtime,
                                            memo.newest)
    finally:
        runtime.stop()


def test_refusals_are_not_remembered() -> None:
    runtime = _runtime()
    try:
        for _ in range(2):
            with pytest.raises(BadVersion):
                runtime.hooks.detect_client(request("0.9"), runtime)
            with pytest.raises(BadRequest):
                runtime.hooks.detect_client(request(None, format="xmpp"), runtime)
        assert not runtime.state["zoiper"].answers
    finally:
        runtime.stop()


def test_the_memo_is_bounded() -> None:
    runtime = _runtime()
    try:
        for n in range(detect.MEMO_MAX + 50):
            assert served(runtime, f"1.{n % 14 + 1}.{n}") == ("mobile", f"1.{n % 14 + 1}")
            assert len(runtime.state["zoiper"].answers) <= detect.MEMO_MAX
    finally:
        runtime.stop()


def test_the_memo_follows_the_runtimes_transforms_and_settings() -> None:
    runtime = _runtime()
    try:
        assert served(runtime, "1.99") == ("mobile", "1.14")
        # A newer mobile step added to the runtime (same list, one more): the newest moves.
        runtime.transforms.append(Transform("mobile", Version(1, 20), lambda document: None))
        assert served(runtime, "1.99") == ("mobile", "1.20")
        runtime.transforms = [t for t in runtime.transforms if t.version != Version(1, 20)]
        assert served(runtime, "1.99") == ("mobile", "1.14")
        # Other settings (a reload builds a new runtime; a test may swap them): asked afresh.
        runtime.settings = settings_from_mapping({"clients": {"no_version": "legacy"}},
                                                 environ={})
        assert served(runtime, None) == ("legacy", "1.0")
    finally:
        runtime.stop()
