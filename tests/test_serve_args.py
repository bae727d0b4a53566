"""``zengine serve --port/--workers`` out of range: refused in one line before anything binds,
within the bounds ``[server] port`` and ``workers`` have in a config file."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLE_CONFIG
from zengine import cli, server


class _Engine:
    """Stands in for the real engine: reaching ``run`` means the bad value was accepted (and
    a real engine would have served, or failed inside the engine with a traceback)."""

    def run(self, settings: object, bind: server.Bind) -> int:
        raise AssertionError(f"the engine was started with {bind}")


@pytest.mark.parametrize(("option", "value", "bound"), [
    ("--port", "99999", "less than or equal to 65535"),
    ("--port", "-1", "greater than or equal to 0"),
    # 0 was taken as "not given": the config's worker count served instead, silently.
    ("--workers", "0", "greater than or equal to 1"),
    ("--workers", "65", "less than or equal to 64"),
])
def test_serve_refuses_out_of_range_overrides(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        option: str, value: str, bound: str) -> None:
    monkeypatch.setattr(server, "load_engine", lambda name: _Engine())
    assert cli.main(["serve", "--config", str(EXAMPLE_CONFIG), option, value]) == 2
    err = capsys.readouterr().err
    assert f"{option} {value}: Input should be {bound}" in err
    assert "Traceback" not in err
