"""argon2id with the ``[passwords]`` parameters."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from zengine import cli
from zengine.errors import ConfigError
from zengine.passwords import Passwords, PasswordSettings
from zengine.settings import settings_from_mapping

CHEAP = PasswordSettings(time_cost=1, memory_kib=8192, parallelism=1)


def test_hash_carries_the_configured_parameters() -> None:
    stored = Passwords(CHEAP).hash("pw")
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert Passwords(CHEAP).verify(stored, "pw")
    assert not Passwords(CHEAP).verify(stored, "PW")


def test_other_parameters_still_verify_and_ask_for_a_rehash() -> None:
    strong = PasswordHasher().hash("pw")
    cheap = Passwords(CHEAP)
    assert cheap.verify(strong, "pw")
    assert cheap.needs_rehash(strong)
    assert not cheap.needs_rehash(cheap.hash("pw"))


def test_unknown_user_spends_a_verification_and_never_matches() -> None:
    cheap = Passwords(CHEAP)
    assert cheap.verify(None, "zengine-dummy-password-for-timing") is False
    assert cheap.verify("not-a-hash", "pw") is False


def test_passwords_table_validated() -> None:
    with pytest.raises(ConfigError, match=r"\[passwords\]: key 'time_cost'"):
        settings_from_mapping({"passwords": {"time_cost": 0}}, environ={})
    with pytest.raises(ConfigError, match="at least 8 times parallelism"):
        settings_from_mapping({"passwords": {"memory_kib": 8, "parallelism": 4}}, environ={})


def test_hash_password_uses_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "z.toml"
    config.write_text("[passwords]\ntime_cost = 1\nmemory_kib = 8192\nparallelism = 1\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["hash-password", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
