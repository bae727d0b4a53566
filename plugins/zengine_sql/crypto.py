"""SIP passwords at rest: AES-256-GCM (``cryptography``) with key ids, so keys can rotate.

A stored value is ``<key id>:<base64url(12-byte nonce || ciphertext || tag)>``. The key id and a
fixed purpose string are the associated data, so a value cannot be moved to another key id or
reused as another kind of secret without failing authentication.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from zengine.errors import AccountDataError, ConfigError
from zengine.settings import Settings
from zengine_sql.settings import SqlSettings

_PURPOSE = b"zengine.sql.sip_password.v1"
_NONCE = 12


def generate_key() -> str:
    """A fresh random 256-bit key, base64url-encoded, for ``encryption_keys``."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


def _decode_key(key_id: str, value: SecretStr) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value.get_secret_value().strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ConfigError(f"[plugins.sql] encryption key {key_id!r} is not base64url") from None
    if len(raw) != 32:
        raise ConfigError(f"[plugins.sql] encryption key {key_id!r} must be 32 bytes "
                          f"(base64url of 256 bits), got {len(raw)}; "
                          "make one with `zengine db generate-key`")
    return raw


@dataclass(frozen=True)
class SecretBox:
    current: str
    keys: Mapping[str, AESGCM]

    def __repr__(self) -> str:
        return f"SecretBox(current={self.current!r}, keys={sorted(self.keys)!r})"

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self.keys[self.current].encrypt(nonce, plaintext.encode("utf-8"),
                                                 self._aad(self.current))
        return f"{self.current}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, stored: str) -> SecretStr:
        key_id, sep, body = stored.partition(":")
        aead = self.keys.get(key_id)
        if not sep or aead is None:
            raise AccountDataError(f"SIP password encrypted with unknown key id {key_id!r}; "
                                   "add that key to [plugins.sql] encryption_keys")
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            plain = aead.decrypt(raw[:_NONCE], raw[_NONCE:], self._aad(key_id))
        except (binascii.Error, ValueError, InvalidTag):
            raise AccountDataError(f"SIP password under key {key_id!r} does not decrypt "
                                   "(wrong key or damaged value)") from None
        return SecretStr(plain.decode("utf-8"))

    @staticmethod
    def key_id_of(stored: str) -> str:
        return stored.partition(":")[0]

    @staticmethod
    def _aad(key_id: str) -> bytes:
        return _PURPOSE + b":" + key_id.encode("ascii")


def load_keys(config: SqlSettings, settings: Settings) -> SecretBox | None:
    """Keys from ``encryption_keys`` and ``encryption_keys_file``; ``None`` when there are none."""
    entries: dict[str, SecretStr] = dict(config.encryption_keys)
    if config.encryption_keys_file is not None:
        path = settings.resolve_path(config.encryption_keys_file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"[plugins.sql] encryption_keys_file {path}: "
                              f"{exc.strerror}") from None
        except tomllib.TOMLDecodeError:
            # The message of a TOML error quotes the offending line, which is a key.
            raise ConfigError(f"[plugins.sql] encryption_keys_file {path}: not TOML "
                              "(expected lines of key_id = \"base64url key\")") from None
        for key_id, value in data.items():
            if not isinstance(value, str):
                raise ConfigError(f"[plugins.sql] encryption_keys_file {path}: key "
                                  f"{key_id!r} must be a string")
            if key_id in entries:
                raise ConfigError(f"[plugins.sql] key id {key_id!r} is set twice")
            entries[key_id] = SecretStr(value)
    if not entries:
        return None
    for key_id in entries:
        if ":" in key_id or not key_id.isascii() or not 0 < len(key_id) <= 32:
            raise ConfigError(f"[plugins.sql] key id {key_id!r}: use 1-32 ASCII characters "
                              "without ':'")
    current = config.encryption_key_id
    if current is None:
        if len(entries) != 1:
            raise ConfigError("[plugins.sql] several encryption keys: set encryption_key_id "
                              f"to one of {sorted(entries)}")
        current = next(iter(entries))
    if current not in entries:
        raise ConfigError(f"[plugins.sql] encryption_key_id {current!r} is not among the keys "
                          f"{sorted(entries)}")
    return SecretBox(current, {kid: AESGCM(_decode_key(kid, value))
                               for kid, value in entries.items()})
