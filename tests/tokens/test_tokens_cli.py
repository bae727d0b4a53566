"""``zengine tokens issue|list|revoke|purge`` through the real command line entry point."""

from __future__ import annotations

import io
import json
import re
import stat
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import zxingcpp
from PIL import Image

from tests.tokens.conftest import runtime_from, write_config
from zengine.cli import main
from zengine_tokens.api import token_service


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _issue(capsys: pytest.CaptureFixture[str], config: Path, *extra: str) -> tuple[str, str]:
    code, out, err = run(capsys, "tokens", "issue", "alice", "-c", str(config), *extra)
    assert code == 0, err
    token = re.search(r"^token:\s+(\S+)$", out, re.M)
    token_id = re.search(r"^id:\s+(\S+)$", out, re.M)
    assert token and token_id
    return token[1], token_id[1]


def test_issue_prints_the_token_once_the_link_and_a_qr(
        capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path) -> None:
    png = tmp_path / "qr.png"
    code, out, err = run(capsys, "tokens", "issue", "alice", "--account", "alice-office",
                         "--ttl", "30m", "--uses", "2", "--png", str(png), "-c", str(config))
    assert code == 0, err
    token = re.search(r"^token:\s+([A-Za-z0-9_-]{43})$", out, re.M)
    assert token is not None
    assert out.count(token[1]) == 2  # the token line and inside the link, nothing else
    link = re.search(r"^link:\s+(\S+)$", out, re.M)
    assert link is not None
    parts = urlsplit(link[1])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://oem.zoiper.com/qr-howto.php"
    assert parse_qs(parts.query) == {"provider_id": ["0123456789abcdef0123456789abcdef"],
                                     "t": [token[1]]}
    assert "█" in out  # the terminal QR code
    assert "uses: 2" in out and "account: alice-office" in out
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.read_bytes())))
    assert decoded.text == link[1]
    runtime = runtime_from(config)
    try:
        service = token_service(runtime)
        assert service.redeem(token[1], "a").outcome == "used"
        [info] = service.list("alice")
        assert info.expires - info.created == timedelta(minutes=30)
    finally:
        runtime.stop()


def test_issue_refuses_unknown_users_accounts_and_durations(
        capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, _, err = run(capsys, "tokens", "issue", "nobody", "-c", str(config))
    assert code == 1 and "No backend knows user 'nobody'" in err
    code, _, err = run(capsys, "tokens", "issue", "alice", "--account", "x", "-c", str(config))
    assert code == 1 and "no account 'x'" in err
    code, _, err = run(capsys, "tokens", "issue", "alice", "--uses", "0", "-c", str(config))
    assert code == 1 and "uses must be between" in err
    with pytest.raises(SystemExit) as exc:
        main(["tokens", "issue", "alice", "--ttl", "soon", "-c", str(config)])
    assert exc.value.code == 2 and "not a duration" in capsys.readouterr().err


def test_issue_without_public_url_says_what_is_missing(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    config = write_config(tmp_path, server={})
    text = config.read_text().replace('public_url = "https://prov.example.com"\n', "")
    text = text.replace('provider_id = "0123456789abcdef0123456789abcdef"\n', "")
    config.write_text(text)
    code, out, err = run(capsys, "tokens", "issue", "alice", "-c", str(config))
    assert code == 0 and "link:" not in out and "set [server] public_url" in err


def test_list_shows_ids_and_states_never_tokens(capsys: pytest.CaptureFixture[str],
                                                config: Path) -> None:
    first, first_id = _issue(capsys, config)
    second, second_id = _issue(capsys, config)  # revokes the first
    code, out, _ = run(capsys, "tokens", "list", "-c", str(config))
    assert code == 0
    assert first not in out and second not in out
    assert re.search(rf"^{first_id}\s+alice\s+\*\s+revoked\b", out, re.M), out
    assert re.search(rf"^{second_id}\s+alice\s+\*\s+active\s+0/1\b", out, re.M), out
    code, out, _ = run(capsys, "tokens", "list", "bob", "-c", str(config))
    assert out.count("\n") == 1  # header only
    code, out, _ = run(capsys, "tokens", "list", "alice", "--json", "-c", str(config))
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["state"]) for r in rows] == [(second_id, "active"),
                                                     (first_id, "revoked")]
    assert "token" not in rows[0] and second not in out


def test_revoke_by_id_and_by_user(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    _, one = _issue(capsys, config, "--account", "alice-office")
    _, two = _issue(capsys, config, "--account", "alice-home")
    _, three = _issue(capsys, config)
    code, out, _ = run(capsys, "tokens", "revoke", one, "-c", str(config))
    assert code == 0 and f"revoked {one} (alice)" in out
    code, _, err = run(capsys, "tokens", "revoke", one, "-c", str(config))
    assert code == 1 and "no token" in err
    code, out, _ = run(capsys, "tokens", "revoke", "--user", "alice", "-c", str(config))
    assert code == 0 and "revoked 2 token(s) of alice" in out
    code, out, _ = run(capsys, "tokens", "list", "alice", "--json", "-c", str(config))
    assert {json.loads(line)["state"] for line in out.splitlines()} == {"revoked"}
    assert {json.loads(line)["id"] for line in out.splitlines()} == {one, two, three}
    with pytest.raises(SystemExit) as exc:
        main(["tokens", "revoke", "-c", str(config)])
    assert exc.value.code == 2
    capsys.readouterr()


def test_purge_deletes_expired_tokens(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    _issue(capsys, config)
    runtime = runtime_from(config)
    try:
        service = token_service(runtime)
        real = service.clock
        service.clock = lambda: real() - timedelta(days=30)
        service.issue("bob", ttl=timedelta(hours=1))
    finally:
        runtime.stop()
    code, out, _ = run(capsys, "tokens", "purge", "-c", str(config))
    assert code == 0 and out == "purged 1 expired token(s)\n"
    code, out, _ = run(capsys, "tokens", "list", "--json", "-c", str(config))
    assert [json.loads(line)["user"] for line in out.splitlines()] == ["alice"]


@pytest.mark.parametrize("action", ["issue", "list", "revoke", "purge"])
def test_every_tokens_command_has_help(capsys: pytest.CaptureFixture[str], action: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tokens", action, "--help"])
    assert exc.value.code == 0
    assert f"zengine tokens {action}" in capsys.readouterr().out
