"""``[plugins.admin]``: the admin REST API's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from zengine.settings import SecretFile

NAME = "admin"
#: Every resource lives below this prefix; a new major version gets a new prefix.
PREFIX = "/api/v1"


class AdminSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The API is off unless an operator turns it on; ``zengine apikeys`` works either way.
    enabled: bool = False
    #: Where API keys live. ``auto``: the SQL backend's database when ``[plugins.sql] url`` is
    #: set (every server that shares the database knows every key), else the embedded SQLite
    #: file; ``sql`` or ``sqlite`` to choose.
    store: Literal["auto", "sql", "sqlite"] = "auto"
    #: The embedded SQLite file (created 0600), relative to the config file.
    sqlite_path: Path = Path("zengine-admin.db")
    #: Optional secret mixed into every key's HMAC-SHA256 digest: a copy of the key table
    #: without it cannot even be used to check a guessed key. Changing it invalidates every
    #: key. Without it the digest is still keyed by a fixed label (keys carry 256 random bits,
    #: so a fast digest is enough; a slow password hash would only slow every request).
    key_pepper: SecretStr | None = None
    #: File holding the pepper (first line); relative to the config file.
    key_pepper_file: SecretFile | None = None
    #: The most items one page of a list answers.
    max_page_size: int = Field(200, ge=10, le=1000)
