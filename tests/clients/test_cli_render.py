"""``zengine render --family`` shows each family's document, as the server would send it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import GOLDEN, users_toml_config
from zengine.cli import main
from zengine.models import Version
from zengine.testing import check_structure


@pytest.fixture(scope="module")
def config_file(users_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "zengine.toml"
    path.write_text(users_toml_config(users_file), encoding="utf-8")
    return path


def render(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> bytes:
    status = main(["render", "-c", str(config), "-u", "alice", *args])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out.encode("utf-8")


@pytest.mark.parametrize(("args", "golden", "family", "version"), [
    (("-V", "1.14"), "mobile/1.14.xml", "mobile", Version(1, 14)),
    (("-V", "1.8", "--family", "mobile"), "mobile/1.8.xml", "mobile", Version(1, 8)),
    (("--username", "alice", "--version", "1.99"), "mobile/1.99.xml", "mobile",
     Version(1, 14)),
    (("--family", "mobile"), "mobile/no-version.xml", "mobile", Version(1, 14)),
    (("-V", "1.0"), "legacy/1.0.xml", "legacy", Version(1, 0)),
    (("--family", "legacy", "-V", "1.14"), "legacy/1.0.xml", "legacy", Version(1, 0)),
    (("--family", "desktop"), "desktop/query.xml", "desktop", Version(5, 0)),
    (("--family", "desktop", "-V", "1.12"), "desktop/query.xml", "desktop", Version(5, 0)),
])
def test_render_each_family(capsys: pytest.CaptureFixture[str], config_file: Path,
                            args: tuple[str, ...], golden: str, family: str,
                            version: Version) -> None:
    body = render(capsys, config_file, *args)
    assert body == (GOLDEN / golden).read_bytes()
    assert check_structure(body, family, version) == []


def test_render_bad_version_fails_cleanly(capsys: pytest.CaptureFixture[str],
                                          config_file: Path) -> None:
    status = main(["render", "-c", str(config_file), "-u", "alice", "-V", "banana"])
    captured = capsys.readouterr()
    assert status == 1
    assert "Unknown provisioning version" in captured.err
    assert captured.out == ""
